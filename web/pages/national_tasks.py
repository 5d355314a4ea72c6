"""The national Panel's tasks, reached by the case's national reference (``/national/cases/{ref}/tasks/{key}``),
never by the local case id."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from web.deps import DbEngine, PagePrincipal
from web.errors import ApiError
from web.pages import bounded_page
from web.views.tasks import (
    claim_or_release,
    complete_task_form,
    national_case_id,
    task_response,
)

router = APIRouter(include_in_schema=False)


@router.get("/national/cases/{national_ref}/tasks/{key}")
def national_task_page(request: Request, engine: DbEngine, national_ref: str, key: str,
                       principal: PagePrincipal):
    return task_response(request, principal, national_case_id(engine, principal, national_ref, key), key,
                         national_route=True)


@router.post("/national/cases/{national_ref}/tasks/{key}")
@bounded_page
async def national_complete_task(request: Request, engine: DbEngine, national_ref: str, key: str,
                                 principal: PagePrincipal):
    case_id = await run_in_threadpool(national_case_id, engine, principal, national_ref, key)
    return await complete_task_form(request, case_id, key, principal, national_route=True)


@router.post("/national/cases/{national_ref}/tasks/{key}/{action}")
@bounded_page
async def national_claim_or_release(request: Request, engine: DbEngine, national_ref: str, key: str, action: str,
                                    principal: PagePrincipal):
    if action not in ("claim", "release"):
        raise ApiError(404, "not_found", "no such page")
    case_id = await run_in_threadpool(national_case_id, engine, principal, national_ref, key)
    return await claim_or_release(request, principal, case_id, key, action, national_route=True)
