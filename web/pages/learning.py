"""Pages for everyday learning: recording a learning event, the learning lead's list of events (and adding an
action), the partnership's themes, and the national body's pseudonymised aggregation.

``/learning/new``             any signed-in person of a partnership records what went wrong, nearly went wrong or
                              went well (``safeguarding.intake.record_learning``, as the JSON API does), then sees
                              ``/learning/recorded/{case id}``.
``/learning``                 the partnership's learning lead (members of ``learning.learning_lead_role``) and its
                              partnership leads: events by status. Who reported an event is shown only to the
                              learning lead, and only when the reporter gave their name.
``/learning/events/{id}/actions/new``  the learning lead adds an action (``add_action`` Update).
``/learning/themes``          everyone of the partnership: counts by theme (learning events beside escalations),
                              factor, kind and month over 12 months, and the events behind each count. No people.
``/national/learning``        the national body only (everyone else: 404): the same counts for every partnership,
                              by partnership name; no event text, no case references, no people. ``.csv`` too.

No blame, by construction: nothing here writes the reporter into the audit log (``learning.record`` is audited
with no actor, as the API does), and the themes and national pages never read ``learning_reporter``.
"""

from __future__ import annotations

import csv
import io
import threading
import uuid
from datetime import date
from typing import Any, ClassVar
from urllib.parse import urlencode

from cachetools import TTLCache
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from sqlalchemy import func
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from safeguarding import learning_stats as stats
from safeguarding.accounts import Principal
from safeguarding.audit_log import audit
from safeguarding.case_access import readable_cases_where
from safeguarding.case_commands import act_on_task, actor_of, update_case, update_id_of
from safeguarding.case_records import ActionCommand, TaskCommand
from safeguarding.clock import london_today
from safeguarding.intake import LearningIn, record_learning
from safeguarding.pinned import Pinned, current
from safeguarding.tables import Case, LearningReporter, LearningTag, Task, User
from safeguarding.themes import FACTORS, LEARNING_KINDS, themes_for
from web.deps import AppSettings, DbEngine, PagePrincipal, TemporalClient, TemporalTimeout, engine_of
from web.errors import ApiError, error_page
from web.form_errors import error_summary, field_errors, named_in, sentence, unknown_fields
from web.form_models import posted, posted_names, read_form
from web.pages import bounded_page, form_key, page_context
from web.templating import env, render
from web.views.action_form import ACTION_ANCHORS, ACTION_FIELDS, ACTION_MAX, ActionForm
from web.views.common import aware

router = APIRouter(include_in_schema=False)

KIND_LABELS: dict[str, str] = dict(LEARNING_KINDS)
KIND_SHORT: dict[str, str] = {"harm": "Harm", "near_miss": "Near miss", "good_practice": "Good practice",
                              "future_risk": "Future risk", "escalation": "Escalation"}
FACTOR_LABELS: dict[str, str] = dict(FACTORS)
TEXT_MAX = 5000
SUMMARY_CHARS = 240
CLOSED_SHOWN = 20
EVENTS_SHOWN = 50
FORM_FIELDS = ["occurred_on", "kind", "what_happened", "what_was_expected", "agencies", "factors", "themes",
               "anonymous"]
FORM_ANCHORS = {"occurred_on": "#occurred_on-day", "form": "#learning-form"}
# Where an event is, for the learning lead's list (in this order on the page).
GROUPS: dict[str, tuple[str, str]] = {
    "triage": ("Awaiting triage", "Choose a proportionate response for each."),
    "response": ("In response", "The learning response is under way."),
    "feedback": ("Feedback due", "Tell the person who reported it what was learned and what changed."),
    "actions": ("Actions open", "Feedback given; the event closes when its last action is done."),
    "closed": ("Closed", "Learning fed back and every action done."),
}
# Bars: the GOV.UK palette, each at least 3:1 against white (WCAG 1.4.11).
SOURCE_COLOURS = {"learning": "#1d70b8", "escalation": "#912b88", "rapid_review": "#505a5f"}
TEXT_COLOUR, MUTED_COLOUR, GRID_COLOUR = "#0b0c0c", "#505a5f", "#b1b4b6"


def _short(text: str, limit: int = SUMMARY_CHARS) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def _own_facts(request: Request, principal: Principal) -> Pinned | Response:
    """The signed-in person's partnership's learning set-up, or the page that says why there is none."""
    if principal.partnership_id is None:
        return error_page(request, 404, "Learning events are recorded and read by the people of a partnership.",
                          links=[{"text": "See learning across every partnership", "href": "/national/learning"}]
                          if principal.is_national else None)
    facts = current(engine_of(request), principal.partnership_id)
    if facts is None:
        return error_page(request, 404, "Your partnership has no arrangements yet.")
    if not facts.learning_lead_role:
        return error_page(request, 404, "Your partnership has not set up everyday learning in its arrangements yet "
                                        "(it needs a learning lead role). Ask your partnership’s business manager.",
                          heading="Everyday learning is not set up")
    return facts


def _shown(facts: Pinned) -> dict[str, Any]:
    """What the learning templates read as ``facts``."""
    return {"partnership_name": facts.name, "lead_title": facts.learning_lead_title,
            "allow_anonymous": facts.allow_anonymous_reports}


def _is_lead(facts: Pinned, principal: Principal) -> bool:
    return principal.partnership_id == facts.partnership_id and principal.user_ref in facts.learning_leads


def _may_list(facts: Pinned, principal: Principal) -> bool:
    return _is_lead(facts, principal) or (principal.kind == "partnership_lead"
                                          and principal.partnership_id == facts.partnership_id)


# --- recording a learning event -------------------------------------------------------------------------------------


def _form_page(request: Request, principal: Principal, facts: Pinned, *, values: dict | None = None,
               errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    values = values or {}
    errors = errors or {}
    summary = error_summary(errors, ["form", *FORM_FIELDS], FORM_ANCHORS)

    def items(choices: dict[str, str], chosen: list[str], hints: dict[str, str] | None = None) -> list[dict]:
        return [{"value": value, "text": label, "checked": value in chosen,
                 "hint": {"text": hints[value]} if hints and hints.get(value) else None}
                for value, label in choices.items()]

    context = page_context(
        request, principal, page_title="Record a learning event", page_has_errors=bool(summary), facts=_shown(facts),
        values=values, errors=errors, error_summary=summary,
        kinds=items(KIND_LABELS, [values.get("kind", "")]),
        agencies=items(facts.agencies, values.get("agencies", [])),
        factors=items({k: v.split(":")[0] for k, v in FACTOR_LABELS.items()}, values.get("factors", []),
                      {k: v.split(": ", 1)[1] for k, v in FACTOR_LABELS.items() if ": " in v}),
        themes=items(facts.themes, values.get("themes", [])), text_max=TEXT_MAX)
    return render(request, "learning/new.html", context, status_code=status_code)


@router.get("/learning/new")
def learning_form(request: Request, principal: PagePrincipal) -> Response:
    facts = _own_facts(request, principal)
    if isinstance(facts, Response):
        return facts
    return _form_page(request, principal, facts)


UNLISTED = {"agencies": "Select agencies from the list: one you sent is not a partner or agency of this partnership",
            "factors": "Select factors from the list: one you sent is not a contributory factor",
            "themes": "Select themes from the list: one you sent is not one of this partnership’s themes"}


class LearningForm(LearningIn):
    """The form's learning event: the JSON API's ``LearningIn`` with the form's words and the checks against the
    partnership's lists (``context``: ``facts``, ``today``), every problem at once."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    field_labels: ClassVar[dict[str, str]] = {
        "occurred_on": "the date it happened", "kind": "the kind of event", "what_happened": "what happened",
        "what_was_expected": "what was expected to happen", "agencies": "the agencies involved",
        "factors": "the contributory factors", "themes": "the themes"}
    field_prompts: ClassVar[dict[str, str]] = {
        "occurred_on": "Enter the date it happened", "kind": "Select what kind of event this was",
        "what_happened": "Describe what happened", "what_was_expected": "Describe what was expected to happen",
        "agencies": "Select the agencies involved", "factors": "Select at least one contributory factor",
        "themes": "Select at least one theme"}
    date_titles: ClassVar[dict[str, str]] = {"occurred_on": "The date it happened"}

    @field_validator("occurred_on")
    @classmethod
    def _not_future(cls, day: date, info: ValidationInfo) -> date:
        if day > (info.context or {}).get("today", london_today()):
            raise ValueError("The date it happened must be today or in the past")
        return day

    @field_validator("kind")
    @classmethod
    def _listed_kind(cls, kind: str) -> str:
        if kind not in KIND_LABELS:
            raise ValueError("Select one of the kinds of event listed")
        return kind

    @field_validator("agencies", "factors", "themes")
    @classmethod
    def _listed(cls, chosen: list[str], info: ValidationInfo) -> list[str]:
        facts = (info.context or {}).get("facts")
        allowed = {"agencies": facts.agencies if facts else None, "factors": FACTOR_LABELS,
                   "themes": facts.themes if facts else None}[info.field_name]
        if allowed is not None and any(value not in allowed for value in chosen):
            raise ValueError(UNLISTED[info.field_name])
        return chosen

    @field_validator("anonymous", mode="before")
    @classmethod
    def _ticked(cls, ticked: Any) -> bool:
        return bool(ticked)  # a ticked box sends "yes"

    @field_validator("anonymous")
    @classmethod
    def _taken(cls, anonymous: bool, info: ValidationInfo) -> bool:
        facts = (info.context or {}).get("facts")
        if anonymous and facts is not None and not facts.allow_anonymous_reports:
            raise ValueError("Your partnership does not take anonymous reports, so nothing was recorded. "
                             "Send the form again with your name")
        return anonymous


@router.post("/learning/new")
@bounded_page
async def record_learning_page(request: Request, timeout: TemporalTimeout, engine: DbEngine, temporal: TemporalClient,
                               settings: AppSettings, principal: PagePrincipal):
    facts = await run_in_threadpool(_own_facts, request, principal)
    if isinstance(facts, Response):
        return facts
    form = await request.form()
    values = posted(form, lists=("agencies", "factors", "themes"))
    unknown = unknown_fields(form.keys(), posted_names(LearningForm))
    body, errors = (None, {"form": unknown}) if unknown else read_form(
        LearningForm, values, context={"facts": facts, "today": london_today()})
    if body is None:
        # no actor: the audit log records that someone tried, never who (no blame, by construction)
        await run_in_threadpool(audit, engine, None, "learning.record", partnership_id=facts.partnership_id,
                                outcome="rejected",
                                detail=f"invalid: {', '.join(sorted(errors))} (page)")
        return _form_page(request, principal, facts, values=values, errors=errors, status_code=422)
    try:
        case_id, _status = await record_learning(engine, temporal,
                                                 settings.task_queue, principal,
                                                 facts.partnership_id, body,
                                                 timeout=timeout)
    except ApiError as exc:
        await run_in_threadpool(audit, engine, None, "learning.record", partnership_id=facts.partnership_id,
                                outcome="rejected",
                                detail=f"{exc.code}: {exc.message} (page)")
        if exc.status != 422:
            raise
        errors = field_errors(exc.fields, name_of=named_in(FORM_FIELDS)) or {"form": sentence(exc.message)}
        return _form_page(request, principal, facts, values=values, errors=errors, status_code=422)
    return RedirectResponse(f"/learning/recorded/{case_id}", status_code=303)


def _learning_case(request: Request, principal: Principal, case_id: str) -> Case:
    with Session(engine_of(request)) as session:
        case = session.get(Case, case_id)
    if case is None or case.process != "learning" or principal.partnership_id != case.partnership_id:
        raise ApiError(404, "not_found", f"no learning event ‘{case_id}’")
    return case


@router.get("/learning/recorded/{case_id}")
def recorded(request: Request, engine: DbEngine, case_id: str, principal: PagePrincipal):
    """The confirmation after recording. "You will hear" only for the person who reported it by name."""
    facts = _own_facts(request, principal)
    if isinstance(facts, Response):
        return facts
    case = _learning_case(request, principal, case_id)
    with Session(engine) as session:
        reporter = session.get(LearningReporter, case_id)
    context = page_context(request, principal, page_title="Learning event recorded", case=case, facts=_shown(facts),
                           named_by_you=reporter is not None and reporter.user_ref == principal.user_ref,
                           anonymous=case.opened_by == "anonymous", may_list=_may_list(facts, principal))
    return render(request, "learning/recorded.html", context)


# --- the learning lead's list ---------------------------------------------------------------------------------------


def _group_of(case: Case, open_tasks: list[Task]) -> str:
    if case.status == "closed":
        return "closed"
    types = {t.type for t in open_tasks}
    for group, task_type in (("triage", "learning_triage"), ("response", "learning_response"),
                             ("feedback", "learning_feedback")):
        if task_type in types:
            return group
    return "actions"


def _tags_of(session: Session, case_ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if case_ids:
        for case_id, tag in session.execute(select(LearningTag.case_id, LearningTag.tag).where(
                LearningTag.case_id.in_(case_ids), LearningTag.tag_type == "theme")).all():
            out.setdefault(case_id, []).append(tag)
    return out


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
    facts = _own_facts(request, principal)
    if isinstance(facts, Response):
        return facts
    if not _may_list(facts, principal):
        return error_page(request, 403, f"This list is for the partnership’s {facts.learning_lead_title.lower()} "
                                        "and its leads. You can record a learning event, and everyone in the "
                                        "partnership can see what is being learned.",
                          heading="You cannot see this list",
                          links=[{"text": "Record a learning event", "href": "/learning/new"},
                                 {"text": "See the partnership’s learning themes", "href": "/learning/themes"}])
    is_lead = _is_lead(facts, principal)
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
        themes = _tags_of(session, ids)
        reporters = _reporters(session, ids) if is_lead else {}
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
               "summary": _short(case.summary), "themes": [facts.themes.get(t, t) for t in themes.get(case.id, [])],
               "step": step, "step_overdue": bool(step and (step.overdue or (step.due_date and step.due_date < today))),
               "actions_open": sum(1 for t in actions if t.status == "open"),
               "actions_overdue": sum(1 for t in actions if t.status == "open" and t.overdue),
               "actions_done": sum(1 for t in actions if t.status == "done"),
               "may_add_action": is_lead and case.status != "closed" and past_triage,
               "opened_at": aware(case.opened_at), "closed_at": aware(case.closed_at)}
        if is_lead:
            row["reporter"] = reporters.get(case.id) or ("Reported anonymously" if case.opened_by == "anonymous"
                                                         else "Not known")
        groups[group].append(row)
    context = page_context(request, principal, page_title="Learning events", facts=_shown(facts), groups=groups,
                           group_labels=GROUPS, is_lead=is_lead, closed_total=closed_total,
                           closed_shown=CLOSED_SHOWN, flash=flash)
    return render(request, "learning/index.html", context)


# --- adding an action ---------------------------------------------------------------------------------------------


def _action_case(request: Request, principal: Principal, facts: Pinned, case_id: str, *,
                 what: str = "adds actions to a learning event") -> Case | Response:
    """A learning event of the person's partnership (else 404) that only its learning lead may act on (else 403)."""
    case = _learning_case(request, principal, case_id)
    if not _is_lead(facts, principal):
        return error_page(request, 403, f"Only the partnership’s {facts.learning_lead_title.lower()} {what}.",
                          heading="You cannot do this")
    return case


def _action_page(request: Request, principal: Principal, facts: Pinned, case: Case, *,
                 values: dict | None = None, errors: dict[str, str] | None = None,
                 status_code: int = 200) -> Response:
    values = values or {}
    errors = errors or {}
    summary = error_summary(errors, ["form", *ACTION_FIELDS], {**ACTION_ANCHORS, "form": "#action-form"})
    with Session(engine_of(request)) as session:
        tasks = list(session.exec(select(Task).where(Task.case_id == case.id).order_by(Task.opened_at, Task.key)))
    triaged = any(t.key == "triage" and t.status == "done" for t in tasks)
    owners = [{"value": "", "text": "Choose the agency", "selected": not values.get("owner")}] + [
        {"value": aid, "text": name, "selected": values.get("owner") == aid} for aid, name in facts.agencies.items()]
    context = page_context(
        request, principal, page_title=f"Add an action to {case.case_ref}", page_has_errors=bool(summary),
        case=case, facts=_shown(facts), values=values, errors=errors, error_summary=summary, owners=owners,
        triaged=triaged, closed=case.status == "closed", summary=_short(case.summary, 600),
        actions=[t for t in tasks if t.type == "learning_action" and t.status != "cancelled"],
        kind=KIND_SHORT.get(case.category, case.category), action_max=ACTION_MAX)
    return render(request, "learning/action_new.html", context, status_code=status_code)


@router.get("/learning/events/{case_id}/actions/new")
def action_form(request: Request, case_id: str, principal: PagePrincipal):
    facts = _own_facts(request, principal)
    if isinstance(facts, Response):
        return facts
    case = _action_case(request, principal, facts, case_id)
    if isinstance(case, Response):
        return case
    return _action_page(request, principal, facts, case)


@router.post("/learning/events/{case_id}/actions/new")
@bounded_page
async def add_action(request: Request, timeout: TemporalTimeout, engine: DbEngine, temporal: TemporalClient,
                     case_id: str, principal: PagePrincipal):
    facts = await run_in_threadpool(_own_facts, request, principal)
    if isinstance(facts, Response):
        return facts
    case = _action_case(request, principal, facts, case_id)
    if isinstance(case, Response):
        return case
    form = await request.form()
    values = posted(form)
    unknown = unknown_fields(form.keys(), posted_names(ActionForm))
    action, errors = (None, {"form": unknown}) if unknown else read_form(
        ActionForm, values, context={"agencies": facts.agencies, "today": london_today()})
    if action is None:
        await run_in_threadpool(audit, engine, principal, "action.add", partnership_id=case.partnership_id,
                                case_id=case.id,
                                outcome="rejected", detail=f"invalid: {', '.join(sorted(errors))} (page)")
        return _action_page(request, principal, facts, case, values=values, errors=errors, status_code=422)
    command = ActionCommand(actor=actor_of(principal), owner=action.owner, description=action.description,
                            due_date=action.due_date.isoformat())
    try:
        await update_case(temporal, case.id, "add_action", command,
                          update_id=update_id_of(principal, "add_action", form_key(values)),
                          timeout=timeout)
    except ApiError as exc:
        await run_in_threadpool(audit, engine, principal, "action.add", partnership_id=case.partnership_id,
                                case_id=case.id,
                                outcome="rejected", detail=f"{exc.code}: {exc.message} (page)")
        if exc.status not in (409, 422):
            raise
        errors = field_errors(exc.fields, name_of=named_in(ACTION_FIELDS)) if exc.status == 422 else {}
        return _action_page(request, principal, facts, case, values=values,
                            errors=errors or {"form": sentence(exc.message)}, status_code=exc.status)
    return RedirectResponse("/learning?" + urlencode({"added": case.id}), status_code=303)


# --- choosing the learning response (triage) ----------------------------------------------------------------------
# The generic task page (/cases/{id}/tasks/triage) draws the choice from ``x-options: learning_responses``, which
# the generic task page does not supply yet; this page offers the partnership's responses as radios with their
# time limits, and completes the same task through the same Update.

TRIAGE_FIELDS = ["response", "rationale"]


class TriageForm(BaseModel):
    """The learning lead's choice: one of the partnership's responses (``context``: ``responses``), and why."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    field_labels: ClassVar[dict[str, str]] = {"response": "the learning response",
                                              "rationale": "why this response is proportionate"}
    field_prompts: ClassVar[dict[str, str]] = {"response": "Choose a learning response, or no further action",
                                               "rationale": "Say why this response is proportionate"}

    response: str
    rationale: str = Field(min_length=1, max_length=TEXT_MAX)

    @field_validator("response")
    @classmethod
    def _offered(cls, response: str, info: ValidationInfo) -> str:
        if response not in (info.context or {}).get("responses", ()):
            raise ValueError("Choose one of the learning responses listed")
        return response


def _triage_page(request: Request, principal: Principal, facts: Pinned, case: Case, task: Task | None, *,
                 values: dict | None = None, errors: dict[str, str] | None = None,
                 status_code: int = 200) -> Response:
    values = values or {}
    errors = errors or {}
    summary = error_summary(errors, ["form", *TRIAGE_FIELDS], {"form": "#triage-form"})
    with Session(engine_of(request)) as session:
        themes = _tags_of(session, [case.id]).get(case.id, [])
    choices = [{"value": rid, "text": label, "checked": values.get("response") == rid}
               for rid, label in facts.learning_responses.items() if rid != "no_further_action"]
    choices += [{"divider": "or"}, {"value": "no_further_action", "text": facts.learning_responses["no_further_action"],
                                    "checked": values.get("response") == "no_further_action",
                                    "hint": {"text": "It is already understood, or it is good practice to share: "
                                                     "go straight to feedback."}}]
    context = page_context(
        request, principal, page_title=f"Choose a learning response for {case.case_ref}",
        page_has_errors=bool(summary), case=case, task=task, facts=_shown(facts), values=values, errors=errors,
        error_summary=summary, choices=choices, kind=KIND_LABELS.get(case.category, case.category),
        themes=[facts.themes.get(t, t) for t in themes], summary=case.summary, text_max=TEXT_MAX)
    return render(request, "learning/triage.html", context, status_code=status_code)


def _triage_task(request: Request, case: Case) -> Task | None:
    with Session(engine_of(request)) as session:
        return session.get(Task, f"{case.id}/triage")


@router.get("/learning/events/{case_id}/triage")
def triage_form(request: Request, case_id: str, principal: PagePrincipal):
    facts = _own_facts(request, principal)
    if isinstance(facts, Response):
        return facts
    case = _action_case(request, principal, facts, case_id, what="chooses the learning response")
    if isinstance(case, Response):
        return case
    return _triage_page(request, principal, facts, case, _triage_task(request, case))


@router.post("/learning/events/{case_id}/triage")
@bounded_page
async def triage(request: Request, timeout: TemporalTimeout, engine: DbEngine, temporal: TemporalClient, case_id: str,
                 principal: PagePrincipal):
    facts = await run_in_threadpool(_own_facts, request, principal)
    if isinstance(facts, Response):
        return facts
    case = _action_case(request, principal, facts, case_id, what="chooses the learning response")
    if isinstance(case, Response):
        return case
    task = _triage_task(request, case)
    form = await request.form()
    values = posted(form)
    unknown = unknown_fields(form.keys(), posted_names(TriageForm))
    choice, errors = (None, {"form": unknown}) if unknown else read_form(
        TriageForm, values, context={"responses": facts.learning_responses})
    if choice is None:
        await run_in_threadpool(audit, engine, principal, "task.complete", partnership_id=case.partnership_id,
                                case_id=case.id,
                                outcome="rejected", detail=f"triage: invalid: {', '.join(sorted(errors))} (page)")
        return _triage_page(request, principal, facts, case, task, values=values, errors=errors, status_code=422)
    command = TaskCommand(task_key="triage", actor=actor_of(principal), data=choice.model_dump(),
                          request_id=f"page-{uuid.uuid4().hex}")
    try:
        await act_on_task(temporal, case.id, "complete", command,
                          timeout=timeout)
    except ApiError as exc:
        await run_in_threadpool(audit, engine, principal, "task.complete", partnership_id=case.partnership_id,
                                case_id=case.id,
                                outcome="rejected", detail=f"triage: {exc.code}: {exc.message} (page)")
        if exc.status not in (409, 422, 403):
            raise
        errors = field_errors(exc.fields, name_of=named_in(TRIAGE_FIELDS)) or {"form": sentence(exc.message)}
        return _triage_page(request, principal, facts, case, _triage_task(request, case), values=values,
                            errors=errors, status_code=exc.status)
    return RedirectResponse("/learning?" + urlencode({"triaged": case.id}), status_code=303)


# --- charts: geometry here, drawing in learning/_charts.html --------------------------------------------------------


PROCESS_WHAT = {"escalation": "Escalation", "incident": "Rapid review"}  # what a non-learning case behind a count is
NOUNS = {"learning": ("learning event", "learning events"), "escalation": ("escalation", "escalations"),
         "rapid_review": ("rapid review", "rapid reviews")}


def _counted(n: int, source: str) -> str:
    one, many = NOUNS.get(source, (source, source))
    return f"{n} {one if n == 1 else many}"


def bar_chart(chart_id: str, title: str, rows: list[dict[str, Any]], sources: list[str]) -> dict[str, Any]:
    """Horizontal bars, one row per item (label above its bar, the figure after it), stacked by source.

    ``rows``: ``[{"label", "values": {source: n}, "href"}]``, in the order to draw them.
    """
    width, label_h, bar_h, gap = 640, 18, 18, 14
    number_room = 70
    top = 28 if len(sources) > 1 else 4
    biggest = max((sum(r["values"].values()) for r in rows), default=0) or 1
    scale = (width - number_room) / biggest
    drawn, y = [], top
    for row in rows:
        x, segments = 0.0, []
        for source in sources:
            n = row["values"].get(source, 0)
            if n:
                w = max(2.0, n * scale)
                segments.append({"x": round(x, 1), "w": round(w, 1), "fill": SOURCE_COLOURS.get(source, MUTED_COLOUR),
                                 "n": n, "source": source})
                x += w
        total = sum(row["values"].values())
        parts = [_counted(row["values"][s], s) for s in sources if row["values"].get(s)]
        drawn.append({**row, "y_top": y, "h_row": label_h + bar_h + gap - 2, "y_label": y + 13,
                      "y_bar": y + label_h + 2, "segments": segments, "total": total,
                      "x_total": round(x + 8, 1), "y_total": y + label_h + 2 + 14,
                      # the link's name starts with what the bar shows, its label and total (WCAG 2.5.3)
                      "aria": f"{row['label']} {total}: {' and '.join(parts) if parts else _counted(0, sources[0])}"})
        y += label_h + bar_h + gap
    legend = [{"x": i * 190, "label": stats.SOURCES.get(s, s), "colour": SOURCE_COLOURS.get(s, MUTED_COLOUR)}
              for i, s in enumerate(sources)] if len(sources) > 1 else []
    return {"id": chart_id, "title": title, "width": width, "height": max(y, 40), "rows": drawn, "legend": legend,
            "text": TEXT_COLOUR, "muted": MUTED_COLOUR}


def month_chart(chart_id: str, title: str, counts: stats.Counts, sources: list[str]) -> dict[str, Any]:
    """Events per month, stacked by source: a vertical bar per month, with value ticks."""
    width, height, left, right, top, bottom = 640, 240, 40, 8, 30, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(counts.by_month.get(m, {}).get(s, 0) for s in sources) for m in counts.months]
    biggest = max(totals, default=0)
    step = max(1, -(-biggest // 4))
    top_value = max(step * 4, 1)
    slot = plot_w / len(counts.months)
    bar = slot * 0.6
    months = []
    for index, month in enumerate(counts.months):
        x = left + index * slot + (slot - bar) / 2
        y_base = top + plot_h
        bars = []
        for source in sources:
            n = counts.by_month.get(month, {}).get(source, 0)
            if n:
                h = n / top_value * plot_h
                y_base -= h
                bars.append({"x": round(x, 1), "y": round(y_base, 1), "h": round(h, 1),
                             "fill": SOURCE_COLOURS.get(source, MUTED_COLOUR)})
        year = month[:4] if index == 0 or month.endswith("-01") else ""
        months.append({"month": month, "label": stats.month_label(month), "short": stats.month_label(month, True),
                       "year": year, "x": round(left + index * slot + slot / 2, 1), "bars": bars,
                       "total": totals[index], "by_source": {s: counts.by_month.get(month, {}).get(s, 0)
                                                            for s in sources}})
    ticks = [{"value": v, "y": round(top + plot_h - v / top_value * plot_h, 1)} for v in range(0, top_value + 1, step)]
    legend = [{"x": left + i * 190, "label": stats.SOURCES.get(s, s), "colour": SOURCE_COLOURS.get(s, MUTED_COLOUR)}
              for i, s in enumerate(sources)]
    busiest = max(months, key=lambda m: m["total"]) if biggest else None
    description = (f"{sum(totals)} events over {len(months)} months, from {months[0]['label']} to "
                   f"{months[-1]['label']}" + (f"; the most in {busiest['label']} ({busiest['total']})."
                                               if busiest else "."))
    return {"id": chart_id, "title": title, "description": description, "width": width, "height": height,
            "left": left, "plot_right": width - right, "plot_bottom": top + plot_h, "bar": round(bar, 1),
            "months": months, "ticks": ticks, "legend": legend, "text": TEXT_COLOUR, "muted": MUTED_COLOUR,
            "grid": GRID_COLOUR}


def _charts(counts: stats.Counts, theme_labels: dict[str, str], href) -> dict[str, Any]:
    """The theme, factor, kind and month charts (and their tables) for one set of counts."""
    sources = counts.sources or ["learning"]
    theme_rows = sorted(({"id": t, "label": theme_labels.get(t, t), "values": per_source,
                          "href": href("theme", t) if href else None}
                         for t, per_source in counts.themes.items()),
                        key=lambda r: (-sum(r["values"].values()), r["label"]))
    factor_rows = sorted(({"id": f, "label": FACTOR_LABELS.get(f, f).split(":")[0], "full": FACTOR_LABELS.get(f, f),
                           "values": {"learning": n}, "href": href("factor", f) if href else None}
                          for f, n in counts.factors.items()), key=lambda r: (-r["values"]["learning"], r["label"]))
    kind_rows = [{"id": k, "label": KIND_SHORT.get(k, k), "full": KIND_LABELS.get(k, k),
                  "values": {"learning": counts.kinds.get(k, 0)}, "href": href("kind", k) if href else None}
                 for k in [*KIND_LABELS, *sorted(set(counts.kinds) - set(KIND_LABELS))]]
    return {
        "sources": sources,
        "themes": bar_chart("themes-chart", "Themes", theme_rows, sources),
        "factors": bar_chart("factors-chart", "Contributory factors", factor_rows, ["learning"]),
        "kinds": bar_chart("kinds-chart", "Kinds of learning event", kind_rows, ["learning"]),
        "months": month_chart("months-chart", "Events each month", counts, sources),
    }


# --- the partnership's themes ---------------------------------------------------------------------------------------


def _themes_href(name: str, value: str) -> str:
    return "/learning/themes?" + urlencode({name: value}) + "#events"


class FiguresCache:
    """Rendered figures (charts and tables), shared by everyone who reads them, kept until the counts change.

    Keyed by what the figures depend on: the partnership (or the whole country), its arrangements version (the
    theme labels), the 12-month window (today) and the number of ``learning_tag`` rows counted (one indexed
    ``count(*)``). Tags mostly arrive (a new learning event, an escalation closing with a theme, a rapid review's
    decision) or go (a case removed), which changes the number at once; a decision sent back and made again may
    swap its themes for as many others, which ``TTL`` (a minute) catches. One per app
    (``app.state``), so two databases never share entries. Thread-safe; at most ``MAX`` entries (a
    ``cachetools.TTLCache``: least recently used out first).
    """

    TTL = 60.0
    MAX = 2000

    def __init__(self) -> None:
        self._entries: TTLCache[tuple, Any] = TTLCache(maxsize=self.MAX, ttl=self.TTL)
        self._lock = threading.Lock()

    def get(self, key: tuple) -> Any | None:
        with self._lock:
            return self._entries.get(key)

    def put(self, key: tuple, value: Any) -> None:
        with self._lock:
            self._entries[key] = value


def _cache(request: Request) -> FiguresCache:
    cache = getattr(request.app.state, "learning_figures", None)
    if cache is None:
        cache = request.app.state.learning_figures = FiguresCache()
    return cache


def _tag_count(session: Session, partnership_id: str | None) -> int:
    query = select(func.count()).select_from(LearningTag)
    if partnership_id is not None:
        query = query.where(LearningTag.partnership_id == partnership_id)
    return session.execute(query).scalar_one()


def _figures(request: Request, session: Session, facts: Pinned, today: date) -> Markup:
    """The partnership's figures, rendered (from the cache while its counts have not changed)."""
    window = stats.months_window(today)
    key = ("partnership", facts.partnership_id, facts.number, window[-1],
           _tag_count(session, facts.partnership_id))
    cache = _cache(request)
    html = cache.get(key)
    if html is None:
        counts = stats.partnership_counts(session, facts.partnership_id, today)
        # an autoescaped template's output (every value in it was escaped as it was rendered)
        html = Markup(env.get_template("learning/_figures.html").render(  # noqa: S704
            counts=counts, charts=_charts(counts, facts.themes, _themes_href), source_labels=stats.SOURCES,
            first_month=stats.month_label(window[0]), last_month=stats.month_label(window[-1]),
            month_href=lambda month: _themes_href("month", month)))
        cache.put(key, html)
    return html


@router.get("/learning/themes")
def themes_page(request: Request, engine: DbEngine, principal: PagePrincipal):
    facts = _own_facts(request, principal)
    if isinstance(facts, Response):
        return facts
    params = request.query_params
    today = london_today()
    window = stats.months_window(today)
    selectors = {
        "theme": (facts.themes, "with the theme"), "factor": (FACTOR_LABELS, "with the contributory factor"),
        "kind": ({**KIND_LABELS, "escalation": "Escalation"}, "of the kind"),
        "month": ({m: stats.month_label(m) for m in window}, "that happened in"),
    }
    chosen = next(((name, params[name]) for name in selectors if params.get(name) in selectors[name][0]), None)
    source = params.get("source") if params.get("source") in stats.SOURCES else None
    with Session(engine) as session:
        figures_html = _figures(request, session, facts, today)
        events, events_total = ([], 0)
        if chosen:
            events, events_total = stats.events_behind(session, facts.partnership_id, today,
                                                       **{chosen[0]: chosen[1]}, source=source, limit=EVENTS_SHOWN)
        # Learning events are everyone's to learn from (no people in them); an escalation's subject or a rapid
        # review's summary only for those who may read that case (case_access.may_read_case): others see it counted.
        others = [e.case_id for e in events if e.process != "learning"]
        readable = set(others)
        condition = readable_cases_where(session.connection(), principal, facts.partnership_id) if others else None
        if condition is not None:
            readable = set(session.execute(select(Case.id).where(Case.id.in_(others), condition)).scalars())

    selection = None
    if chosen:
        labels, phrase = selectors[chosen[0]]
        label = labels[chosen[1]]
        if chosen[0] == "factor":
            label = label.split(":")[0]
        elif chosen[0] == "kind":
            label = KIND_SHORT.get(chosen[1], label)
        selection = {"name": chosen[0], "value": chosen[1], "label": label, "phrase": phrase,
                     "source": stats.SOURCES.get(source) if source else None}
    event_rows = [{"case_id": e.case_id, "case_ref": e.case_ref, "occurred_on": e.occurred_on,
                   "what": PROCESS_WHAT.get(e.process) or KIND_SHORT.get(e.kind, e.kind),
                   "status": "Closed" if e.status == "closed" else "Open",
                   "readable": e.process == "learning" or e.case_id in readable,
                   "summary": _short(e.summary) if e.process == "learning" or e.case_id in readable
                   else "Shown to the people involved in it"}
                  for e in events]
    context = page_context(
        request, principal, page_title="Learning themes", facts=_shown(facts), figures_html=figures_html,
        first_month=stats.month_label(window[0]), last_month=stats.month_label(window[-1]),
        selection=selection, events=event_rows, events_total=events_total, events_shown=EVENTS_SHOWN,
        may_list=_may_list(facts, principal))
    return render(request, "learning/themes.html", context)


# --- the national body: every partnership, counts only --------------------------------------------------------------


def _national(request: Request, principal: Principal) -> tuple[stats.NationalCounts, dict[str, str]] | None:
    """Every partnership's counts and every theme's label (None for anyone but the national body), from the cache
    while the number of counted tags is unchanged."""
    if principal.kind != "national_body":
        return None
    today = london_today()
    with Session(engine_of(request)) as session:
        key = ("national", stats.months_window(today)[-1], _tag_count(session, None))
        cached = _cache(request).get(key)
        if cached is None:
            national = stats.national_counts(session, today)
            cached = (national, _all_theme_labels(request, [pid for pid, _ in national.partnerships]))
            _cache(request).put(key, cached)
    return cached


def _all_theme_labels(request: Request, partnership_ids: list[str]) -> dict[str, str]:
    """Labels for every theme counted: the Panel's, and each partnership's own (an unknown id shows as itself)."""
    labels = themes_for({})
    for pid in partnership_ids:
        facts = current(engine_of(request), pid)
        if facts is not None:
            for theme, label in facts.themes.items():
                labels.setdefault(theme, label)
    return labels


@router.get("/national/learning")
def national_learning(request: Request, principal: PagePrincipal):
    found = _national(request, principal)
    if found is None:
        return error_page(request, 404)
    national, labels = found
    charts = _charts(national.total, labels, None)
    rows = []
    for pid, name in national.partnerships:
        counts = national.by_partnership[pid]
        top = sorted(counts.themes.items(), key=lambda item: (-sum(item[1].values()), labels.get(item[0], item[0])))
        rows.append({"name": name, "learning": counts.events.get("learning", 0),
                     "escalation": counts.events.get("escalation", 0),
                     "rapid_review": counts.events.get("rapid_review", 0),
                     "top": [f"{labels.get(t, t)} ({sum(v.values())})" for t, v in top[:3]]})
    window = national.months
    context = page_context(request, principal, page_title="Learning across partnerships", charts=charts,
                           counts=national.total, rows=rows, source_labels=stats.SOURCES,
                           first_month=stats.month_label(window[0]), last_month=stats.month_label(window[-1]))
    return render(request, "learning/national.html", context)


CSV_MEASURES = {"theme": "Learning theme", "factor": "Contributing factor", "kind": "Kind of event",
                "events": "Events"}


def _cell(value: Any) -> Any:
    """Spreadsheet formula injection: text that starts like a formula is written with a leading apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@router.get("/national/learning.csv")
def national_learning_csv(request: Request, engine: DbEngine, principal: PagePrincipal):
    found = _national(request, principal)
    if found is None:
        return error_page(request, 404)
    national, labels = found
    label_of = {"theme": labels, "factor": FACTOR_LABELS, "kind": KIND_LABELS, "events": stats.SOURCES}
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    # headers and words for people (issue 17.12); the id column keeps the value a script can match on
    writer.writerow(["Partnership", "From month", "To month", "Measure", "Id", "Label", "Counted from", "Count"])
    for row in national.rows():
        label = label_of[row["measure"]].get(row["id"], row["id"])
        writer.writerow([_cell(v) for v in (row["partnership"], national.months[0], national.months[-1],
                                            CSV_MEASURES.get(row["measure"], row["measure"]), row["id"], label,
                                            stats.SOURCES.get(row["source"], row["source"]), row["count"])])
    name = f"learning-{national.months[0]}-to-{national.months[-1]}.csv"
    audit(engine, principal, "national.learning.export", detail=f"{len(national.partnerships)} partnerships")
    return Response("\ufeff" + buffer.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})
