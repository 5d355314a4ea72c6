"""Pages for a partnership's local child safeguarding practice reviews (LCSPRs).

``/reviews`` lists the partnership's reviews: those in progress with their next dates (the report's due date, the
next open step and its due date, the planned publication date), those suspended while the national Panel holds a
national review, and closed ones (published or not). ``/reviews/{id}`` shows one review with its open steps and
actions, an "Add an action" form (read into ``web.views.action_form.ActionForm``, every problem in one round, then
``case_commands.update_case(..., "add_action", ActionCommand)``: the workflow checks the owner, the description and
the date again, and who may add actions and when) and the final report's upload
(``web.uploads.store``). After an upload the page offers the final-report task with the file already filled in:
``/reviews/{id}/final-report?file=<id>`` renders the task page (``web.views.tasks.task_response``) with that
value, and its form posts to the task page as usual.

Uploads over 2 MB need the CSRF token in a header (the session middleware reads at most 2 MB of a form to find the
token in it): the upload form sends it with htmx, so without JavaScript a report is limited to 2 MB.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as Upload

from safeguarding.accounts import Principal
from safeguarding.audit_log import audit
from safeguarding.case_access import readable_case, readable_cases_where
from safeguarding.case_commands import actor_of, update_case, update_id_of
from safeguarding.case_records import ActionCommand
from safeguarding.clock import london_today
from safeguarding.pinned import Pinned, pinned
from safeguarding.refusals import NotApplied
from safeguarding.tables import Case, Task
from web import uploads
from web.deps import AppSettings, DbEngine, PagePrincipal, TemporalClient, TemporalTimeout, engine_of
from web.errors import ApiError, error_page
from web.form_errors import error_summary, field_errors, named_in, sentence, unknown_fields
from web.form_models import posted, posted_names, read_form
from web.pages import bounded_page, form_key, page_context
from web.templating import is_fragment_request, render
from web.views.action_form import ACTION_ANCHORS, ACTION_FIELDS, ActionForm
from web.views.common import aware

router = APIRouter(include_in_schema=False)

STATUS_TAGS = {"open": ("In progress", "govuk-tag--blue"), "suspended": ("Suspended: national review",
                                                                          "govuk-tag--purple"),
               "closed": ("Closed", "govuk-tag--grey")}
FINAL_REPORT = "final-report"


def _own_partnership(principal: Principal) -> str:
    if principal.partnership_id is None:
        raise ApiError(404, "not_found", "no reviews")
    return principal.partnership_id


def _own_review(engine, principal: Principal, case_id: str) -> Case:
    readable_case(engine, principal, case_id, what="review", processes=("lcspr",))  # else 404 (may_read_case)
    with Session(engine) as session:
        case = session.get(Case, case_id)
    return case


def _next_task(tasks: list[Task]) -> Task | None:
    steps = [t for t in tasks if t.status == "open"]
    return min(steps, key=lambda t: (t.due_date is None, t.due_date or date.max, t.opened_at, t.key), default=None)


def _days_text(n: int | None, late: bool) -> str:
    if n is None:
        return ""
    return f"{n} working day{'s' if n != 1 else ''} {'late' if late else 'left'}"


def _report_due(case: Case, facts: Pinned | None, today: date) -> dict[str, Any]:
    """The report's due date, and whether it is overdue (passed, publication not yet decided, review open)."""
    if case.report_due is None:
        return {"date": None, "overdue": False, "text": ""}
    overdue = case.status == "open" and case.published is None and case.report_due < today
    if overdue:
        text = _days_text(facts.working_days_since(case.report_due, today) if facts else None, True)
    elif case.status == "open" and case.published is None:
        text = _days_text(facts.working_days_since(today, case.report_due) if facts else None, False)
    else:
        text = ""
    return {"date": case.report_due, "overdue": overdue, "text": text}


@router.get("/reviews")
def reviews_page(request: Request, engine: DbEngine, principal: PagePrincipal):

    pid = _own_partnership(principal)
    today = london_today()
    with Session(engine) as session:
        readable = readable_cases_where(session.connection(), principal, pid)
        query = select(Case).where(Case.partnership_id == pid, Case.process == "lcspr")
        if readable is not None:  # only the reviews this person may read (safeguarding.case_access.may_read_case)
            query = query.where(readable)
        cases = list(session.exec(query.order_by(Case.aware_date.desc(), Case.id)))
        ids = [c.id for c in cases if c.status != "closed"]
        tasks = list(session.exec(select(Task).where(Task.partnership_id == pid, Task.status == "open",
                                                     Task.case_id.in_(ids)))) if ids else []
    by_case: dict[str, list[Task]] = {}
    for task in tasks:
        by_case.setdefault(task.case_id, []).append(task)
    rows: dict[str, list[dict[str, Any]]] = {"open": [], "suspended": [], "closed": []}
    for case in cases:
        facts = pinned(engine, pid, case.arrangements_version)
        nxt = _next_task(by_case.get(case.id, []))
        open_actions = sum(1 for t in by_case.get(case.id, []) if t.type == "lcspr_action")
        rows.setdefault(case.status, []).append({
            "id": case.id, "ref": case.case_ref, "href": f"/reviews/{case.id}", "decided": case.aware_date,
            "stage": case.stage, "report_due": _report_due(case, facts, today),
            "next_title": nxt.title if nxt else "", "next_due": nxt.due_date if nxt else None,
            "next_overdue": bool(nxt and (nxt.overdue or (nxt.due_date is not None and nxt.due_date < today))),
            "next_href": f"/cases/{case.id}/tasks/{nxt.key}" if nxt else "",
            "publication_date": case.publication_date, "published": case.published, "open_actions": open_actions,
            "closed": aware(case.closed_at)})
    context = page_context(request, principal, page_title="Local reviews", today=today, in_progress=rows["open"],
                           suspended=rows["suspended"], closed=rows["closed"])
    return render(request, "reviews/index.html", context, block="reviews")


# --- one review -------------------------------------------------------------------------------------------------


def _review_page(request: Request, principal: Principal, case: Case, *, values: dict[str, Any] | None = None,
                 errors: dict[str, str] | None = None, upload_error: str = "", status_code: int = 200,
                 block: str = "review") -> Response:
    engine = engine_of(request)
    today = london_today()
    facts = pinned(engine, case.partnership_id, case.arrangements_version)
    with Session(engine) as session:
        tasks = list(session.exec(select(Task).where(Task.case_id == case.id).order_by(Task.opened_at, Task.key)))
    keys = {t.key: t for t in tasks}
    values = values or {}
    errors = errors or {}
    steps = [t for t in tasks if t.status == "open" and t.type != "lcspr_action"]
    actions = [t for t in tasks if t.type == "lcspr_action"]
    recommendations = keys.get("recommendations")
    final = keys.get(FINAL_REPORT)
    may_add = bool(facts and principal.user_ref in facts.roles.get(facts.lcspr_role, frozenset()))
    if case.status != "open":
        action_block = "This review is " + ("suspended for a national review" if case.status == "suspended"
                                            else "closed") + ": actions cannot be added."
    elif recommendations is None:
        action_block = "Actions come from the final report’s recommendations: they can be added once the final " \
                       "report is accepted."
    elif not may_add:
        action_block = "Only the " + (facts.role_titles.get(facts.lcspr_role, "commissioning role").lower()
                                      if facts else "commissioning role") + " adds actions to a review."
    else:
        action_block = ""
    uploaded = request.query_params.get("uploaded", "")
    uploaded = uploaded if uploads.path_of(request.app.state.settings, case.id, uploaded) else ""
    data = json.loads(final.data or "{}") if final is not None and final.status == "done" else {}
    summary = error_summary(errors, ["form", *ACTION_FIELDS], {**ACTION_ANCHORS, "form": "#add-action"})
    if upload_error:
        summary.append({"text": upload_error, "href": "#file"})
    tag_text, tag_classes = STATUS_TAGS.get(case.status, (case.status, "govuk-tag--grey"))
    added = request.query_params.get("added", "")
    context = page_context(
        request, principal, page_title=f"Local review {case.case_ref}", page_has_errors=bool(summary), case=case,
        tag_text=tag_text, tag_classes=tag_classes, today=today,
        report_due=_report_due(case, facts, today),
        steps=[{"title": t.title, "for": t.candidate_label, "due": t.due_date,
                "overdue": t.overdue or (t.due_date is not None and t.due_date < today),
                "href": f"/cases/{case.id}/tasks/{t.key}"} for t in steps],
        actions=[{"title": t.title, "owner": t.candidate_label, "due": t.due_date, "status": t.status,
                  "outcome": json.loads(t.data or "{}").get("outcome", "") if t.status == "done" else "",
                  "overdue": t.status == "open" and (t.overdue or (t.due_date is not None and t.due_date < today)),
                  "href": f"/cases/{case.id}/tasks/{t.key}"} for t in actions],
        action_block=action_block, values=values, errors=errors, error_summary=summary,
        owners=[{"value": "", "text": "Choose the agency"}] + [
            {"value": aid, "text": name, "selected": values.get("owner") == aid}
            for aid, name in (facts.agencies.items() if facts else [])],
        upload_open=case.status == "open" and (final is None or final.status == "open"),
        upload_error=upload_error, uploaded=uploaded,
        final_open=final is not None and final.status == "open",
        final_href=f"/reviews/{case.id}/final-report?" + urlencode({"file": uploaded}) if uploaded else "",
        fragment=is_fragment_request(request), report_file=data.get("report_file", ""),
        max_mb=request.app.state.settings.max_upload_mb,
        added=keys[added].title if added in keys and keys[added].type == "lcspr_action" else "")
    return render(request, "reviews/review.html", context, block=block, status_code=status_code)


@router.get("/reviews/{case_id}")
def review_page(request: Request, engine: DbEngine, case_id: str, principal: PagePrincipal):
    case = _own_review(engine, principal, case_id)
    return _review_page(request, principal, case)


@router.post("/reviews/{case_id}/actions")
@bounded_page
async def add_action(request: Request, timeout: TemporalTimeout, engine: DbEngine, temporal: TemporalClient,
                     case_id: str, principal: PagePrincipal):

    case = await run_in_threadpool(_own_review, engine, principal, case_id)
    form = await request.form()
    values = posted(form)
    unknown = unknown_fields(form.keys(), posted_names(ActionForm))
    facts = pinned(engine, case.partnership_id, case.arrangements_version)
    action, errors = (None, {"form": unknown}) if unknown else read_form(
        ActionForm, values, context={"agencies": facts.agencies if facts else None, "today": london_today()})
    if action is None:
        await run_in_threadpool(audit, engine, principal, "action.add", partnership_id=case.partnership_id,
                                case_id=case.id,
                                outcome="rejected", detail=f"invalid: {', '.join(sorted(errors))} (page)")
        return _review_page(request, principal, case, values=values, errors=errors, status_code=422)
    command = ActionCommand(actor=actor_of(principal), owner=action.owner, description=action.description,
                            due_date=action.due_date.isoformat())
    try:
        result = await update_case(temporal, case.id, "add_action", command,
                                   update_id=update_id_of(principal, "add_action", form_key(values)),
                                   timeout=timeout)
    except NotApplied:
        raise  # bounded_page: "not saved yet, try again"
    except ApiError as exc:
        await run_in_threadpool(audit, engine, principal, "action.add", partnership_id=case.partnership_id,
                                case_id=case.id,
                                outcome="rejected", detail=f"{exc.code}: {exc.message} (page)")
        errors = field_errors(exc.fields, name_of=named_in(ACTION_FIELDS))
        if exc.status in (403, 409) or not errors:
            errors.setdefault("form", sentence(exc.message))
        status = exc.status if exc.status in (403, 409, 422) else 422
        return _review_page(request, principal, case, values=values, errors=errors, status_code=status)
    return RedirectResponse(f"/reviews/{case.id}?" + urlencode({"added": result.task_key}) + "#actions",
                            status_code=303)


@router.post("/reviews/{case_id}/report")
async def upload_report(request: Request, engine: DbEngine, settings: AppSettings, case_id: str,
                        principal: PagePrincipal):
    engine, settings = engine, settings
    case = await run_in_threadpool(_own_review, engine, principal, case_id)
    htmx = request.headers.get("hx-request") == "true"
    try:
        uploads.check_declared_size(request, settings)
        form = await request.form(max_files=1, max_fields=3)
        upload = form.get("file")
        if not isinstance(upload, Upload) or not upload.filename:
            raise ApiError(422, "invalid_file", "Select the report file (PDF or Word)")
        stored = await uploads.store(upload, settings, case.id)
    except ApiError as exc:
        await run_in_threadpool(audit, engine, principal, "file.upload", partnership_id=case.partnership_id,
                                case_id=case.id,
                                outcome="rejected", detail=f"{exc.message} (page)")
        if exc.status in (413, 422):
            return _review_page(request, principal, case, upload_error=exc.message[:1].upper() + exc.message[1:],
                                status_code=exc.status, block="upload")
        raise
    await run_in_threadpool(audit, engine, principal, "file.upload", partnership_id=case.partnership_id,
                            case_id=case.id,
                            detail=f"{stored.file_id} ({stored.size} bytes) (page)")
    target = f"/reviews/{case.id}?" + urlencode({"uploaded": stored.file_id}) + "#report"
    if htmx:
        return Response(status_code=200, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


@router.get("/reviews/{case_id}/final-report")
def final_report_task(request: Request, principal: PagePrincipal, engine: DbEngine, settings: AppSettings,
                      case_id: str, file: str = ""):
    """The final-report task page with the uploaded file filled in (the form posts to the task page itself)."""
    case = _own_review(engine, principal, case_id)
    if uploads.path_of(settings, case.id, file) is None:
        return error_page(request, 404)
    with Session(engine) as session:
        task = session.get(Task, f"{case.id}/{FINAL_REPORT}")
    if task is None or task.status != "open":
        return RedirectResponse(f"/reviews/{case.id}", status_code=303)
    from web.views.tasks import task_response

    return task_response(request, principal, case.id, FINAL_REPORT, values={"report_file": file})
