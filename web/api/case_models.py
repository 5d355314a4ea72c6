"""What the JSON case routes answer (``web.api.cases``): response models, so OpenAPI describes each answer and
FastAPI checks it; and the bodies they take that pages share (``ActionIn``: ``web.views.action_form``), so no view
imports a route module."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

# A moment as the routes wrote it before they had response models (``datetime.isoformat``: "+00:00", where
# pydantic writes "Z"): for the answers that gained a model, so their bodies stay as they were
IsoDateTime = Annotated[datetime, PlainSerializer(lambda value: value.isoformat(), return_type=str, when_used="json")]


class ActionIn(BaseModel):
    """An action to add (``POST /api/cases/{case_id}/actions``); the "Add an action" form extends it."""

    owner: str = Field(max_length=63, description="The agency that owns the action (a partner or relevant agency).")
    description: str = Field(max_length=2000, description="What must be done.")
    due_date: str = Field(max_length=10, description="When it is due (YYYY-MM-DD).")


class CaseOpened(BaseModel):
    case_id: str
    status: str = Field(description="The case's status once the read model has it.")
    url: str = Field(description="Where to read the case.")


class CaseStatus(BaseModel):
    case_id: str
    status: str


class CaseSummaryOut(BaseModel):
    id: str
    partnership_id: str
    case_ref: str
    process: str
    category: str
    status: str
    stage: str
    arrangements_version: int
    aware_date: date
    notification_due: date | None = None
    notification_sent_on: date | None = None
    notification_days_late: int | None = None
    rapid_review_required: bool = False
    rapid_review_due: date | None = None
    rapid_review_submitted_on: date | None = None
    rapid_review_days_late: int | None = None
    lcspr_decision: str | None = None
    panel_response: str | None = None
    overdue_tasks: int = 0
    opened_at: datetime | None = None
    closed_at: datetime | None = None


class TaskOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    case_id: str
    key: str
    type: str
    title: str
    form: str
    for_: str = Field(alias="for", description="Who the task is for, in words.")
    candidate_role: str
    status: str
    due_date: date | None = None
    follow_up_date: date | None = None
    overdue: bool = False
    claimed_by: str | None = None
    completed_by: str | None = None
    completed_at: datetime | None = None
    days_late: int | None = None
    data: Any = None


class TimelineEntry(BaseModel):
    at: datetime
    actor: str
    kind: str
    task: str | None = None
    message: str


class CaseDetailOut(CaseSummaryOut):
    children: Any = None
    summary: str | None = None
    agencies: Any = None
    opened_by: str | None = None
    plan: list[dict[str, Any]] | None = Field(
        default=None, description="The process's planned steps, in order, as its workflow published them (each "
        "with type, title, applies, and sometimes key and details); null for a case from before plans.")
    tasks: list[TaskOut]
    timeline: list[TimelineEntry]


class TaskResultOut(BaseModel):
    task_key: str
    status: str
    case_status: str
    message: str


class NationalTaskResultOut(TaskResultOut):
    national_ref: str


class FileStored(BaseModel):
    file_id: str
    name: str
    size: int


class MyTaskOut(TaskOut):
    """One of your tasks (``/api/tasks``)."""

    completed_at: IsoDateTime | None = None


class PanelTaskOut(BaseModel):
    """One of the national Panel's tasks, named by the case's national reference: no local id, no people."""

    national_ref: str
    partnership_id: str
    process: str
    key: str
    type: str
    title: str
    status: str
    due_date: date | None = None
    follow_up_date: date | None = None
    overdue: bool = False
    days_late: int | None = None
    completed_on: date | None = None
    claimed_by_you: bool = Field(description="Whether you claimed it.")
    url: str = Field(description="Where to act on it (under /api/national/).")


class NoticeReceivedOut(BaseModel):
    notice: str = Field(description="pre_publication_copy | not_published")
    title: str
    received_on: date


class NationalTaskOut(BaseModel):
    """A step of a case as the national body sees it: without who may do it, who did it, or what they recorded."""

    key: str
    title: str
    type: str
    status: str
    due_date: date | None = None
    follow_up_date: date | None = None
    overdue: bool = False
    completed_on: date | None = None
    days_late: int | None = None
    opened_at: IsoDateTime


class NationalCaseOut(BaseModel):
    """One case as the national body sees it: pseudonymised (a national reference; no people, no free text, no
    local reference)."""

    national_ref: str
    process: str = Field(description="incident | escalation | lcspr")
    partnership_id: str
    partnership_name: str
    category_label: str
    arrangements_version: int
    aware_date: date
    notification_due: date | None = None
    notification_sent_on: date | None = None
    notification_days_late: int | None = None
    notification_overdue: bool
    rapid_review_required: bool
    rapid_review_due: date | None = None
    rapid_review_submitted_on: date | None = None
    rapid_review_days_late: int | None = None
    rapid_review_overdue: bool
    lcspr_decision: str | None = None
    panel_response: str | None = None
    status: str
    stage: str
    opened_at: IsoDateTime
    closed_at: IsoDateTime | None = None
    panel_task_open: bool
    children_count: int = 0
    child_lives_in: str = ""
    ladder_purpose: str | None = None
    current_stage: int | None = None
    highest_stage: int | None = None
    timeouts: int = 0
    urgent: bool = False
    reached_national: bool = False
    outcome: str | None = None
    report_due: date | None = None
    publication_date: date | None = None
    published: bool | None = None
    notices_received: list[NoticeReceivedOut] = []
    incident_ref: str = Field("", description="A local review: its incident's national reference.")
    local_review_ref: str = Field("", description="An incident: its local review's national reference, once opened.")
    local_review_status: str = Field("", description="... and that review's status.")
    tasks: list[NationalTaskOut]


class NationalCaseListed(NationalCaseOut):
    """A case in the national list (its steps are on its own page, at ``url``)."""

    url: str
