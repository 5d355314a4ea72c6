"""The read model: cases, tasks, candidates and timeline events, upserted idempotently from workflow snapshots.

A snapshot carries the workflow's state revision: an older one (a retried or late activity) never
overwrites a newer one. Events and outbox messages are keyed by ``<case id>#<sequence>``, so a retried
activity writes nothing twice. New emails are queued for SMTP only when the worker has an SMTP server;
otherwise (the embedded default) they are written as ``held``, readable in the app, and the workflow starts
no delivery for them.

Written with SQLAlchemy Core in one transaction (a handful of statements, rows in batches), not the ORM:
this runs for every change of every case, and the ORM's per-row bookkeeping was most of its cost. Tasks are
upserted (``INSERT ... ON CONFLICT DO UPDATE``, SQLite and PostgreSQL alike), and the case row's UPDATE is
guarded by its revision, so a sync asks the database nothing before it writes.

Every applied case action (a timeline event with a person as its actor) gets its audit-log row in the same
transaction as its event, keyed by the event's id: a retried activity, a resend or ``sgflow rebuild`` never adds
a second one, and a crash cannot leave an applied action unaudited. A learning event's reporter is never named
(its event's actor is "reporter" or "anonymous"; the audit row says "anonymous", as the web app always did).

``sgflow rebuild`` writes with ``restore=True``: the case row, its tasks, candidates and timeline are overwritten
with the workflow's state even at the same revision (rows deleted or altered by hand come back as they were).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from safeguarding.audit_log import record_events
from safeguarding.case_records import REPORTER, CaseSnapshot, EventRecord
from safeguarding.db import one_writer
from safeguarding.tables import (
    Case,
    CaseEvent,
    CasePartnership,
    LearningReporter,
    LearningTag,
    OutboxMessage,
    Task,
    TaskCandidate,
    User,
)

_DATE_FIELDS = {"aware_date", "notification_due", "notification_sent_on", "rapid_review_due",
                "rapid_review_submitted_on", "report_due", "publication_date"}
_DATETIME_FIELDS = {"opened_at", "closed_at"}
_JSON_FIELDS = {"children", "agencies", "plan"}

CASES, TASKS, CANDIDATES = Case.__table__, Task.__table__, TaskCandidate.__table__
EVENTS, OUTBOX, TAGS = CaseEvent.__table__, OutboxMessage.__table__, LearningTag.__table__
USERS, REPORTERS = User.__table__, LearningReporter.__table__
CASE_PARTNERSHIPS = CasePartnership.__table__
_CASE_COLUMNS = frozenset(CASES.c.keys())
_TASK_VALUES = ("type", "title", "form", "candidate_role", "candidate_label", "status", "due_date", "follow_up_date",
                "overdue", "claimed_by", "completed_by", "completed_at", "days_late", "data", "revision")

# Statements built once (building one costs about as much as running it); values come as parameters.
# A sync is a handful of statements: every statement is a round of the GIL between the worker's threads, so
# the common path asks nothing first (the case UPDATE says whether the snapshot is newer; tasks are upserted).
_CASE_REVISION = select(CASES.c.revision).where(CASES.c.id == bindparam("b_case_id"))
_CASE_INSERT = insert(CASES)
_CASE_UPDATE = update(CASES).where(CASES.c.id == bindparam("b_case_id"),  # SET: the columns given
                                   CASES.c.revision < bindparam("b_revision"))
_CASE_UPDATE_NEXT = update(CASES).where(CASES.c.id == bindparam("b_case_id"),  # a partial snapshot: on its base
                                        CASES.c.revision == bindparam("b_revision") - 1)
_CANDIDATES_DELETE = delete(CANDIDATES).where(CANDIDATES.c.task_id.in_(bindparam("b_ids", expanding=True)))
_TAGS_DELETE = delete(TAGS).where(TAGS.c.case_id == bindparam("b_case_id"))
_TAG_INSERT = insert(TAGS)
_REPORTER = select(REPORTERS.c.user_ref).where(REPORTERS.c.case_id == bindparam("b_case_id"))
_EMAILS = select(USERS.c.user_ref, USERS.c.email).where(USERS.c.user_ref.in_(bindparam("b_refs", expanding=True)))
_DIALECTS = (("sqlite", sqlite), ("postgresql", postgresql))
# INSERT ... ON CONFLICT DO NOTHING, per dialect: rows already written stay as they are
_INSERT_NEW = {(name, table.name): dialect.insert(table).on_conflict_do_nothing()
               for name, dialect in _DIALECTS for table in (EVENTS, OUTBOX, CANDIDATES, CASE_PARTNERSHIPS)}
# a task: inserted when new, else its changing columns set (its case, key and opening stay)
_TASK_UPSERT = {name: dialect.insert(TASKS).on_conflict_do_update(
    index_elements=[TASKS.c.id], set_={column: dialect.insert(TASKS).excluded[column] for column in _TASK_VALUES})
    for name, dialect in _DIALECTS}


def national_ref(secret: str, case_id: str) -> str:
    """A stable pseudonymous case reference for the national view (re-identifiable only with the key)."""
    digest = hmac.new(secret.encode(), case_id.encode(), hashlib.sha256).hexdigest()[:8].upper()
    return f"N-{digest}"


def _case_values(snap: CaseSnapshot) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in snap.fields.items():
        if name not in _CASE_COLUMNS:
            continue
        if name in _DATE_FIELDS and value is not None:
            value = date.fromisoformat(value)
        elif name in _DATETIME_FIELDS and value is not None:
            value = datetime.fromisoformat(value)
        elif name in _JSON_FIELDS:
            value = json.dumps(value, ensure_ascii=False)
        values[name] = value
    if isinstance(snap.fields.get("children"), list):  # the national view counts them, never names them
        values["children_count"] = len(snap.fields["children"])
    return values


def _write_case_partnerships(conn: Connection, snap: CaseSnapshot) -> None:
    """A cross-boundary case: the partnership that leads it and the one where the child lives (once each)."""
    resident = snap.fields.get("resident_partnership_id")
    if not resident or resident == snap.partnership_id:
        return
    conn.execute(_INSERT_NEW[conn.dialect.name, CASE_PARTNERSHIPS.name], [
        {"case_id": snap.case_id, "partnership_id": snap.partnership_id, "role": "lead"},
        {"case_id": snap.case_id, "partnership_id": resident, "role": "resident"}])


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def _moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _tags(snap: CaseSnapshot) -> list[dict[str, str]]:
    """Themes and factors to count: a learning event's own, or the theme a closed escalation recorded."""
    fields = snap.fields
    month = (fields.get("aware_date") or "")[:7]
    spec = fields.get("learning_tags")
    if spec:
        pairs = [("theme", t) for t in spec.get("themes", [])] + [("factor", f) for f in spec.get("factors", [])]
        source, kind = spec.get("source", snap.process), spec.get("kind", snap.process)
    elif snap.process == "escalation" and fields.get("learning_theme"):
        pairs, source, kind = [("theme", fields["learning_theme"])], "escalation", "escalation"
    else:
        return []
    return [{"case_id": snap.case_id, "tag_type": tag_type, "tag": tag, "partnership_id": snap.partnership_id,
             "source": source, "kind": kind, "month": month} for tag_type, tag in dict.fromkeys(pairs)]


NO_ADDRESS = "nobody with an email address holds this role"


@dataclass
class Written:
    """What a snapshot's write did: whether it was the newest (``fresh``: False when a newer revision was
    already stored; its events and emails still land), which of its emails wait for SMTP delivery, and whether
    the read model needs the whole case (``resend``: a partial snapshot whose base revision it does not hold,
    e.g. after a restore from backup; then nothing of it was written)."""

    fresh: bool
    to_send: list[str] = field(default_factory=list)
    resend: bool = False


def apply_snapshot(engine: Engine, snap: CaseSnapshot, secret: str, *, smtp: bool = False,
                   restore: bool = False) -> Written:
    """Write the snapshot in one transaction. ``smtp``: an SMTP server is configured, so emails to people
    with an address are queued to be sent; without one they are held in the outbox (nothing leaves).
    ``restore``: a whole snapshot (the ``snapshot`` query) that overwrites what is stored at its revision too."""
    if restore:
        return _restore(engine, snap, secret)
    with one_writer(engine), engine.begin() as conn:
        values = _case_values(snap)
        values.update(revision=snap.revision, updated_at=datetime.now(UTC))
        # the common path: the case is there with an older revision (the UPDATE's row lock orders concurrent
        # syncs of one case on PostgreSQL; SQLite has one writer); a partial snapshot needs exactly the one before
        fresh = conn.execute(_CASE_UPDATE_NEXT if snap.partial else _CASE_UPDATE,
                             {"b_case_id": snap.case_id, "b_revision": snap.revision, **values}).rowcount == 1
        if not fresh:
            stored = conn.execute(_CASE_REVISION, {"b_case_id": snap.case_id}).scalar()
            if stored is None and not snap.partial:
                conn.execute(_CASE_INSERT, {
                    "id": snap.case_id, "partnership_id": snap.partnership_id, "case_ref": snap.case_ref,
                    "process": snap.process, "national_ref": national_ref(secret, snap.case_id), **values})
                fresh = True
            elif stored is None or stored < snap.revision:
                # older than this snapshot's base, or gone (a restored backup): only the whole case, timeline and
                # emails included, can bring it up to date; nothing of this one is written
                return Written(False, [], resend=True)
        if fresh:
            _write_tasks(conn, snap)
            _write_case_partnerships(conn, snap)
            tags = _tags(snap)
            if tags:
                conn.execute(_TAGS_DELETE, {"b_case_id": snap.case_id})
                conn.execute(_TAG_INSERT, tags)
        _write_events(conn, snap)
        to_send = _queue_messages(conn, snap, smtp)
        _audit_events(conn, snap)  # last: it holds the audit log's append lock until the commit
        return Written(fresh, to_send)


def _write_tasks(conn: Connection, snap: CaseSnapshot) -> None:
    if not snap.tasks:
        return
    dialect = conn.dialect.name
    conn.execute(_TASK_UPSERT[dialect], [{
        "id": f"{snap.case_id}/{record.key}", "case_id": snap.case_id, "partnership_id": snap.partnership_id,
        "key": record.key, "opened_at": _moment(record.opened_at), "type": record.type, "title": record.title,
        "form": record.form, "candidate_role": record.candidate_role, "candidate_label": record.candidate_label,
        "status": record.status, "due_date": _day(record.due_date), "follow_up_date": _day(record.follow_up_date),
        "overdue": record.overdue, "claimed_by": record.claimed_by, "completed_by": record.completed_by,
        "completed_at": _moment(record.completed_at), "days_late": record.days_late,
        "data": json.dumps(record.data, ensure_ascii=False), "revision": snap.revision} for record in snap.tasks])
    # candidates are fixed when a task opens (written again for an open task, they stay as they are); closed
    # tasks no longer need them for "my tasks"
    candidates = [{"task_id": f"{snap.case_id}/{record.key}", "user_ref": ref} for record in snap.tasks
                  if record.status == "open" for ref in dict.fromkeys(record.candidate_users)]
    if candidates:
        conn.execute(_INSERT_NEW[dialect, CANDIDATES.name], candidates)
    closed = [f"{snap.case_id}/{record.key}" for record in snap.tasks if record.status != "open"]
    if closed:
        conn.execute(_CANDIDATES_DELETE, {"b_ids": closed})


def _write_events(conn: Connection, snap: CaseSnapshot) -> None:
    if not snap.events:
        return
    conn.execute(_INSERT_NEW[conn.dialect.name, EVENTS.name], [
        {"id": f"{snap.case_id}#{event.seq}", "case_id": snap.case_id, "partnership_id": snap.partnership_id,
         "seq": event.seq, "at": datetime.fromisoformat(event.at), "actor": event.actor, "kind": event.kind,
         "task_key": event.task_key, "message": event.message, "data": json.dumps(event.data, ensure_ascii=False)}
        for event in snap.events])


def _queue_messages(conn: Connection, snap: CaseSnapshot, smtp: bool) -> list[str]:
    """Put the snapshot's emails in the outbox; returns the ids queued for SMTP delivery."""
    if not snap.messages:
        return []
    refs = {ref for m in snap.messages for ref in m.to_user_refs}
    reporter = None
    if f"{REPORTER}{snap.case_id}" in refs:
        reporter = conn.execute(_REPORTER, {"b_case_id": snap.case_id}).scalar()
    emails = dict(conn.execute(_EMAILS, {"b_refs": sorted(refs | ({reporter} if reporter else set()))}).all())
    if reporter and reporter in emails:  # the reporter's address, never their identity, in the outbox
        emails[f"{REPORTER}{snap.case_id}"] = emails.pop(reporter)
    now = datetime.now(UTC)
    rows = []
    for message in snap.messages:
        addresses = sorted(emails[r] for r in message.to_user_refs if r in emails)
        rows.append({"id": f"{snap.case_id}#{message.seq}", "partnership_id": snap.partnership_id,
                     "case_id": snap.case_id, "to_user_refs": json.dumps(message.to_user_refs),
                     "to_addresses": json.dumps(addresses), "subject": message.subject[:300], "body": message.body,
                     "status": "queued" if smtp and addresses else "held",
                     "last_error": None if addresses else NO_ADDRESS, "attempts": 0, "created_at": now})
    conn.execute(_INSERT_NEW[conn.dialect.name, OUTBOX.name], rows)
    return [row["id"] for row in rows if row["status"] == "queued"]


# --- the audit log: one row per applied action, in the same transaction as its timeline event -----------------

_AUDIT_ACTIONS = {"case_opened": "incident.open", "ladder_raised": "escalation.raise",
                  "learning_recorded": "learning.record", "task_claimed": "task.claim", "task_released": "task.release",
                  "task_completed": "task.complete", "action_added": "action.add", "escalated": "escalation.escalate"}
_UNNAMED = {"reporter", "anonymous"}  # a learning event's reporter: never named in the audit log


def _audit_action(event: EventRecord) -> str:
    if event.kind == "ladder_closed":
        return "escalation.withdraw" if event.message.startswith("Withdrawn") else "escalation.resolve"
    return _AUDIT_ACTIONS.get(event.kind, f"case.{event.kind}")


def _audit_events(conn: Connection, snap: CaseSnapshot) -> None:
    """The audit rows of the snapshot's events that a person did (not the system's own), once per event."""
    record_events(conn, [
        {"event_id": f"{snap.case_id}#{event.seq}", "actor": "anonymous" if event.actor in _UNNAMED else event.actor,
         "action": _audit_action(event), "partnership_id": snap.partnership_id, "case_id": snap.case_id,
         "detail": event.task_key or "", "at": datetime.fromisoformat(event.at)}
        for event in snap.events if event.actor != "system"])


# --- sgflow rebuild: the workflow's whole state overwrites what is stored, even at the same revision ----------

_CASE_DEFAULTS = {name: (None if info.is_required() or info.default_factory else info.default)
                  for name, info in Case.model_fields.items() if name in _CASE_COLUMNS}
_CASE_RESTORE = update(CASES).where(CASES.c.id == bindparam("b_case_id"),  # never back to an older revision
                                    CASES.c.revision <= bindparam("b_revision"))
_CASE_TASK_IDS = select(TASKS.c.id).where(TASKS.c.case_id == bindparam("b_case_id"))
_CASE_CANDIDATES_DELETE = delete(CANDIDATES).where(CANDIDATES.c.task_id.in_(_CASE_TASK_IDS))
_TASKS_EXTRA_DELETE = delete(TASKS).where(TASKS.c.case_id == bindparam("b_case_id"),
                                          TASKS.c.id.not_in(bindparam("b_ids", expanding=True)))
_EVENTS_EXTRA_DELETE = delete(EVENTS).where(EVENTS.c.case_id == bindparam("b_case_id"),
                                            EVENTS.c.id.not_in(bindparam("b_ids", expanding=True)))
_RESTORE_UPSERT = {(name, table.name): dialect.insert(table).on_conflict_do_update(
    index_elements=[table.c.id], set_={column: dialect.insert(table).excluded[column]
                                       for column in (c.name for c in table.c) if column != "id"})
    for name, dialect in _DIALECTS for table in (TASKS, EVENTS)}


def _restore(engine: Engine, snap: CaseSnapshot, secret: str) -> Written:
    """Make the stored case exactly the snapshot: its row (every column), tasks, candidates, timeline and tags.
    Nothing older than what is stored is written (a sync that landed after the query stands)."""
    with one_writer(engine), engine.begin() as conn:
        values = {**_CASE_DEFAULTS, **_case_values(snap)}
        values.update(partnership_id=snap.partnership_id, case_ref=snap.case_ref, process=snap.process,
                      national_ref=national_ref(secret, snap.case_id), revision=snap.revision,
                      updated_at=datetime.now(UTC))
        values.pop("id", None)
        if not conn.execute(_CASE_RESTORE, {"b_case_id": snap.case_id, "b_revision": snap.revision,
                                            **values}).rowcount:
            if conn.execute(_CASE_REVISION, {"b_case_id": snap.case_id}).scalar() is not None:
                return Written(False)  # the read model is ahead of the query: it moved on since
            conn.execute(_CASE_INSERT, {"id": snap.case_id, **values})
        dialect, task_ids = conn.dialect.name, [f"{snap.case_id}/{record.key}" for record in snap.tasks]
        conn.execute(_CASE_CANDIDATES_DELETE, {"b_case_id": snap.case_id})
        conn.execute(_TASKS_EXTRA_DELETE, {"b_case_id": snap.case_id, "b_ids": task_ids})
        if snap.tasks:
            conn.execute(_RESTORE_UPSERT[dialect, TASKS.name], [{
                "id": f"{snap.case_id}/{record.key}", "case_id": snap.case_id, "partnership_id": snap.partnership_id,
                "key": record.key, "opened_at": _moment(record.opened_at), "type": record.type,
                "title": record.title, "form": record.form, "candidate_role": record.candidate_role,
                "candidate_label": record.candidate_label, "status": record.status,
                "due_date": _day(record.due_date), "follow_up_date": _day(record.follow_up_date),
                "overdue": record.overdue, "claimed_by": record.claimed_by, "completed_by": record.completed_by,
                "completed_at": _moment(record.completed_at), "days_late": record.days_late,
                "data": json.dumps(record.data, ensure_ascii=False), "revision": snap.revision}
                for record in snap.tasks])
            candidates = [{"task_id": f"{snap.case_id}/{record.key}", "user_ref": ref} for record in snap.tasks
                          if record.status == "open" for ref in dict.fromkeys(record.candidate_users)]
            if candidates:
                conn.execute(_INSERT_NEW[dialect, CANDIDATES.name], candidates)
        event_ids = [f"{snap.case_id}#{event.seq}" for event in snap.events]
        conn.execute(_EVENTS_EXTRA_DELETE, {"b_case_id": snap.case_id, "b_ids": event_ids})
        if snap.events:
            conn.execute(_RESTORE_UPSERT[dialect, EVENTS.name], [
                {"id": f"{snap.case_id}#{event.seq}", "case_id": snap.case_id, "partnership_id": snap.partnership_id,
                 "seq": event.seq, "at": datetime.fromisoformat(event.at), "actor": event.actor, "kind": event.kind,
                 "task_key": event.task_key, "message": event.message,
                 "data": json.dumps(event.data, ensure_ascii=False)} for event in snap.events])
        conn.execute(_TAGS_DELETE, {"b_case_id": snap.case_id})
        tags = _tags(snap)
        if tags:
            conn.execute(_TAG_INSERT, tags)
        _write_case_partnerships(conn, snap)
        _audit_events(conn, snap)
        return Written(True)
