"""JSON API for arrangements: validate a document, store a version, list versions, read one, diff two."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from safeguarding.arrangements import MAX_DOCUMENT_BYTES, ArrangementsError, load
from safeguarding.audit_log import audit
from safeguarding.case_access import check_arrangements_readable
from safeguarding.versions import (
    VersionNotFoundError,
    diff,
    document_of,
    get_version,
    list_versions,
    store_version,
)
from safeguarding.wording import plural
from web.api import MAX_INT, READ, WRITE, error_responses
from web.deps import ApiPrincipal, DbEngine
from web.errors import ApiError, FieldError

router = APIRouter(prefix="/api", tags=["arrangements"])

DOC_BODY = {
    "requestBody": {
        "required": True,
        "description": "The arrangements document, as JSON (application/json) or YAML (application/yaml).",
        "content": {"application/json": {"schema": {"type": "object"}},
                    "application/yaml": {"schema": {"type": "string"}}},
    }
}
ERRORS = error_responses(*WRITE)
READ_ERRORS = error_responses(*READ)


async def read_limited_body(request: Request, limit: int = MAX_DOCUMENT_BYTES) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdecimal() and int(declared) > limit:
        raise ApiError(413, "too_large", f"the document is {int(declared):,} bytes; the limit is {limit:,} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too_large", f"the document is over the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _issues(exc: ArrangementsError) -> ApiError:
    fields = [FieldError(path=i.path, message=i.message, value=i.value) for i in exc.issues]
    return ApiError(422, "invalid_arrangements", f"{plural(len(fields), 'problem', 'problems')} in the arrangements",
                    fields)


async def _parse(request: Request) -> dict[str, Any]:
    body = await read_limited_body(request)
    try:
        return load(body, content_type=request.headers.get("content-type"))
    except ArrangementsError as exc:
        raise _issues(exc) from None


class ValidationResult(BaseModel):
    valid: bool
    partnership_id: str


class VersionOut(BaseModel):
    partnership_id: str
    number: int
    content_hash: str
    author: str
    change_note: str
    created_at: str
    created: bool | None = None


class ChangeOut(BaseModel):
    path: str
    kind: str
    old: Any = None
    new: Any = None
    text: str


def _out(row, created: bool | None = None) -> VersionOut:
    return VersionOut(partnership_id=row.partnership_id, number=row.number, content_hash=row.content_hash,
                      author=row.author, change_note=row.change_note, created_at=row.created_at.isoformat(),
                      created=created)


@router.post("/arrangements/validate", response_model=ValidationResult, openapi_extra=DOC_BODY, responses=ERRORS)
async def validate_arrangements(request: Request, _p: ApiPrincipal):
    """Check a document; 422 lists every problem with its JSON Pointer path. Stores nothing."""
    doc = await _parse(request)
    return ValidationResult(valid=True, partnership_id=doc["partnership"]["id"])


@router.post("/partnerships/{partnership_id}/arrangements", response_model=VersionOut, status_code=201,
             openapi_extra=DOC_BODY, responses={200: {"model": VersionOut}, **ERRORS})
async def store_arrangements(request: Request, principal: ApiPrincipal, engine: DbEngine, partnership_id: str,
                             note: str = Query("", max_length=2000, description="What changed and why.")):
    """Store the document as the partnership's next version (200 and nothing new when identical)."""
    if not principal.can_manage_arrangements(partnership_id):
        raise ApiError(403, "forbidden", "only the partnership's leads may change its arrangements")
    try:
        doc = await _parse(request)
        with Session(engine) as session:
            try:
                stored = store_version(session, partnership_id, doc, author=principal.email, change_note=note)
                session.commit()
            except ArrangementsError as exc:
                session.rollback()
                raise _issues(exc) from None
            out = _out(get_version(session, partnership_id, stored.number), created=stored.created)
    except ApiError as exc:
        await run_in_threadpool(audit, engine, principal, "arrangements.store", partnership_id=partnership_id,
                                outcome="rejected",
                                detail=f"{exc.code}: {exc.message}")
        raise
    await run_in_threadpool(audit, engine, principal, "arrangements.store", partnership_id=partnership_id,
          detail=f"v{stored.number}" if stored.created else f"unchanged (v{stored.number})")
    return JSONResponse(out.model_dump(), status_code=201 if stored.created else 200)


@router.get("/partnerships/{partnership_id}/arrangements", response_model=list[VersionOut], responses=READ_ERRORS)
def arrangements_versions(request: Request, engine: DbEngine, partnership_id: str, principal: ApiPrincipal):
    """Every version, newest first."""
    check_arrangements_readable(principal, partnership_id)
    with Session(engine) as session:
        rows = list_versions(session, partnership_id)
    if not rows:
        raise ApiError(404, "not_found", f"partnership ‘{partnership_id}’ has no arrangements")
    return [_out(r) for r in rows]


@router.get("/partnerships/{partnership_id}/arrangements/diff", response_model=list[ChangeOut], responses=READ_ERRORS)
def arrangements_diff(request: Request, principal: ApiPrincipal, engine: DbEngine, partnership_id: str,
                      from_: int = Query(..., alias="from",
                      ge=1, le=MAX_INT),
                      to: int = Query(..., ge=1, le=MAX_INT)):
    """What changed from version ``from`` to version ``to``."""
    check_arrangements_readable(principal, partnership_id)
    with Session(engine) as session:
        try:
            old, new = get_version(session, partnership_id, from_), get_version(session, partnership_id, to)
        except VersionNotFoundError as exc:
            raise ApiError(404, "not_found", str(exc)) from None
    return [ChangeOut(path=c.path, kind=c.kind, old=c.old, new=c.new, text=str(c))
            for c in diff(document_of(old), document_of(new))]


@router.get("/partnerships/{partnership_id}/arrangements/{number}", responses=READ_ERRORS)
def arrangements_version(request: Request, principal: ApiPrincipal, engine: DbEngine, partnership_id: str,
                         number: int = Path(ge=1, le=MAX_INT)) -> dict[str, Any]:
    """One version's document and its metadata."""
    check_arrangements_readable(principal, partnership_id)
    with Session(engine) as session:
        try:
            row = get_version(session, partnership_id, number)
        except VersionNotFoundError as exc:
            raise ApiError(404, "not_found", str(exc)) from None
    return {"version": _out(row).model_dump(), "document": document_of(row)}
