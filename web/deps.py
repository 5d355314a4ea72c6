"""What routes depend on, typed once (FastAPI ``Annotated`` dependencies).

A route names what it needs in its parameters and FastAPI supplies it: ``engine: DbEngine`` (the application
database), ``temporal: TemporalClient`` (the app's one Temporal client, made in the lifespan), ``settings:
AppSettings``, ``timeout: TemporalTimeout`` (how long a change through Temporal may take), ``principal: ApiPrincipal``
(the JSON API's caller: a session or HTTP Basic, else 401) or ``principal: PagePrincipal`` (a signed-in person, else
the sign-in page), ``case: VisibleCase`` (the ``{case_id}`` of the path, if the caller may read it, else 404).

The app's own objects come from ``async`` functions: they only read ``app.state``, so FastAPI calls them inline
rather than through its thread pool. Principals and cases read the database (sync, in the thread pool).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Row
from sqlalchemy.engine import Engine
from temporalio.client import Client

from safeguarding.accounts import Principal
from safeguarding.case_access import readable_case
from safeguarding.settings import Settings
from web.auth import require_page_principal, require_principal


def engine_of(request: Request) -> Engine:
    """The app's database engine (for helpers that have the request; routes take ``DbEngine``)."""
    return request.app.state.engine


def timeout_of(request: Request) -> float:
    """How long a change through Temporal may take (for helpers that have the request; routes take
    ``TemporalTimeout``)."""
    return float(request.app.state.settings.temporal_timeout_seconds)


async def _engine(request: Request) -> Engine:
    return request.app.state.engine


async def _temporal(request: Request) -> Client:
    return request.app.state.temporal


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _timeout(request: Request) -> float:
    return float(request.app.state.settings.temporal_timeout_seconds)


DbEngine = Annotated[Engine, Depends(_engine)]
TemporalClient = Annotated[Client, Depends(_temporal)]
AppSettings = Annotated[Settings, Depends(_settings)]
TemporalTimeout = Annotated[float, Depends(_timeout)]
ApiPrincipal = Annotated[Principal, Depends(require_principal)]
PagePrincipal = Annotated[Principal, Depends(require_page_principal)]


def _visible_case(case_id: str, request: Request, principal: ApiPrincipal) -> Row:
    return readable_case(request.app.state.engine, principal, case_id)


VisibleCase = Annotated[Any, Depends(_visible_case)]
