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
from safeguarding.case_access import visible_case
from safeguarding.case_queries import CASE_EVENTS, CASE_TASKS
from safeguarding.clock import london_today
from safeguarding.pinned import Pinned, pinned
from safeguarding.tables import AuditEntry, Case, CaseEvent, Task, User
from safeguarding.themes import LEARNING_KINDS
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

# The incident process's steps in order, so the case page can show steps not reached yet.
INCIDENT_STEPS = [("notification_sent", "Notify the national Panel", False),
                  ("agency_summary", "Agency summaries", True), ("rr_meeting", "Record the rapid review meeting", True),
                  ("lcspr_decision", "Decide on a local child safeguarding practice review", True),
                  ("partner_signoff", "Partner sign-off", True),
                  ("panel_submission", "Submit the rapid review to the national Panel", True),
                  ("panel_response", "The national Panel’s response", True)]


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


def task_list_items(case: Case, tasks: list[Task], names: dict[str, str], today: date,
                    facts: Pinned | None) -> list[dict[str, Any]]:
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
                left = days_left_text(facts.working_days_left(today, task.due_date) if facts else None)
                if left:
                    hint.append(left.lower())
            elif task.follow_up_date:
                hint.append(f"expected by {_date_text(task.follow_up_date)}")
            if task.claimed_by:
                hint.append(f"claimed by {names.get(task.claimed_by, task.claimed_by)}")
        item = {"title": {"text": task.title}, "hint": {"text": ", ".join(hint)},
                "status": _step_status(task, today)}
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


CATEGORY_KEYS = {"escalation": "Issue", "learning": "Kind of event"}
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
        items=task_list_items(case, tasks, names, today, facts),
        opened_at=aware(case.opened_at),
        events=[{"at": aware(e.at), "who": names.get(e.actor, e.actor) if e.actor != "system" else "sgflow",
                 "message": e.message} for e in reversed(events)],
        names=names, audit_rows=audit_rows, poll_seconds=POLL_SECONDS,
        recorded=_recorded(case, tasks, today) if params.get("recorded") == "1" else None)
    return render(request, "reviewer/case.html", context, block="live")
