"""Opening cases and acting on tasks (through Temporal), reading them (from the read model), and the audit log.

Shared by the JSON API and the pages, so both give the same answers and the same errors.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, field_validator
from sqlalchemy import Row, and_, bindparam, false, func, or_
from sqlalchemy import select as sql_select
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, select
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from safeguarding import audit_log
from safeguarding.accounts import Principal
from safeguarding.calendar import WorkingCalendar
from safeguarding.case_records import ENGINE, NATIONAL_PANEL, Actor, IncidentInput, TaskCommand, TaskResult
from safeguarding.tables import Case, CaseEvent, LearningReporter, Task, TaskCandidate
from safeguarding.versions import VersionNotFoundError, document_of, get_version
from web.errors import ApiError, FieldError
from workflows.incident import IncidentCase, workflow_id

EARLIEST_AWARE_DATE = date(2018, 1, 1)
CASE_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,39}$")
REF_SCHEMA: dict[str, Any] = {"pattern": CASE_REF.pattern, "minLength": 1, "maxLength": 40}  # documented in OpenAPI


def london_today() -> date:
    return datetime.now(ZoneInfo("Europe/London")).date()


def actor_of(principal: Principal) -> Actor:
    return Actor(user_ref=principal.user_ref, kind=principal.kind, partnership_id=principal.partnership_id,
                 display_name=principal.display_name)


# --- audit ---------------------------------------------------------------------------------------------------


def audit(engine: Engine, principal: Principal | None, action: str, *, partnership_id: str | None = None,
          case_id: str | None = None, outcome: str = "ok", detail: str = "") -> None:
    """What the web app itself audits: refusals, views, downloads, exports, sign-ins, stored arrangements. A change
    applied by a workflow is audited by the read-model sync, in the transaction that records it
    (``activities.read_model``), so a web crash after the change cannot leave it unaudited."""
    audit_log.record_for(engine, principal, action, partnership_id=partnership_id, case_id=case_id,
                         outcome=outcome, detail=detail[:4000])


def current_arrangements(engine: Engine, principal: Principal, partnership_id: str):
    """The partnership's current arrangements version and document, for one of its own people; else 404 (the
    same answer for a partnership that does not exist and one that is not yours: no probing)."""
    with Session(engine) as session:
        try:
            version = get_version(session, partnership_id)
        except VersionNotFoundError:
            version = None
    if version is None or principal.partnership_id != partnership_id:
        raise ApiError(404, "not_found", f"no partnership ‘{partnership_id}’")
    return version, document_of(version)


@contextmanager
def audited_refusal(engine: Engine, principal: Principal | None, action: str, *, partnership_id: str | None = None,
                    case_id: str | None = None, prefix: str = "") -> Iterator[None]:
    """Record an ApiError raised inside the block as a rejected ``action`` in the audit log, then let it go on.

    A 503 (``NotApplied``) is recorded as ``not_applied``, not ``rejected``: Temporal may still apply the change,
    and then the read-model sync audits it as applied."""
    try:
        yield
    except ApiError as exc:
        outcome = "not_applied" if isinstance(exc, NotApplied) else "rejected"
        audit(engine, principal, action, partnership_id=partnership_id, case_id=case_id, outcome=outcome,
              detail=f"{prefix}{exc.code}: {exc.message}")
        raise


_cases, _tasks, _events = Case.__table__, Task.__table__, CaseEvent.__table__
_candidates = TaskCandidate.__table__
_reporters = LearningReporter.__table__


# --- when Temporal is slow or away --------------------------------------------------------------------------

DEFAULT_TIMEOUT = 10.0  # seconds; the app passes settings.temporal_timeout_seconds
RETRY_AFTER_SECONDS = 5
MEMO_KEY = "sgflow_request"  # the workflow memo entry naming the request that started it (a digest)


class NotApplied(ApiError):
    """503: Temporal could not be reached, or did not accept the change in time. It may still be applied when the
    service recovers, so the caller retries with the same Idempotency-Key (which never applies a change twice)."""

    def __init__(self, message: str):
        super().__init__(503, "not_applied", f"{message}. It may still be applied when the service recovers: try "
                                             "again in a few seconds with the same Idempotency-Key, which never "
                                             "applies it twice.")
        self.headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}


class StillApplying(Exception):
    """202: the workflow has the change (accepted, or the case's workflow started) but has not finished applying it
    in time; it will be applied without anything more from the caller."""

    def __init__(self, case_id: str, message: str):
        super().__init__(message)
        self.case_id, self.message = case_id, message


# --- who may read a case ------------------------------------------------------------------------------------


_READER_ROLES: dict[tuple[str, str, int], tuple[frozenset[str], dict[str, frozenset[str]]]] = {}
_READER_LOCK = threading.Lock()


def _reader_roles(conn: Connection, partnership_id: str) -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    """(who reads every case of the partnership by role, ladder id -> who reads that ladder's escalations), from the
    partnership's CURRENT arrangements: whoever holds a role now reads by it (someone who has left the role no
    longer does, and a newly appointed scrutineer does at once). Cached per stored version (versions never change)."""
    from safeguarding.tables import ArrangementsVersion

    av = ArrangementsVersion.__table__.c
    latest = conn.execute(sql_select(av.number).where(av.partnership_id == partnership_id)
                          .order_by(av.number.desc()).limit(1)).scalar()
    if latest is None:
        return frozenset(), {}
    key = (str(conn.engine.url), partnership_id, int(latest))
    with _READER_LOCK:
        cached = _READER_ROLES.get(key)
    if cached is not None:
        return cached
    doc = json.loads(conn.execute(sql_select(av.document).where(
        av.partnership_id == partnership_id, av.number == latest)).scalar_one())
    members = {r["id"]: frozenset(r.get("members", [])) for r in doc.get("roles", [])}
    everyone: set[str] = set()
    for role in ((doc.get("independent_scrutiny") or {}).get("scrutineer_role"),
                 (doc.get("data_protection") or {}).get("reidentification_key_role")):
        everyone |= members.get(role or "", frozenset())
    ladders = {lad["id"]: frozenset().union(*(members.get(lad.get(r) or "", frozenset())
                                              for r in ("business_unit_role", "scrutineer_role")))
               for lad in (doc.get("escalation") or {}).get("ladders", [])}
    found = (frozenset(everyone), ladders)
    with _READER_LOCK:
        if len(_READER_ROLES) > 1000:
            _READER_ROLES.clear()
        _READER_ROLES[key] = found
    return found


def _involved_in(principal: Principal):
    """Ids of the cases whose tasks the person may do, has claimed or has completed (a subquery)."""
    candidate = sql_select(_tasks.c.case_id).join(_candidates, _candidates.c.task_id == _tasks.c.id).where(
        _candidates.c.user_ref == principal.user_ref)
    did = sql_select(_tasks.c.case_id).where(or_(_tasks.c.claimed_by == principal.user_ref,
                                                 _tasks.c.completed_by == principal.user_ref))
    return candidate.union(did)


def reads_every_case(conn: Connection, principal: Principal, partnership_id: str) -> bool:
    """Administrators; the partnership's leads and scrutineers; the holders of its scrutineer and re-identification
    key roles (``may_read_case``)."""
    if principal.is_admin:
        return True
    if principal.partnership_id != partnership_id:
        return False
    if principal.kind in ("partnership_lead", "scrutineer"):
        return True
    return principal.user_ref in _reader_roles(conn, partnership_id)[0]


def may_read_case(conn: Connection, principal: Principal, case: Any) -> bool:
    """THE rule for who may read a case's details (its children, summary, subject, timeline, tasks' answers and
    files). Pages, the JSON API and file downloads all ask here (lists through ``readable_cases_where``, its SQL).

    Within the case's partnership, the reader must be one of:

    * a partnership lead (``partnership_lead``), or an administrator (any partnership);
    * the independent scrutineer: an account of kind ``scrutineer``, or a member of the arrangements'
      ``independent_scrutiny.scrutineer_role``; and a member of ``data_protection.reidentification_key_role`` (the
      business unit that holds the re-identification key);
    * a member of an agency involved in the case: the account's agency is one of the case's agencies (an incident's
      agencies involved, an escalation's agencies named, a learning event's agencies), or of the incident a local
      review was opened from;
    * someone the case's work is given to: a candidate of any of its tasks (by role), or whoever claimed or
      completed one; and whoever opened it (an escalation's raiser; a learning event's named reporter, who is
      known only to this database, never to Temporal);
    * for an escalation, the members of its ladder's ``business_unit_role`` and ``scrutineer_role``.

    Roles are read from the partnership's current arrangements (who holds a role now). Anyone else, including
    the rest of the partnership and the national body, gets 404 on the case, its tasks and its files, and does not
    see it in lists. The national body reaches its own tasks only by the case's national reference
    (``safeguarding.national``). Learning events keep their own no-blame rules on the learning pages as well."""
    if principal.is_admin:
        return True
    if principal.is_national or principal.partnership_id != case.partnership_id:
        return False
    if principal.kind in ("partnership_lead", "scrutineer"):
        return True
    if principal.user_ref and case.opened_by == principal.user_ref:
        return True
    if principal.agency_id:
        agencies = set(_loads(case.agencies) or [])
        if principal.agency_id in agencies:
            return True
        if case.parent_case_id:
            parent = conn.execute(sql_select(_cases.c.agencies).where(_cases.c.id == case.parent_case_id)).scalar()
            if principal.agency_id in set(_loads(parent or "") or []):
                return True
    everyone, ladders = _reader_roles(conn, case.partnership_id)
    if principal.user_ref in everyone:
        return True
    if case.process == "learning" and conn.execute(sql_select(_reporters.c.case_id).where(
            _reporters.c.case_id == case.id, _reporters.c.user_ref == principal.user_ref)).first() is not None:
        return True
    if case.process == "escalation" and principal.user_ref in ladders.get(case.ladder_id or "", frozenset()):
        return True
    involved = _involved_in(principal).subquery()
    return conn.execute(sql_select(involved.c.case_id).where(involved.c.case_id == case.id).limit(1)).first() \
        is not None


def readable_cases_where(conn: Connection, principal: Principal, partnership_id: str) -> Any:
    """``may_read_case`` as a SQL condition on ``case`` (for lists), or None when the person reads every case."""
    if reads_every_case(conn, principal, partnership_id):
        return None
    if principal.is_national or principal.partnership_id != partnership_id:
        return false()
    _, ladders = _reader_roles(conn, partnership_id)
    mine = [lid for lid, people in ladders.items() if principal.user_ref in people]
    conditions = [_cases.c.opened_by == principal.user_ref, _cases.c.id.in_(_involved_in(principal)),
                  _cases.c.id.in_(sql_select(_reporters.c.case_id).where(_reporters.c.user_ref == principal.user_ref))]
    if mine:
        conditions.append(and_(_cases.c.process == "escalation", _cases.c.ladder_id.in_(mine)))
    if principal.agency_id:
        named = _cases.c.agencies.contains(json.dumps(principal.agency_id), autoescape=True)
        parent = _cases.alias("parent_case")
        conditions += [named, _cases.c.parent_case_id.in_(sql_select(parent.c.id).where(
            parent.c.agencies.contains(json.dumps(principal.agency_id), autoescape=True)))]
    return or_(*conditions)


def readable_case(engine: Engine, principal: Principal, case_id: str, *, what: str = "case",
                  processes: tuple[str, ...] | None = None) -> Row:
    """The ``case`` row if the principal may read it (and it is one of ``processes``), else 404: no probing."""
    with engine.connect() as conn:
        return visible_case(conn, principal, case_id, what=what, processes=processes)


# --- intake --------------------------------------------------------------------------------------------------


class ChildIn(BaseModel):
    pseudonym: str = Field(min_length=1, max_length=40, description="How the case refers to the child, e.g. "
                                                                      "‘Child A’. Never a name.")
    local_ref: str = Field("", max_length=40, description="The local authority's own reference, if any.")


class IncidentIn(BaseModel):
    case_ref: str = Field(description="Your reference for this incident (1 to 40 letters, digits and hyphens, "
                                      "starting with a letter or digit). Never a name: it is part of the "
                                      "workflow id, which Temporal stores unencrypted. Submitting the same "
                                      "reference twice opens nothing new.", json_schema_extra=REF_SCHEMA)
    aware_date: date = Field(description="The date the local authority became aware of the incident.")
    category: str = Field(description="The incident category, from the partnership's arrangements.")
    children: list[ChildIn] = Field(min_length=1, description="One to four children, by pseudonym only.")
    summary: str = Field(min_length=1, max_length=5000, description="What happened, briefly. No names.")
    agencies: list[str] = Field(default_factory=list, description="Ids of the agencies involved with the child.")

    @field_validator("case_ref")
    @classmethod
    def _ref(cls, value: str) -> str:
        if not CASE_REF.match(value):
            raise ValueError("use 1 to 40 letters, digits and hyphens, starting with a letter or digit")
        return value

    @field_validator("summary")
    @classmethod
    def _summary(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("describe what happened")
        return value.strip()


def _check_incident(doc: dict[str, Any], incident: IncidentIn) -> list[FieldError]:
    sin = doc["serious_incident_notification"]
    errors: list[FieldError] = []
    categories = [c["id"] for c in sin["categories"]]
    if incident.category not in categories:
        errors.append(FieldError(path="/category", value=incident.category,
                                 message=f"not a category in this partnership's arrangements; choose one of: "
                                         f"{', '.join(categories)}"))
    today = london_today()
    if incident.aware_date > today:
        errors.append(FieldError(path="/aware_date", value=incident.aware_date.isoformat(),
                                 message=f"cannot be in the future (today is {today.isoformat()})"))
    elif incident.aware_date < EARLIEST_AWARE_DATE:
        errors.append(FieldError(path="/aware_date", value=incident.aware_date.isoformat(),
                                 message="cannot be before 2018: these processes began with the 2017 Act"))
    limit = int(sin.get("max_children_per_notification", 4))
    if len(incident.children) > limit:
        errors.append(FieldError(path="/children", value=len(incident.children),
                                 message=f"at most {limit} children per notification; describe others in "
                                         "the summary or open another case"))
    known = {p["id"] for p in doc["safeguarding_partners"]} | {a["id"] for a in doc.get("relevant_agencies", [])}
    for index, agency in enumerate(incident.agencies):
        if agency not in known:
            errors.append(FieldError(path=f"/agencies/{index}", value=agency,
                                     message="not a partner or relevant agency in this partnership's arrangements"))
    if len(set(incident.agencies)) != len(incident.agencies):
        errors.append(FieldError(path="/agencies", value=incident.agencies, message="an agency is listed twice"))
    return errors


def may_open_incident(principal: Principal, doc: dict[str, Any]) -> bool:
    notifier_role = doc["serious_incident_notification"]["notifier_role"]
    members = next((r.get("members", []) for r in doc["roles"] if r["id"] == notifier_role), [])
    return principal.partnership_id == doc["partnership"]["id"] and (
        principal.kind == "partnership_lead" or principal.user_ref in members)


async def start_case(client: Client, run: Any, opened: Any, inp: Any, *, case_id: str, task_queue: str,
                     partnership_id: str, process: str, reference: str, what: str, request_key: str = "",
                     timeout: float = DEFAULT_TIMEOUT) -> str:
    """Start a case's workflow once and wait until the read model has it, so the caller can show it straight away.
    Returns the case's status.

    One request (update-with-start): the workflow starts with the ``opened`` Update in its first workflow task,
    so opening a case costs Temporal one workflow task fewer than a start followed by an Update.

    Bounded by ``timeout`` seconds: ``NotApplied`` (503) when Temporal cannot be reached or nothing was started;
    ``StillApplying`` (202) when the workflow was started but has not opened the case in time (its worker is
    down, say): it will when the worker runs. The workflow carries ``request_key`` (a digest of who asked and their
    Idempotency-Key, never personal data) in its memo: a second start with the same id is the same request retried
    (answered like the first) when the keys match, and a 409 otherwise."""
    request_key = request_key or f"random-{uuid.uuid4().hex}"
    start = WithStartWorkflowOperation(
        run, inp, id=case_id, task_queue=task_queue, id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE, memo={MEMO_KEY: request_key},
        search_attributes=TypedSearchAttributes([
            SearchAttributePair(SEARCH_KEYS["SgPartnership"], partnership_id),
            SearchAttributePair(SEARCH_KEYS["SgProcess"], process),
            SearchAttributePair(SEARCH_KEYS["SgCaseRef"], reference)]))
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        async with asyncio.timeout(timeout):
            return await client.execute_update_with_start_workflow(
                opened, start_workflow_operation=start, id=f"opened-{request_key}",
                rpc_timeout=timedelta(seconds=timeout))
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        if await _started_by(client, case_id, request_key, deadline) is True:
            raise StillApplying(case_id, f"the {what} was started and will be opened when the workflow worker "
                                         "runs; nothing more is needed") from None
        raise NotApplied(f"the {what} was not opened: the workflow service did not answer in time") from None
    except (WorkflowAlreadyStartedError, RPCError) as exc:
        with suppress(WorkflowAlreadyStartedError, RPCError):
            await start.workflow_handle()  # the same error, retrieved here so it is not reported as unhandled
        # the dev server and Temporal clusters say WorkflowAlreadyStartedError; the time-skipping test server an
        # RPCError ALREADY_EXISTS
        if isinstance(exc, RPCError) and exc.status != RPCStatusCode.ALREADY_EXISTS:
            raise NotApplied(f"the {what} was not opened: the workflow service could not be reached") from None
    except RuntimeError:  # what the SDK raises when it cannot connect at all
        raise NotApplied(f"the {what} was not opened: the workflow service could not be reached") from None
    # It exists: the same request retried (same key) is answered like the first; anything else is a conflict.
    if await _started_by(client, case_id, request_key, deadline) is True:
        return await _bounded_update(client, case_id, opened, None, str, update_id=f"opened-{request_key}",
                                     deadline=deadline)
    raise ApiError(409, "already_exists", f"{what} {reference} already exists; nothing new was opened "
                                          f"(see /api/cases/{case_id})")


async def _started_by(client: Client, case_id: str, request_key: str, deadline: float) -> bool | None:
    """Whether the workflow ``case_id`` exists and was started by the request ``request_key`` (None: unknown)."""
    remaining = max(0.2, deadline - asyncio.get_running_loop().time())
    try:
        async with asyncio.timeout(remaining):
            description = await client.get_workflow_handle(case_id).describe(
                rpc_timeout=timedelta(seconds=remaining))
            memo = await description.memo()
    except (TimeoutError, RuntimeError):
        return None
    except RPCError as exc:
        return False if exc.status == RPCStatusCode.NOT_FOUND else None
    return memo.get(MEMO_KEY) == request_key


SEARCH_KEYS = {name: SearchAttributeKey.for_keyword(name) for name in ("SgPartnership", "SgProcess", "SgCaseRef")}


async def open_incident(engine: Engine, client: Client, task_queue: str, principal: Principal,
                        partnership_id: str, incident: IncidentIn, *, idempotency_key: str | None = None,
                        timeout: float = DEFAULT_TIMEOUT) -> tuple[str, str]:
    """Start the case's workflow; returns (case id, status). Raises ApiError (nothing started) on bad input."""
    version, doc = current_arrangements(engine, principal, partnership_id)
    if not may_open_incident(principal, doc):
        raise ApiError(403, "forbidden", "only the partnership's leads and its notifying role record incidents")
    errors = _check_incident(doc, incident)
    if errors:
        raise ApiError(422, "invalid", f"{len(errors)} problem(s) in the incident", errors)
    calendar = WorkingCalendar.for_config(doc["calendar"], incident.aware_date.year - 1, incident.aware_date.year + 5)
    case_id = workflow_id(partnership_id, incident.case_ref)
    inp = IncidentInput(
        partnership_id=partnership_id, case_ref=incident.case_ref, arrangements_version=version.number,
        arrangements=doc, calendar=calendar.to_payload(), aware_date=incident.aware_date.isoformat(),
        category=incident.category, children=[c.model_dump() for c in incident.children], summary=incident.summary,
        agencies=incident.agencies, opened_by=actor_of(principal), opened_at=datetime.now(UTC).isoformat(),
        engine=ENGINE)
    status = await start_case(client, IncidentCase.run, IncidentCase.opened, inp, case_id=case_id,
                              task_queue=task_queue, partnership_id=partnership_id, process="incident",
                              reference=incident.case_ref, what="case", timeout=timeout,
                              request_key=request_digest(principal, idempotency_key) if idempotency_key else "")
    return case_id, status


# --- tasks ---------------------------------------------------------------------------------------------------

_KIND_STATUS = {"forbidden": 403, "conflict": 409, "invalid": 422, "not_found": 404}


async def act_on_task(client: Client, case_id: str, action: str, command: TaskCommand, *, update_id: str = "",
                      timeout: float = DEFAULT_TIMEOUT) -> TaskResult:
    """Send claim / release / complete to the case's workflow (any process: they share these Updates)."""
    return await _update(client, case_id, f"{action}_task", command, TaskResult, update_id=update_id,
                         timeout=timeout)


async def update_case(client: Client, case_id: str, name: str, arg: Any, *, update_id: str = "",
                      timeout: float = DEFAULT_TIMEOUT) -> TaskResult:
    """Another Update of a case's workflow that answers with a TaskResult (e.g. ``add_action``)."""
    return await _update(client, case_id, name, arg, TaskResult, update_id=update_id, timeout=timeout)


def update_id_of(principal: Principal, what: str, idempotency_key: str | None) -> str:
    """The Temporal Update id of a change: from the caller's Idempotency-Key (and who they are, and what the change
    is), so a retry is the same Update and Temporal applies it once; without a key, a new one each time."""
    if not idempotency_key:
        return f"{what}:{uuid.uuid4().hex}"
    return f"{what}:{request_digest(principal, idempotency_key)}"


def request_digest(principal: Principal, idempotency_key: str, secret: str = "") -> str:
    """A digest of who asked and their Idempotency-Key: the same for a retry, never the key or a person itself.
    With ``secret`` (the app's secret key) it is an HMAC, which nobody without the secret can link to a person."""
    message = f"{principal.user_ref}\0{idempotency_key}".encode()
    if secret:
        return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]
    return hashlib.sha256(message).hexdigest()[:32]


async def _update(client: Client, case_id: str, name: str, arg: Any, result_type: type, *, update_id: str = "",
                  timeout: float = DEFAULT_TIMEOUT) -> Any:
    """Run an Update within ``timeout`` seconds; its validator's refusal becomes an ApiError (nothing recorded)."""
    deadline = asyncio.get_running_loop().time() + timeout
    return await _bounded_update(client, case_id, name, arg, result_type, update_id=update_id or None,
                                 deadline=deadline)


async def _bounded_update(client: Client, case_id: str, name: Any, arg: Any, result_type: type, *,
                          update_id: str | None, deadline: float) -> Any:
    """An Update in two bounded steps: until the workflow ACCEPTS it (its validator passed and it is in the history),
    else ``NotApplied`` (503: not applied, try again with the same Idempotency-Key); then until it completes, else
    ``StillApplying`` (202: it will be applied, as accepted Updates always are).

    Temporal's semantics, honestly: an Update the workflow has not accepted yet may still be accepted and applied
    when the worker returns (the server holds it meanwhile). So the 503 tells the caller to retry with the same key:
    the retry is the same Update id, which Temporal never applies twice."""
    loop = asyncio.get_running_loop()
    handle = client.get_workflow_handle(case_id)
    args = [] if arg is None else [arg]
    try:
        remaining = max(0.05, deadline - loop.time())
        async with asyncio.timeout(remaining):
            update = await handle.start_update(name, args=args, id=update_id, result_type=result_type,
                                               wait_for_stage=WorkflowUpdateStage.ACCEPTED,
                                               rpc_timeout=timedelta(seconds=remaining))
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        raise NotApplied("the change was not applied: the case's workflow did not take it in time") from None
    except WorkflowUpdateFailedError as exc:
        _refused(exc)
    except RPCError as exc:
        _rpc_failed(exc)
    except RuntimeError:  # what the SDK raises when it cannot connect at all
        raise NotApplied("the change was not applied: the workflow service could not be reached") from None
    try:
        async with asyncio.timeout(max(0.05, deadline - loop.time())):
            return await update.result()
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        raise StillApplying(case_id, "the change was accepted and will be applied shortly") from None
    except WorkflowUpdateFailedError as exc:
        _refused(exc)
    except RPCError as exc:
        _rpc_failed(exc)


def _refused(exc: WorkflowUpdateFailedError) -> NoReturn:
    cause = exc.cause
    if isinstance(cause, ApplicationError) and cause.details:
        info = cause.details[0] if isinstance(cause.details[0], dict) else {}
        kind = info.get("kind", cause.type or "invalid")
        fields = [FieldError(**f) for f in info.get("fields", [])]
        raise ApiError(_KIND_STATUS.get(kind, 422), kind, cause.message, fields) from None
    raise ApiError(422, "invalid", str(cause or exc)) from None


def _rpc_failed(exc: RPCError) -> NoReturn:
    if exc.status == RPCStatusCode.NOT_FOUND:
        raise ApiError(409, "case_closed", "this case is closed; its tasks can no longer be changed") from None
    raise NotApplied("the change was not applied: the workflow service could not be reached") from None


# --- reading the read model ------------------------------------------------------------------------------------


def _loads(text: str) -> Any:
    return json.loads(text) if text else None


def case_summary(case: Case) -> dict[str, Any]:
    return {
        "id": case.id, "partnership_id": case.partnership_id, "case_ref": case.case_ref, "process": case.process,
        "category": case.category, "status": case.status, "stage": case.stage,
        "arrangements_version": case.arrangements_version, "aware_date": case.aware_date,
        "notification_due": case.notification_due, "notification_sent_on": case.notification_sent_on,
        "notification_days_late": case.notification_days_late,
        "rapid_review_required": case.rapid_review_required, "rapid_review_due": case.rapid_review_due,
        "rapid_review_submitted_on": case.rapid_review_submitted_on,
        "rapid_review_days_late": case.rapid_review_days_late, "lcspr_decision": case.lcspr_decision,
        "panel_response": case.panel_response, "overdue_tasks": case.overdue_tasks,
        "opened_at": case.opened_at, "closed_at": case.closed_at,
    }


def task_out(task: Task, today: date | None = None) -> dict[str, Any]:
    return {
        "case_id": task.case_id, "key": task.key, "type": task.type, "title": task.title, "form": task.form,
        "for": task.candidate_label, "candidate_role": task.candidate_role, "status": task.status,
        "due_date": task.due_date, "follow_up_date": task.follow_up_date, "overdue": task.overdue,
        "claimed_by": task.claimed_by, "completed_by": task.completed_by, "completed_at": task.completed_at,
        "days_late": task.days_late, "data": _loads(task.data),
    }


# Built once (Core statements over whole rows): the case page runs them on every view and every poll.
_CASE = sql_select(_cases).where(_cases.c.id == bindparam("case_id"))
# A case's tasks and timeline, in page order (the case page adds the names of the people they name to these)
CASE_TASKS = (sql_select(_tasks).where(_tasks.c.case_id == bindparam("case_id"))
              .order_by(_tasks.c.opened_at, _tasks.c.key))
CASE_EVENTS = sql_select(_events).where(_events.c.case_id == bindparam("case_id")).order_by(_events.c.seq)


def load_case(engine: Engine, principal: Principal, case_id: str) -> tuple[Row, list[Row], list[Row]]:
    """One case with its tasks and timeline, if the principal may see it (else 404, never 403: no probing).

    Rows of ``case``, ``task`` and ``case_event``: read-only, with the columns as attributes (``case.case_ref``)."""
    with engine.connect() as conn:
        case = visible_case(conn, principal, case_id)
        tasks = conn.execute(CASE_TASKS, {"case_id": case_id}).all()
        events = conn.execute(CASE_EVENTS, {"case_id": case_id}).all()
    return case, list(tasks), list(events)


def visible_case(conn: Connection, principal: Principal, case_id: str, *, what: str = "case",
                 processes: tuple[str, ...] | None = None) -> Row:
    """The ``case`` row, if the principal may read it (``may_read_case``; else 404, as ``load_case``), on an open
    connection: the case page reads the rest of the case on the same one."""
    case = conn.execute(_CASE, {"case_id": case_id}).first() if len(case_id) <= 140 else None
    if (case is None or (processes is not None and case.process not in processes)
            or not may_read_case(conn, principal, case)):
        raise ApiError(404, "not_found", f"no {what} ‘{case_id}’")
    return case


def case_detail(engine: Engine, principal: Principal, case_id: str) -> dict[str, Any]:
    case, tasks, events = load_case(engine, principal, case_id)
    return {**case_summary(case), "children": _loads(case.children), "summary": case.summary,
            "agencies": _loads(case.agencies), "opened_by": case.opened_by,
            "tasks": [task_out(t) for t in tasks],
            "timeline": [{"at": e.at, "actor": e.actor, "kind": e.kind, "task": e.task_key, "message": e.message}
                         for e in events]}


def list_cases(engine: Engine, principal: Principal, *, status: str | None = None, overdue: bool | None = None,
               limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    if principal.partnership_id is None and not principal.is_admin:
        return []
    query = select(Case)
    if not principal.is_admin:
        query = query.where(Case.partnership_id == principal.partnership_id)
        with engine.connect() as conn:
            readable = readable_cases_where(conn, principal, principal.partnership_id)
        if readable is not None:  # the rest of the partnership does not see the case at all (may_read_case)
            query = query.where(readable)
    if status:
        query = query.where(Case.status == status)
    if overdue is not None:
        query = query.where((Case.overdue_tasks > 0) if overdue else (Case.overdue_tasks == 0))
    with Session(engine) as session:
        rows = session.exec(query.order_by(Case.opened_at.desc()).offset(offset).limit(limit))
        return [case_summary(c) for c in rows]


def my_tasks_where(national: bool, by_overdue: bool) -> list[Any]:
    """Conditions on ``task`` for the tasks a principal may do (the inbox and the API share them).

    Their values are bound parameters (``my_tasks_params``), so a statement built on them once serves everyone:
    ``national`` for the national body (the Panel's tasks), ``by_overdue`` to filter on being overdue."""
    where = [Task.status == bindparam("mine_status")]
    if national:
        where.append(Task.candidate_role == NATIONAL_PANEL)
    else:
        mine = select(TaskCandidate.task_id).where(TaskCandidate.user_ref == bindparam("mine_user"))
        where += [Task.partnership_id == bindparam("mine_partnership"),
                  or_(Task.id.in_(mine), Task.claimed_by == bindparam("mine_user"))]
    if by_overdue:
        where.append(Task.overdue == bindparam("mine_overdue"))
    return where


def my_tasks_params(principal: Principal, status: str, overdue: bool | None) -> dict[str, Any]:
    """The values for ``my_tasks_where(principal.is_national, overdue is not None)``."""
    params: dict[str, Any] = {"mine_status": status}
    if not principal.is_national:
        params.update(mine_user=principal.user_ref, mine_partnership=principal.partnership_id)
    if overdue is not None:
        params["mine_overdue"] = overdue
    return params


def my_tasks(engine: Engine, principal: Principal, *, status: str = "open", overdue: bool | None = None,
             limit: int = 200, offset: int = 0) -> list[dict[str, Any]]:
    """Tasks the principal may do: theirs by role (or, for the national body, the Panel's), soonest due first."""
    query = select(Task).where(*my_tasks_where(principal.is_national, overdue is not None))
    with Session(engine) as session:
        rows = session.exec(query.order_by(Task.due_date.is_(None), Task.due_date, Task.opened_at, Task.id)
                            .offset(offset).limit(limit), params=my_tasks_params(principal, status, overdue))
        return [task_out(t) for t in rows]


# --- escalations -------------------------------------------------------------------------------------------------


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
    known = {p["id"] for p in doc["safeguarding_partners"]} | {a["id"] for a in doc.get("relevant_agencies", [])}
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
        raise ApiError(422, "invalid", f"{len(errors)} problem(s) in the escalation", errors)
    request_key = request_digest(principal, idempotency_key) if idempotency_key else ""
    # a made-up reference comes from the Idempotency-Key, so a retried request is the same workflow id
    reference = body.reference or f"D-{(request_key or uuid.uuid4().hex)[:8].upper()}"
    inp = ladder_input(doc, version.number, body, principal, reference, datetime.now(UTC))
    case_id = ladder_workflow_id(partnership_id, reference)
    return case_id, await start_case(client, EscalationLadder.run, EscalationLadder.opened, inp, case_id=case_id,
                                     task_queue=task_queue, partnership_id=partnership_id, process="escalation",
                                     reference=reference, what="escalation", request_key=request_key,
                                     timeout=timeout)


async def withdraw_escalation(client: Client, case_id: str, principal: Principal, reason: str, *,
                              update_id: str = "", timeout: float = DEFAULT_TIMEOUT) -> str:
    from safeguarding.case_records import WithdrawCommand

    return await _update(client, case_id, "withdraw", WithdrawCommand(actor=actor_of(principal), reason=reason), str,
                         update_id=update_id, timeout=timeout)


# --- everyday learning -----------------------------------------------------------------------------------------


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
                                 message=f"cannot be in the future (today is {today.isoformat()})"))
    known = {p["id"] for p in doc["safeguarding_partners"]} | {a["id"] for a in doc.get("relevant_agencies", [])}
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
        raise ApiError(422, "invalid", f"{len(errors)} problem(s) in the learning event", errors)
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


def count_cases(engine: Engine, partnership_id: str) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(Case).where(Case.partnership_id == partnership_id)).one()


def result_out(result: TaskResult) -> dict[str, Any]:
    return asdict(result)
