"""What the learning lead does to one event: add an action (``/learning/events/{id}/actions/new``, the
``add_action`` Update, the form read into ``web.views.action_form.ActionForm``) and choose the learning response
(``/learning/events/{id}/triage``, completing the ``triage`` task, the form read into ``TriageForm``)."""

from __future__ import annotations

import uuid
from typing import ClassVar
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from safeguarding.accounts import Principal
from safeguarding.audit_log import audit
from safeguarding.case_commands import act_on_task, actor_of, update_case, update_id_of
from safeguarding.case_records import ActionCommand, TaskCommand
from safeguarding.clock import london_today
from safeguarding.pinned import Pinned
from safeguarding.tables import Case, Task
from web.deps import DbEngine, PagePrincipal, TemporalClient, TemporalTimeout, engine_of
from web.errors import ApiError, error_page
from web.form_errors import error_summary, field_errors, named_in, sentence, unknown_fields
from web.form_models import posted, posted_names, read_form
from web.pages import bounded_page, form_key, page_context
from web.templating import render
from web.views.action_form import ACTION_ANCHORS, ACTION_FIELDS, ACTION_MAX, ActionForm
from web.views.learning import (
    KIND_LABELS,
    KIND_SHORT,
    TEXT_MAX,
    is_lead,
    learning_case,
    own_facts,
    short,
    shown,
    tags_of,
)

router = APIRouter(include_in_schema=False)


def _action_case(request: Request, principal: Principal, facts: Pinned, case_id: str, *,
                 what: str = "adds actions to a learning event") -> Case | Response:
    """A learning event of the person's partnership (else 404) that only its learning lead may act on (else 403)."""
    case = learning_case(request, principal, case_id)
    if not is_lead(facts, principal):
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
        case=case, facts=shown(facts), values=values, errors=errors, error_summary=summary, owners=owners,
        triaged=triaged, closed=case.status == "closed", summary=short(case.summary, 600),
        actions=[t for t in tasks if t.type == "learning_action" and t.status != "cancelled"],
        kind=KIND_SHORT.get(case.category, case.category), action_max=ACTION_MAX)
    return render(request, "learning/action_new.html", context, status_code=status_code)


@router.get("/learning/events/{case_id}/actions/new")
def action_form(request: Request, case_id: str, principal: PagePrincipal):
    facts = own_facts(request, principal)
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
    facts = await run_in_threadpool(own_facts, request, principal)
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
        themes = tags_of(session, [case.id]).get(case.id, [])
    choices = [{"value": rid, "text": label, "checked": values.get("response") == rid}
               for rid, label in facts.learning_responses.items() if rid != "no_further_action"]
    choices += [{"divider": "or"}, {"value": "no_further_action", "text": facts.learning_responses["no_further_action"],
                                    "checked": values.get("response") == "no_further_action",
                                    "hint": {"text": "It is already understood, or it is good practice to share: "
                                                     "go straight to feedback."}}]
    context = page_context(
        request, principal, page_title=f"Choose a learning response for {case.case_ref}",
        page_has_errors=bool(summary), case=case, task=task, facts=shown(facts), values=values, errors=errors,
        error_summary=summary, choices=choices, kind=KIND_LABELS.get(case.category, case.category),
        themes=[facts.themes.get(t, t) for t in themes], summary=case.summary, text_max=TEXT_MAX)
    return render(request, "learning/triage.html", context, status_code=status_code)


def _triage_task(request: Request, case: Case) -> Task | None:
    with Session(engine_of(request)) as session:
        return session.get(Task, f"{case.id}/triage")


@router.get("/learning/events/{case_id}/triage")
def triage_form(request: Request, case_id: str, principal: PagePrincipal):
    facts = own_facts(request, principal)
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
    facts = await run_in_threadpool(own_facts, request, principal)
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
