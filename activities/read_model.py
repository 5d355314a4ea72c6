"""The read model: cases, tasks, candidates and timeline events, upserted idempotently from workflow snapshots.

A snapshot carries the workflow's state revision: an older one (a retried or late activity) never
overwrites a newer one. Events and outbox messages are keyed by ``<case id>#<sequence>``, so a retried
activity writes nothing twice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from safeguarding.case_records import REPORTER, CaseSnapshot
from safeguarding.tables import (
    Case,
    CaseEvent,
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
_JSON_FIELDS = {"children", "agencies"}


def national_ref(secret: str, case_id: str) -> str:
    """A stable pseudonymous case reference for the national view (re-identifiable only with the key)."""
    digest = hmac.new(secret.encode(), case_id.encode(), hashlib.sha256).hexdigest()[:8].upper()
    return f"N-{digest}"


def _case_values(snap: CaseSnapshot) -> dict[str, Any]:
    values: dict[str, Any] = {}
    columns = Case.model_fields.keys()
    for name, value in snap.fields.items():
        if name not in columns:
            continue
        if name in _DATE_FIELDS and value is not None:
            value = date.fromisoformat(value)
        elif name in _DATETIME_FIELDS and value is not None:
            value = datetime.fromisoformat(value)
        elif name in _JSON_FIELDS:
            value = json.dumps(value, ensure_ascii=False)
        values[name] = value
    return values


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def _moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _tags(snap: CaseSnapshot) -> list[LearningTag]:
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
    return [LearningTag(case_id=snap.case_id, tag_type=tag_type, tag=tag, partnership_id=snap.partnership_id,
                        source=source, kind=kind, month=month) for tag_type, tag in dict.fromkeys(pairs)]


def apply_snapshot(engine: Engine, snap: CaseSnapshot, secret: str) -> bool:
    """Write the snapshot in one transaction. Returns False when a newer revision was already stored."""
    with Session(engine) as session:
        case = session.get(Case, snap.case_id, with_for_update=True)
        stale = case is not None and case.revision >= snap.revision
        if not stale:
            values = _case_values(snap)
            if case is None:
                case = Case(id=snap.case_id, partnership_id=snap.partnership_id, case_ref=snap.case_ref,
                            process=snap.process, national_ref=national_ref(secret, snap.case_id), **values)
            else:
                for name, value in values.items():
                    setattr(case, name, value)
            case.revision = snap.revision
            case.updated_at = datetime.now(case.opened_at.tzinfo)
            session.add(case)
            session.flush()
            _write_tasks(session, snap)
            tags = _tags(snap)
            if tags:
                session.execute(delete(LearningTag).where(LearningTag.case_id == snap.case_id))
                session.add_all(tags)
        _write_events(session, snap)
        _queue_messages(session, snap)
        session.commit()
        return not stale


def _write_tasks(session: Session, snap: CaseSnapshot) -> None:
    existing = {t.id: t for t in session.exec(select(Task).where(Task.case_id == snap.case_id)).scalars()}
    for record in snap.tasks:
        task_id = f"{snap.case_id}/{record.key}"
        row = existing.get(task_id) or Task(id=task_id, case_id=snap.case_id, partnership_id=snap.partnership_id,
                                            key=record.key, opened_at=_moment(record.opened_at))
        row.type, row.title, row.form = record.type, record.title, record.form
        row.candidate_role, row.candidate_label = record.candidate_role, record.candidate_label
        row.status, row.due_date, row.follow_up_date = record.status, _day(record.due_date), _day(record.follow_up_date)
        row.overdue, row.claimed_by, row.completed_by = record.overdue, record.claimed_by, record.completed_by
        row.completed_at, row.days_late = _moment(record.completed_at), record.days_late
        row.data = json.dumps(record.data, ensure_ascii=False)
        row.revision = snap.revision
        session.add(row)
        if task_id not in existing:
            session.flush()
            for ref in record.candidate_users:
                session.add(TaskCandidate(task_id=task_id, user_ref=ref))
    # candidates are fixed when a task opens; closed tasks no longer need them for "my tasks"
    closed = [f"{snap.case_id}/{r.key}" for r in snap.tasks if r.status != "open"]
    if closed:
        session.execute(delete(TaskCandidate).where(TaskCandidate.task_id.in_(closed)))


def _write_events(session: Session, snap: CaseSnapshot) -> None:
    if not snap.events:
        return
    ids = [f"{snap.case_id}#{e.seq}" for e in snap.events]
    present = set(session.exec(select(CaseEvent.id).where(CaseEvent.id.in_(ids))).scalars())
    for event_id, event in zip(ids, snap.events, strict=True):
        if event_id in present:
            continue
        session.add(CaseEvent(id=event_id, case_id=snap.case_id, partnership_id=snap.partnership_id, seq=event.seq,
                              at=datetime.fromisoformat(event.at), actor=event.actor, kind=event.kind,
                              task_key=event.task_key, message=event.message,
                              data=json.dumps(event.data, ensure_ascii=False)))


def _queue_messages(session: Session, snap: CaseSnapshot) -> None:
    if not snap.messages:
        return
    ids = [f"{snap.case_id}#{m.seq}" for m in snap.messages]
    present = set(session.exec(select(OutboxMessage.id).where(OutboxMessage.id.in_(ids))).scalars())
    refs = {ref for m in snap.messages for ref in m.to_user_refs}
    reporter = session.get(LearningReporter, snap.case_id) if f"{REPORTER}{snap.case_id}" in refs else None
    emails = dict(session.exec(select(User.user_ref, User.email).where(
        User.user_ref.in_(refs | ({reporter.user_ref} if reporter else set())))).all())
    if reporter and reporter.user_ref in emails:  # the reporter's address, never their identity, in the outbox
        emails[f"{REPORTER}{snap.case_id}"] = emails.pop(reporter.user_ref)
    for message_id, message in zip(ids, snap.messages, strict=True):
        if message_id in present:
            continue
        session.add(OutboxMessage(
            id=message_id, partnership_id=snap.partnership_id, case_id=snap.case_id,
            to_user_refs=json.dumps(message.to_user_refs),
            to_addresses=json.dumps(sorted(emails[r] for r in message.to_user_refs if r in emails)),
            subject=message.subject[:300], body=message.body))
