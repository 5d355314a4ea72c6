"""Raising a professional disagreement (``/escalations/new``) and withdrawing an escalation with a reason
(``/escalations/{id}/withdraw``). The list and the challenge log are ``web.pages.escalations``.

A form's values are read into a pydantic form model (``EscalationForm``, ``WithdrawForm``) whose refusals are worded
for people; the raise form's model then builds ``EscalationIn``, the model the JSON API takes, and the change goes
through the same service calls as the API (``safeguarding.intake.raise_escalation``,
``case_commands.withdraw_escalation``), so the pages and the API give the same answers. ``web.form_errors`` turns
every refusal (pydantic's and the service layer's ``ApiError.fields``) into the GOV.UK error summary, every problem
in one round; a field the form does not have is refused by name. Everything is the signed-in person's own
partnership: another partnership's escalation is a 404, never a 403.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, ValidationInfo, field_validator
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from safeguarding.accounts import Principal
from safeguarding.audit_log import audit
from safeguarding.case_access import readable_case
from safeguarding.case_commands import withdraw_escalation
from safeguarding.clock import london_today
from safeguarding.intake import EscalationIn, raise_escalation
from safeguarding.pinned import current, pinned
from safeguarding.tables import Case
from web.deps import AppSettings, DbEngine, PagePrincipal, TemporalClient, TemporalTimeout, engine_of
from web.errors import ApiError, error_page
from web.form_errors import error_summary, field_errors, unknown_fields
from web.pages import bounded_page, page_context
from web.templating import render
from web.views.common import ISSUE_TYPES
from web.views.escalations import escalation_rows, may_withdraw, own_partnership

router = APIRouter(include_in_schema=False)

FIELDS = ["agencies", "issue_type", "issue_other", "child_pseudonym", "case_id", "urgent", "subject"]
ANCHORS = {"agencies": "#agencies", "issue_type": "#issue_type", "urgent": "#urgent", "form": "#agencies"}
ISSUE_OTHER_MAX = 80
REASON_MAX = 2000
RELATED_CASES = 200

Text = Annotated[str, StringConstraints(strip_whitespace=True)]


class EscalationForm(BaseModel):
    """The raise form's fields as posted (radios as ``yes``/``no``, "something else" typed in ``issue_other``)."""

    model_config = ConfigDict(extra="forbid")
    # How messages name the fields (refusals.plain_errors), and what to say when one is left out or empty
    field_labels: ClassVar[dict[str, str]] = {
        "agencies": "the agencies involved", "issue_type": "the type of issue", "issue_other": "the type of issue",
        "child_pseudonym": "the child's pseudonym", "case_id": "the related case",
        "urgent": "whether the child may be at risk now", "subject": "what was disagreed"}
    field_prompts: ClassVar[dict[str, str]] = {
        "agencies": "Select the agencies involved in the disagreement", "issue_type": "Select the type of issue",
        "issue_other": "Enter the type of issue", "urgent": "Select yes if the child may be at risk now",
        "subject": "Enter what was disagreed"}

    agencies: list[str] = Field(min_length=1)
    issue_type: str
    issue_other: Text = Field("", validate_default=True)
    child_pseudonym: Annotated[str, StringConstraints(strip_whitespace=True, max_length=40)] = ""
    case_id: Annotated[str, StringConstraints(strip_whitespace=True, max_length=140)] = ""
    urgent: str
    subject: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000)]

    @field_validator("issue_type")
    @classmethod
    def _issue_type(cls, value: str) -> str:
        if value not in ISSUE_TYPES:
            raise ValueError(cls.field_prompts["issue_type"])
        return value

    @field_validator("issue_other")
    @classmethod
    def _issue_other(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("issue_type") != "other":
            return ""  # only "something else" is typed in
        if not value:
            raise ValueError(cls.field_prompts["issue_other"])
        if len(value) > ISSUE_OTHER_MAX:
            raise ValueError(f"The type of issue must be {ISSUE_OTHER_MAX} characters or fewer")
        return value

    @field_validator("urgent")
    @classmethod
    def _urgent(cls, value: str) -> str:
        if value not in ("yes", "no"):
            raise ValueError(cls.field_prompts["urgent"])
        return value

    def escalation(self) -> EscalationIn:
        """What the JSON API takes (``ValidationError`` if it refuses something the form let through)."""
        return EscalationIn(subject=self.subject, agencies=self.agencies, urgent=self.urgent == "yes",
                            issue_type=self.issue_other if self.issue_type == "other" else self.issue_type,
                            child_pseudonym=self.child_pseudonym, case_id=self.case_id)


class WithdrawForm(BaseModel):
    """The withdraw form: why (the JSON API's ``WithdrawIn`` takes the same reason, up to 2,000 characters)."""

    model_config = ConfigDict(extra="forbid")
    field_labels: ClassVar[dict[str, str]] = {"reason": "the reason"}
    field_prompts: ClassVar[dict[str, str]] = {"reason": "Enter why the escalation is withdrawn"}

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=REASON_MAX)] = ""


def _form_values(form) -> dict[str, Any]:
    """The raise form's values as typed (shown again with its errors): text fields, and the agencies ticked."""
    values: dict[str, Any] = {k: str(v) for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    values["agencies"] = [str(a) for a in form.getlist("agencies")]
    return values


def read_escalation(form) -> tuple[EscalationIn | None, dict[str, str]]:
    """(the escalation, or None; errors by form field name) from the posted form: every problem at once."""
    unknown = unknown_fields(form.keys(), lambda name: name in FIELDS)
    if unknown:
        return None, {"form": unknown}
    values = _form_values(form)
    sent = {k: v for k, v in values.items() if k in FIELDS and (v != "" or k in ("subject", "issue_other"))}
    try:
        return EscalationForm.model_validate(sent).escalation(), {}
    except ValidationError as exc:
        other = values.get("issue_type") == "other"
        return None, field_errors(exc, model=EscalationForm,
                                  name_of=lambda path: _field_of(path, other))


def _field_of(path: str, other: bool) -> str:
    """The form field that shows a refusal of ``path`` (the API's ``issue_type`` is typed in ``issue_other`` for
    "something else"; what the form has no field for shows on "what was disagreed", as before)."""
    name = path.lstrip("/").split("/", 1)[0]
    if name == "issue_type" and other:
        return "issue_other"
    return name if name in FIELDS else "subject"


# --- raising a professional disagreement ------------------------------------------------------------------------


def _related_cases(engine, partnership_id: str) -> list[Case]:
    with Session(engine) as session:
        return list(session.exec(select(Case).where(
            Case.partnership_id == partnership_id, Case.process.in_(("incident", "lcspr")))
            .order_by((Case.status == "closed"), Case.opened_at.desc()).limit(RELATED_CASES)))


def _new_page(request: Request, principal: Principal, *, values: dict[str, Any] | None = None,
              errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    engine = engine_of(request)
    pid = own_partnership(principal)
    facts = current(engine, pid)
    if facts is None or facts.disagreement_ladder not in facts.ladders:
        raise ApiError(404, "not_found", "Your partnership’s arrangements have no professional disagreement ladder.")
    values = values or {}
    errors = errors or {}
    ladder = facts.ladders[facts.disagreement_ladder]
    urgent_stage = ladder.urgent_start_stage
    summary = error_summary(errors, ["form", *FIELDS], ANCHORS)
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


@router.post("/escalations/new")
@bounded_page
async def raise_disagreement(request: Request, timeout: TemporalTimeout, engine: DbEngine, temporal: TemporalClient,
                             settings: AppSettings, principal: PagePrincipal):

    pid = own_partnership(principal)
    form = await request.form()
    values = _form_values(form)
    body, errors = read_escalation(form)
    if errors or body is None:
        await run_in_threadpool(audit, engine, principal, "escalation.raise", partnership_id=pid, outcome="rejected",
                                detail=f"invalid: {', '.join(sorted(errors))} (page)")
        return _new_page(request, principal, values=values, errors=errors, status_code=422)
    try:
        case_id, _status = await raise_escalation(engine, temporal, settings.task_queue, principal, pid, body,
                                                  timeout=timeout)
    except ApiError as exc:
        await run_in_threadpool(audit, engine, principal, "escalation.raise", partnership_id=pid, outcome="rejected",
                                detail=f"{exc.code}: {exc.message} (page)")
        if exc.status == 422:
            errors = field_errors(exc.fields, name_of=lambda path: _field_of(path, values.get("issue_type") == "other"))
            return _new_page(request, principal, values=values, errors=errors or {
                "subject": exc.message[:1].upper() + exc.message[1:]}, status_code=422)
        raise
    return RedirectResponse(f"/cases/{case_id}?recorded=1", status_code=303)  # the case page confirms it


# --- withdrawing ------------------------------------------------------------------------------------------------------


def _own_escalation(engine, principal: Principal, case_id: str) -> Case:
    readable_case(engine, principal, case_id, what="escalation", processes=("escalation",))  # else 404
    with Session(engine) as session:
        case = session.get(Case, case_id)
    return case


def _withdraw_page(request: Request, principal: Principal, case: Case, *, reason: str = "",
                   errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    engine = engine_of(request)
    errors = errors or {}
    row = escalation_rows(engine, principal, case.partnership_id, [case], london_today())[0]
    summary = error_summary(errors, ["form", "reason"], {"form": "#reason"})
    context = page_context(request, principal, page_title=f"Withdraw escalation {case.case_ref}",
                           page_has_errors=bool(summary), row=row, reason=reason, error=errors.get("reason", ""),
                           error_summary=summary)
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


def read_withdrawal(form) -> tuple[str | None, dict[str, str]]:
    """(the reason, or None; errors by form field name) from the posted withdraw form."""
    unknown = unknown_fields(form.keys(), lambda name: name == "reason")
    if unknown:
        return None, {"form": unknown}
    try:
        return WithdrawForm.model_validate({"reason": str(form.get("reason", ""))}).reason, {}
    except ValidationError as exc:
        return None, field_errors(exc, model=WithdrawForm)


@router.post("/escalations/{case_id}/withdraw")
@bounded_page
async def withdraw(request: Request, timeout: TemporalTimeout, engine: DbEngine, temporal: TemporalClient,
                   case_id: str, principal: PagePrincipal):

    case = _own_escalation(engine, principal, case_id)
    form = await request.form()
    typed = str(form.get("reason", ""))
    reason, errors = read_withdrawal(form)
    if errors or reason is None:
        await run_in_threadpool(audit, engine, principal, "escalation.withdraw", partnership_id=case.partnership_id,
                                case_id=case.id, outcome="rejected",
                                detail=f"invalid: {', '.join(sorted(errors))} (page)")
        return _withdraw_page(request, principal, case, reason=typed, errors=errors, status_code=422)
    try:
        await withdraw_escalation(temporal, case.id, principal, reason, timeout=timeout)
    except ApiError as exc:
        await run_in_threadpool(audit, engine, principal, "escalation.withdraw", partnership_id=case.partnership_id,
                                case_id=case.id, outcome="rejected", detail=f"{exc.code}: {exc.message} (page)")
        if exc.status == 422:
            errors = field_errors(exc.fields, name_of=lambda path: "reason") or {
                "reason": exc.message[:1].upper() + exc.message[1:]}
            return _withdraw_page(request, principal, case, reason=typed, errors=errors, status_code=422)
        if exc.status == 409:
            return error_page(request, 409, exc.message[:1].upper() + exc.message[1:] + ".",
                              heading="This escalation is closed",
                              links=[{"text": "Go to escalations", "href": "/escalations"}])
        raise
    return RedirectResponse("/escalations?" + urlencode({"withdrawn": case.case_ref}), status_code=303)
