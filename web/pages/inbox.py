"""My tasks (``/tasks``): the tasks a person may do, or the national Panel's; polled by htmx (204 when nothing
changed)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from web.auth import (
    page_principal_on,
)
from web.deps import DbEngine
from web.views.inbox import inbox_filters, inbox_response, inbox_rows

router = APIRouter(include_in_schema=False)


@router.get("/tasks")
def tasks_page(request: Request, engine: DbEngine):
    params = request.query_params
    filters = inbox_filters(params)
    with engine.connect() as conn:  # one connection for the session check and the inbox
        # Checked here, not as a dependency: a sync dependency is a trip through the thread pool of its own.
        principal = page_principal_on(request, conn)
        listing = inbox_rows(engine, principal, filters, conn)
    return inbox_response(request, principal, filters, listing=listing,
                          known_rev=params.get("rev") if params.get("poll") == "1" else None)
