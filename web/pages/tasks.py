"""A task of a case (``/cases/{case_id}/tasks/{key}``): its page, its form, claiming and releasing it."""

from __future__ import annotations

from fastapi import APIRouter, Request

from web.deps import PagePrincipal
from web.pages import bounded_page
from web.views.tasks import (
    claim_or_release,
    complete_task_form,
    task_response,
)

router = APIRouter(include_in_schema=False)


@router.post("/cases/{case_id}/tasks/{key}/claim")
@bounded_page
async def claim(request: Request, case_id: str, key: str, principal: PagePrincipal):
    return await claim_or_release(request, principal, case_id, key, "claim")


@router.post("/cases/{case_id}/tasks/{key}/release")
@bounded_page
async def release(request: Request, case_id: str, key: str, principal: PagePrincipal):
    return await claim_or_release(request, principal, case_id, key, "release")


@router.get("/cases/{case_id}/tasks/{key}")
def task_page(request: Request, case_id: str, key: str, principal: PagePrincipal):
    return task_response(request, principal, case_id, key)


@router.post("/cases/{case_id}/tasks/{key}")
@bounded_page
async def complete_task(request: Request, case_id: str, key: str,
                        principal: PagePrincipal):
    return await complete_task_form(request, case_id, key, principal)
