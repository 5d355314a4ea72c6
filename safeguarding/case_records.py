"""What crosses the Temporal boundary for a case: workflow input, task commands, read-model snapshots.

Plain dataclasses of JSON types (dates as ISO strings) so the default data converter carries them and a
replay decodes them the same way. Shared by the workflows, the activities and the web app.

No ``from __future__ import annotations`` here: the data converter reads these classes' type hints every
time it decodes one (each Update's command, each workflow input), and string annotations would be
evaluated again on every call (measured: 74 µs vs 30 µs to decode a ``TaskCommand``, more in the sandbox).
"""

from dataclasses import dataclass, field
from typing import Any

NATIONAL_PANEL = "national_panel"  # candidate role of tasks for national-body users
CONTRIBUTOR = "contributor:"  # "contributor:<partnership id>": a task for another partnership (cross-boundary)

# The generation of workflow code a case starts under: every workflow input carries it as ``engine`` (inputs
# from before it decode as 1). A change that would alter a running case's commands is guarded by a
# ``workflow.patched`` id; once new cases start with an engine that includes the change, ``Casework.has``
# decides by the input alone for them (no marker and no search-attribute upsert in every case's history), and
# only cases started under an older engine decide by their history's marker. Children take their parent's.
# 3: the LCSPR decision's own date, the Panel chased, notices from config, the scrutineer told once.
# 4: the notification goes to whom the category says (issue 16); cross-boundary cases (a contributor's summary).
# 5: no reminder for a task opened on or after its reminder day; overdue ladders' tasks name their step (issue 17).
# 6: every process publishes its step plan in its snapshot (the case row's ``plan``; issue 18); reminders are
#    counted by the calendar's before-event rule.
ENGINE = 6


@dataclass
class Actor:
    """Who is acting, as the web app authenticated them."""

    user_ref: str
    kind: str  # partnership_lead | reviewer | national_body | scrutineer | administrator
    partnership_id: str | None = None
    display_name: str = ""


@dataclass
class IncidentInput:
    """Everything an incident case workflow needs, fixed when it starts (never re-read)."""

    partnership_id: str
    case_ref: str
    arrangements_version: int
    arrangements: dict[str, Any]  # the pinned, validated document
    calendar: dict[str, Any]  # WorkingCalendar.to_payload()
    aware_date: str
    category: str
    children: list[dict[str, str]]  # [{"pseudonym": ..., "local_ref": ...}] — never names
    summary: str
    agencies: list[str]
    opened_by: Actor
    opened_at: str  # ISO datetime (UTC)
    engine: int = 1  # the workflow code generation it started under (ENGINE); older inputs: 1
    # issue 16 (engine 4; the defaults keep older inputs valid): the age at the date of the incident, asked when
    # the category depends on it; where the child lives when that is another area
    age_at_incident: int | None = None
    resident_partnership_id: str | None = None  # the resident area's partnership, when it uses this service
    resident_area_name: str | None = None  # its name (or, for an area not on the service, as typed)
    # the resident partnership's contributor, from its current arrangements when the case opened (a workflow reads
    # nothing): {"partnership_id", "name", "role", "role_title", "members": [user refs]}
    resident_contributor: dict[str, Any] | None = None


@dataclass
class TaskCommand:
    task_key: str
    actor: Actor
    data: dict[str, Any] = field(default_factory=dict)
    request_id: str = ""  # the caller's idempotency key, echoed into the timeline


@dataclass
class TaskResult:
    task_key: str
    status: str
    case_status: str
    message: str


@dataclass
class TaskRecord:
    key: str
    type: str
    title: str
    form: str
    candidate_role: str
    candidate_label: str
    candidate_users: list[str]
    opened_at: str
    status: str = "open"  # open | done | cancelled
    due_date: str | None = None
    follow_up_date: str | None = None
    overdue: bool = False
    reminded: bool = False
    claimed_by: str | None = None
    completed_by: str | None = None
    completed_at: str | None = None
    days_late: int | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class EventRecord:
    seq: int
    at: str
    actor: str
    kind: str
    message: str
    task_key: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class MessageRecord:
    """An email to queue in the outbox; addresses are resolved from user refs by the activity."""

    seq: int
    to_user_refs: list[str]
    subject: str
    body: str


@dataclass
class CaseSnapshot:
    """The case as the workflow sees it now, plus the events and messages not yet written."""

    case_id: str
    partnership_id: str
    case_ref: str
    process: str
    revision: int
    fields: dict[str, Any]  # the Case row's columns (status, stage, due dates…)
    tasks: list[TaskRecord]
    events: list[EventRecord]
    messages: list[MessageRecord]
    # True: only what changed since the previous revision (fields and tasks); it applies on top of exactly that
    # revision, and the read model asks for the whole case when it holds an older one (e.g. a restored backup)
    partial: bool = False

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> "CaseSnapshot":
        """Build from the decoded JSON. The read-model activity takes a plain dict and calls this: the SDK's
        generic dataclass decoding re-reads type hints on every call, which cost ~2 ms a snapshot (measured)."""
        return cls(**{**data, "tasks": [TaskRecord(**t) for t in data["tasks"]],
                      "events": [EventRecord(**e) for e in data["events"]],
                      "messages": [MessageRecord(**m) for m in data["messages"]]})


@dataclass
class LadderInput:
    """An escalation up a named ladder of the pinned arrangements: a disagreement, or overdue work."""

    partnership_id: str
    reference: str
    arrangements_version: int
    arrangements: dict[str, Any]
    calendar: dict[str, Any]
    ladder_id: str
    subject: str  # what is disagreed, or which work is overdue (no names)
    issue_type: str  # e.g. "threshold", "information sharing", or "overdue_work"
    agencies: list[str]
    urgent: bool
    raised_by: Actor
    raised_at: str  # ISO datetime (UTC)
    child_pseudonym: str = ""
    related_case_id: str = ""  # the case the disagreement or overdue work is about, if any
    related_task_key: str = ""  # for overdue work: the task that is overdue
    engine: int = 1  # the workflow code generation it started under (ENGINE); older inputs: 1
    # overdue work (engine 5): the stage tasks' titles start with it ("Overdue: <the step's title>"), so the ladders
    # of several overdue steps of one case do not give identical tasks; "" (disagreements, older inputs): "Stage N: …"
    task_title_prefix: str = ""


@dataclass
class WithdrawCommand:
    actor: Actor
    reason: str


@dataclass
class LcsprInput:
    """A local child safeguarding practice review, started from a rapid review's decision (or the national path)."""

    partnership_id: str
    reference: str
    parent_case_id: str
    arrangements_version: int
    arrangements: dict[str, Any]
    calendar: dict[str, Any]
    decision_date: str  # the decision to initiate (ISO date): the report is due N calendar months after it
    national_review: bool  # the Panel holds a national review: the local process starts suspended
    opened_at: str
    category: str = ""
    engine: int = 1  # the workflow code generation it started under (ENGINE); older inputs: 1


@dataclass
class ActionCommand:
    """A recommendation's action: an owning agency, what, by when."""

    actor: Actor
    owner: str  # agency or partner id
    description: str
    due_date: str  # ISO date


@dataclass
class LearningInput:
    """A learning event a practitioner recorded. It never carries who reported it (see LearningReporter)."""

    partnership_id: str
    reference: str
    arrangements_version: int
    arrangements: dict[str, Any]
    calendar: dict[str, Any]
    occurred_on: str  # ISO date
    kind: str  # harm | near_miss | good_practice | future_risk
    what_happened: str
    what_was_expected: str
    agencies: list[str]
    factors: list[str]
    themes: list[str]
    reporter_known: bool  # False when reported anonymously
    reported_at: str  # ISO datetime (UTC)
    engine: int = 1  # the workflow code generation it started under (ENGINE); older inputs: 1


REPORTER = "reporter:"  # a message addressed to "reporter:<case id>" goes to whoever reported that event


@dataclass
class YearlyReportInput:
    """The partnership's yearly report for one reporting period (``safeguarding.yearly_report`` builds it)."""

    partnership_id: str
    reference: str  # YR-2025-26: one report per period
    arrangements_version: int
    arrangements: dict[str, Any]
    calendar: dict[str, Any]
    period_start: str  # ISO dates
    period_end: str
    due_date: str  # the publication due date, "" when none can be set (publish_by empty, no previous report)
    due_reason: str  # how the due date was found, in words
    previous_published_on: str  # the previous report's publication (ISO date), "" when not known
    opened_by: Actor
    opened_at: str  # ISO datetime (UTC)
    engine: int = 1  # the workflow code generation it started under (ENGINE)
