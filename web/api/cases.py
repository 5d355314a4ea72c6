"""JSON API for incidents, cases and tasks. Reads come from the read model; changes go to the workflows."""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as Upload  # what request.form() gives (FastAPI's is a subclass)

from safeguarding import national
from safeguarding.accounts import Principal
from safeguarding.audit_log import audit, audited_refusal
from safeguarding.case_access import readable_case
from safeguarding.case_commands import act_on_task, actor_of, update_id_of, withdraw_escalation
from safeguarding.case_queries import case_detail, list_cases, my_tasks, result_out
from safeguarding.case_records import TaskCommand
from safeguarding.clock import london_today
from safeguarding.intake import EscalationIn, IncidentIn, LearningIn, open_incident, raise_escalation, record_learning
from safeguarding.refusals import NotApplied, StillApplying
from safeguarding.tables import Task
from web import uploads
from web.api import MAX_INT, READ, TEMPORAL, WRITE, error_responses
from web.api.case_models import (
    ActionIn,
    CaseDetailOut,
    CaseOpened,
    CaseStatus,
    CaseSummaryOut,
    FileStored,
    MyTaskOut,
    NationalCaseListed,
    NationalCaseOut,
    NationalTaskResultOut,
    PanelTaskOut,
    TaskResultOut,
)
from web.deps import ApiPrincipal, AppSettings, DbEngine, TemporalClient, TemporalTimeout, engine_of, timeout_of
from web.errors import ApiError, FieldError, error_response

router = APIRouter(prefix="/api", tags=["cases"])
ERRORS = error_responses(*WRITE)
READ_ERRORS = error_responses(*READ)
IDEMPOTENCY_KEY = Header(None, alias="Idempotency-Key", max_length=200,
                         description="Any unique string (a UUID): sending the same request again with the same key "
                                     "changes nothing more and answers like the first time.")


class Accepted(BaseModel):
    status: str = Field(description="‘accepted’: the change will be applied without anything more from you.")
    message: str
    case_id: str | None = Field(None, description="The case (not for the national body, which has national_ref).")
    national_ref: str | None = None


TEMPORAL_ERRORS = {202: {"model": Accepted, "description": "Accepted, not yet applied: the case's workflow has the "
                         "change but had not finished applying it in time (SGFLOW_TEMPORAL_TIMEOUT_SECONDS); it will "
                         "be applied."}, **error_responses(*TEMPORAL)}


def bounded(func):
    """For routes that change a case through Temporal: ``NotApplied`` answers 503 with Retry-After (in the one error
    shape), ``StillApplying`` 202 ``Accepted``. Neither ever waits longer than settings.temporal_timeout_seconds."""

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await func(*args, **kwargs)
        except NotApplied as exc:
            return error_response(exc.status, exc.code, exc.message, headers=exc.headers)
        except StillApplying as exc:
            body = {"status": "accepted", "message": exc.message, "case_id": exc.case_id}
            if isinstance(kwargs.get("principal"), Principal) and kwargs["principal"].is_national:
                body = {"status": "accepted", "message": exc.message, "national_ref": kwargs.get("national_ref")}
            return JSONResponse(body, status_code=202)

    return wrapper


def local_principal(principal: ApiPrincipal) -> Principal:
    """Who may use ``/api/cases/...``: anyone signed in but the national body, which gets 404 on every local case
    route (it reaches its own tasks by the national reference: ``/api/national/...``)."""
    if principal.is_national:
        raise ApiError(404, "not_found", "no such case: the national body uses /api/national/...")
    return principal


LocalPrincipal = Annotated[Principal, Depends(local_principal)]




async def _open(request: Request, principal: Principal, partnership_id: str, action: str, start, body,
                *, anonymous: bool = False, idempotency_key: str | None = None) -> JSONResponse:
    """Start a case through one of the intake functions; 201 with where to find it. A refusal is audited here,
    the opening itself by the read-model sync."""
    app = request.app
    actor = None if anonymous else principal
    extra: dict[str, Any] = {}
    if start is record_learning:
        extra["secret"] = app.state.settings.resolved_secret_key()
    with audited_refusal(app.state.engine, actor, action, partnership_id=partnership_id):
        case_id, status = await start(app.state.engine, app.state.temporal, app.state.settings.task_queue,
                                      principal, partnership_id, body, idempotency_key=idempotency_key,
                                      timeout=timeout_of(request), **extra)
    return JSONResponse({"case_id": case_id, "status": status, "url": f"/api/cases/{case_id}"}, status_code=201)


@router.post("/partnerships/{partnership_id}/incidents", status_code=201, response_model=CaseOpened,
             responses=TEMPORAL_ERRORS)
@bounded
async def record_incident(request: Request, partnership_id: str, incident: IncidentIn,
                          principal: ApiPrincipal,
                          idempotency_key: str | None = IDEMPOTENCY_KEY) -> JSONResponse:
    """Record a serious incident: opens a case and starts its notification and rapid review process."""
    return await _open(request, principal, partnership_id, "incident.open", open_incident, incident,
                       idempotency_key=idempotency_key)


@router.post("/partnerships/{partnership_id}/escalations", status_code=201, response_model=CaseOpened,
             responses=TEMPORAL_ERRORS)
@bounded
async def raise_disagreement(request: Request, partnership_id: str, body: EscalationIn,
                             principal: ApiPrincipal,
                             idempotency_key: str | None = IDEMPOTENCY_KEY) -> JSONResponse:
    """Raise a professional disagreement: it climbs the partnership's ladder until resolved or withdrawn."""
    return await _open(request, principal, partnership_id, "escalation.raise", raise_escalation, body,
                       idempotency_key=idempotency_key)


@router.post("/partnerships/{partnership_id}/learning-events", status_code=201, response_model=CaseOpened,
             responses=TEMPORAL_ERRORS)
@bounded
async def record_learning_event(request: Request, partnership_id: str, body: LearningIn,
                                principal: ApiPrincipal,
                                idempotency_key: str | None = IDEMPOTENCY_KEY) -> JSONResponse:
    """Record what went wrong, nearly went wrong or went well; the learning lead chooses a proportionate response."""
    # the audit trail records that an event was recorded, not by whom (no blame, by construction)
    return await _open(request, principal, partnership_id, "learning.record", record_learning, body, anonymous=True,
                       idempotency_key=idempotency_key)


class WithdrawIn(BaseModel):
    reason: str = Field(max_length=2000, description="Why the escalation is withdrawn.")


@router.post("/cases/{case_id}/withdraw", response_model=CaseStatus, responses=TEMPORAL_ERRORS)
@bounded
async def withdraw(request: Request, timeout: TemporalTimeout, engine: DbEngine, temporal: TemporalClient,
                   case_id: str, body: WithdrawIn, principal: LocalPrincipal,
                   idempotency_key: str | None = IDEMPOTENCY_KEY) -> dict[str, Any]:
    """Withdraw an escalation, with a reason (the person who raised it, the business unit or a lead)."""
    case = await run_in_threadpool(readable_case, engine, principal, case_id, what="escalation",
                                   processes=("escalation",))
    with audited_refusal(engine, principal, "escalation.withdraw", partnership_id=case.partnership_id,
                         case_id=case_id):
        status = await withdraw_escalation(temporal, case_id, principal, body.reason,
                                           update_id=update_id_of(principal, "withdraw", idempotency_key),
                                           timeout=timeout)
    return {"case_id": case_id, "status": status}


@router.get("/cases", response_model=list[CaseSummaryOut], responses=READ_ERRORS)
def cases(request: Request, principal: ApiPrincipal, engine: DbEngine, status: str | None = Query(None, max_length=40),
          overdue: bool | None = None,
          limit: int = Query(100, ge=1, le=500), offset: int = Query(0, ge=0, le=MAX_INT)) -> list[dict[str, Any]]:
    """Your partnership's cases that you may read (``case_access.may_read_case``), newest first (filter by status, or
    by having overdue work). The national body has none here: it uses ``/api/national/cases``."""
    return list_cases(engine, principal, status=status, overdue=overdue, limit=limit,
                      offset=offset)


@router.get("/cases/{case_id}", response_model=CaseDetailOut, responses=READ_ERRORS)
def case(request: Request, engine: DbEngine, case_id: str, principal: LocalPrincipal) -> dict[str, Any]:
    """One case: status, due dates, tasks and timeline (404 unless you may read it: ``case_access.may_read_case``)."""
    detail = case_detail(engine, principal, case_id)
    audit(engine, principal, "case.view", partnership_id=detail["partnership_id"], case_id=case_id)
    return detail


@router.get("/tasks", response_model=list[MyTaskOut] | list[PanelTaskOut], responses=READ_ERRORS)
def tasks(request: Request, principal: ApiPrincipal, engine: DbEngine,
          status: str = Query("open", pattern="^(open|done|cancelled)$"),
          overdue: bool | None = None) -> list[dict[str, Any]]:
    """Your tasks: those your roles may do, and those you claimed. For the national body, the Panel's tasks, named by
    the case's national reference only (act on them at ``url``, under ``/api/national/``)."""
    if principal.is_national:
        with Session(engine) as session:
            return national.panel_tasks(session, principal.user_ref, status=status, overdue=overdue)
    return my_tasks(engine, principal, status=status, overdue=overdue)


def _check_visible(request: Request, principal: Principal, case_id: str, key: str):
    case = readable_case(engine_of(request), principal, case_id)
    with Session(engine_of(request)) as session:
        task = session.get(Task, f"{case_id}/{key}") if len(key) <= 60 else None
    if task is None:
        raise ApiError(404, "not_found", f"no task ‘{key}’ on case ‘{case_id}’")
    return case


def _check_files(request: Request, case_id: str, key: str, data: dict[str, Any]) -> None:
    """A form's file fields must name a file uploaded to this case (the workflow cannot look)."""
    from safeguarding import forms

    with Session(engine_of(request)) as session:
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
               data: dict[str, Any] | None = None, *, case: Any = None) -> dict[str, Any]:
    case = case if case is not None else _check_visible(request, principal, case_id, key)
    if action == "complete":
        _check_files(request, case_id, key, data or {})
    idempotency_key = request.headers.get("idempotency-key") or None
    update_id = update_id_of(principal, f"{action}-{key}", idempotency_key)
    command = TaskCommand(task_key=key, actor=actor_of(principal), data=data or {}, request_id=update_id)
    engine = engine_of(request)
    with audited_refusal(engine, principal, f"task.{action}", partnership_id=case.partnership_id, case_id=case_id,
                         prefix=f"{key}: "):
        result = await act_on_task(request.app.state.temporal, case_id, action, command, update_id=update_id,
                                   timeout=timeout_of(request))
    return result_out(result)


@router.post("/cases/{case_id}/tasks/{key}/claim", response_model=TaskResultOut, responses=TEMPORAL_ERRORS)
@bounded
async def claim(request: Request, case_id: str, key: str, principal: LocalPrincipal,
                idempotency_key: str | None = IDEMPOTENCY_KEY):
    """Claim a task so colleagues in the same role know you are doing it."""
    return await _act(request, principal, case_id, key, "claim")


@router.post("/cases/{case_id}/tasks/{key}/release", response_model=TaskResultOut, responses=TEMPORAL_ERRORS)
@bounded
async def release(request: Request, case_id: str, key: str, principal: LocalPrincipal,
                  idempotency_key: str | None = IDEMPOTENCY_KEY):
    """Give a claimed task back to its role."""
    return await _act(request, principal, case_id, key, "release")


@router.post("/cases/{case_id}/tasks/{key}/complete", response_model=TaskResultOut, responses=TEMPORAL_ERRORS)
@bounded
async def complete(request: Request, principal: LocalPrincipal, case_id: str, key: str,
                   data: dict[str, Any] = Body(..., description="The task's form, as its JSON Schema describes."),
                   idempotency_key: str | None = IDEMPOTENCY_KEY):
    """Complete a task with its form data; 422 lists every problem by field, and nothing is recorded."""
    return await _act(request, principal, case_id, key, "complete", data)


# --- the national body: its own tasks and the pseudonymised cases, by national reference only ------------------


def national_principal(principal: ApiPrincipal) -> Principal:
    if not principal.is_national:
        raise ApiError(404, "not_found", "these are the national body's")
    return principal


def _national_task_case(request: Request, national_ref: str, key: str):
    with Session(engine_of(request)) as session:
        case_id = national.panel_task_case_id(session, national_ref, key)
        case = national.cases_by_ref(session, london_today(), national_ref) if case_id else []
    if case_id is None or not case:
        raise ApiError(404, "not_found", f"no task ‘{key}’ on case ‘{national_ref}’")
    return case_id, case[0][0]


async def _national_act(request: Request, principal: Principal, national_ref: str, key: str, action: str,
                        data: dict[str, Any] | None = None) -> dict[str, Any]:
    case_id, found = _national_task_case(request, national_ref, key)
    result = await _act(request, principal, case_id, key, action, data, case=found)
    return {"national_ref": national_ref, **result}  # task_key, status, case_status, message: no local names


@router.get("/national/cases", response_model=list[NationalCaseListed], responses=READ_ERRORS)
def national_cases(request: Request, engine: DbEngine, partnership: str | None = Query(None, max_length=63),
                   status: str | None = Query(None, max_length=40), limit: int = Query(50, ge=1, le=500),
                   offset: int = Query(0, ge=0, le=MAX_INT),
                   principal: Principal = Depends(national_principal)) -> list[dict[str, Any]]:
    """Serious incidents across every partnership, pseudonymised: national references, dates, lateness, status."""
    with Session(engine) as session:
        rows, _total = national.list_cases(session, london_today(), partnership_id=partnership, status=status,
                                           limit=limit, offset=offset)
    return [national.case_out(r, []) | {"url": f"/api/national/cases/{r.national_ref}"} for r in rows]


@router.get("/national/cases/{national_ref}", response_model=NationalCaseOut, responses=READ_ERRORS)
def national_case(request: Request, engine: DbEngine, national_ref: str,
                  principal: Principal = Depends(national_principal)):
    """One case by its national reference, with its steps (no people, no free text, no local reference)."""
    with Session(engine) as session:
        found = national.cases_by_ref(session, london_today(), national_ref) if len(national_ref) <= 20 else []
    if len(found) != 1:
        raise ApiError(404, "not_found", f"no case ‘{national_ref}’")
    return national.case_out(*found[0])


@router.post("/national/cases/{national_ref}/tasks/{key}/claim", response_model=NationalTaskResultOut,
             responses=TEMPORAL_ERRORS)
@bounded
async def national_claim(request: Request, national_ref: str, key: str,
                         principal: Principal = Depends(national_principal),
                         idempotency_key: str | None = IDEMPOTENCY_KEY):
    """Claim one of the Panel's tasks."""
    return await _national_act(request, principal, national_ref, key, "claim")


@router.post("/national/cases/{national_ref}/tasks/{key}/release", response_model=NationalTaskResultOut,
             responses=TEMPORAL_ERRORS)
@bounded
async def national_release(request: Request, national_ref: str, key: str,
                           principal: Principal = Depends(national_principal),
                           idempotency_key: str | None = IDEMPOTENCY_KEY):
    """Give a claimed Panel task back."""
    return await _national_act(request, principal, national_ref, key, "release")


@router.post("/national/cases/{national_ref}/tasks/{key}/complete", response_model=NationalTaskResultOut,
             responses=TEMPORAL_ERRORS)
@bounded
async def national_complete(request: Request, national_ref: str, key: str,
                            data: dict[str, Any] = Body(..., description="The task's form (the Panel's response)."),
                            principal: Principal = Depends(national_principal),
                            idempotency_key: str | None = IDEMPOTENCY_KEY):
    """Complete one of the Panel's tasks, e.g. its response to a rapid review."""
    return await _national_act(request, principal, national_ref, key, "complete", data)


# --- files and actions -------------------------------------------------------------------------------------------


@router.post("/cases/{case_id}/files", status_code=201, response_model=FileStored, responses=ERRORS)
async def upload_file(request: Request, engine: DbEngine, settings: AppSettings, case_id: str,
                      principal: LocalPrincipal):
    """Upload a report (PDF or Word, multipart field ``file``); returns the id a form records."""
    case = await run_in_threadpool(readable_case, engine, principal, case_id)
    with audited_refusal(engine, principal, "file.upload", partnership_id=case.partnership_id, case_id=case_id):
        uploads.check_declared_size(request, settings)
        form = await request.form(max_files=1, max_fields=2)
        upload = form.get("file")
        if not isinstance(upload, Upload):
            raise ApiError(422, "invalid_file", "choose a file to upload",
                           [FieldError(path="/file", message="choose a file to upload")])
        stored = await uploads.store(upload, settings, case_id)
    await run_in_threadpool(audit, engine, principal, "file.upload", partnership_id=case.partnership_id,
                            case_id=case_id,
                            detail=f"{stored.file_id} ({stored.size} bytes)")
    return JSONResponse({"file_id": stored.file_id, "name": stored.name, "size": stored.size}, status_code=201)


@router.get("/cases/{case_id}/files/{file_id}", response_class=FileResponse, responses={
    **READ_ERRORS, 200: {"description": "The file, as stored.", "content": {"application/octet-stream": {}}}})
def download_file(request: Request, engine: DbEngine, settings: AppSettings, case_id: str, file_id: str,
                  principal: LocalPrincipal):
    """Download a case's file: always as an attachment, never shown inline."""
    try:
        case = readable_case(engine, principal, case_id)
    except ApiError:
        raise ApiError(404, "not_found", "no such file") from None
    path = uploads.path_of(settings, case_id, file_id)
    if path is None:
        raise ApiError(404, "not_found", "no such file")
    audit(engine, principal, "file.download", partnership_id=case.partnership_id, case_id=case_id, detail=file_id)
    return FileResponse(path, media_type="application/octet-stream", filename=f"{case.case_ref}-{file_id[:12]}"
                        f"{path.suffix}", headers={"X-Content-Type-Options": "nosniff",
                                                   "Content-Security-Policy": "default-src 'none'; sandbox"})


@router.post("/cases/{case_id}/actions", response_model=TaskResultOut, responses=TEMPORAL_ERRORS)
@bounded
async def add_action(request: Request, timeout: TemporalTimeout, engine: DbEngine, temporal: TemporalClient,
                     case_id: str, body: ActionIn, principal: LocalPrincipal,
                     idempotency_key: str | None = IDEMPOTENCY_KEY) -> dict[str, Any]:
    """Add an action (a review's recommendation, or a learning response's): a task for its owning agency."""
    from safeguarding.case_commands import update_case
    from safeguarding.case_records import ActionCommand

    case = await run_in_threadpool(readable_case, engine, principal, case_id, what="review or learning event",
                                   processes=("lcspr", "learning"))
    command = ActionCommand(actor=actor_of(principal), owner=body.owner, description=body.description,
                            due_date=body.due_date)
    with audited_refusal(engine, principal, "action.add", partnership_id=case.partnership_id, case_id=case_id):
        result = await update_case(temporal, case_id, "add_action", command,
                                   update_id=update_id_of(principal, "add_action", idempotency_key),
                                   timeout=timeout)
    return result_out(result)
