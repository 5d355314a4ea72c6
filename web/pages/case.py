"""One case (``/cases/{case_id}``): its details, its steps as a GOV.UK task list, its timeline and (for leads) its
audit trail; polled by htmx (204 when nothing changed)."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import bindparam
from sqlalchemy import select as sql_select

from safeguarding.audit_log import audit
from safeguarding.case_access import may_read_case, visible_case
from safeguarding.case_queries import CASE_EVENTS, CASE_TASKS
from safeguarding.clock import london_today
from safeguarding.pinned import Pinned, pinned
from safeguarding.tables import AuditEntry, Case, CaseEvent, Task, User
from safeguarding.themes import LEARNING_KINDS
from safeguarding.wording import plural
from web.auth import (
    page_principal_on,
)
from web.deps import DbEngine
from web.pages import page_context
from web.templating import date_uk, datetime_uk, render
from web.views.common import (
    CASE_STATUSES,
    ISSUE_LABELS,
    POLL_SECONDS,
    STATUS_TAGS,
    account_of,
    aware,
    children_of,
    days_left_text,
    names_on,
)

router = APIRouter(include_in_schema=False)

# An incident's steps as the page showed them before its workflow published its plan (engine 6): cases started
# earlier have no ``plan`` on their row, and keep this rendering.
_INCIDENT_STEPS_BEFORE_PLANS = [
    {"type": "notification_sent", "title": "Notify the national Panel", "applies": True},
    *({"type": step_type, "title": title, "needs_rr": True} for step_type, title in (
        ("agency_summary", "Agency summaries"), ("rr_meeting", "Record the rapid review meeting"),
        ("lcspr_decision", "Decide on a local child safeguarding practice review"),
        ("partner_signoff", "Partner sign-off"),
        ("panel_submission", "Submit the rapid review to the national Panel"),
        ("panel_response", "The national Panel’s response")))]


def case_plan(case: Any) -> list[dict[str, Any]]:
    """The case's planned steps, in order, as its workflow published them (the case row's ``plan``); a case from
    before plans: an incident's usual steps, any other process none (its tasks as they opened)."""
    raw = getattr(case, "plan", None)
    if raw:
        try:
            plan = json.loads(raw)
        except ValueError:
            plan = None
        if isinstance(plan, list) and all(isinstance(step, dict) and "type" in step for step in plan):
            return plan
    if case.process == "incident":
        return [{**step, "applies": step.get("applies", bool(case.rapid_review_required))}
                for step in _INCIDENT_STEPS_BEFORE_PLANS]
    return []


def _step_of(plan: list[dict[str, Any]], task: Any) -> int:
    """The index of the plan step a task belongs to (by its key when the step names one, else by its type)."""
    for index, step in enumerate(plan):
        if step.get("key") == task.key if step.get("key") else step["type"] == task.type:
            return index
    return len(plan)


def _step_status(task: Task, today: date) -> dict[str, Any]:
    if task.status == "done":
        return {"text": "Completed"}
    if task.status == "cancelled":
        return {"text": "Cancelled", "classes": "govuk-task-list__status--cannot-start-yet"}
    if task.overdue or (task.due_date is not None and task.due_date < today):
        return {"tag": {"text": "Overdue", "classes": "govuk-tag--red"}}
    if task.claimed_by:
        return {"tag": {"text": "In progress", "classes": "govuk-tag--light-blue"}}
    return {"tag": {"text": "Not yet started", "classes": "govuk-tag--blue"}}


def _not_yet_hint(step: dict[str, Any]) -> str:
    if step["type"] == "ladder_stage" and step.get("handler"):
        limit = step.get("time_limit_working_days")
        return (f"Only if the escalation reaches it: for {step['handler']}"
                + (f", within {plural(limit, 'working day', 'working days')}" if limit else ""))
    return "Opens when the earlier steps are done"


def _task_item(case: Case, task: Task, names: dict[str, str], today: date, facts: Pinned | None) -> dict[str, Any]:
    hint = [f"For {task.candidate_label}"]
    if task.status == "done":
        who = names.get(task.completed_by or "", task.completed_by or "")
        hint.append(f"done by {who}" + (f" on {_date_text(task.completed_at)}" if task.completed_at else ""))
        if task.days_late:
            hint.append(f"{task.days_late} working day{'s' if task.days_late != 1 else ''} late")
    elif task.status == "open":
        if task.due_date:
            hint.append(f"due {_date_text(task.due_date)}")
            left = days_left_text(facts.working_days_left(today, task.due_date) if facts else None)
            if left:
                hint.append(left.lower())
        elif task.follow_up_date:
            hint.append(f"expected by {_date_text(task.follow_up_date)}")
        if task.claimed_by:
            hint.append(f"claimed by {names.get(task.claimed_by, task.claimed_by)}")
    item = {"title": {"text": task.title}, "hint": {"text": ", ".join(hint)}, "status": _step_status(task, today)}
    if task.status != "cancelled":
        item["href"] = f"/cases/{case.id}/tasks/{task.key}"
    return item


def task_list_items(case: Case, tasks: list[Task], names: dict[str, str], today: date,
                    facts: Pinned | None) -> list[dict[str, Any]]:
    """The case's steps in the order of its plan: each step's tasks (in the order they opened), or, while the case
    is open, a step it will take that has not opened yet; tasks outside the plan (actions, a chase) come last."""
    plan = case_plan(case)
    by_step: dict[int, list[Task]] = {}
    for task in tasks:  # opened order within a step
        by_step.setdefault(_step_of(plan, task), []).append(task)
    items = []
    for index, step in enumerate(plan):
        for task in by_step.get(index, []):
            items.append(_task_item(case, task, names, today, facts))
        if index not in by_step and case.status == "open" and step.get("applies", True):
            items.append({"title": {"text": step["title"]}, "hint": {"text": _not_yet_hint(step)},
                          "status": {"text": "Cannot start yet",
                                     "classes": "govuk-task-list__status--cannot-start-yet"}})
    items += [_task_item(case, task, names, today, facts) for task in by_step.get(len(plan), [])]
    return items


def _ladder_stages(case: Any, facts: Pinned | None) -> list[dict[str, Any]]:
    """An escalation's stages: from its published plan, else (a case from before plans) from the arrangements
    version it started with."""
    planned = [step for step in case_plan(case) if step["type"] == "ladder_stage" and "stage" in step]
    if planned:
        return planned
    ladders = ((facts.document.get("escalation") or {}).get("ladders") or []) if facts else []
    ladder = next((lad for lad in ladders if lad.get("id") == case.ladder_id), None)
    if ladder is None:
        return []
    return [{"stage": stage["stage"], "name": stage["name"], "title": f"Stage {stage['stage']}: {stage['name']}",
             "handler": facts.role_titles.get(stage["handler_role"], stage["handler_role"]),
             "time_limit_working_days": stage.get("time_limit_working_days")} for stage in ladder["stages"]]


def ladder_view(case: Any, tasks: list[Any], facts: Pinned | None) -> dict[str, Any] | None:
    """An escalation as an escalation (issue 18): its ladder's name and every stage, in order, with where it stands:
    the current stage marked, earlier stages with when they were reached and how they ended, later stages with
    who would handle them and their time limit."""
    if case.process != "escalation":
        return None
    stages = _ladder_stages(case, facts)
    if not stages:
        return None
    by_key = {task.key: task for task in tasks}
    reached = [number for number in (s["stage"] for s in stages) if f"stage-{number}" in by_key]
    first = min(reached) if reached else None
    rows = []
    for stage in stages:
        number = stage["stage"]
        task = by_key.get(f"stage-{number}")
        limit = stage.get("time_limit_working_days")
        limit_text = plural(limit, "working day", "working days") if limit else ""
        current = task is not None and task.status == "open" and case.status == "open"
        if task is None:
            if first is not None and number < first:
                where = "Skipped: raised as urgent at a later stage"
            elif case.status == "open":
                where = "Not reached"
            else:
                where = "Not reached: the escalation closed first"
        else:
            where = f"Reached {date_uk(aware(task.opened_at))}"
            if task.status == "open":
                where += f", due {_date_text(task.due_date)}" if task.due_date else ""
                if task.overdue:
                    where += ": overdue"
            elif task.status == "done":
                outcome = json.loads(task.data or "{}").get("outcome") if isinstance(task.data, str) else None
                ended = {"resolved": "resolved", "escalated": "escalated to the next stage"}.get(outcome or "",
                                                                                                  "completed")
                where += f"; {ended} {date_uk(aware(task.completed_at))}" if task.completed_at else f"; {ended}"
            elif f"stage-{number + 1}" in by_key:
                where += "; no outcome by " + (_date_text(task.due_date) if task.due_date else "its deadline") \
                         + ": escalated to the next stage"
            else:
                where += "; stopped when the escalation closed"
        rows.append({"stage": number, "title": stage["title"], "handler": stage.get("handler", ""),
                     "limit": limit_text, "where": where, "current": current})
    name = facts.ladders[case.ladder_id].name if facts and case.ladder_id in facts.ladders else ""
    return {"name": name, "stages": rows, "urgent": bool(case.urgent)}


# Each process's own words for a case's details (issue 17.8): an incident's are the defaults; an escalation's date
# is the day it was raised, a learning event's the day it happened, a local review's the day it was decided on.
CATEGORY_KEYS = {"escalation": "Issue", "learning": "Kind of event"}
AWARE_KEYS = {"escalation": "Raised on", "learning": "Happened on", "lcspr": "Decided on"}
OPENER_KEYS = {"escalation": "Raised by", "learning": "Reported", "lcspr": "Opened"}
SUMMARY_KEYS = {"escalation": "What it is about"}  # a disagreement, or overdue work: not an incident's events
ABOUT_HEADINGS = {"incident": "About the incident", "learning": "About the event", "lcspr": "About the review"}
LEARNING_KIND_LABELS = dict(LEARNING_KINDS)


def _category_label(case: Any, facts: Any) -> str:
    """A case's category in words: an incident's from its arrangements, an escalation's issue type, a learning
    event's kind (issue 17.8: never an id such as near_miss)."""
    if case.process == "escalation":
        return ISSUE_LABELS.get(case.category, case.category)  # "something else" keeps what was typed
    if case.process == "learning":
        return LEARNING_KIND_LABELS.get(case.category, case.category.replace("_", " ").capitalize())
    return facts.categories.get(case.category, case.category) if facts else case.category


def _recorded(case: Any, tasks: list[Any], today: date) -> dict[str, Any]:
    """The confirmation after recording an incident or raising an escalation (issue 17.5): what was recorded and
    what happens next (the open steps: who does them and by when)."""
    what = {"incident": "Incident recorded", "escalation": "Escalation raised"}.get(case.process, "Case opened")
    steps = [f"{t.title}: for {t.candidate_label}" + (f", due {_date_text(t.due_date)}" if t.due_date else "")
             for t in tasks if t.status == "open"]
    return {"title": what, "reference": case.case_ref, "steps": steps}


def _opener(case: Any, names: dict[str, str], opened_at: datetime) -> str:
    """Who opened the case and when. A learning event never names its reporter here (the learning lead sees them
    on the triage task): only when it was reported, and whether anonymously."""
    when = datetime_uk(opened_at)
    if case.process == "learning":
        return f"{when}, anonymously" if case.opened_by == "anonymous" else when
    if case.opened_by == "system":
        return f"sgflow, {when}"
    return f"{names.get(case.opened_by) or case.opened_by}, {when}"


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
               .outerjoin(_audit_actor, account_of(_audit_actor, _audit.actor))
               .where(_audit.case_id == bindparam("case_id")).order_by(_audit.at.desc(), _audit.id.desc()).limit(200))
# The case page's tasks and timeline: load_case's statements, each row with the display names of the people it
# names, so the page needs no separate look-up of names (its opener aside, when nobody else is them).
_task_t, _event_t = Task.__table__, CaseEvent.__table__
_completer, _claimant, _event_actor = (User.__table__.alias(name) for name in ("completer", "claimant", "event_actor"))
_CASE_PAGE_TASKS = (CASE_TASKS.add_columns(_completer.c.display_name.label("completed_by_name"),
                                           _claimant.c.display_name.label("claimed_by_name"))
                    .outerjoin(_completer, account_of(_completer, _task_t.c.completed_by))
                    .outerjoin(_claimant, account_of(_claimant, _task_t.c.claimed_by)))
_CASE_PAGE_EVENTS = (CASE_EVENTS.add_columns(_event_actor.c.display_name.label("actor_name"))
                     .outerjoin(_event_actor, account_of(_event_actor, _event_t.c.actor)))


@router.get("/cases/{case_id}")
def case_page(request: Request, engine: DbEngine):
    case_id: str = request.path_params["case_id"]  # read here, not declared: no parameter for FastAPI to validate
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
        review_of = None  # a local review's incident: linked when this reader may read it
        if case.process == "lcspr" and case.parent_case_id:
            parent = conn.execute(sql_select(Case).where(Case.id == case.parent_case_id)).first()
            if parent is not None:
                review_of = {"case_ref": parent.case_ref,
                             "href": f"/cases/{parent.id}" if may_read_case(conn, principal, parent) else None}
    if params.get("poll") != "1":  # a person opened the case (htmx's polls of an open page are not new views)
        audit(engine, principal, "case.view", partnership_id=case.partnership_id, case_id=case.id, detail="(page)")
    audit_rows = [{"at": aware(a.at), "actor": a.actor, "action": a.action, "outcome": a.outcome,
                   "detail": a.detail} for a in audit_found]
    facts = pinned(engine, case.partnership_id, case.arrangements_version)
    today = london_today()
    context = page_context(
        request, principal, page_title=f"Case {case.case_ref}", case=case,
        category=_category_label(case, facts), category_key=CATEGORY_KEYS.get(case.process, "Category"),
        status_label=CASE_STATUSES.get(case.status, case.status),
        status_classes=STATUS_TAGS.get(case.status, "govuk-tag--grey"),
        children=children_of(case),
        agencies=[facts.agencies.get(a, a) if facts else a for a in json.loads(case.agencies or "[]")],
        items=task_list_items(case, tasks, names, today, facts), ladder=ladder_view(case, tasks, facts),
        aware_key=AWARE_KEYS.get(case.process, "Local authority became aware"),
        opener_key=OPENER_KEYS.get(case.process, "Recorded by"),
        summary_key=SUMMARY_KEYS.get(case.process, "What happened"),
        about_heading=ABOUT_HEADINGS.get(case.process, "About this case"),
        opener=_opener(case, names, aware(case.opened_at)), review_of=review_of,
        events=[{"at": aware(e.at), "who": names.get(e.actor, e.actor) if e.actor != "system" else "sgflow",
                 "message": e.message} for e in reversed(events)],
        names=names, audit_rows=audit_rows, poll_seconds=POLL_SECONDS,
        recorded=_recorded(case, tasks, today) if params.get("recorded") == "1" else None)
    return render(request, "reviewer/case.html", context, block="live")
