"""The learning lead's list (``/learning``): the partnership's learning events by where they are (awaiting triage,
in response, feedback due, actions open, closed). Its partnership leads see it too; who reported an event only the
learning lead, and only when the reporter gave their name."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import func
from sqlmodel import Session, select

from safeguarding.clock import london_today
from safeguarding.tables import Case, LearningReporter, Task, User
from web.deps import DbEngine, PagePrincipal
from web.errors import error_page
from web.pages import page_context
from web.templating import render
from web.views.common import aware
from web.views.learning import KIND_SHORT, is_lead, may_list, own_facts, short, shown, tags_of

router = APIRouter(include_in_schema=False)

CLOSED_SHOWN = 20
# Where an event is, for the learning lead's list (in this order on the page).
GROUPS: dict[str, tuple[str, str]] = {
    "triage": ("Awaiting triage", "Choose a proportionate response for each."),
    "response": ("In response", "The learning response is under way."),
    "feedback": ("Feedback due", "Tell the person who reported it what was learned and what changed."),
    "actions": ("Actions open", "Feedback given; the event closes when its last action is done."),
    "closed": ("Closed", "Learning fed back and every action done."),
}


def _group_of(case: Case, open_tasks: list[Task]) -> str:
    if case.status == "closed":
        return "closed"
    types = {t.type for t in open_tasks}
    for group, task_type in (("triage", "learning_triage"), ("response", "learning_response"),
                             ("feedback", "learning_feedback")):
        if task_type in types:
            return group
    return "actions"


def _reporters(session: Session, case_ids: list[str]) -> dict[str, str]:
    """case id -> the reporter's display name. For the learning lead's eyes only."""
    if not case_ids:
        return {}
    rows = session.execute(select(LearningReporter.case_id, User.display_name)
                           .join(User, User.user_ref == LearningReporter.user_ref)
                           .where(LearningReporter.case_id.in_(case_ids))).all()
    return dict(rows)


@router.get("/learning")
def learning_list(request: Request, principal: PagePrincipal, engine: DbEngine, added: str | None = None,
                  triaged: str | None = None):
    facts = own_facts(request, principal)
    if isinstance(facts, Response):
        return facts
    if not may_list(facts, principal):
        return error_page(request, 403, f"This list is for the partnership’s {facts.learning_lead_title.lower()} "
                                        "and its leads. You can record a learning event, and everyone in the "
                                        "partnership can see what is being learned.",
                          heading="You cannot see this list",
                          links=[{"text": "Record a learning event", "href": "/learning/new"},
                                 {"text": "See the partnership’s learning themes", "href": "/learning/themes"}])
    lead = is_lead(facts, principal)
    today = london_today()
    pid = facts.partnership_id
    with Session(engine) as session:
        open_cases = list(session.exec(select(Case).where(Case.partnership_id == pid, Case.process == "learning",
                                                          Case.status != "closed")
                                       .order_by(Case.opened_at.desc()).limit(1000)))
        closed_cases = list(session.exec(select(Case).where(Case.partnership_id == pid, Case.process == "learning",
                                                            Case.status == "closed")
                                         .order_by(Case.closed_at.desc(), Case.opened_at.desc())
                                         .limit(CLOSED_SHOWN)))
        closed_total = session.execute(select(func.count()).select_from(Case).where(
            Case.partnership_id == pid, Case.process == "learning", Case.status == "closed")).scalar_one()
        ids = [c.id for c in open_cases + closed_cases]
        tasks: dict[str, list[Task]] = {}
        if open_cases:
            for task in session.exec(select(Task).where(Task.case_id.in_([c.id for c in open_cases]))):
                tasks.setdefault(task.case_id, []).append(task)
        themes = tags_of(session, ids)
        reporters = _reporters(session, ids) if lead else {}
        flash = None
        flashed = session.get(Case, added or triaged) if (added or triaged) else None
        if flashed is not None and flashed.partnership_id == pid and flashed.process == "learning":
            flash = (f"Action added to {flashed.case_ref}" if added
                     else f"Learning response chosen for {flashed.case_ref}")
    groups: dict[str, list[dict[str, Any]]] = {g: [] for g in GROUPS}
    for case in open_cases + closed_cases:
        case_tasks = tasks.get(case.id, [])
        open_tasks = [t for t in case_tasks if t.status == "open"]
        group = _group_of(case, open_tasks)
        step = next((t for t in open_tasks if t.type != "learning_action"), None)
        actions = [t for t in case_tasks if t.type == "learning_action" and t.status != "cancelled"]
        past_triage = any(t.key == "triage" and t.status == "done" for t in case_tasks)
        row = {"case": case, "kind": KIND_SHORT.get(case.category, case.category),
               "summary": short(case.summary), "themes": [facts.themes.get(t, t) for t in themes.get(case.id, [])],
               "step": step, "step_overdue": bool(step and (step.overdue or (step.due_date and step.due_date < today))),
               "actions_open": sum(1 for t in actions if t.status == "open"),
               "actions_overdue": sum(1 for t in actions if t.status == "open" and t.overdue),
               "actions_done": sum(1 for t in actions if t.status == "done"),
               "may_add_action": lead and case.status != "closed" and past_triage,
               "opened_at": aware(case.opened_at), "closed_at": aware(case.closed_at)}
        if lead:
            row["reporter"] = reporters.get(case.id) or ("Reported anonymously" if case.opened_by == "anonymous"
                                                         else "Not known")
        groups[group].append(row)
    context = page_context(request, principal, page_title="Learning events", facts=shown(facts), groups=groups,
                           group_labels=GROUPS, is_lead=lead, closed_total=closed_total,
                           closed_shown=CLOSED_SHOWN, flash=flash)
    return render(request, "learning/index.html", context)
