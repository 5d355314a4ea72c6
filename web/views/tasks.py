"""One task, for the task pages (local and the national Panel's): who may see it and act on it, its page, claiming,
releasing and completing it through the case's workflow."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from safeguarding import forms
from safeguarding.accounts import Principal
from safeguarding.audit_log import audit
from safeguarding.case_access import may_read_case
from safeguarding.case_commands import act_on_task, actor_of, update_id_of
from safeguarding.case_records import NATIONAL_PANEL, TaskCommand
from safeguarding.clock import london_today
from safeguarding.cross_boundary import contributor_role
from safeguarding.pinned import pinned
from safeguarding.tables import Case, Task, TaskCandidate
from web import schema_forms as sf
from web.auth import (
    safe_next,
)
from web.deps import engine_of
from web.errors import ApiError, error_page
from web.pages import form_key, page_context
from web.templating import render
from web.views import task_record
from web.views.common import (
    children_of,
    days_left_text,
    display_names,
    task_href,
)
from web.views.inbox import inbox_filters, inbox_response

# --- visibility and acting on tasks ---------------------------------------------------------------------------------


def national_case_id(engine, principal: Principal, national_ref: str, key: str) -> str:
    """The case behind ``/national/cases/<ref>/tasks/<key>``: a Panel task of the one case with that reference."""
    from safeguarding.national import panel_task_case_id

    case_id = None
    if principal.is_national:
        with Session(engine) as session:
            case_id = panel_task_case_id(session, national_ref, key)
    if case_id is None:
        raise ApiError(404, "not_found", f"no task ‘{key}’ on case ‘{national_ref}’")
    return case_id


def visible_task(engine, principal: Principal, case_id: str, key: str, *,
                 national_route: bool = False) -> tuple[Case, Task, bool]:
    """(case, task, national view) if the principal may see the task, else 404 (never 403: no probing).

    Local routes (``/cases/<id>/...``) follow ``case_access.may_read_case``; the national body reaches the Panel's
    tasks only through ``/national/cases/<national ref>/...`` (``national_route``), never by the local case id."""
    with Session(engine) as session:
        case = session.get(Case, case_id)
        task = session.get(Task, f"{case_id}/{key}")
    if case is None or task is None:
        raise ApiError(404, "not_found", f"no task ‘{key}’ on case ‘{case_id}’")
    if national_route:
        if principal.is_national and task.candidate_role == NATIONAL_PANEL:
            return case, task, True
    else:
        with engine.connect() as conn:
            if may_read_case(conn, principal, case):
                return case, task, False
    raise ApiError(404, "not_found", f"no task ‘{key}’ on case ‘{case_id}’")


def may_act(engine, principal: Principal, task: Task) -> bool:
    if task.candidate_role == NATIONAL_PANEL:
        return principal.is_national
    if principal.partnership_id != task.partnership_id and (
            not principal.partnership_id or task.candidate_role != contributor_role(principal.partnership_id)):
        return False  # another partnership's task, unless given to this one as where the child lives
    with Session(engine) as session:
        return session.get(TaskCandidate, (task.id, principal.user_ref)) is not None


async def act(request: Request, principal: Principal, case: Case, key: str, action: str,
               data: dict[str, Any] | None = None, *, idempotency_key: str | None = None):
    """``idempotency_key``: the form's (``web.pages.form_key``), so sending the same form twice is one change."""
    update_id = update_id_of(principal, f"{action}-{key}", idempotency_key)
    command = TaskCommand(task_key=key, actor=actor_of(principal), data=data or {}, request_id=update_id)
    engine = engine_of(request)
    try:
        result = await act_on_task(request.app.state.temporal, case.id, action, command, update_id=update_id,
                                   timeout=request.app.state.settings.temporal_timeout_seconds)
    except ApiError as exc:
        await run_in_threadpool(audit, engine, principal, f"task.{action}", partnership_id=case.partnership_id,
                                case_id=case.id,
                                outcome="rejected", detail=f"{key}: {exc.code}: {exc.message} (page)")
        raise
    return result


async def claim_or_release(request: Request, principal: Principal, case_id: str, key: str, action: str, *,
                            national_route: bool = False):
    engine = engine_of(request)
    case, _task, national = await run_in_threadpool(visible_task, engine, principal, case_id, key,
                                                    national_route=national_route)
    form = await request.form()
    back = safe_next(str(form.get("back", "")) or task_href(case.id, case.national_ref, key, national))
    fragment = request.headers.get("hx-request") == "true"
    flash = None
    try:
        await act(request, principal, case, key, action)
    except ApiError as exc:
        if not fragment:
            raise
        flash = exc.message
    if not fragment:
        return RedirectResponse(back, status_code=303)
    if back.startswith("/tasks"):
        from urllib.parse import parse_qsl, urlsplit

        # the page is read in the thread pool, as a sync route's is: never database work on the event loop
        return await run_in_threadpool(inbox_response, request, principal,
                                       inbox_filters(dict(parse_qsl(urlsplit(back).query))), flash=flash)
    return await run_in_threadpool(task_response, request, principal, case_id, key, flash=flash,
                                   national_route=national_route)


def task_response(request: Request, principal: Principal, case_id: str, key: str, *, values: dict | None = None,
                  errors: dict[str, str] | None = None, general: list[str] | None = None, flash: str | None = None,
                  status_code: int = 200, national_route: bool = False, unsaved: list | None = None) -> Response:
    engine = engine_of(request)
    case, task, national = visible_task(engine, principal, case_id, key, national_route=national_route)
    schema = forms.schema(task.form) if task.form in forms.FORMS else {"properties": {}}
    facts = pinned(engine, case.partnership_id, case.arrangements_version)
    names = display_names(engine, {task.claimed_by or "", task.completed_by or ""})
    acting = may_act(engine, principal, task)
    data = json.loads(task.data or "{}")
    errors = errors or {}
    options = facts.options if facts else None
    # what the task decides on (issue 17.1, 17.2): local pages only, the national view stays pseudonymised
    record = (task_record.signing_record(engine, case, options)
              if task.type == "partner_signoff" and not national else [])
    returned = task_record.sent_back(engine, case, task) if not national else None
    responding_to = (task_record.panel_view(engine, case, facts.themes if facts else None)
                     if task.type == "panel_response" else [])
    if returned and values is None and task.status == "open":
        values = sf.form_values(schema, returned["data"])  # starts from the earlier answers
    left = facts.working_days_left(london_today(), task.due_date) if facts else None
    summary = sf.error_list(schema, errors, general or [])
    context = page_context(
        request, principal, page_title=task.title, page_has_errors=bool(summary), case=case, task=task,
        national=national, schema=schema, may_act=acting,
        claimed_by_other=bool(task.claimed_by and task.claimed_by != principal.user_ref),
        claimed_by_name=names.get(task.claimed_by or "", task.claimed_by),
        completed_by_name=names.get(task.completed_by or "", task.completed_by),
        category=facts.categories.get(case.category, case.category) if facts else case.category,
        children=[] if national else children_of(case),
        days_left_text=days_left_text(left), overdue=task.status == "open" and (
            task.overdue or (left is not None and left < 0)),
        widgets=sf.widgets(schema, values or {}, errors, options), error_summary=summary,
        answers=sf.answers(schema, data, options) if task.status == "done" else [],
        confirmed=request.query_params.get("done") == "1" and task.status == "done",
        next_steps=task_record.next_steps(task) if task.status == "done" else "",
        record=record, sent_back=returned, unsaved=unsaved or [], responding_to=responding_to,
        flash=flash, back=task_href(case.id, case.national_ref, key, national),
        case_href="/tasks" if national else f"/cases/{case_id}")
    return render(request, "reviewer/task.html", context, block="task", status_code=status_code)


async def complete_task_form(request: Request, case_id: str, key: str, principal: Principal, *,
                         national_route: bool = False):
    engine = engine_of(request)
    case, task, national = await run_in_threadpool(visible_task, engine, principal, case_id, key,
                                                   national_route=national_route)
    schema = forms.schema(task.form) if task.form in forms.FORMS else {"properties": {}}
    form = await request.form()
    values: dict[str, Any] = {k: str(v) for k, v in form.items() if k != "csrf_token" and isinstance(v, str)}
    values.update({name: [v for v in form.getlist(name) if isinstance(v, str)]
                   for name, prop, _ in sf.properties(schema) if sf.kind_of(prop) == "checkboxes"})
    data, errors = sf.parse(schema, values)
    if errors:  # the browser-only problems (impossible dates); show the schema's other problems with them
        more, general = sf.field_errors(schema, forms.validate(task.form, data))
        await run_in_threadpool(audit, engine, principal, "task.complete", partnership_id=case.partnership_id,
                                case_id=case.id, outcome="rejected",
                                detail=f"{key}: invalid: {len(errors)} field(s) not readable (page)")
        return await run_in_threadpool(task_response, request, principal, case_id, key, values=values,
                                       errors={**more, **errors}, general=general, status_code=422,
                                       national_route=national_route)
    try:
        await act(request, principal, case, key, "complete", data, idempotency_key=form_key(values))
    except ApiError as exc:
        if exc.status == 422:
            by_name, general = sf.field_errors(schema, exc.fields)
            if not by_name and not general:
                general = [exc.message]
            return await run_in_threadpool(task_response, request, principal, case_id, key, values=values,
                                           errors=by_name, general=general, status_code=422,
                                           national_route=national_route)
        if exc.status == 403:  # someone claimed it meanwhile (or it is no longer theirs): keep what they typed
            return await run_in_threadpool(task_response, request, principal, case_id, key, values=values,
                                           flash=exc.message, unsaved=sf.answers(schema, data), status_code=409,
                                           national_route=national_route)
        if exc.status == 409:
            return error_page(request, 409, exc.message, heading="This task has already been done",
                              details=["Nothing was changed by sending the form again."],
                              links=[{"text": "Go back to the case" if not national else "Go to your tasks",
                                      "href": "/tasks" if national else f"/cases/{case_id}"}])
        raise
    # the confirmation page keeps how the person arrived (reviewer/_arrival.html): only the allow-listed places
    arrived = request.query_params.get("from", "")
    keep = f"&from={arrived}" if arrived in (("overview", "case") if national else ("tasks",)) else ""
    return RedirectResponse(task_href(case.id, case.national_ref, key, national) + "?done=1" + keep,
                            status_code=303)
