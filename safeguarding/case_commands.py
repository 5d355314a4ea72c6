"""Changes to cases, through Temporal: starting a case's workflow once (update-with-start, idempotent), and its
Updates (claim / release / complete a task, other changes), each bounded in time: ``NotApplied`` (503) when the
change was not taken, ``StillApplying`` (202) when it was taken but is not applied yet."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from contextlib import suppress
from datetime import timedelta
from typing import Any, NoReturn

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

from safeguarding.accounts import Principal
from safeguarding.case_records import Actor, TaskCommand, TaskResult
from safeguarding.refusals import ApiError, FieldError, NotApplied, StillApplying

DEFAULT_TIMEOUT = 10.0  # seconds; the app passes settings.temporal_timeout_seconds
MEMO_KEY = "sgflow_request"  # the workflow memo entry naming the request that started it (a digest)


def actor_of(principal: Principal) -> Actor:
    return Actor(user_ref=principal.user_ref, kind=principal.kind, partnership_id=principal.partnership_id,
                 display_name=principal.display_name)


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


async def withdraw_escalation(client: Client, case_id: str, principal: Principal, reason: str, *,
                              update_id: str = "", timeout: float = DEFAULT_TIMEOUT) -> str:
    from safeguarding.case_records import WithdrawCommand

    return await _update(client, case_id, "withdraw", WithdrawCommand(actor=actor_of(principal), reason=reason), str,
                         update_id=update_id, timeout=timeout)
