"""What the JSON case routes answer (``web.api.cases``): response models, so OpenAPI describes each answer and
FastAPI checks it."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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
