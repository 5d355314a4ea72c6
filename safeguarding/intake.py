"""Opening cases: a serious incident (``open_incident``), a professional disagreement (``raise_escalation``), an
everyday learning event (``record_learning``): what each takes (pydantic models, documented in OpenAPI), the checks
against the partnership's arrangements, and the start of its workflow (``case_commands.start_case``)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.client import Client

from safeguarding.accounts import Principal
from safeguarding.calendar import WorkingCalendar
from safeguarding.case_access import current_arrangements
from safeguarding.case_commands import DEFAULT_TIMEOUT, actor_of, request_digest, start_case
from safeguarding.case_records import ENGINE, IncidentInput
from safeguarding.clock import london_today
from safeguarding.cross_boundary import intake_fields
from safeguarding.pinned import Pinned, current
from safeguarding.refusals import ApiError, FieldError, NotApplied, StillApplying
from safeguarding.tables import Case
from safeguarding.versions import VersionNotFoundError, document_of, get_version
from safeguarding.wording import long_date, plural
from workflows.incident import IncidentCase, workflow_id

EARLIEST_AWARE_DATE = date(2018, 1, 1)
CASE_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,39}$")
REF_SCHEMA: dict[str, Any] = {"pattern": CASE_REF.pattern, "minLength": 1, "maxLength": 40}  # documented in OpenAPI


AWARE = "the date the local authority became aware of the incident"


class ChildIn(BaseModel):
    model_config = ConfigDict(extra="forbid")  # an unknown field is refused, by name (not silently dropped)

    pseudonym: str = Field(min_length=1, max_length=40, description="How the case refers to the child, e.g. "
                                                                      "‘Child A’. Never a name.")
    local_ref: str = Field("", max_length=40, description="The local authority's own reference, if any.")


class IncidentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")  # an unknown field is refused, by name (not silently dropped)
    # How messages name the fields (refusals.plain_errors): "Enter <label>", "<Label> must be a real date"...
    field_labels: ClassVar[dict[str, str]] = {
        "case_ref": "your reference for this incident", "aware_date": AWARE, "category": "the incident category",
        "children": "the children", "pseudonym": "the child's pseudonym", "local_ref": "the child's local reference",
        "summary": "what happened", "agencies": "the agencies involved",
        "age_at_incident": "the child's age at the date of the incident",
        "resident_partnership_id": "the partnership where the child lives",
        "resident_area_name": "the name of the area where the child lives"}
    field_prompts: ClassVar[dict[str, str]] = {
        "category": "Select the incident category",
        "children": "Enter a pseudonym for at least one child, for example ‘Child A’",
        "summary": "Describe what happened, briefly and without names"}

    case_ref: str = Field(description="Your reference for this incident (1 to 40 letters, digits and hyphens, "
                                      "starting with a letter or digit). Never a name: it is part of the "
                                      "workflow id, which Temporal stores unencrypted. Submitting the same "
                                      "reference twice opens nothing new.", json_schema_extra=REF_SCHEMA)
    aware_date: date = Field(description="The date the local authority became aware of the incident.")
    category: str = Field(description="The incident category, from the partnership's arrangements.")
    children: list[ChildIn] = Field(min_length=1, description="One to four children, by pseudonym only.")
    summary: str = Field(min_length=1, max_length=5000, description="What happened, briefly. No names.")
    agencies: list[str] = Field(default_factory=list, description="Ids of the agencies involved with the child.")
    age_at_incident: int | None = Field(None, ge=0, le=30, description="The child's age in whole years at the date "
                                        "of the incident. Required when the category covers only some ages (e.g. a "
                                        "care leaver's death, 16 to 24).")
    resident_partnership_id: str | None = Field(None, max_length=63, description="Where the child lives, when it is "
                                                "another partnership that uses this service: it is invited to "
                                                "contribute its own agency summary and may read this case.")
    resident_area_name: str | None = Field(None, max_length=200, description="Where the child lives, when it is an "
                                           "area that does not use this service (its name). Leave both empty when "
                                           "the child lives in your own area.")

    @field_validator("case_ref")
    @classmethod
    def _ref(cls, value: str) -> str:
        if not CASE_REF.match(value):
            raise ValueError("your reference for this incident must use 1 to 40 letters, digits and hyphens, starting "
                             "with a letter or digit")
        return value

    @field_validator("summary")
    @classmethod
    def _summary(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("describe what happened, briefly and without names")
        return value.strip()


def _check_incident(doc: dict[str, Any], incident: IncidentIn) -> list[FieldError]:
    sin = doc["serious_incident_notification"]
    errors: list[FieldError] = []
    categories = [c["id"] for c in sin["categories"]]
    if incident.category not in categories:
        errors.append(FieldError(path="/category", value=incident.category,
                                 message=f"Select the incident category: one of your partnership's categories "
                                         f"({', '.join(categories)})"))
    today = london_today()
    if incident.aware_date > today:
        errors.append(FieldError(path="/aware_date", value=incident.aware_date.isoformat(),
                                 message=f"The {AWARE[4:]} must be today or in the past (today is "
                                         f"{long_date(today)})"))
    elif incident.aware_date < EARLIEST_AWARE_DATE:
        errors.append(FieldError(path="/aware_date", value=incident.aware_date.isoformat(),
                                 message=f"The {AWARE[4:]} must be in 2018 or later: these processes "
                                         "began with the 2017 Act"))
    limit = int(sin.get("max_children_per_notification", 4))
    if len(incident.children) > limit:
        errors.append(FieldError(path="/children", value=len(incident.children),
                                 message=f"Enter at most {limit} children per notification; describe others "
                                         "in the summary or open another case"))
    known = Pinned.of(doc).agency_ids
    for index, agency in enumerate(incident.agencies):
        if agency not in known:
            errors.append(FieldError(path=f"/agencies/{index}", value=agency,
                                     message=f"‘{agency}’ is not a partner or relevant agency in this "
                                             "partnership's arrangements"))
    if len(set(incident.agencies)) != len(incident.agencies):
        errors.append(FieldError(path="/agencies", value=incident.agencies,
                                 message="The agencies involved list an agency twice"))
    return errors


def may_open_incident(principal: Principal, doc: dict[str, Any]) -> bool:
    notifier_role = doc["serious_incident_notification"]["notifier_role"]
    members = next((r.get("members", []) for r in doc["roles"] if r["id"] == notifier_role), [])
    return principal.partnership_id == doc["partnership"]["id"] and (
        principal.kind == "partnership_lead" or principal.user_ref in members)


def may_record_incidents(engine: Engine, principal: Principal) -> bool:
    """Whether the person may record an incident (the inbox and cases list offer it): read from the cached current
    version (``pinned.current``), as every page load asks."""
    if principal.partnership_id is None:
        return False
    found = current(engine, principal.partnership_id)
    return found is not None and may_open_incident(principal, dict(found.document))


def intake_doc(engine: Engine, principal: Principal) -> dict[str, Any]:
    if principal.partnership_id is None:
        raise ApiError(403, "forbidden", "Only a partnership’s leads and its notifying role record incidents.")
    with Session(engine) as session:
        try:
            doc = document_of(get_version(session, principal.partnership_id))
        except VersionNotFoundError:
            raise ApiError(404, "not_found", "Your partnership has no arrangements yet.") from None
    if not may_open_incident(principal, doc):
        raise ApiError(403, "forbidden", "Only a partnership’s leads and its notifying role record incidents.")
    return doc


def incident_problems(engine: Engine, doc: dict[str, Any], partnership_id: str,
                      incident: IncidentIn) -> tuple[list[FieldError], dict[str, Any]]:
    """Everything wrong with this incident against the arrangements, at once (the form shows them in one round),
    and the extra ``IncidentInput`` fields for where the child lives and the age (issue 16)."""
    errors = _check_incident(doc, incident)
    with engine.connect() as conn:
        extra, problems = intake_fields(conn, doc, partnership_id, category=incident.category,
                                        age_at_incident=incident.age_at_incident,
                                        resident_partnership_id=incident.resident_partnership_id,
                                        resident_area_name=incident.resident_area_name)
    if not any(e.path == "/category" for e in errors):
        errors += [FieldError(path=f"/{name}", value=getattr(incident, name, None), message=message)
                   for name, message in problems]
    return errors, extra


async def open_incident(engine: Engine, client: Client, task_queue: str, principal: Principal,
                        partnership_id: str, incident: IncidentIn, *, idempotency_key: str | None = None,
                        timeout: float = DEFAULT_TIMEOUT) -> tuple[str, str]:
    """Start the case's workflow; returns (case id, status). Raises ApiError (nothing started) on bad input."""
    version, doc = current_arrangements(engine, principal, partnership_id)
    if not may_open_incident(principal, doc):
        raise ApiError(403, "forbidden", "only the partnership's leads and its notifying role record incidents")
    errors, extra = incident_problems(engine, doc, partnership_id, incident)
    if errors:
        raise ApiError(422, "invalid", f"{plural(len(errors), 'problem', 'problems')} in the incident", errors)
    calendar = WorkingCalendar.for_config(doc["calendar"], incident.aware_date.year - 1, incident.aware_date.year + 5)
    case_id = workflow_id(partnership_id, incident.case_ref)
    inp = IncidentInput(
        partnership_id=partnership_id, case_ref=incident.case_ref, arrangements_version=version.number,
        arrangements=doc, calendar=calendar.to_payload(), aware_date=incident.aware_date.isoformat(),
        category=incident.category, children=[c.model_dump() for c in incident.children], summary=incident.summary,
        agencies=incident.agencies, opened_by=actor_of(principal), opened_at=datetime.now(UTC).isoformat(),
        engine=ENGINE, **extra)
    status = await start_case(client, IncidentCase.run, IncidentCase.opened, inp, case_id=case_id,
                              task_queue=task_queue, partnership_id=partnership_id, process="incident",
                              reference=incident.case_ref, what="case", timeout=timeout,
                              request_key=request_digest(principal, idempotency_key) if idempotency_key else "")
    return case_id, status


class EscalationIn(BaseModel):
    subject: str = Field(min_length=1, max_length=5000, description="What is disagreed, and why it matters for the "
                                                                     "child. Describe decisions, not people.")
    agencies: list[str] = Field(min_length=1, description="Ids of the agencies involved (partners or relevant "
                                                          "agencies of the partnership).")
    issue_type: str = Field(min_length=1, max_length=100, description="The kind of disagreement, e.g. threshold, "
                                                                        "information sharing, case closure.")
    urgent: bool = Field(False, description="Urgent: the child may be at risk now. Starts at the ladder's "
                                            "urgent stage.")
    child_pseudonym: str = Field("", max_length=40, description="How the case refers to the child, if any. "
                                                                "Never a name.")
    case_id: str = Field("", max_length=140, description="A case of the partnership this is about, if any.")
    ladder: str = Field("", max_length=63, description="Which ladder; default: the partnership's disagreement ladder.")
    reference: str = Field("", description="Your reference (1 to 40 letters, digits and hyphens, starting with a "
                                           "letter or digit); submitting the same one twice raises nothing new. "
                                           "Default: one is made up (from the Idempotency-Key, when you send one).",
                           json_schema_extra={"pattern": f"^$|{CASE_REF.pattern}", "maxLength": 40})

    @field_validator("reference")
    @classmethod
    def _ref(cls, value: str) -> str:
        if value and not CASE_REF.match(value):
            raise ValueError("use 1 to 40 letters, digits and hyphens, starting with a letter or digit")
        return value

    @field_validator("subject", "issue_type")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


def _check_escalation(engine: Engine, doc: dict[str, Any], body: EscalationIn, partnership_id: str) -> list[FieldError]:
    errors: list[FieldError] = []
    escalation = doc["escalation"]
    ladders = {lad["id"]: lad for lad in escalation["ladders"]}
    ladder_id = body.ladder or escalation["disagreement_ladder"]
    if ladder_id not in ladders:
        errors.append(FieldError(path="/ladder", value=body.ladder, message="not a ladder in this partnership's "
                                 f"arrangements; choose one of: {', '.join(sorted(ladders))}"))
    known = Pinned.of(doc).agency_ids
    for index, agency in enumerate(body.agencies):
        if agency not in known:
            errors.append(FieldError(path=f"/agencies/{index}", value=agency,
                                     message="not a partner or relevant agency of this partnership"))
    if body.case_id:
        with Session(engine) as session:
            case = session.get(Case, body.case_id)
        if case is None or case.partnership_id != partnership_id:
            errors.append(FieldError(path="/case_id", value=body.case_id, message="no such case in this partnership"))
    return errors


def ladder_input(doc: dict[str, Any], version: int, body: EscalationIn, principal: Principal, reference: str,
                 raised_at: datetime):
    """The ladder workflow's input: the pinned arrangements and a calendar covering the ladder's life."""
    from safeguarding.case_records import LadderInput

    calendar = WorkingCalendar.for_config(doc["calendar"], raised_at.year - 1, raised_at.year + 3)
    return LadderInput(
        partnership_id=doc["partnership"]["id"], reference=reference, arrangements_version=version, arrangements=doc,
        calendar=calendar.to_payload(), ladder_id=body.ladder or doc["escalation"]["disagreement_ladder"],
        subject=body.subject, issue_type=body.issue_type, agencies=body.agencies, urgent=body.urgent,
        raised_by=actor_of(principal), raised_at=raised_at.isoformat(), child_pseudonym=body.child_pseudonym,
        related_case_id=body.case_id, engine=ENGINE)


async def raise_escalation(engine: Engine, client: Client, task_queue: str, principal: Principal,
                           partnership_id: str, body: EscalationIn, *, idempotency_key: str | None = None,
                           timeout: float = DEFAULT_TIMEOUT) -> tuple[str, str]:
    """Start a ladder for a professional disagreement (or another named ladder); returns (case id, status)."""
    from workflows.ladder import EscalationLadder, ladder_workflow_id

    version, doc = current_arrangements(engine, principal, partnership_id)
    errors = _check_escalation(engine, doc, body, partnership_id)
    if errors:
        raise ApiError(422, "invalid", f"{plural(len(errors), 'problem', 'problems')} in the escalation", errors)
    request_key = request_digest(principal, idempotency_key) if idempotency_key else ""
    # a made-up reference comes from the Idempotency-Key, so a retried request is the same workflow id
    reference = body.reference or f"D-{(request_key or uuid.uuid4().hex)[:8].upper()}"
    inp = ladder_input(doc, version.number, body, principal, reference, datetime.now(UTC))
    case_id = ladder_workflow_id(partnership_id, reference)
    return case_id, await start_case(client, EscalationLadder.run, EscalationLadder.opened, inp, case_id=case_id,
                                     task_queue=task_queue, partnership_id=partnership_id, process="escalation",
                                     reference=reference, what="escalation", request_key=request_key,
                                     timeout=timeout)


class LearningIn(BaseModel):
    occurred_on: date = Field(description="When it happened.")
    kind: str = Field(description="harm, near_miss, good_practice or future_risk.")
    what_happened: str = Field(min_length=1, max_length=5000, description="What happened: the conditions and systems "
                                                                          "around it, not who was to blame.")
    what_was_expected: str = Field(min_length=1, max_length=5000, description="What was expected to happen.")
    agencies: list[str] = Field(min_length=1, description="Ids of the agencies involved.")
    factors: list[str] = Field(min_length=1, description="Contributory factors, from the systems taxonomy.")
    themes: list[str] = Field(min_length=1, description="Themes, from the partnership's list.")
    anonymous: bool = Field(False, description="Report without your name (if the partnership allows it): then "
                                               "nobody, not even the learning lead, can see who reported it.")

    @field_validator("what_happened", "what_was_expected")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


def _check_learning(doc: dict[str, Any], body: LearningIn) -> list[FieldError]:
    from safeguarding.themes import FACTORS, LEARNING_KINDS, themes_for

    errors: list[FieldError] = []
    learning = doc.get("learning") or {}
    if not learning.get("learning_lead_role"):
        errors.append(FieldError(path="", message="this partnership has not set up everyday learning in its "
                                                  "arrangements (learning.learning_lead_role)"))
        return errors
    kinds = [k for k, _ in LEARNING_KINDS]
    if body.kind not in kinds:
        errors.append(FieldError(path="/kind", value=body.kind, message=f"choose one of: {', '.join(kinds)}"))
    today = london_today()
    if body.occurred_on > today:
        errors.append(FieldError(path="/occurred_on", value=body.occurred_on.isoformat(),
                                 message=f"cannot be in the future (today is {long_date(today)})"))
    known = Pinned.of(doc).agency_ids
    for name, values, allowed in (("agencies", body.agencies, known), ("factors", body.factors, dict(FACTORS)),
                                  ("themes", body.themes, themes_for(doc))):
        for index, value in enumerate(values):
            if value not in allowed:
                errors.append(FieldError(path=f"/{name}/{index}", value=value, message=f"not one of the "
                                         f"{name} you can choose; choose from: {', '.join(sorted(allowed))}"))
    if body.anonymous and not learning.get("allow_anonymous_reports"):
        errors.append(FieldError(path="/anonymous", value=True,
                                 message="this partnership does not take anonymous reports"))
    return errors


async def record_learning(engine: Engine, client: Client, task_queue: str, principal: Principal,
                          partnership_id: str, body: LearningIn, *, idempotency_key: str | None = None,
                          secret: str = "", timeout: float = DEFAULT_TIMEOUT) -> tuple[str, str]:
    """Record a learning event; its reporter is kept only here (for the learning lead), never in Temporal.

    With an Idempotency-Key the reference is derived from it and the person (an HMAC under the app's ``secret``, so
    the reference and the workflow's memo cannot be linked to the reporter): a retry opens nothing new. The
    reporter's row is kept when the answer is 503 or 202 (the workflow may have started, or may still start)."""
    from safeguarding.case_records import LearningInput
    from safeguarding.tables import LearningReporter
    from workflows.learning import LearningEvent, learning_workflow_id

    version, doc = current_arrangements(engine, principal, partnership_id)
    errors = _check_learning(doc, body)
    if errors:
        raise ApiError(422, "invalid", f"{plural(len(errors), 'problem', 'problems')} in the learning event", errors)
    request_key = request_digest(principal, idempotency_key, secret or "learning") if idempotency_key else ""
    reference = f"L-{(request_key or uuid.uuid4().hex)[:8].upper()}"
    case_id = learning_workflow_id(partnership_id, reference)
    now = datetime.now(UTC)
    calendar = WorkingCalendar.for_config(doc["calendar"], now.year - 1, now.year + 2)
    inp = LearningInput(
        partnership_id=partnership_id, reference=reference, arrangements_version=version.number, arrangements=doc,
        calendar=calendar.to_payload(), occurred_on=body.occurred_on.isoformat(), kind=body.kind,
        what_happened=body.what_happened, what_was_expected=body.what_was_expected, agencies=body.agencies,
        factors=body.factors, themes=body.themes, reporter_known=not body.anonymous, reported_at=now.isoformat(),
        engine=ENGINE)
    if not body.anonymous:
        with Session(engine) as session:
            session.merge(LearningReporter(case_id=case_id, user_ref=principal.user_ref))  # a retry: the same row
            session.commit()
    try:
        status = await start_case(client, LearningEvent.run, LearningEvent.opened, inp, case_id=case_id,
                                  task_queue=task_queue, partnership_id=partnership_id, process="learning",
                                  reference=reference, what="learning event", request_key=request_key,
                                  timeout=timeout)
    except (NotApplied, StillApplying):
        raise  # it may have started, or may yet: keep the reporter for the learning lead
    except BaseException:
        with Session(engine) as session:  # nothing half-recorded
            row = session.get(LearningReporter, case_id)
            if row:
                session.delete(row)
                session.commit()
        raise
    return case_id, status
