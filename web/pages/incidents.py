"""Recording a serious incident (``/incidents/new``): the form, its checks, and the start of the case's workflow.

The form's values are read into ``IncidentIn``, the model the JSON API takes (``IncidentIn.model_validate``), so both
refuse the same things with the same words; ``web.form_errors`` turns a refusal into the page's error summary. A
field the form does not have is refused by name, as the API refuses an unknown field."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from safeguarding.accounts import Principal
from safeguarding.audit_log import audit
from safeguarding.incident_categories import age_range, ages_text
from safeguarding.intake import IncidentIn, incident_problems, intake_doc, open_incident
from safeguarding.national import partnerships
from web import schema_forms as sf
from web.deps import AppSettings, DbEngine, PagePrincipal, TemporalClient, TemporalTimeout, engine_of
from web.errors import ApiError
from web.form_errors import error_summary, field_errors, named_in, unknown_fields
from web.pages import bounded_page, page_context
from web.templating import render

router = APIRouter(include_in_schema=False)

MAX_CHILDREN = 4
INTAKE_FIELDS = ["case_ref", "aware_date", "category", "age_at_incident", "children", "resident_partnership_id",
                 "resident_area_name", "agencies", "summary"]
intake_field = named_in(INTAKE_FIELDS)  # a refused field's JSON pointer -> the form field showing it, else "form"
INTAKE_ANCHORS = {"aware_date": "#aware_date-day", "category": "#category", "agencies": "#agencies",
                  "children": "#child-1-pseudonym", "form": "#case_ref"}
# the form's own field names (a child's row, the date's three boxes): anything else posted is refused
FORM_FIELD = re.compile(r"^(case_ref|category|agencies|summary|aware_date-(day|month|year)|age_at_incident|"
                        r"resident|resident_partnership_id|resident_area_name|"
                        rf"child-[1-{MAX_CHILDREN}]-(pseudonym|local_ref))$")


def _intake_page(request: Request, principal: Principal, doc: dict[str, Any], *, values: dict | None = None,
                 errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    values = values or {}
    errors = errors or {}
    sin = doc["serious_incident_notification"]
    agencies = [(p["id"], p.get("organisation", p["id"])) for p in doc.get("safeguarding_partners", [])] + [
        (a["id"], a.get("name", a["id"])) for a in doc.get("relevant_agencies", [])]
    order = ["form", *INTAKE_FIELDS, *(f"child-{i}-pseudonym" for i in range(1, MAX_CHILDREN + 1))]
    summary = error_summary(errors, order, INTAKE_ANCHORS)
    context = page_context(
        request, principal, page_title="Record a serious incident", page_has_errors=bool(summary),
        values=values, errors=errors, error_summary=summary,
        categories=[{"value": c["id"], "text": c.get("label", c["id"]), "checked": values.get("category") == c["id"],
                     "hint": {"text": c["description"]} if c.get("description") else None}
                    for c in sin.get("categories", [])],
        agencies=[{"value": aid, "text": name, "checked": aid in values.get("agencies", [])} for aid, name in agencies],
        max_children=min(MAX_CHILDREN, int(sin.get("max_children_per_notification", MAX_CHILDREN))),
        aged_categories=[f"{c.get('label', c['id'])} (ages {ages_text(*age_range(c))})"
                         for c in sin.get("categories", []) if age_range(c)],
        other_partnerships=[{"value": "", "text": "Choose a partnership"}] + [
            {"value": pid, "text": name, "selected": values.get("resident_partnership_id") == pid}
            for pid, name in _other_partnerships(request, principal)],
        deadline_days=sin.get("deadline", {}).get("value"))
    return render(request, "reviewer/incident_new.html", context, status_code=status_code)


def _other_partnerships(request: Request, principal: Principal) -> list[tuple[str, str]]:
    """The other partnerships on this service (where a child may live): public names, not cases."""
    with Session(engine_of(request)) as session:
        return [(pid, name) for pid, name in partnerships(session) if pid != principal.partnership_id]


@router.get("/incidents/new")
def incident_form(request: Request, engine: DbEngine, principal: PagePrincipal):
    doc = intake_doc(engine, principal)
    return _intake_page(request, principal, doc)


def _read_form(values: dict[str, Any]) -> tuple[IncidentIn | None, dict[str, str]]:
    """(the incident, or None; errors by form field name) from the form's values."""
    errors: dict[str, str] = {}
    rows: list[int] = []  # the form row (1..4) of each child sent
    children = []
    for i in range(1, MAX_CHILDREN + 1):
        pseudonym = values.get(f"child-{i}-pseudonym", "").strip()
        local_ref = values.get(f"child-{i}-local_ref", "").strip()
        if pseudonym or local_ref:
            if not pseudonym:
                errors[f"child-{i}-pseudonym"] = f"Enter a pseudonym for child {i}, or clear their local reference"
            rows.append(i)
            children.append({"pseudonym": pseudonym, "local_ref": local_ref})
    aware, date_error = sf.parse_date("The date the local authority became aware",
                                      *(values.get(f"aware_date-{p}", "") for p in sf.DATE_PARTS))
    if date_error:
        errors["aware_date"] = date_error
    # an empty field is left out: the model says what is missing ("Enter ...", "Select ...")
    sent = {"case_ref": values.get("case_ref", "").strip(), "aware_date": aware, "category": values.get("category"),
            "summary": values.get("summary", ""), "children": children, "agencies": values.get("agencies", []),
            "age_at_incident": values.get("age_at_incident", "").strip()}
    if values.get("resident") == "elsewhere":  # else the child lives here: the other area's fields are ignored
        sent["resident_partnership_id"] = values.get("resident_partnership_id", "").strip()
        sent["resident_area_name"] = values.get("resident_area_name", "").strip()
        if not sent["resident_partnership_id"] and not sent["resident_area_name"]:
            errors["resident_partnership_id"] = ("Choose the partnership where the child lives, or type the name of "
                                                 "the area")
    sent = {k: v for k, v in sent.items() if v not in ("", None) or k == "children"}

    def name_of(path: str) -> str:
        parts = path.lstrip("/").split("/")
        if parts[0] == "children" and len(parts) >= 2 and parts[1].isdecimal() and int(parts[1]) < len(rows):
            return f"child-{rows[int(parts[1])]}-pseudonym"
        return intake_field(path)

    try:
        incident = IncidentIn.model_validate(sent)
    except ValidationError as exc:
        return None, {**field_errors(exc, model=IncidentIn, name_of=name_of), **errors}
    return incident, errors


def _intake_errors(fields) -> dict[str, str]:
    """The service layer's refusal (``ApiError.fields``) by form field name."""
    return field_errors(fields, name_of=intake_field)


@router.post("/incidents/new")
@bounded_page
async def record_incident(request: Request, timeout: TemporalTimeout, engine: DbEngine, temporal: TemporalClient,
                          settings: AppSettings, principal: PagePrincipal):

    doc = await run_in_threadpool(intake_doc, engine, principal)
    form = await request.form()
    values: dict[str, Any] = {k: str(v) for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    values["agencies"] = [str(a) for a in form.getlist("agencies")]
    unknown = unknown_fields(form.keys(), lambda name: FORM_FIELD.match(name) is not None)
    incident, errors = (None, {"form": unknown}) if unknown else _read_form(values)
    if errors and incident is not None:  # and the arrangements' rules too: every problem in one round
        problems, _ = await run_in_threadpool(incident_problems, engine, doc, principal.partnership_id, incident)
        errors = {**_intake_errors(problems), **errors}
    if errors or incident is None:
        await run_in_threadpool(audit, engine, principal, "incident.open", partnership_id=principal.partnership_id,
                                outcome="rejected",
                                detail=f"invalid: {', '.join(sorted(errors))} (page)")
        return await run_in_threadpool(_intake_page, request, principal, doc, values=values, errors=errors,
                                       status_code=422)
    try:
        case_id, _status = await open_incident(engine, temporal,
                                               settings.task_queue, principal,
                                               principal.partnership_id, incident,
                                               timeout=timeout)
    except ApiError as exc:
        await run_in_threadpool(audit, engine, principal, "incident.open", partnership_id=principal.partnership_id,
                                outcome="rejected",
                                detail=f"{exc.code}: {exc.message} (page)")
        if exc.status == 422:
            return await run_in_threadpool(_intake_page, request, principal, doc, values=values,
                                           errors=_intake_errors(exc.fields), status_code=422)
        if exc.status == 409:
            taken = f"A case with the reference {incident.case_ref} already exists: use another reference"
            return await run_in_threadpool(_intake_page, request, principal, doc, values=values, status_code=409,
                                           errors={"case_ref": taken})
        raise
    return RedirectResponse(f"/cases/{case_id}?recorded=1", status_code=303)  # the case page confirms it
