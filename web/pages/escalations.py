"""Pages for a partnership's escalations: raising a professional disagreement, the partnership's own view of its
escalations (open ones by stage and age, resolved and withdrawn ones with their actions and themes, the challenge
log and its CSV export), and withdrawing one with a reason.

Changes go through the same service calls as the JSON API (``safeguarding.intake.raise_escalation``,
``case_commands.withdraw_escalation``), so the pages and the API give the same answers and the same errors; reads come
from the read model. Everything is the signed-in person's own partnership: another partnership's escalation is a
404, never a 403. Every page works without JavaScript; with htmx the challenge log's filters swap only the log.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from safeguarding.accounts import Principal
from safeguarding.audit_log import audit
from safeguarding.case_access import readable_case, readable_cases_where
from safeguarding.case_commands import withdraw_escalation
from safeguarding.clock import london_today
from safeguarding.intake import EscalationIn, raise_escalation
from safeguarding.monitoring import csv_text
from safeguarding.pinned import Pinned, current, pinned
from safeguarding.tables import Case, Task
from web.deps import AppSettings, DbEngine, PagePrincipal, TemporalClient, TemporalTimeout, engine_of
from web.errors import ApiError, error_page
from web.pages import bounded_page, page_context
from web.templating import LONDON, render
from web.views.common import ISSUE_LABELS, ISSUE_TYPES

router = APIRouter(include_in_schema=False)

OUTCOME_FILTERS = {"open": "Open", "resolved": "Resolved", "withdrawn": "Withdrawn", "work_done": "Work done"}
OUTCOME_TAGS = {"open": ("Open", "govuk-tag--blue"), "resolved": ("Resolved", "govuk-tag--green"),
                "withdrawn": ("Withdrawn", "govuk-tag--grey"), "work done": ("Work done", "govuk-tag--green")}
FIELDS = ["agencies", "issue_type", "issue_other", "child_pseudonym", "case_id", "urgent", "subject"]
ANCHORS = {"agencies": "#agencies", "issue_type": "#issue_type", "urgent": "#urgent"}
REASON_MAX = 2000
LOG_LIMIT = 2000
RELATED_CASES = 200


# --- helpers ---------------------------------------------------------------------------------------------------


def _own_partnership(principal: Principal) -> str:
    """The partnership whose escalations this person sees (people without one have no such pages)."""
    if principal.partnership_id is None:
        raise ApiError(404, "not_found", "no escalations")
    return principal.partnership_id


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def issue_label(issue_type: str) -> str:
    return ISSUE_LABELS.get(issue_type, issue_type)


def may_withdraw(principal: Principal, case: Case, facts: Pinned | None) -> bool:
    """The workflow's rule (the raiser, the ladder's business unit, the partnership's leads), for showing the link."""
    if case.status != "open" or principal.partnership_id != case.partnership_id:
        return False
    ladder = facts.ladders.get(case.ladder_id or "") if facts else None
    return (case.opened_by == principal.user_ref or principal.kind == "partnership_lead"
            or (ladder is not None and principal.user_ref in ladder.business_unit))


# --- the partnership's escalations ----------------------------------------------------------------------------------


def _filters(params) -> dict[str, str]:
    return {"ladder": params.get("ladder", "")[:63], "outcome": params.get("outcome", "")
            if params.get("outcome") in OUTCOME_FILTERS else "", "theme": params.get("theme", "")[:63]}


def _query(partnership_id: str, filters: dict[str, str] | None = None):
    query = select(Case).where(Case.partnership_id == partnership_id, Case.process == "escalation")
    filters = filters or {}
    if filters.get("ladder"):
        query = query.where(Case.ladder_id == filters["ladder"])
    outcome = filters.get("outcome")
    if outcome == "open":
        query = query.where(Case.status == "open")
    elif outcome:
        query = query.where(Case.outcome == ("work done" if outcome == "work_done" else outcome))
    if filters.get("theme"):
        query = query.where(Case.learning_theme == filters["theme"])
    return query.order_by(Case.aware_date.desc(), Case.opened_at.desc(), Case.id).limit(LOG_LIMIT)


def _agreed_actions(engine, partnership_id: str) -> dict[str, str]:
    """case id -> the agreed actions recorded when it was resolved (one query for the partnership)."""
    with Session(engine) as session:
        rows = session.exec(select(Task.case_id, Task.data).where(
            Task.partnership_id == partnership_id, Task.status == "done", Task.type == "ladder_stage")).all()
    out = {}
    for case_id, data in rows:
        try:
            recorded = json.loads(data or "{}")
        except ValueError:
            continue
        if isinstance(recorded, dict) and recorded.get("outcome") == "resolved":
            out[case_id] = str(recorded.get("agreed_actions", ""))
    return out


def escalation_rows(engine, principal: Principal, partnership_id: str, cases: list[Case],
                    today: date) -> list[dict[str, Any]]:
    actions = _agreed_actions(engine, partnership_id) if any(c.status != "open" for c in cases) else {}
    rows = []
    for case in cases:
        facts = pinned(engine, partnership_id, case.arrangements_version)
        ladder = facts.ladders.get(case.ladder_id or "") if facts else None
        stage_name = ladder.stages.get(case.current_stage or 0, "") if ladder else ""
        state = "open" if case.status == "open" else (case.outcome or case.status)
        tag_text, tag_classes = OUTCOME_TAGS.get(state, (state.capitalize(), "govuk-tag--grey"))
        closing = ""
        if state == "resolved":
            closing = actions.get(case.id, "")
        elif state in ("withdrawn", "work done"):
            closing = case.stage.split(": ", 1)[1] if ": " in case.stage else case.stage
        age = facts.working_days_since(case.aware_date, today) if facts else None
        agencies = json.loads(case.agencies or "[]")
        children = json.loads(case.children or "[]")
        rows.append({
            "id": case.id, "ref": case.case_ref, "href": f"/cases/{case.id}", "raised": case.aware_date,
            "ladder": ladder.name if ladder else (case.ladder_id or ""), "ladder_id": case.ladder_id or "",
            "purpose": case.ladder_purpose or "", "issue": issue_label(case.category), "subject": case.summary,
            "agencies": [facts.agencies.get(a, a) if facts else a for a in agencies],
            "child": ", ".join(c["pseudonym"] if isinstance(c, dict) else str(c) for c in children),
            "urgent": case.urgent, "current_stage": case.current_stage, "highest_stage": case.highest_stage,
            "stage_label": (f"Stage {case.current_stage}: {stage_name}" if stage_name
                            else f"Stage {case.current_stage}") if case.current_stage else "",
            "timeouts": case.timeouts, "reached_national": case.reached_national, "status": case.status,
            "state": state, "tag_text": tag_text, "tag_classes": tag_classes, "closing": closing,
            "theme": (facts.themes.get(case.learning_theme, case.learning_theme) if facts else case.learning_theme)
            if case.learning_theme else "",
            "closed": _aware(case.closed_at), "age": age,
            "age_text": "" if age is None else f"{age} working day{'s' if age != 1 else ''}",
            "may_withdraw": may_withdraw(principal, case, facts),
            "withdraw_href": f"/escalations/{case.id}/withdraw"})
    return rows


def _load(engine, principal: Principal, partnership_id: str, filters: dict[str, str] | None = None) -> list[Case]:
    """The escalations this person may read (``case_access.may_read_case``): the rest are not listed at all."""
    with Session(engine) as session:
        query = _query(partnership_id, filters)
        readable = readable_cases_where(session.connection(), principal, partnership_id)
        if readable is not None:
            query = query.where(readable)
        return list(session.exec(query))


@router.get("/escalations")
def escalations_page(request: Request, engine: DbEngine, principal: PagePrincipal):

    pid = _own_partnership(principal)
    today = london_today()
    filters = _filters(request.query_params)
    every = escalation_rows(engine, principal, pid, _load(engine, principal, pid), today)
    log = every if not any(filters.values()) else escalation_rows(engine, principal, pid,
                                                                   _load(engine, principal, pid, filters), today)
    open_rows = sorted((r for r in every if r["status"] == "open"),
                       key=lambda r: (-(r["current_stage"] or 0), -(r["age"] or 0), r["ref"]))
    closed_rows = [r for r in every if r["status"] != "open"]
    facts = current(engine, pid)
    ladders = facts.ladders if facts else {}
    themes = facts.themes if facts else {}
    by_stage: dict[str, int] = {}
    for row in open_rows:
        by_stage[row["stage_label"] or "Not started"] = by_stage.get(row["stage_label"] or "Not started", 0) + 1
    query = urlencode({k: v for k, v in filters.items() if v})
    withdrawn = request.query_params.get("withdrawn", "")[:40]
    context = page_context(
        request, principal, page_title="Escalations", open_rows=open_rows, closed_rows=closed_rows, log=log,
        filters=filters, by_stage=by_stage, today=today,
        ladder_items=[{"value": "", "text": "Any ladder"}] + [{"value": lid, "text": lad.name}
                                                              for lid, lad in ladders.items()],
        outcome_items=[{"value": "", "text": "Any outcome"}] + [{"value": k, "text": v}
                                                                for k, v in OUTCOME_FILTERS.items()],
        theme_items=[{"value": "", "text": "Any theme"}] + [{"value": k, "text": v} for k, v in themes.items()],
        csv_href="/escalations.csv" + (f"?{query}" if query else ""),
        withdrawn=withdrawn if any(r["ref"] == withdrawn for r in closed_rows) else "")
    return render(request, "escalations/index.html", context, block="log")


CSV_HEADER = ["Reference", "Raised", "Ladder", "Issue type", "What was disagreed", "Agencies", "Child",
              "Urgent", "Highest stage", "Current stage", "Stages timed out", "Shown to the national body",
              "Outcome", "Agreed actions or reason", "Learning theme", "Closed"]


@router.get("/escalations.csv")
def escalations_csv(request: Request, engine: DbEngine, principal: PagePrincipal):

    pid = _own_partnership(principal)
    filters = _filters(request.query_params)
    rows = escalation_rows(engine, principal, pid, _load(engine, principal, pid, filters), london_today())
    body = csv_text(CSV_HEADER, ([r["ref"], r["raised"], r["ladder"], r["issue"], r["subject"],
                                  "; ".join(r["agencies"]), r["child"], r["urgent"], r["highest_stage"],
                                  r["current_stage"] if r["status"] == "open" else "", r["timeouts"],
                                  r["reached_national"], r["tag_text"], r["closing"], r["theme"],
                                  r["closed"].astimezone(LONDON).date() if r["closed"] else ""] for r in rows))
    audit(engine, principal, "escalations.export", partnership_id=pid, detail=f"{len(rows)} rows (page)")
    filename = f"challenge-log-{pid}-{london_today().isoformat()}.csv"
    return Response(body, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{filename}"', "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store"})


# --- raising a professional disagreement ------------------------------------------------------------------------


def _related_cases(engine, partnership_id: str) -> list[Case]:
    with Session(engine) as session:
        return list(session.exec(select(Case).where(
            Case.partnership_id == partnership_id, Case.process.in_(("incident", "lcspr")))
            .order_by((Case.status == "closed"), Case.opened_at.desc()).limit(RELATED_CASES)))


def _new_page(request: Request, principal: Principal, *, values: dict[str, Any] | None = None,
              errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    engine = engine_of(request)
    pid = _own_partnership(principal)
    facts = current(engine, pid)
    if facts is None or facts.disagreement_ladder not in facts.ladders:
        raise ApiError(404, "not_found", "Your partnership’s arrangements have no professional disagreement ladder.")
    values = values or {}
    errors = errors or {}
    ladder = facts.ladders[facts.disagreement_ladder]
    urgent_stage = ladder.urgent_start_stage
    summary = [{"text": errors[name], "href": ANCHORS.get(name, f"#{name}")} for name in FIELDS if name in errors]
    chosen = values.get("agencies", [])
    related = [{"value": "", "text": "Not about a particular case"}] + [
        {"value": c.id, "text": f"{c.case_ref} ({'local review' if c.process == 'lcspr' else 'serious incident'}, "
                                f"{c.status.replace('_', ' ')})", "selected": values.get("case_id") == c.id}
        for c in _related_cases(engine, pid)]
    context = page_context(
        request, principal, page_title="Raise a professional disagreement", page_has_errors=bool(summary),
        values=values, errors=errors, error_summary=summary, ladder=ladder,
        urgent_stage=urgent_stage, urgent_stage_name=ladder.stages.get(urgent_stage, ""),
        first_stage_name=ladder.stages.get(1, ""),
        agencies=[{"value": aid, "text": name, "checked": aid in chosen} for aid, name in facts.agencies.items()],
        issue_types=[(key, label, hint) for key, (label, hint) in ISSUE_TYPES.items()], related=related)
    return render(request, "escalations/new.html", context, status_code=status_code)


@router.get("/escalations/new")
def new_escalation(request: Request, principal: PagePrincipal):
    return _new_page(request, principal)


def _errors_from(fields) -> dict[str, str]:
    errors: dict[str, str] = {}
    for item in fields:
        path = item.path if hasattr(item, "path") else item["path"]
        message = item.message if hasattr(item, "message") else item["message"]
        name = path.lstrip("/").split("/", 1)[0]
        name = {"ladder": "subject"}.get(name, name)
        if name not in FIELDS:
            name = "subject"
        errors.setdefault(name, message[:1].upper() + message[1:])
    return errors


@router.post("/escalations/new")
@bounded_page
async def raise_disagreement(request: Request, timeout: TemporalTimeout, engine: DbEngine, temporal: TemporalClient,
                             settings: AppSettings, principal: PagePrincipal):

    pid = _own_partnership(principal)
    form = await request.form()
    values: dict[str, Any] = {k: str(v) for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    values["agencies"] = [str(a) for a in form.getlist("agencies")]
    errors: dict[str, str] = {}
    if not values["agencies"]:
        errors["agencies"] = "Select the agencies involved in the disagreement"
    issue = values.get("issue_type", "")
    if issue not in ISSUE_TYPES:
        errors["issue_type"] = "Select the type of issue"
    elif issue == "other":
        if not values.get("issue_other", "").strip():
            errors["issue_other"] = "Enter the type of issue"
        elif len(values["issue_other"].strip()) > 80:
            errors["issue_other"] = "The type of issue must be 80 characters or fewer"
    if values.get("urgent") not in ("yes", "no"):
        errors["urgent"] = "Select yes if the child may be at risk now"
    if not values.get("subject", "").strip():
        errors["subject"] = "Enter what was disagreed"
    body = None
    if not errors:
        try:
            body = EscalationIn(
                subject=values["subject"], agencies=values["agencies"],
                issue_type=values["issue_other"].strip() if issue == "other" else issue,
                urgent=values["urgent"] == "yes", child_pseudonym=values.get("child_pseudonym", "").strip(),
                case_id=values.get("case_id", "").strip())
        except ValidationError as exc:
            errors = _errors_from([{"path": "/" + "/".join(str(p) for p in e["loc"]), "message": e["msg"]}
                                   for e in exc.errors()])
            if "issue_type" in errors and issue == "other":
                errors["issue_other"] = errors.pop("issue_type")
    if errors or body is None:
        await run_in_threadpool(audit, engine, principal, "escalation.raise", partnership_id=pid, outcome="rejected",
              detail=f"invalid: {', '.join(sorted(errors))} (page)")
        return _new_page(request, principal, values=values, errors=errors, status_code=422)
    try:
        case_id, _status = await raise_escalation(engine, temporal,
                                                  settings.task_queue, principal, pid, body,
                                                  timeout=timeout)
    except ApiError as exc:
        await run_in_threadpool(audit, engine, principal, "escalation.raise", partnership_id=pid, outcome="rejected",
              detail=f"{exc.code}: {exc.message} (page)")
        if exc.status == 422:
            return _new_page(request, principal, values=values, errors=_errors_from(exc.fields) or {
                "subject": exc.message[:1].upper() + exc.message[1:]}, status_code=422)
        raise
    return RedirectResponse(f"/cases/{case_id}?recorded=1", status_code=303)  # the case page confirms it


# --- withdrawing ------------------------------------------------------------------------------------------------------


def _own_escalation(engine, principal: Principal, case_id: str) -> Case:
    readable_case(engine, principal, case_id, what="escalation", processes=("escalation",))  # else 404
    with Session(engine) as session:
        case = session.get(Case, case_id)
    return case


def _withdraw_page(request: Request, principal: Principal, case: Case, *, reason: str = "", error: str = "",
                   status_code: int = 200) -> Response:
    engine = engine_of(request)
    row = escalation_rows(engine, principal, case.partnership_id, [case], london_today())[0]
    context = page_context(request, principal, page_title=f"Withdraw escalation {case.case_ref}",
                           page_has_errors=bool(error), row=row, reason=reason, error=error,
                           error_summary=[{"text": error, "href": "#reason"}] if error else [])
    return render(request, "escalations/withdraw.html", context, status_code=status_code)


@router.get("/escalations/{case_id}/withdraw")
def withdraw_form(request: Request, engine: DbEngine, case_id: str, principal: PagePrincipal):
    case = _own_escalation(engine, principal, case_id)
    if case.status != "open":
        return error_page(request, 409, f"Escalation {case.case_ref} is already {case.outcome or case.status}.",
                          heading="This escalation is closed", links=[{"text": "Go to escalations",
                                                                       "href": "/escalations"}])
    if not may_withdraw(principal, case, pinned(engine, case.partnership_id, case.arrangements_version)):
        return error_page(request, 403, "Only the person who raised it, the partnership’s business unit or a "
                                        "partnership lead may withdraw an escalation.")
    return _withdraw_page(request, principal, case)


@router.post("/escalations/{case_id}/withdraw")
@bounded_page
async def withdraw(request: Request, timeout: TemporalTimeout, engine: DbEngine, temporal: TemporalClient,
                   case_id: str, principal: PagePrincipal):

    case = _own_escalation(engine, principal, case_id)
    form = await request.form()
    reason = str(form.get("reason", ""))
    error = ""
    if not reason.strip():
        error = "Enter why the escalation is withdrawn"
    elif len(reason) > REASON_MAX:
        error = f"The reason must be {REASON_MAX} characters or fewer"
    if error:
        await run_in_threadpool(audit, engine, principal, "escalation.withdraw", partnership_id=case.partnership_id,
                                case_id=case.id,
                                outcome="rejected", detail="invalid: reason (page)")
        return _withdraw_page(request, principal, case, reason=reason, error=error, status_code=422)
    try:
        await withdraw_escalation(temporal, case.id, principal, reason.strip(),
                                  timeout=timeout)
    except ApiError as exc:
        await run_in_threadpool(audit, engine, principal, "escalation.withdraw", partnership_id=case.partnership_id,
                                case_id=case.id,
                                outcome="rejected", detail=f"{exc.code}: {exc.message} (page)")
        if exc.status == 422:
            message = exc.fields[0].message if exc.fields else exc.message
            return _withdraw_page(request, principal, case, reason=reason, error=message[:1].upper() + message[1:],
                                  status_code=422)
        if exc.status == 409:
            return error_page(request, 409, exc.message[:1].upper() + exc.message[1:] + ".",
                              heading="This escalation is closed",
                              links=[{"text": "Go to escalations", "href": "/escalations"}])
        raise
    return RedirectResponse("/escalations?" + urlencode({"withdrawn": case.case_ref}), status_code=303)
