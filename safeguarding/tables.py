"""The application database: every table, in one module (the read model, users, arrangements versions).

Temporal is the source of truth for running processes; these tables are what pages read.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import BigInteger, Column, DateTime, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(**kw) -> Column:
    return Column(DateTime(timezone=True), **kw)


class Partnership(SQLModel, table=True):
    """A local safeguarding children partnership: created when its first arrangements are stored."""

    id: str = Field(primary_key=True, max_length=63)
    name: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class ArrangementsVersion(SQLModel, table=True):
    """An immutable, numbered version of a partnership's arrangements document."""

    __tablename__ = "arrangements_version"
    __table_args__ = (UniqueConstraint("partnership_id", "number", name="uq_arrangements_version_number"),)

    id: int | None = Field(default=None, primary_key=True)
    partnership_id: str = Field(foreign_key="partnership.id", index=True, max_length=63)
    number: int
    content_hash: str = Field(max_length=64, index=True)
    document: str = Field(sa_column=Column(Text, nullable=False))  # canonical JSON
    author: str = Field(max_length=200)
    change_note: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class User(SQLModel, table=True):
    """A person who signs in. ``user_ref`` is what arrangements documents name in role memberships."""

    __tablename__ = "app_user"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True, index=True)
    display_name: str = Field(max_length=200)
    user_ref: str = Field(max_length=100, unique=True, index=True)
    kind: str = Field(max_length=40)  # partnership_lead | reviewer | national_body | scrutineer | administrator
    partnership_id: str | None = Field(default=None, foreign_key="partnership.id", index=True, max_length=63)
    agency_id: str | None = Field(default=None, max_length=63)
    password_hash: str = Field(max_length=255)
    active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


# --- the read model: what pages list and filter. Written only by activities, idempotently. ---------------


class Case(SQLModel, table=True):
    """One statutory case (e.g. a serious incident and its rapid review), as its workflow last reported it."""

    __table_args__ = (Index("ix_case_aware_date_id", "aware_date", "id"),)  # the national list's order

    id: str = Field(primary_key=True, max_length=140)  # the workflow id
    partnership_id: str = Field(foreign_key="partnership.id", index=True, max_length=63)
    case_ref: str = Field(max_length=40)
    process: str = Field(max_length=40)  # incident
    national_ref: str = Field(max_length=20, index=True)  # pseudonymous reference for the national view
    category: str = Field(max_length=63)
    status: str = Field(max_length=40, index=True)  # open | closed | awaiting_lcspr | national_review
    stage: str = Field(max_length=200, default="")
    arrangements_version: int
    aware_date: date
    notification_due: date | None = None
    notification_sent_on: date | None = None
    notification_days_late: int | None = None
    rapid_review_required: bool = False
    rapid_review_due: date | None = None
    rapid_review_submitted_on: date | None = None
    rapid_review_days_late: int | None = None
    lcspr_decision: str | None = Field(default=None, max_length=20)
    panel_response: str | None = Field(default=None, max_length=40)
    overdue_tasks: int = 0
    # issue 16: whether the national Panel reviews the incident's category (its overview, lists and figures);
    # how many children the notification names; where the child lives when that is another area
    panel_sees: bool = Field(default=True, sa_column_kwargs={"server_default": "1"})
    children_count: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    resident_partnership_id: str | None = Field(default=None, max_length=63, index=True)  # on this service
    resident_area_name: str | None = Field(default=None, max_length=200)  # its name, or an area not on it
    # escalation ladders (process "escalation"): which ladder, where it is, how it went
    parent_case_id: str | None = Field(default=None, max_length=140, index=True)
    ladder_id: str | None = Field(default=None, max_length=63)
    ladder_purpose: str | None = Field(default=None, max_length=40)
    current_stage: int | None = None
    highest_stage: int | None = None
    timeouts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    urgent: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})
    reached_national: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})
    outcome: str | None = Field(default=None, max_length=40)
    learning_theme: str | None = Field(default=None, max_length=63)
    # local child safeguarding practice reviews (process "lcspr")
    report_due: date | None = None
    publication_date: date | None = None
    published: bool | None = None
    children: str = Field(default="[]", sa_column=Column(Text, nullable=False, server_default="[]"))  # JSON
    summary: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    agencies: str = Field(default="[]", sa_column=Column(Text, nullable=False, server_default="[]"))  # JSON
    # engine 6: the process's planned steps, in order (JSON: [{type, title, applies, ...}]); None for older cases
    plan: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    opened_by: str = Field(max_length=100)
    opened_at: datetime = Field(sa_column=_ts(nullable=False))
    closed_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    revision: int = 0  # the workflow's state revision: an older snapshot never overwrites a newer one
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class CasePartnership(SQLModel, table=True):
    """The partnerships a cross-boundary case involves: the notifying partnership that leads it (``lead``) and the
    partnership of the area where the child lives (``resident``), which contributes and reads that case only."""

    __tablename__ = "case_partnership"

    case_id: str = Field(foreign_key="case.id", primary_key=True, max_length=140)
    partnership_id: str = Field(primary_key=True, max_length=63, index=True)
    role: str = Field(max_length=20)  # lead | resident


class Task(SQLModel, table=True):
    """A human task of a case: who may do it, when it is due, what was recorded."""

    __table_args__ = (Index("ix_task_partnership_status_due", "partnership_id", "status", "due_date"),
                      Index("ix_task_candidate_role_status", "candidate_role", "status"))  # the Panel's open tasks

    id: str = Field(primary_key=True, max_length=200)  # <case id>/<task key>
    case_id: str = Field(foreign_key="case.id", index=True, max_length=140)
    partnership_id: str = Field(max_length=63)
    key: str = Field(max_length=60)
    type: str = Field(max_length=40)
    title: str = Field(max_length=200)
    form: str = Field(max_length=60)  # form schema name and version, e.g. notification_sent@1
    candidate_role: str = Field(max_length=80)  # a role id, partner:<id>, or national_panel
    candidate_label: str = Field(max_length=200, default="")
    status: str = Field(max_length=20, index=True)  # open | done | cancelled
    due_date: date | None = None
    follow_up_date: date | None = None  # reminder only
    overdue: bool = False
    claimed_by: str | None = Field(default=None, max_length=100)
    completed_by: str | None = Field(default=None, max_length=100)
    completed_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    days_late: int | None = None
    data: str = Field(default="{}", sa_column=Column(Text, nullable=False, server_default="{}"))  # JSON
    opened_at: datetime = Field(sa_column=_ts(nullable=False))
    revision: int = 0


class TaskCandidate(SQLModel, table=True):
    """Who may claim and complete a task (one row per person), so "my tasks" is one indexed lookup."""

    __tablename__ = "task_candidate"

    task_id: str = Field(foreign_key="task.id", primary_key=True, max_length=200)
    user_ref: str = Field(primary_key=True, max_length=100, index=True)


class CaseEvent(SQLModel, table=True):
    """The case timeline: every state change with who, when and what. Append-only, keyed by event id."""

    __tablename__ = "case_event"

    id: str = Field(primary_key=True, max_length=200)  # <case id>#<sequence>
    case_id: str = Field(foreign_key="case.id", index=True, max_length=140)
    partnership_id: str = Field(max_length=63, index=True)
    seq: int
    at: datetime = Field(sa_column=_ts(nullable=False))
    actor: str = Field(max_length=100)  # a user ref, or "system"
    kind: str = Field(max_length=40)
    task_key: str | None = Field(default=None, max_length=60)
    message: str = Field(sa_column=Column(Text, nullable=False))
    data: str = Field(default="{}", sa_column=Column(Text, nullable=False, server_default="{}"))


class OutboxMessage(SQLModel, table=True):
    """An email to send (or, with no SMTP configured, to read in the app). Keyed by id: never queued twice."""

    __tablename__ = "outbox_message"

    id: str = Field(primary_key=True, max_length=200)
    partnership_id: str | None = Field(default=None, max_length=63, index=True)
    case_id: str | None = Field(default=None, max_length=140, index=True)
    to_user_refs: str = Field(sa_column=Column(Text, nullable=False))  # JSON list
    to_addresses: str = Field(sa_column=Column(Text, nullable=False))  # JSON list, resolved when queued
    subject: str = Field(max_length=300)
    body: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(max_length=20, default="queued", index=True)  # queued | sent | held | failed
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    sent_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class AuditEntry(SQLModel, table=True):
    """Who did what, when, to which case: every applied case action (written with its timeline event by the
    read-model sync, keyed by ``event_id``), refusals, views, downloads and sign-ins (written by the web app).

    Append-only: the database refuses UPDATE and DELETE (triggers, migration 0008), and each row is chained to
    the one before it by hash (``seq``, ``prev_hash``, ``row_hash``; see ``safeguarding.audit_log``, which
    writes and checks them). Rows added through a Session are chained on insert too."""

    __tablename__ = "audit_entry"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    actor: str = Field(max_length=100)
    action: str = Field(max_length=80)
    partnership_id: str | None = Field(default=None, max_length=63, index=True)
    case_id: str | None = Field(default=None, max_length=140, index=True)
    outcome: str = Field(max_length=20)  # ok | rejected
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    event_id: str | None = Field(default=None, max_length=200, unique=True, index=True)  # the event it records
    # the chain, set on insert (None only until then): its place (1, 2, 3, ...), the hash before it and its own
    seq: int | None = Field(default=None, unique=True, index=True, nullable=False)
    prev_hash: str | None = Field(default=None, max_length=64, nullable=False)
    row_hash: str | None = Field(default=None, max_length=64, nullable=False)

    @classmethod
    def __declare_last__(cls) -> None:  # once mapped: chain rows added through a Session
        from sqlalchemy import event

        from safeguarding.audit_log import chain_orm_insert

        if not event.contains(cls, "before_insert", chain_orm_insert):
            event.listen(cls, "before_insert", chain_orm_insert)


class LearningTag(SQLModel, table=True):
    """One theme or contributory factor of a learning event (or of a closed escalation or rapid review), so the
    themes pages count with one indexed GROUP BY. Never holds anyone's identity."""

    __tablename__ = "learning_tag"
    __table_args__ = (Index("ix_learning_tag_counts", "partnership_id", "tag_type", "tag", "month"),)

    case_id: str = Field(primary_key=True, max_length=140)
    tag_type: str = Field(primary_key=True, max_length=10)  # theme | factor
    tag: str = Field(primary_key=True, max_length=63)
    partnership_id: str = Field(max_length=63)
    source: str = Field(max_length=20)  # learning | escalation | rapid_review
    kind: str = Field(max_length=20)  # harm | near_miss | good_practice | future_risk | the source's own
    month: str = Field(max_length=7)  # YYYY-MM the event happened


class LearningReporter(SQLModel, table=True):
    """Who reported a learning event, when they gave their name: written by the web app at intake, never passed
    to the workflow (so Temporal's history never holds it), read only for the learning lead and feedback emails."""

    __tablename__ = "learning_reporter"

    case_id: str = Field(primary_key=True, max_length=140)
    user_ref: str = Field(max_length=100)


class WebSession(SQLModel, table=True):
    """A signed-in browser session (``web.session``). Keyed by the SHA-256 of the session id: the id itself, which
    only the cookie carries, is never stored. Deleted at sign-out, when found expired or its account changed, and
    swept (by ``created_at``) at each sign-in once older than the absolute lifetime. Times are Unix seconds."""

    __tablename__ = "web_session"

    id_hash: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="app_user.id", index=True, ondelete="CASCADE")
    password_fingerprint: str = Field(max_length=64)  # the account's password when it started (a change ends it)
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    seen_at: int = Field(sa_column=Column(BigInteger, nullable=False))
