"""Pages for the people who do the work: sign-in, my tasks, cases, a case, a task, recording an incident.

Every page is one template that renders whole, or only its live block for htmx (claim/release swaps, and
polling that answers 204 when nothing changed). Everything works without JavaScript: forms post normally and
redirect back. Reads come from the read model (``case_queries``); changes go to the case's workflow through the
same service calls as the JSON API, so pages and API give the same answers and the same errors.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
import weakref
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import Connection, Row, and_, bindparam, func
from sqlalchemy import select as sql_select
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from safeguarding import forms
from safeguarding.accounts import Principal
from safeguarding.audit_log import audit
from safeguarding.calendar import WorkingCalendar
from safeguarding.case_access import may_read_case, visible_case
from safeguarding.case_commands import act_on_task, actor_of, update_id_of
from safeguarding.case_queries import CASE_EVENTS, CASE_TASKS, list_cases, my_tasks_params, my_tasks_where
from safeguarding.case_records import NATIONAL_PANEL, TaskCommand
from safeguarding.clock import london_today
from safeguarding.intake import IncidentIn, may_open_incident, open_incident
from safeguarding.tables import AuditEntry, Case, CaseEvent, Task, TaskCandidate, User
from safeguarding.themes import themes_for
from safeguarding.versions import VersionNotFoundError, document_of, get_version
from web.auth import (
    TooManyAttempts,
    check_password,
    client_ip,
    page_principal_on,
    require_page_principal,
    safe_next,
    session_principal,
)
from web.errors import ApiError, error_page
from web.pages import bounded_page, form_key, page_context
from web.pages import schema_forms as sf
from web.session import end_session, session_of, start_session
from web.templating import date_uk, datetime_uk, render

log = logging.getLogger("sgflow.web")
router = APIRouter(include_in_schema=False)

HOME_BY_KIND = {"national_body": "/national", "partnership_lead": "/cases", "administrator": "/cases"}
POLL_SECONDS = 5
CASE_STATUSES = {"open": "Open", "closed": "Closed", "awaiting_lcspr": "Awaiting the local review",
                 "national_review": "National review"}
STATUS_TAGS = {"open": "govuk-tag--blue", "closed": "govuk-tag--grey", "awaiting_lcspr": "govuk-tag--yellow",
               "national_review": "govuk-tag--purple"}
# The incident process's steps in order, so the case page can show steps not reached yet.
INCIDENT_STEPS = [("notification_sent", "Notify the national Panel", False),
                  ("agency_summary", "Agency summaries", True), ("rr_meeting", "Record the rapid review meeting", True),
                  ("lcspr_decision", "Decide on a local child safeguarding practice review", True),
                  ("partner_signoff", "Partner sign-off", True),
                  ("panel_submission", "Submit the rapid review to the national Panel", True),
                  ("panel_response", "The national Panel’s response", True)]
WRONG_SIGN_IN = "Enter a correct email address and password"


# --- arrangements facts a page needs, cached per partnership and version (versions never change) --------------


@dataclass(frozen=True)
class VersionFacts:
    calendar: WorkingCalendar
    categories: dict[str, str]
    agencies: dict[str, str]
    options: dict[str, dict[str, str]]  # x-options lists for task forms (themes)


_facts: dict[tuple[str, int, str], VersionFacts] = {}
_facts_lock = threading.Lock()
# (partnership, number) -> facts, per database: a stored version never changes, so a page that needs the facts
# of a case's pinned version asks the database once per process, not once per row.
_pinned: weakref.WeakKeyDictionary[Any, dict[tuple[str, int], VersionFacts]] = weakref.WeakKeyDictionary()


def version_facts(engine, partnership_id: str, number: int | None = None) -> VersionFacts | None:
    """Facts of a version (``number``), or of the current one (None)."""
    if number is not None:
        with _facts_lock:
            cached = _pinned.get(engine, {}).get((partnership_id, number))
        if cached is not None:
            return cached
    facts = _version_facts(engine, partnership_id, number)
    if facts is not None and number is not None:
        with _facts_lock:
            _pinned.setdefault(engine, {})[(partnership_id, number)] = facts
    return facts


def _version_facts(engine, partnership_id: str, number: int | None) -> VersionFacts | None:
    with Session(engine) as session:
        try:
            row = get_version(session, partnership_id, number)
        except VersionNotFoundError:
            return None
    key = (partnership_id, row.number, row.content_hash)
    with _facts_lock:
        cached = _facts.get(key)
    if cached is not None:
        return cached
    doc = document_of(row)
    today = london_today()
    calendar = WorkingCalendar.for_config(doc["calendar"], 2018, today.year + 3)
    sin = doc.get("serious_incident_notification", {})
    facts = VersionFacts(
        calendar=calendar, categories={c["id"]: c.get("label", c["id"]) for c in sin.get("categories", [])},
        agencies={**{p["id"]: p.get("organisation", p["id"]) for p in doc.get("safeguarding_partners", [])},
                  **{a["id"]: a.get("name", a["id"]) for a in doc.get("relevant_agencies", [])}},
        options={"themes": themes_for(doc), "learning_responses": {
            **{r["id"]: f"{r['label']} (within {r['within_working_days']} working days)"
               for r in (doc.get("learning") or {}).get("responses", [])},
            "no_further_action": "No further action"}})
    with _facts_lock:
        _facts[key] = facts
    return facts


def working_days_left(calendar: WorkingCalendar | None, today: date, due: date | None) -> int | None:
    """Working days from today to the due date: 0 on the day, negative once past; None if unknown."""
    if calendar is None or due is None:
        return None
    try:
        return calendar.working_days_between(today, due)
    except ValueError:  # outside the calendar's years
        return None


def days_left_text(left: int | None) -> str:
    if left is None:
        return ""
    if left > 0:
        return f"{left} working day{'s' if left != 1 else ''} left"
    if left == 0:
        return "Due today"
    return f"{-left} working day{'s' if left != -1 else ''} late"


_users = User.__table__.c
_DISPLAY_NAMES = sql_select(_users.user_ref, _users.display_name).where(
    _users.user_ref.in_(bindparam("refs", expanding=True)))


NOBODY = ("", "system")  # actor and claimer references that are no account's


def display_names(engine, refs: set[str]) -> dict[str, str]:
    """user_ref -> display name of the people among ``refs`` (those with no account are left out)."""
    with engine.connect() as conn:
        return names_on(conn, refs)


def names_on(conn, refs: set[str]) -> dict[str, str]:
    """``display_names`` on a connection the caller has open."""
    refs = {r for r in refs if r not in NOBODY}
    if not refs:
        return {}
    return dict(conn.execute(_DISPLAY_NAMES, {"refs": sorted(refs)}).all())


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes (stored as UTC): make them aware, as the date filters require."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def children_of(case: Case) -> list[dict[str, str]]:
    """Children by pseudonym (incidents store objects, escalations plain pseudonyms)."""
    children = json.loads(case.children or "[]")
    return [c if isinstance(c, dict) else {"pseudonym": str(c), "local_ref": ""} for c in children]


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, default=str, sort_keys=True).encode()).hexdigest()[:16]


def _engine(request: Request):
    return request.app.state.engine


# --- home, sign-in, sign-out ------------------------------------------------------------------------------------


@router.get("/")
def home(principal: Principal = Depends(require_page_principal)):
    return RedirectResponse(HOME_BY_KIND.get(principal.kind, "/tasks"), status_code=303)


def _sign_in_page(request: Request, *, status: int = 200, email: str = "", next_path: str = "/",
                  errors: dict[str, str] | None = None, summary: list[dict] | None = None,
                  notice: str | None = None) -> Response:
    errors = errors or {}
    context = page_context(request, None, page_title="Sign in", page_has_errors=bool(summary), email=email,
                           next_path=next_path, errors=errors, error_summary=summary or [], notice=notice)
    return render(request, "auth/sign_in.html", context, status_code=status)


@router.get("/sign-in")
def sign_in_form(request: Request, next: str | None = None, expired: str | None = None,
                 signed_out: str | None = None):
    next_path = safe_next(next)
    if session_principal(request) is not None:
        return RedirectResponse(next_path, status_code=303)
    notice = None
    if expired or session_of(request).expired:
        notice = "You were signed out because you had not done anything for a while. Sign in again to carry on."
    elif signed_out:
        notice = "You have signed out."
    return _sign_in_page(request, next_path=next_path, notice=notice)


@router.post("/sign-in")
async def sign_in(request: Request):
    form = await request.form()
    email = str(form.get("email", "")).strip()
    password = str(form.get("password", ""))
    next_path = safe_next(str(form.get("next", "/")))
    errors: dict[str, str] = {}
    if not email:
        errors["email"] = "Enter your email address"
    if not password:
        errors["password"] = "Enter your password"  # noqa: S105 (an error message, not a password)
    if errors:
        summary = [{"text": m, "href": f"#{f}"} for f, m in errors.items()]
        return _sign_in_page(request, status=422, email=email, next_path=next_path, errors=errors, summary=summary)
    engine, ip = _engine(request), client_ip(request)

    def check() -> tuple[Principal | None, str | None]:
        principal = check_password(request, email, password)  # throttled: TooManyAttempts, password unchecked
        if principal is None:
            return None, None
        with Session(engine) as session:
            password_hash = session.get(User, principal.user_id).password_hash
        start_session(request, engine, principal.user_id, password_hash)  # a new id: no session fixation
        return principal, password_hash

    try:
        principal, _ = await run_in_threadpool(check)
    except TooManyAttempts as exc:
        audit(engine, None, "sign_in", outcome="rejected", detail=f"throttled email={email[:254]} ip={ip}")
        minutes = max(1, -(-exc.retry_after // 60))
        message = (f"You have tried to sign in too many times. Wait {minutes} minute{'s' if minutes > 1 else ''} "
                   "and try again.")
        response = _sign_in_page(request, status=429, email=email, next_path=next_path,
                                 errors={"email": message}, summary=[{"text": message, "href": "#email"}])
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if principal is None:
        audit(engine, None, "sign_in", outcome="rejected", detail=f"wrong credentials email={email[:254]} ip={ip}")
        return _sign_in_page(request, status=422, email=email, next_path=next_path,
                             errors={"email": WRONG_SIGN_IN},
                             summary=[{"text": WRONG_SIGN_IN, "href": "#email"}])
    request.scope.setdefault("state", {})["principal"] = principal
    audit(engine, principal, "sign_in", partnership_id=principal.partnership_id, detail=f"ip={ip}")
    return RedirectResponse(next_path if next_path != "/" else HOME_BY_KIND.get(principal.kind, "/tasks"),
                            status_code=303)


@router.post("/sign-out")
def sign_out(request: Request):
    principal = session_principal(request)
    if principal is not None:
        audit(_engine(request), principal, "sign_out", partnership_id=principal.partnership_id)
    end_session(request, _engine(request))  # the session's row is deleted: every copy of its cookie is dead
    return RedirectResponse("/sign-in?signed_out=1", status_code=303)


# --- my tasks -----------------------------------------------------------------------------------------------------


INBOX_PAGE_SIZE = 25


def _inbox_filters(params) -> dict[str, Any]:
    status = params.get("status", "open")
    page = params.get("page", "1")
    return {"status": status if status in ("open", "done") else "open", "overdue": params.get("overdue") == "1",
            "page": int(page) if page.isdecimal() and 0 < int(page) < 100_000 else 1}


def inbox_rows(engine, principal: Principal, filters: dict[str, Any],
               conn: Connection | None = None) -> tuple[list[dict[str, Any]], int, int]:
    """(this page's rows, how many tasks in all, the page shown: the last one if asked for one past it).

    One statement: the page of tasks joined to their cases and to the names of who claimed them, with the total as a
    window count. A row has what the inbox shows and what its digest (``rev``) covers, nothing else: the rows are
    the inbox macro's parameters (``reviewer/_inbox.html``), whose output is remembered by them. ``conn``: a
    connection the caller has open (else one is taken)."""
    if conn is None:
        with engine.connect() as own:
            return inbox_rows(engine, principal, filters, own)
    overdue = True if filters["overdue"] else None
    page = filters["page"]
    found, total = _inbox_page(conn, principal, filters["status"], overdue, page)
    if not found and total and page > 1:  # past the end: the last page
        page = -(-total // INBOX_PAGE_SIZE)
        found, total = _inbox_page(conn, principal, filters["status"], overdue, page)
    today = london_today()
    me, my_name, national = principal.user_ref, principal.display_name, principal.is_national
    calendars: dict[tuple[str, int], WorkingCalendar | None] = {}
    rows = []
    for (case_id, key, title, for_, status, due_date, overdue_flag, claimed_by, partnership_id, version, national_ref,
         case_ref, claimer_name, _total) in found:
        calendar_key = (partnership_id, version)
        if calendar_key not in calendars:
            facts = version_facts(engine, partnership_id, version)
            calendars[calendar_key] = facts.calendar if facts else None
        left = working_days_left(calendars[calendar_key], today, due_date)
        # The signed-in person's own name is known; an account that is gone shows its reference.
        claimed_by_name = my_name if claimed_by == me else claimed_by if claimer_name is None else claimer_name
        rows.append({"case_id": case_id, "key": key, "title": title, "for": for_, "status": status,
                     "due_date": due_date, "overdue": overdue_flag, "claimed_by": claimed_by,
                     "case_label": national_ref if national else case_ref, "days_left": left,
                     "days_left_text": days_left_text(left), "claimed_by_name": claimed_by_name,
                     "mine": claimed_by == me,
                     "href": task_href(case_id, national_ref, key, national and not principal.can_read(partnership_id)),
                     })
    return rows, total, page


def _account_of(account, user_ref):
    """Outer-join condition: the account whose ``user_ref`` is in that column (``NOBODY``'s are no account's, as in
    ``display_names``). ``user_ref`` is unique, so the join adds no rows."""
    return and_(account.c.user_ref == user_ref, *(user_ref != ref for ref in NOBODY))  # not NOT IN: no re-render


_claimer = User.__table__.alias("claimer")
_INBOX_COLUMNS = (Task.case_id, Task.key, Task.title, Task.candidate_label.label("for"), Task.status, Task.due_date,
                  Task.overdue, Task.claimed_by, Case.partnership_id, Case.arrangements_version, Case.national_ref,
                  Case.case_ref, _claimer.c.display_name.label("claimed_by_name"))


@functools.cache
def _inbox_statements(national: bool, by_overdue: bool):
    """(a page of the inbox with the total as a window count, the count alone), built once per kind of inbox:
    everything that differs between people and pages is a bound parameter. The name of whoever claimed a task
    comes with it (``_account_of``)."""
    where = my_tasks_where(national, by_overdue)
    page = (sql_select(*_INBOX_COLUMNS, func.count().over().label("total"))
            .join(Case, Case.id == Task.case_id)
            .outerjoin(_claimer, _account_of(_claimer, Task.__table__.c.claimed_by))
            .where(*where)
            .order_by(Task.due_date.is_(None), Task.due_date, Task.opened_at, Task.id)
            .offset(bindparam("page_offset")).limit(bindparam("page_size")))
    return page, sql_select(func.count()).select_from(Task).where(*where)


def _inbox_page(conn: Connection, principal: Principal, status: str, overdue: bool | None,
                page: int) -> tuple[list[Row], int]:
    page_query, count_query = _inbox_statements(principal.is_national, overdue is not None)
    params = my_tasks_params(principal, status, overdue)
    found = conn.execute(page_query, {
        **params, "page_offset": (page - 1) * INBOX_PAGE_SIZE, "page_size": INBOX_PAGE_SIZE}).all()
    if found:
        return found, found[0].total
    if page == 1:
        return [], 0
    return [], conn.execute(count_query, params).scalar_one()


def inbox_response(request: Request, principal: Principal, filters: dict[str, Any], *,
                   flash: str | None = None, known_rev: str | None = None,
                   listing: tuple[list[dict[str, Any]], int, int] | None = None) -> Response:
    """The inbox page (or its live block, for htmx), of ``listing`` (``inbox_rows``'s answer) when the caller has
    it already."""
    rows, total, page = listing if listing is not None else inbox_rows(_engine(request), principal, filters)
    rev = _digest([london_today(), total, page, [(r["case_id"], r["key"], r["status"], r["claimed_by"],
                                                  r["overdue"], r["due_date"]) for r in rows]])
    if known_rev is not None and known_rev == rev and flash is None:
        return Response(status_code=204)
    filter_query = "&".join(f"{k}={v}" for k, v in (("status", filters["status"]),
                                                     ("overdue", "1" if filters["overdue"] else "")) if v)
    query = "&".join(q for q in (filter_query, f"page={page}" if page > 1 else "") if q)
    pages = max(1, -(-total // INBOX_PAGE_SIZE))

    def page_href(number: int) -> str:
        return "/tasks?" + "&".join(q for q in (filter_query, f"page={number}") if q)

    context = page_context(request, principal, page_title="Panel tasks" if principal.is_national else "My tasks",
                           rows=rows, total=total, page=page, pages=pages,
                           first=(page - 1) * INBOX_PAGE_SIZE + 1, last=(page - 1) * INBOX_PAGE_SIZE + len(rows),
                           previous_href=page_href(page - 1) if page > 1 else None,
                           next_href=page_href(page + 1) if page < pages else None,
                           filters=filters, rev=rev, flash=flash, poll_seconds=POLL_SECONDS,
                           back="/tasks" + (f"?{query}" if query else ""), query=query)
    return render(request, "reviewer/tasks.html", context, block="inbox")


@router.get("/tasks")
def tasks_page(request: Request):
    params = request.query_params
    filters = _inbox_filters(params)
    engine = _engine(request)
    with engine.connect() as conn:  # one connection for the session check and the inbox
        # Checked here, not as a dependency: a sync dependency is a trip through the thread pool of its own.
        principal = page_principal_on(request, conn)
        listing = inbox_rows(engine, principal, filters, conn)
    return inbox_response(request, principal, filters, listing=listing,
                          known_rev=params.get("rev") if params.get("poll") == "1" else None)


# --- visibility and acting on tasks ---------------------------------------------------------------------------------


def task_href(case_id: str, national_ref: str, key: str, national: bool) -> str:
    """A task's page: the national body reaches it by the case's pseudonymous reference, never the local one."""
    return f"/national/cases/{national_ref}/tasks/{key}" if national else f"/cases/{case_id}/tasks/{key}"


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
    if principal.partnership_id != task.partnership_id:
        return False
    with Session(engine) as session:
        return session.get(TaskCandidate, (task.id, principal.user_ref)) is not None


async def _act(request: Request, principal: Principal, case: Case, key: str, action: str,
               data: dict[str, Any] | None = None, *, idempotency_key: str | None = None):
    """``idempotency_key``: the form's (``web.pages.form_key``), so sending the same form twice is one change."""
    update_id = update_id_of(principal, f"{action}-{key}", idempotency_key)
    command = TaskCommand(task_key=key, actor=actor_of(principal), data=data or {}, request_id=update_id)
    engine = _engine(request)
    try:
        result = await act_on_task(request.app.state.temporal, case.id, action, command, update_id=update_id,
                                   timeout=request.app.state.settings.temporal_timeout_seconds)
    except ApiError as exc:
        audit(engine, principal, f"task.{action}", partnership_id=case.partnership_id, case_id=case.id,
              outcome="rejected", detail=f"{key}: {exc.code}: {exc.message} (page)")
        raise
    return result


async def _claim_or_release(request: Request, principal: Principal, case_id: str, key: str, action: str, *,
                            national_route: bool = False):
    engine = _engine(request)
    case, _task, national = visible_task(engine, principal, case_id, key, national_route=national_route)
    form = await request.form()
    back = safe_next(str(form.get("back", "")) or task_href(case.id, case.national_ref, key, national))
    fragment = request.headers.get("hx-request") == "true"
    flash = None
    try:
        await _act(request, principal, case, key, action)
    except ApiError as exc:
        if not fragment:
            raise
        flash = exc.message
    if not fragment:
        return RedirectResponse(back, status_code=303)
    if back.startswith("/tasks"):
        from urllib.parse import parse_qsl, urlsplit

        return inbox_response(request, principal, _inbox_filters(dict(parse_qsl(urlsplit(back).query))), flash=flash)
    return task_response(request, principal, case_id, key, flash=flash, national_route=national_route)


@router.post("/cases/{case_id}/tasks/{key}/claim")
@bounded_page
async def claim(request: Request, case_id: str, key: str, principal: Principal = Depends(require_page_principal)):
    return await _claim_or_release(request, principal, case_id, key, "claim")


@router.post("/cases/{case_id}/tasks/{key}/release")
@bounded_page
async def release(request: Request, case_id: str, key: str, principal: Principal = Depends(require_page_principal)):
    return await _claim_or_release(request, principal, case_id, key, "release")


# --- cases ------------------------------------------------------------------------------------------------------------


@router.get("/cases")
def cases_page(request: Request, principal: Principal = Depends(require_page_principal)):
    params = request.query_params
    status = params.get("status", "open")
    status = status if status in (*CASE_STATUSES, "all") else "open"
    overdue = params.get("overdue") == "1"
    engine = _engine(request)
    rows = list_cases(engine, principal, status=None if status == "all" else status, overdue=True if overdue else None,
                      limit=200)
    for row in rows:
        facts = version_facts(engine, row["partnership_id"], row["arrangements_version"])
        row["category_label"] = facts.categories.get(row["category"], row["category"]) if facts else row["category"]
        row["status_label"] = CASE_STATUSES.get(row["status"], row["status"])
        row["status_classes"] = STATUS_TAGS.get(row["status"], "govuk-tag--grey")
    context = page_context(request, principal, page_title="Cases", rows=rows,
                           filters={"status": status, "overdue": overdue},
                           status_options=[("open", "Open"), ("closed", "Closed"),
                                           ("awaiting_lcspr", CASE_STATUSES["awaiting_lcspr"]),
                                           ("national_review", CASE_STATUSES["national_review"]), ("all", "All")],
                           may_record=_may_record(engine, principal))
    return render(request, "reviewer/cases.html", context, block="results")


def _step_status(task: Task, today: date, calendar: WorkingCalendar | None) -> dict[str, Any]:
    if task.status == "done":
        return {"text": "Completed"}
    if task.status == "cancelled":
        return {"text": "Cancelled", "classes": "govuk-task-list__status--cannot-start-yet"}
    if task.overdue or (task.due_date is not None and task.due_date < today):
        return {"tag": {"text": "Overdue", "classes": "govuk-tag--red"}}
    if task.claimed_by:
        return {"tag": {"text": "In progress", "classes": "govuk-tag--light-blue"}}
    return {"tag": {"text": "Not yet started", "classes": "govuk-tag--blue"}}


def task_list_items(case: Case, tasks: list[Task], names: dict[str, str], today: date,
                    calendar: WorkingCalendar | None) -> list[dict[str, Any]]:
    items = []
    order = {step_type: index for index, (step_type, _, _) in enumerate(INCIDENT_STEPS)}
    for task in sorted(tasks, key=lambda t: order.get(t.type, len(order))):  # stable: opened order within a step
        hint = [f"For {task.candidate_label}"]
        if task.status == "done":
            who = names.get(task.completed_by or "", task.completed_by or "")
            hint.append(f"done by {who}" + (f" on {_date_text(task.completed_at)}" if task.completed_at else ""))
            if task.days_late:
                hint.append(f"{task.days_late} working day{'s' if task.days_late != 1 else ''} late")
        elif task.status == "open":
            if task.due_date:
                hint.append(f"due {_date_text(task.due_date)}")
                left = days_left_text(working_days_left(calendar, today, task.due_date))
                if left:
                    hint.append(left.lower())
            elif task.follow_up_date:
                hint.append(f"expected by {_date_text(task.follow_up_date)}")
            if task.claimed_by:
                hint.append(f"claimed by {names.get(task.claimed_by, task.claimed_by)}")
        item = {"title": {"text": task.title}, "hint": {"text": ", ".join(hint)},
                "status": _step_status(task, today, calendar)}
        if task.status != "cancelled":
            item["href"] = f"/cases/{case.id}/tasks/{task.key}"
        items.append(item)
    if case.status == "open" and case.process == "incident":
        seen = {t.type for t in tasks}
        for step_type, title, needs_rr in INCIDENT_STEPS:
            if step_type in seen or (needs_rr and not case.rapid_review_required):
                continue
            items.append({"title": {"text": title}, "hint": {"text": "Opens when the earlier steps are done"},
                          "status": {"text": "Cannot start yet",
                                     "classes": "govuk-task-list__status--cannot-start-yet"}})
    return items


def _date_text(value: Any) -> str:
    if isinstance(value, datetime):
        return datetime_uk(aware(value))
    if isinstance(value, date):
        return date_uk(value)
    return str(value or "")


_audit = AuditEntry.__table__.c
_audit_actor = User.__table__.alias("audit_actor")
_CASE_AUDIT = (sql_select(_audit.at, _audit.actor, _audit.action, _audit.outcome, _audit.detail,
                          _audit_actor.c.display_name.label("actor_name"))
               .outerjoin(_audit_actor, _account_of(_audit_actor, _audit.actor))
               .where(_audit.case_id == bindparam("case_id")).order_by(_audit.at.desc(), _audit.id.desc()).limit(200))
# The case page's tasks and timeline: load_case's statements, each row with the display names of the people it
# names, so the page needs no separate look-up of names (its opener aside, when nobody else is them).
_task_t, _event_t = Task.__table__, CaseEvent.__table__
_completer, _claimant, _event_actor = (User.__table__.alias(name) for name in ("completer", "claimant", "event_actor"))
_CASE_PAGE_TASKS = (CASE_TASKS.add_columns(_completer.c.display_name.label("completed_by_name"),
                                           _claimant.c.display_name.label("claimed_by_name"))
                    .outerjoin(_completer, _account_of(_completer, _task_t.c.completed_by))
                    .outerjoin(_claimant, _account_of(_claimant, _task_t.c.claimed_by)))
_CASE_PAGE_EVENTS = (CASE_EVENTS.add_columns(_event_actor.c.display_name.label("actor_name"))
                     .outerjoin(_event_actor, _account_of(_event_actor, _event_t.c.actor)))


@router.get("/cases/{case_id}")
def case_page(request: Request):
    case_id: str = request.path_params["case_id"]  # read here, not declared: no parameter for FastAPI to validate
    engine = _engine(request)
    params = request.query_params
    # One connection for the page's reads, the session check's first. A poll whose revision is still the case's
    # needs only the case row.
    with engine.connect() as conn:
        # Checked here, not as a dependency (as in tasks_page): one trip through the thread pool, not two.
        principal = page_principal_on(request, conn)
        case = visible_case(conn, principal, case_id)
        if params.get("poll") == "1" and params.get("rev") == str(case.revision):
            return Response(status_code=204, headers={"HX-Reswap": "none"})
        tasks = conn.execute(_CASE_PAGE_TASKS, {"case_id": case_id}).all()
        events = conn.execute(_CASE_PAGE_EVENTS, {"case_id": case_id}).all()
        audit_found = []
        if principal.kind == "partnership_lead" or principal.is_admin:
            audit_found = conn.execute(_CASE_AUDIT, {"case_id": case.id}).all()
        names: dict[str, str] = {}  # user_ref -> display name of the people named who have an account
        for task in tasks:
            if task.completed_by_name is not None:
                names[task.completed_by] = task.completed_by_name
            if task.claimed_by_name is not None:
                names[task.claimed_by] = task.claimed_by_name
        for row in (*events, *audit_found):
            if row.actor_name is not None:
                names[row.actor] = row.actor_name
        if case.opened_by not in names:
            names.update(names_on(conn, {case.opened_by}))
    if params.get("poll") != "1":  # a person opened the case (htmx's polls of an open page are not new views)
        audit(engine, principal, "case.view", partnership_id=case.partnership_id, case_id=case.id, detail="(page)")
    audit_rows = [{"at": aware(a.at), "actor": a.actor, "action": a.action, "outcome": a.outcome,
                   "detail": a.detail} for a in audit_found]
    facts = version_facts(engine, case.partnership_id, case.arrangements_version)
    today = london_today()
    context = page_context(
        request, principal, page_title=f"Case {case.case_ref}", case=case,
        category=facts.categories.get(case.category, case.category) if facts else case.category,
        status_label=CASE_STATUSES.get(case.status, case.status),
        status_classes=STATUS_TAGS.get(case.status, "govuk-tag--grey"),
        children=children_of(case),
        agencies=[facts.agencies.get(a, a) if facts else a for a in json.loads(case.agencies or "[]")],
        items=task_list_items(case, tasks, names, today, facts.calendar if facts else None),
        opened_at=aware(case.opened_at),
        events=[{"at": aware(e.at), "who": names.get(e.actor, e.actor) if e.actor != "system" else "sgflow",
                 "message": e.message} for e in reversed(events)],
        names=names, audit_rows=audit_rows, poll_seconds=POLL_SECONDS)
    return render(request, "reviewer/case.html", context, block="live")


# --- one task ------------------------------------------------------------------------------------------------------


def task_response(request: Request, principal: Principal, case_id: str, key: str, *, values: dict | None = None,
                  errors: dict[str, str] | None = None, general: list[str] | None = None, flash: str | None = None,
                  status_code: int = 200, national_route: bool = False) -> Response:
    engine = _engine(request)
    case, task, national = visible_task(engine, principal, case_id, key, national_route=national_route)
    schema = forms.schema(task.form) if task.form in forms.FORMS else {"properties": {}}
    facts = version_facts(engine, case.partnership_id, case.arrangements_version)
    names = display_names(engine, {task.claimed_by or "", task.completed_by or ""})
    acting = may_act(engine, principal, task)
    data = json.loads(task.data or "{}")
    errors = errors or {}
    left = working_days_left(facts.calendar if facts else None, london_today(), task.due_date)
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
        widgets=sf.widgets(schema, values or {}, errors, facts.options if facts else None), error_summary=summary,
        answers=sf.answers(schema, data, facts.options if facts else None) if task.status == "done" else [],
        confirmed=request.query_params.get("done") == "1" and task.status == "done",
        flash=flash, back=task_href(case.id, case.national_ref, key, national),
        case_href="/tasks" if national else f"/cases/{case_id}")
    return render(request, "reviewer/task.html", context, block="task", status_code=status_code)


@router.get("/cases/{case_id}/tasks/{key}")
def task_page(request: Request, case_id: str, key: str, principal: Principal = Depends(require_page_principal)):
    return task_response(request, principal, case_id, key)


@router.post("/cases/{case_id}/tasks/{key}")
@bounded_page
async def complete_task(request: Request, case_id: str, key: str,
                        principal: Principal = Depends(require_page_principal)):
    return await _complete_task(request, case_id, key, principal)


async def _complete_task(request: Request, case_id: str, key: str, principal: Principal, *,
                         national_route: bool = False):
    engine = _engine(request)
    case, task, national = visible_task(engine, principal, case_id, key, national_route=national_route)
    schema = forms.schema(task.form) if task.form in forms.FORMS else {"properties": {}}
    form = await request.form()
    values: dict[str, Any] = {k: str(v) for k, v in form.items() if k != "csrf_token" and isinstance(v, str)}
    values.update({name: [v for v in form.getlist(name) if isinstance(v, str)]
                   for name, prop, _ in sf.properties(schema) if sf.kind_of(prop) == "checkboxes"})
    data, errors = sf.parse(schema, values)
    if errors:  # the browser-only problems (impossible dates); show the schema's other problems with them
        more, general = sf.field_errors(schema, forms.validate(task.form, data))
        audit(engine, principal, "task.complete", partnership_id=case.partnership_id, case_id=case.id,
              outcome="rejected", detail=f"{key}: invalid: {len(errors)} field(s) not readable (page)")
        return task_response(request, principal, case_id, key, values=values, errors={**more, **errors},
                             general=general, status_code=422, national_route=national_route)
    try:
        await _act(request, principal, case, key, "complete", data, idempotency_key=form_key(values))
    except ApiError as exc:
        if exc.status == 422:
            by_name, general = sf.field_errors(schema, exc.fields)
            if not by_name and not general:
                general = [exc.message]
            return task_response(request, principal, case_id, key, values=values, errors=by_name,
                                 general=general, status_code=422, national_route=national_route)
        if exc.status == 409:
            return error_page(request, 409, exc.message, heading="This task has already been done",
                              details=["Nothing was changed by sending the form again."],
                              links=[{"text": "Go back to the case" if not national else "Go to your tasks",
                                      "href": "/tasks" if national else f"/cases/{case_id}"}])
        raise
    return RedirectResponse(task_href(case.id, case.national_ref, key, national) + "?done=1", status_code=303)


@router.get("/national/cases/{national_ref}/tasks/{key}")
def national_task_page(request: Request, national_ref: str, key: str,
                       principal: Principal = Depends(require_page_principal)):
    return task_response(request, principal, national_case_id(_engine(request), principal, national_ref, key), key,
                         national_route=True)


@router.post("/national/cases/{national_ref}/tasks/{key}")
@bounded_page
async def national_complete_task(request: Request, national_ref: str, key: str,
                                 principal: Principal = Depends(require_page_principal)):
    case_id = national_case_id(_engine(request), principal, national_ref, key)
    return await _complete_task(request, case_id, key, principal, national_route=True)


@router.post("/national/cases/{national_ref}/tasks/{key}/{action}")
@bounded_page
async def national_claim_or_release(request: Request, national_ref: str, key: str, action: str,
                                    principal: Principal = Depends(require_page_principal)):
    if action not in ("claim", "release"):
        raise ApiError(404, "not_found", "no such page")
    case_id = national_case_id(_engine(request), principal, national_ref, key)
    return await _claim_or_release(request, principal, case_id, key, action, national_route=True)


# --- recording an incident -------------------------------------------------------------------------------------------

MAX_CHILDREN = 4


def _may_record(engine, principal: Principal) -> bool:
    if principal.partnership_id is None:
        return False
    with Session(engine) as session:
        try:
            doc = document_of(get_version(session, principal.partnership_id))
        except VersionNotFoundError:
            return False
    return may_open_incident(principal, doc)


def _intake_doc(engine, principal: Principal) -> dict[str, Any]:
    if principal.partnership_id is None:
        raise ApiError(403, "forbidden", "Only a partnership’s leads and its notifying role record incidents.")
    with Session(engine) as session:
        try:
            doc = document_of(get_version(session, principal.partnership_id))
        except VersionNotFoundError:
            raise ApiError(404, "not_found", "Your partnership has no arrangements yet.") from None
    if not may_open_incident(principal, doc):
        raise ApiError(403, "forbidden", "Only a partnership’s leads and its notifying role record incidents.")
    return doc


INTAKE_FIELDS = ["case_ref", "aware_date", "category", "children", "agencies", "summary"]
INTAKE_ANCHORS = {"aware_date": "#aware_date-day", "category": "#category", "agencies": "#agencies",
                  "children": "#child-1-pseudonym"}


def _intake_page(request: Request, principal: Principal, doc: dict[str, Any], *, values: dict | None = None,
                 errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    values = values or {}
    errors = errors or {}
    sin = doc["serious_incident_notification"]
    agencies = [(p["id"], p.get("organisation", p["id"])) for p in doc.get("safeguarding_partners", [])] + [
        (a["id"], a.get("name", a["id"])) for a in doc.get("relevant_agencies", [])]
    order = INTAKE_FIELDS + [f"child-{i}-pseudonym" for i in range(1, MAX_CHILDREN + 1)]
    summary = [{"text": errors[name], "href": INTAKE_ANCHORS.get(name, f"#{name}")}
               for name in order if name in errors]
    context = page_context(
        request, principal, page_title="Record a serious incident", page_has_errors=bool(summary),
        values=values, errors=errors, error_summary=summary,
        categories=[{"value": c["id"], "text": c.get("label", c["id"]), "checked": values.get("category") == c["id"],
                     "hint": {"text": c["description"]} if c.get("description") else None}
                    for c in sin.get("categories", [])],
        agencies=[{"value": aid, "text": name, "checked": aid in values.get("agencies", [])} for aid, name in agencies],
        max_children=min(MAX_CHILDREN, int(sin.get("max_children_per_notification", MAX_CHILDREN))),
        deadline_days=sin.get("deadline", {}).get("value"))
    return render(request, "reviewer/incident_new.html", context, status_code=status_code)


@router.get("/incidents/new")
def incident_form(request: Request, principal: Principal = Depends(require_page_principal)):
    doc = _intake_doc(_engine(request), principal)
    return _intake_page(request, principal, doc)


def _intake_errors_from(fields) -> dict[str, str]:
    errors: dict[str, str] = {}
    for field in fields:
        path = field.path if hasattr(field, "path") else field["path"]
        message = field.message if hasattr(field, "message") else field["message"]
        parts = path.lstrip("/").split("/")
        if parts[0] == "children" and len(parts) >= 2 and parts[1].isdecimal():
            name = f"child-{int(parts[1]) + 1}-pseudonym"
        else:
            name = parts[0] if parts[0] in INTAKE_FIELDS else "case_ref"
        errors.setdefault(name, message[:1].upper() + message[1:])
    return errors


@router.post("/incidents/new")
@bounded_page
async def record_incident(request: Request, principal: Principal = Depends(require_page_principal)):
    engine = _engine(request)
    doc = _intake_doc(engine, principal)
    form = await request.form()
    values: dict[str, Any] = {k: str(v) for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    values["agencies"] = [str(a) for a in form.getlist("agencies")]
    errors: dict[str, str] = {}
    aware, date_error = sf.parse_date("The date the local authority became aware",
                                      *(values.get(f"aware_date-{p}", "") for p in sf.DATE_PARTS))
    if date_error:
        errors["aware_date"] = date_error
    elif aware is None:
        errors["aware_date"] = "Enter the date the local authority became aware of the incident"
    children = []
    for i in range(1, MAX_CHILDREN + 1):
        pseudonym = values.get(f"child-{i}-pseudonym", "").strip()
        local_ref = values.get(f"child-{i}-local_ref", "").strip()
        if pseudonym or local_ref:
            if not pseudonym:
                errors[f"child-{i}-pseudonym"] = f"Enter a pseudonym for child {i}, or clear their local reference"
            children.append({"pseudonym": pseudonym, "local_ref": local_ref})
    if not children:
        errors["children"] = "Enter a pseudonym for at least one child, for example ‘Child A’"
    if not values.get("case_ref", "").strip():
        errors["case_ref"] = "Enter your reference for this incident"
    if not values.get("category"):
        errors["category"] = "Select the incident category"
    if not values.get("summary", "").strip():
        errors["summary"] = "Describe what happened, briefly and without names"
    incident = None
    if not errors:
        try:
            incident = IncidentIn(case_ref=values["case_ref"].strip(), aware_date=aware, category=values["category"],
                                  children=children, summary=values["summary"], agencies=values["agencies"])
        except ValidationError as exc:
            errors = _intake_errors_from([{"path": "/" + "/".join(str(p) for p in e["loc"]), "message": e["msg"]}
                                          for e in exc.errors()])
    if errors or incident is None:
        audit(engine, principal, "incident.open", partnership_id=principal.partnership_id, outcome="rejected",
              detail=f"invalid: {', '.join(sorted(errors))} (page)")
        return _intake_page(request, principal, doc, values=values, errors=errors, status_code=422)
    try:
        case_id, _status = await open_incident(engine, request.app.state.temporal,
                                               request.app.state.settings.task_queue, principal,
                                               principal.partnership_id, incident,
                                               timeout=request.app.state.settings.temporal_timeout_seconds)
    except ApiError as exc:
        audit(engine, principal, "incident.open", partnership_id=principal.partnership_id, outcome="rejected",
              detail=f"{exc.code}: {exc.message} (page)")
        if exc.status == 422:
            return _intake_page(request, principal, doc, values=values, errors=_intake_errors_from(exc.fields),
                                status_code=422)
        if exc.status == 409:
            return _intake_page(request, principal, doc, values=values, status_code=409, errors={
                "case_ref": f"A case with the reference {incident.case_ref} already exists: use another reference"})
        raise
    return RedirectResponse(f"/cases/{case_id}", status_code=303)


# FastAPI tries a router's routes in order, on every request (and twice for the router that matches): the inbox and
# the case page, the pages asked for most, go first. No other route here matches their paths, so only the number of
# paths tried changes (measured: 0.13 M of the ~8 M instructions of a case page, benchmarks/pages_cpu.py).
_BUSIEST = {"tasks_page", "case_page"}
router.routes.sort(key=lambda route: getattr(route, "name", None) not in _BUSIEST)  # stable: the rest keep order
