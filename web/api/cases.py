"""JSON API for incidents, cases and tasks. Reads come from the read model; changes go to the workflows."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field
from sqlmodel import Session
from starlette.datastructures import UploadFile as Upload  # what request.form() gives (FastAPI's is a subclass)

from safeguarding.accounts import Principal
from safeguarding.case_records import NATIONAL_PANEL, TaskCommand
from safeguarding.tables import Case, Task
from web import uploads
from web.auth import require_principal
from web.cases import (
    EscalationIn,
    IncidentIn,
    LearningIn,
    act_on_task,
    actor_of,
    audit,
    audited_refusal,
    case_detail,
    list_cases,
    my_tasks,
    open_incident,
    raise_escalation,
    record_learning,
    result_out,
    withdraw_escalation,
)
from web.errors import ApiError, ErrorResponse, FieldError

router = APIRouter(prefix="/api", tags=["cases"])
ERRORS = {s: {"model": ErrorResponse} for s in (401, 403, 404, 409, 422)}


async def _open(request: Request, principal: Principal, partnership_id: str, action: str, start, body,
                *, detail: str = "", anonymous: bool = False) -> JSONResponse:
    """Start a case through one of the intake functions, audited either way; 201 with where to find it."""
    app = request.app
    actor = None if anonymous else principal
    with audited_refusal(app.state.engine, actor, action, partnership_id=partnership_id):
        case_id, status = await start(app.state.engine, app.state.temporal, app.state.settings.task_queue,
                                      principal, partnership_id, body)
    audit(app.state.engine, actor, action, partnership_id=partnership_id, case_id=case_id, detail=detail)
    return JSONResponse({"case_id": case_id, "status": status, "url": f"/api/cases/{case_id}"}, status_code=201)


@router.post("/partnerships/{partnership_id}/incidents", status_code=201, responses=ERRORS)
async def record_incident(request: Request, partnership_id: str, incident: IncidentIn,
                          principal: Principal = Depends(require_principal)) -> JSONResponse:
    """Record a serious incident: opens a case and starts its notification and rapid review process."""
    return await _open(request, principal, partnership_id, "incident.open", open_incident, incident,
                       detail=f"category={incident.category}")


@router.post("/partnerships/{partnership_id}/escalations", status_code=201, responses=ERRORS)
async def raise_disagreement(request: Request, partnership_id: str, body: EscalationIn,
                             principal: Principal = Depends(require_principal)) -> JSONResponse:
    """Raise a professional disagreement: it climbs the partnership's ladder until resolved or withdrawn."""
    return await _open(request, principal, partnership_id, "escalation.raise", raise_escalation, body,
                       detail=f"urgent={body.urgent}")


@router.post("/partnerships/{partnership_id}/learning-events", status_code=201, responses=ERRORS)
async def record_learning_event(request: Request, partnership_id: str, body: LearningIn,
                                principal: Principal = Depends(require_principal)) -> JSONResponse:
    """Record what went wrong, nearly went wrong or went well; the learning lead chooses a proportionate response."""
    # the audit trail records that an event was recorded, not by whom (no blame, by construction)
    return await _open(request, principal, partnership_id, "learning.record", record_learning, body, anonymous=True)


class WithdrawIn(BaseModel):
    reason: str = Field(max_length=2000, description="Why the escalation is withdrawn.")


@router.post("/cases/{case_id}/withdraw", responses=ERRORS)
async def withdraw(request: Request, case_id: str, body: WithdrawIn,
                   principal: Principal = Depends(require_principal)) -> dict[str, Any]:
    """Withdraw an escalation, with a reason (the person who raised it, the business unit or a lead)."""
    engine = request.app.state.engine
    with Session(engine) as session:
        case = session.get(Case, case_id)
    if case is None or not principal.can_read(case.partnership_id) or case.process != "escalation":
        raise ApiError(404, "not_found", f"no escalation ‘{case_id}’")
    with audited_refusal(engine, principal, "escalation.withdraw", partnership_id=case.partnership_id,
                         case_id=case_id):
        status = await withdraw_escalation(request.app.state.temporal, case_id, principal, body.reason)
    audit(engine, principal, "escalation.withdraw", partnership_id=case.partnership_id, case_id=case_id)
    return {"case_id": case_id, "status": status}


@router.get("/cases", responses=ERRORS)
def cases(request: Request, status: str | None = Query(None, max_length=40), overdue: bool | None = None,
          limit: int = Query(100, ge=1, le=500), offset: int = Query(0, ge=0),
          principal: Principal = Depends(require_principal)) -> list[dict[str, Any]]:
    """Your partnership's cases, newest first (filter by status, or by having overdue work)."""
    return list_cases(request.app.state.engine, principal, status=status, overdue=overdue, limit=limit,
                      offset=offset)


@router.get("/cases/{case_id}", responses=ERRORS)
def case(request: Request, case_id: str, principal: Principal = Depends(require_principal)) -> dict[str, Any]:
    """One case: status, due dates, tasks and timeline."""
    return case_detail(request.app.state.engine, principal, case_id)


@router.get("/tasks", responses=ERRORS)
def tasks(request: Request, status: str = Query("open", pattern="^(open|done|cancelled)$"),
          overdue: bool | None = None, principal: Principal = Depends(require_principal)) -> list[dict[str, Any]]:
    """Your tasks: those your roles may do, and those you claimed."""
    return my_tasks(request.app.state.engine, principal, status=status, overdue=overdue)


def _check_visible(request: Request, principal: Principal, case_id: str, key: str) -> Case:
    with Session(request.app.state.engine) as session:
        case = session.get(Case, case_id)
        task = session.get(Task, f"{case_id}/{key}")
    national_task = task is not None and task.candidate_role == NATIONAL_PANEL and principal.is_national
    if case is None or task is None or not (principal.can_read(case.partnership_id) or national_task):
        raise ApiError(404, "not_found", f"no task ‘{key}’ on case ‘{case_id}’")
    return case


def _check_files(request: Request, case_id: str, key: str, data: dict[str, Any]) -> None:
    """A form's file fields must name a file uploaded to this case (the workflow cannot look)."""
    from safeguarding import forms

    with Session(request.app.state.engine) as session:
        task = session.get(Task, f"{case_id}/{key}")
    schema = forms.schema(task.form) if task and task.form in forms.FORMS else {}
    for name, prop in schema.get("properties", {}).items():
        value = data.get(name)
        # a value of the wrong shape is left to the form's schema, checked by the workflow's validator
        if (prop.get("x-widget") == "file" and isinstance(value, str) and uploads.FILE_ID.match(value)
                and uploads.path_of(request.app.state.settings, case_id, value) is None):
            raise ApiError(422, "invalid", "the file was not uploaded to this case", [FieldError(
                path=f"/{name}", value=value, message="upload the file to this case first")])


async def _act(request: Request, principal: Principal, case_id: str, key: str, action: str,
               data: dict[str, Any] | None = None) -> dict[str, Any]:
    case = _check_visible(request, principal, case_id, key)
    if action == "complete":
        _check_files(request, case_id, key, data or {})
    command = TaskCommand(task_key=key, actor=actor_of(principal), data=data or {},
                          request_id=request.headers.get("idempotency-key", uuid.uuid4().hex))
    engine = request.app.state.engine
    with audited_refusal(engine, principal, f"task.{action}", partnership_id=case.partnership_id, case_id=case_id,
                         prefix=f"{key}: "):
        result = await act_on_task(request.app.state.temporal, case_id, action, command)
    audit(engine, principal, f"task.{action}", partnership_id=case.partnership_id, case_id=case_id, detail=key)
    return result_out(result)


@router.post("/cases/{case_id}/tasks/{key}/claim", responses=ERRORS)
async def claim(request: Request, case_id: str, key: str, principal: Principal = Depends(require_principal)):
    """Claim a task so colleagues in the same role know you are doing it."""
    return await _act(request, principal, case_id, key, "claim")


@router.post("/cases/{case_id}/tasks/{key}/release", responses=ERRORS)
async def release(request: Request, case_id: str, key: str, principal: Principal = Depends(require_principal)):
    """Give a claimed task back to its role."""
    return await _act(request, principal, case_id, key, "release")


@router.post("/cases/{case_id}/tasks/{key}/complete", responses=ERRORS)
async def complete(request: Request, case_id: str, key: str,
                   data: dict[str, Any] = Body(..., description="The task's form, as its JSON Schema describes."),
                   principal: Principal = Depends(require_principal)):
    """Complete a task with its form data; 422 lists every problem by field, and nothing is recorded."""
    return await _act(request, principal, case_id, key, "complete", data)


@router.post("/cases/{case_id}/files", status_code=201, responses={413: {"model": ErrorResponse}, **ERRORS})
async def upload_file(request: Request, case_id: str, principal: Principal = Depends(require_principal)):
    """Upload a report (PDF or Word, multipart field ``file``); returns the id a form records."""
    engine, settings = request.app.state.engine, request.app.state.settings
    with Session(engine) as session:
        case = session.get(Case, case_id)
    if case is None or not principal.can_read(case.partnership_id):
        raise ApiError(404, "not_found", f"no case ‘{case_id}’")
    with audited_refusal(engine, principal, "file.upload", partnership_id=case.partnership_id, case_id=case_id):
        uploads.check_declared_size(request, settings)
        form = await request.form(max_files=1, max_fields=2)
        upload = form.get("file")
        if not isinstance(upload, Upload):
            raise ApiError(422, "invalid_file", "choose a file to upload",
                           [FieldError(path="/file", message="choose a file to upload")])
        stored = await uploads.store(upload, settings, case_id)
    audit(engine, principal, "file.upload", partnership_id=case.partnership_id, case_id=case_id,
          detail=f"{stored.file_id} ({stored.size} bytes)")
    return JSONResponse({"file_id": stored.file_id, "name": stored.name, "size": stored.size}, status_code=201)


@router.get("/cases/{case_id}/files/{file_id}", responses=ERRORS)
def download_file(request: Request, case_id: str, file_id: str, principal: Principal = Depends(require_principal)):
    """Download a case's file: always as an attachment, never shown inline."""
    with Session(request.app.state.engine) as session:
        case = session.get(Case, case_id)
    path = uploads.path_of(request.app.state.settings, case_id, file_id)
    if case is None or not principal.can_read(case.partnership_id) or path is None:
        raise ApiError(404, "not_found", "no such file")
    return FileResponse(path, media_type="application/octet-stream", filename=f"{case.case_ref}-{file_id[:12]}"
                        f"{path.suffix}", headers={"X-Content-Type-Options": "nosniff",
                                                   "Content-Security-Policy": "default-src 'none'; sandbox"})


class ActionIn(BaseModel):
    owner: str = Field(max_length=63, description="The agency that owns the action (a partner or relevant agency).")
    description: str = Field(max_length=2000, description="What must be done.")
    due_date: str = Field(max_length=10, description="When it is due (YYYY-MM-DD).")


@router.post("/cases/{case_id}/actions", responses=ERRORS)
async def add_action(request: Request, case_id: str, body: ActionIn,
                     principal: Principal = Depends(require_principal)) -> dict[str, Any]:
    """Add an action (a review's recommendation, or a learning response's): a task for its owning agency."""
    from safeguarding.case_records import ActionCommand
    from web.cases import update_case

    engine = request.app.state.engine
    with Session(engine) as session:
        case = session.get(Case, case_id)
    if case is None or not principal.can_read(case.partnership_id) or case.process not in ("lcspr", "learning"):
        raise ApiError(404, "not_found", f"no review or learning event ‘{case_id}’")
    command = ActionCommand(actor=actor_of(principal), owner=body.owner, description=body.description,
                            due_date=body.due_date)
    with audited_refusal(engine, principal, "action.add", partnership_id=case.partnership_id, case_id=case_id):
        result = await update_case(request.app.state.temporal, case_id, "add_action", command)
    audit(engine, principal, "action.add", partnership_id=case.partnership_id, case_id=case_id, detail=result.task_key)
    return result_out(result)
