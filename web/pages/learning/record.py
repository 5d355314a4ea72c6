"""Recording a learning event (``/learning/new``) and its confirmation (``/learning/recorded/{case id}``).

The form's values are read into ``LearningForm``: the JSON API's ``LearningIn`` with the form's words and the checks
against the partnership's lists (``web.form_models.read_form``: every problem in one round; a field the form does not
have is refused by name); then ``safeguarding.intake.record_learning``, as the API does. No blame: the audit log
records that someone tried, never who.
"""

from __future__ import annotations

from datetime import date
from typing import Any, ClassVar

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ConfigDict, ValidationInfo, field_validator
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from safeguarding.accounts import Principal
from safeguarding.audit_log import audit
from safeguarding.clock import london_today
from safeguarding.intake import LearningIn, record_learning
from safeguarding.pinned import Pinned
from safeguarding.tables import LearningReporter
from web.deps import AppSettings, DbEngine, PagePrincipal, TemporalClient, TemporalTimeout
from web.errors import ApiError
from web.form_errors import error_summary, field_errors, named_in, sentence, unknown_fields
from web.form_models import posted, posted_names, read_form
from web.pages import bounded_page, page_context
from web.templating import render
from web.views.learning import FACTOR_LABELS, KIND_LABELS, TEXT_MAX, learning_case, may_list, own_facts, shown

router = APIRouter(include_in_schema=False)

FORM_FIELDS = ["occurred_on", "kind", "what_happened", "what_was_expected", "agencies", "factors", "themes",
               "anonymous"]
FORM_ANCHORS = {"occurred_on": "#occurred_on-day", "form": "#learning-form"}


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
        request, principal, page_title="Record a learning event", page_has_errors=bool(summary), facts=shown(facts),
        values=values, errors=errors, error_summary=summary,
        kinds=items(KIND_LABELS, [values.get("kind", "")]),
        agencies=items(facts.agencies, values.get("agencies", [])),
        factors=items({k: v.split(":")[0] for k, v in FACTOR_LABELS.items()}, values.get("factors", []),
                      {k: v.split(": ", 1)[1] for k, v in FACTOR_LABELS.items() if ": " in v}),
        themes=items(facts.themes, values.get("themes", [])), text_max=TEXT_MAX)
    return render(request, "learning/new.html", context, status_code=status_code)


@router.get("/learning/new")
def learning_form(request: Request, principal: PagePrincipal) -> Response:
    facts = own_facts(request, principal)
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
    facts = await run_in_threadpool(own_facts, request, principal)
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


@router.get("/learning/recorded/{case_id}")
def recorded(request: Request, engine: DbEngine, case_id: str, principal: PagePrincipal):
    """The confirmation after recording. "You will hear" only for the person who reported it by name."""
    facts = own_facts(request, principal)
    if isinstance(facts, Response):
        return facts
    case = learning_case(request, principal, case_id)
    with Session(engine) as session:
        reporter = session.get(LearningReporter, case_id)
    context = page_context(request, principal, page_title="Learning event recorded", case=case, facts=shown(facts),
                           named_by_you=reporter is not None and reporter.user_ref == principal.user_ref,
                           anonymous=case.opened_by == "anonymous", may_list=may_list(facts, principal))
    return render(request, "learning/recorded.html", context)
