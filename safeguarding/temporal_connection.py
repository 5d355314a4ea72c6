"""Connecting to Temporal, with errors a person can act on, and our custom search attributes.

Every client we create (worker, web app, rebuild, the command line) goes through ``connect``, which plugs in
the payload codec (``safeguarding/payload_codec.py``): what Temporal stores is encrypted. Search attributes are
stored unencrypted: they never hold personal data (ids, process names and case references only).
"""

from __future__ import annotations

import asyncio

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from safeguarding.settings import Settings

# name -> Temporal type (``temporal server start-dev --search-attribute NAME=TYPE`` spelling)
SEARCH_ATTRIBUTES: dict[str, str] = {
    "SgPartnership": "Keyword",
    "SgProcess": "Keyword",
    "SgCaseRef": "Keyword",
}


class TemporalUnavailableError(RuntimeError):
    """Temporal cannot be reached at the configured address; the message says what to do."""


async def connect(settings: Settings, *, timeout: float = 10.0) -> Client:
    from safeguarding.payload_codec import converter_for

    kwargs: dict = {"namespace": settings.temporal_namespace, "data_converter": converter_for(settings)}
    if settings.temporal_api_key:
        kwargs.update(api_key=settings.temporal_api_key, tls=True)
    try:
        return await asyncio.wait_for(Client.connect(settings.temporal_address, **kwargs), timeout)
    except (TimeoutError, RuntimeError, RPCError, OSError) as exc:
        raise TemporalUnavailableError(
            f"cannot reach Temporal at {settings.temporal_address} (namespace "
            f"‘{settings.temporal_namespace}’): {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}. "
            "Check TEMPORAL_ADDRESS, or run `sgflow up` to start an embedded server."
        ) from exc


async def is_serving(settings: Settings, *, timeout: float = 2.0) -> bool:
    try:
        client = await connect(settings, timeout=timeout)
        return await asyncio.wait_for(client.service_client.check_health(), timeout)
    except (TemporalUnavailableError, TimeoutError, RPCError, RuntimeError):
        return False


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Register our search attributes on a server that lacks them ("already there" is success)."""
    try:
        existing = (await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace))).custom_attributes
    except RPCError as exc:  # the time-skipping test server cannot list; adding is idempotent enough
        if exc.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        existing = {}
    missing = {name: kind for name, kind in SEARCH_ATTRIBUTES.items() if name not in existing}
    if not missing:
        return
    types = {"Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD}
    try:
        await client.operator_service.add_search_attributes(AddSearchAttributesRequest(
            namespace=namespace, search_attributes={n: types[k] for n, k in missing.items()}))
    except RPCError as exc:
        if "already" not in str(exc).lower():
            raise
