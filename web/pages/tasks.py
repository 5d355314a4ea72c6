"""A task of a case (``/cases/{case_id}/tasks/{key}``): its page, its form, claiming and releasing it, and the small
status the open page polls (``…/status``) to say when someone else claims or completes the task meanwhile."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from safeguarding.accounts import Principal
from safeguarding.clock import london_today
from safeguarding.tables import CaseEvent, Task
from web.deps import DbEngine, PagePrincipal, engine_of
from web.pages import bounded_page
from web.session import csrf_token
from web.templating import LONDON, datetime_uk, render
from web.views.common import display_names, task_href
from web.views.tasks import (
    claim_or_release,
    complete_task_form,
    national_case_id,
    task_response,
    visible_task,
)

router = APIRouter(include_in_schema=False)

# How often an open task page asks whether the task is still the person's to complete (issue 17, point 3).
WATCH_SECONDS = 20


@router.post("/cases/{case_id}/tasks/{key}/claim")
@bounded_page
async def claim(request: Request, case_id: str, key: str, principal: PagePrincipal):
    return await claim_or_release(request, principal, case_id, key, "claim")


@router.post("/cases/{case_id}/tasks/{key}/release")
@bounded_page
async def release(request: Request, case_id: str, key: str, principal: PagePrincipal):
    return await claim_or_release(request, principal, case_id, key, "release")


@router.get("/cases/{case_id}/tasks/{key}")
def task_page(request: Request, case_id: str, key: str, principal: PagePrincipal):
    return task_response(request, principal, case_id, key)


@router.post("/cases/{case_id}/tasks/{key}")
@bounded_page
async def complete_task(request: Request, case_id: str, key: str,
                        principal: PagePrincipal):
    return await complete_task_form(request, case_id, key, principal)


# --- the open page's watch (issue 17, point 3) ------------------------------------------------------------------
#
# A task page whose form is open polls this every WATCH_SECONDS (htmx, reviewer/_task_watch.html). It reads the read
# model only (never Temporal) and answers 204 while nothing changed for this person; else the watch element again,
# with a notice: someone else claimed the task (what you typed stays on the page: copy it or ask them), completed
# it, it was cancelled, or it is free again. The notice sits in a polite status region beside the form and never
# replaces it. Who may poll: whoever may see the task page (404 for anyone else, as the page). Without JavaScript
# nothing polls, and sending the form says the same (web/views/tasks.py keeps what was typed).


@router.get("/cases/{case_id}/tasks/{key}/status")
def task_watch(request: Request, case_id: str, key: str, principal: PagePrincipal):
    return watch_response(request, principal, case_id, key, national_route=False)


@router.get("/national/cases/{national_ref}/tasks/{key}/status")
def national_task_watch(request: Request, engine: DbEngine, national_ref: str, key: str, principal: PagePrincipal):
    return watch_response(request, principal, national_case_id(engine, principal, national_ref, key), key,
                          national_route=True)


def watch_state(task: Task, principal: Principal) -> str:
    """What the person's open form is up against: ``ok`` (theirs to complete), or who claimed or completed it."""
    if task.status == "cancelled":
        return "cancelled"
    if task.status == "done":
        return "done" if task.completed_by == principal.user_ref else f"done:{task.completed_by}"
    if task.claimed_by and task.claimed_by != principal.user_ref:
        return f"claimed:{task.claimed_by}"
    return "ok"


def watch_key(state: str) -> str:
    """The state as the page carries it (no user reference in a URL)."""
    return state if state in ("ok", "cancelled", "done") else hashlib.sha256(state.encode()).hexdigest()[:16]


def _when(moment: datetime | None) -> str:
    if moment is None:
        return ""
    if moment.tzinfo is None:  # SQLite gives back naive UTC
        moment = moment.replace(tzinfo=UTC)
    text = datetime_uk(moment)
    return "at " + text.split(" at ", 1)[1] if moment.astimezone(LONDON).date() == london_today() else "on " + text


def _claimed_at(engine, task: Task) -> datetime | None:
    with engine.connect() as conn:
        return conn.execute(select(CaseEvent.at).where(
            CaseEvent.case_id == task.case_id, CaseEvent.task_key == task.key, CaseEvent.kind == "task_claimed",
            CaseEvent.actor == task.claimed_by).order_by(CaseEvent.seq.desc()).limit(1)).scalar_one_or_none()


def watch_notice(engine, task: Task, state: str, seen: str, names: dict[str, str]) -> dict[str, str] | None:
    """{title, text} of what changed for this person, or None (nothing to say)."""
    if state == "ok":
        return {"title": "You can complete this task again",
                "text": "Nobody else has claimed it now: you can save what you typed."} if seen != "ok" else None
    if state == "cancelled":
        return {"title": "This task was cancelled", "text": "What you typed has not been saved and cannot be. "
                                                           "Copy it if you need it."}
    if state == "done":
        return None
    if state.startswith("done:"):
        name = names.get(task.completed_by or "", "Someone else")
        when = _when(task.completed_at)
        return {"title": "Someone else completed this task",
                "text": f"{name} completed this task{' ' + when if when else ''}. What you typed has not been "
                        "saved: copy it if you need it."}
    name = names.get(task.claimed_by or "", "Someone else")
    when = _when(_claimed_at(engine, task))
    return {"title": "Someone else claimed this task",
            "text": f"{name} claimed this task{' ' + when if when else ''}. What you typed is kept on this page, "
                    f"but you cannot save it while they have the task: copy it, or ask {name} to release it."}


def claim_text(task: Task, state: str, names: dict[str, str]) -> str:
    """What stands where Claim was once the task is not this person's to claim (empty: Claim stays)."""
    if state.startswith("claimed:"):
        name = names.get(task.claimed_by or "", "Someone else")
        return f"{name} has claimed this task. They must release it before anyone else can complete it."
    if state.startswith("done:"):
        return f"{names.get(task.completed_by or '', 'Someone else')} has completed this task."
    return "This task was cancelled." if state == "cancelled" else ""


def watch_response(request: Request, principal: Principal, case_id: str, key: str, *,
                   national_route: bool) -> Response:
    engine = engine_of(request)
    case, task, national = visible_task(engine, principal, case_id, key, national_route=national_route)
    state = watch_state(task, principal)
    key_now, seen = watch_key(state), request.query_params.get("seen", "ok")
    if key_now == seen:
        return Response(status_code=204)
    names = display_names(engine, {task.claimed_by or "", task.completed_by or ""})
    back = task_href(case.id, case.national_ref, key, national)
    # where Claim was (#task-claim, out of band): who has the task now, or Claim (or Release) again once it is free
    context = {"watch_href": back + "/status", "watch_key": key_now, "watch_seconds": WATCH_SECONDS,
               "notice": watch_notice(engine, task, state, seen, names),
               "claim": "free" if state == "ok" else ("taken" if state != "done" else ""),
               "claimed_text": claim_text(task, state, names), "back": back, "national": national,
               "mine": task.claimed_by == principal.user_ref, "csrf_token": csrf_token(request)}
    # 286: htmx stops polling (the task is done or cancelled: nothing more can change for this person)
    return render(request, "reviewer/_task_watch.html", context, status_code=286 if task.status != "open" else 200,
                  headers={"Cache-Control": "no-store"})
