"""The partnership's arrangements: the current version in words, its history, diff and editor. The outbox is
``web.pages.lead``.

Which partnership: the signed-in person's own, or ``?partnership=<id>`` (administrators, who have none, choose).
Reading follows the JSON API's rule (``case_access.check_arrangements_readable``): another partnership's people get a
404, never a 403, so they don't learn it exists. Only that partnership's leads (and administrators) may store
a version (``Principal.can_manage_arrangements``); everyone else sees read-only pages.

The editor takes a file (JSON or YAML) or pasted text, checks it with the one validator
(``safeguarding.arrangements.load``) and stores it with ``safeguarding.versions.store_version``. The request
body is read with a limit (``read_limited_body``, shared with the API); an oversized upload is read on and
thrown away (up to ``DRAIN_LIMIT``) so the browser gets the page that says so. Every store attempt is
audited as ``arrangements.store`` (ok / rejected), like the API's.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from safeguarding.accounts import Principal
from safeguarding.arrangements import MAX_DOCUMENT_BYTES, ArrangementsError, ValidationIssue, line_of, load
from safeguarding.audit_log import audit
from safeguarding.case_access import check_arrangements_readable
from safeguarding.tables import ArrangementsVersion, Partnership
from safeguarding.versions import VersionNotFoundError, diff, document_of, get_version, list_versions, store_version
from safeguarding.yearly_report import publish_by_warning
from web.api import MAX_INT
from web.api.arrangements import read_limited_body
from web.deps import DbEngine, PagePrincipal
from web.errors import ApiError, error_page
from web.pages import page_context
from web.session import replay
from web.templating import is_fragment_request, render
from web.views.common import aware
from web.views.lead import arrangements_summary, not_found, small_int

router = APIRouter(include_in_schema=False)

FORM_OVERHEAD = 64 * 1024  # the change note, the token and the multipart boundaries
BODY_LIMIT = 2 * MAX_DOCUMENT_BYTES + FORM_OVERHEAD  # a file and pasted text, each checked against the limit
DRAIN_LIMIT = 32 * 1024 * 1024  # beyond this an oversized upload is not read on: the connection is dropped
NOTE_MAX = 2000


# --- shared bits -----------------------------------------------------------------------------------------------


def _may_read(principal: Principal, partnership_id: str) -> bool:
    try:
        check_arrangements_readable(principal, partnership_id)  # the API's rule, so pages and API agree
    except ApiError:
        return False
    return True


def _choose_partnership(request: Request, principal: Principal, target: str) -> Response:
    """For people with no partnership of their own (administrators): which one?"""
    with Session(request.app.state.engine) as session:
        rows = session.exec(select(Partnership).order_by(Partnership.name)).all()
    return render(request, "lead/choose_partnership.html", page_context(
        request, principal, page_title="Choose a partnership", target=target,
        partnerships=[{"id": p.id, "name": p.name} for p in rows]))


def _version_out(row: ArrangementsVersion) -> dict[str, Any]:
    return {"number": row.number, "author": row.author, "change_note": row.change_note,
            "created_at": aware(row.created_at), "content_hash": row.content_hash,
            "hash_short": row.content_hash[:12]}


# --- arrangements: reading -------------------------------------------------------------------------------------


def _resolve(request: Request, principal: Principal, partnership: str | None) -> str | None:
    """The partnership a page is about, or None when the person may not read it (or must choose)."""
    pid = partnership or principal.partnership_id
    if pid is None or not _may_read(principal, pid):
        return None
    return pid


def _partnership_of_page(request: Request, principal: Principal, partnership: str | None,
                         target: str) -> str | Response:
    """The partnership a page is about; else the page that asks an administrator to choose one, or not found."""
    if partnership is None and principal.partnership_id is None and principal.is_admin:
        return _choose_partnership(request, principal, target)
    return _resolve(request, principal, partnership) or not_found(request)


def _query(pid: str, principal: Principal) -> str:
    """``?partnership=`` for links, only when it isn't the person's own."""
    return "" if pid == principal.partnership_id else f"partnership={quote(pid)}"


@router.get("/arrangements")
def arrangements(request: Request, principal: PagePrincipal, engine: DbEngine,
                 partnership: str | None = None) -> Response:
    """The current version in words, the version history and a form to compare two versions."""
    pid = _partnership_of_page(request, principal, partnership, "/arrangements")
    if isinstance(pid, Response):
        return pid
    with Session(engine) as session:
        rows = list_versions(session, pid)
    if not rows:
        return not_found(request)
    current = rows[0]
    doc = document_of(current)
    return render(request, "lead/arrangements.html", page_context(
        request, principal, page_title="Arrangements", pid=pid, q=_query(pid, principal),
        yearly_report_warning=publish_by_warning(doc),
        current=_version_out(current), versions=[_version_out(r) for r in rows],
        summary=arrangements_summary(doc), can_edit=principal.can_manage_arrangements(pid)))


@router.get("/arrangements/diff")
def arrangements_diff(request: Request, principal: PagePrincipal, engine: DbEngine, partnership: str | None = None,
                      from_: str | None = Query(None, alias="from"), to: str | None = None) -> Response:
    """What changed between two versions, one change a row (as ``safeguarding.versions.diff`` gives)."""
    pid = _resolve(request, principal, partnership)
    if pid is None:
        return not_found(request)
    with Session(engine) as session:
        rows = list_versions(session, pid)
        if not rows:
            return not_found(request)
        latest = rows[0].number
        new_n = small_int(to) or latest
        old_n = small_int(from_) or max(1, new_n - 1)
        try:
            old, new = get_version(session, pid, old_n), get_version(session, pid, new_n)
        except VersionNotFoundError:
            return not_found(request)
    changes = [{"path": c.path, "kind": c.kind,
                "old": None if c.kind == "added" else json.dumps(c.old, ensure_ascii=False),
                "new": None if c.kind == "removed" else json.dumps(c.new, ensure_ascii=False)}
               for c in diff(document_of(old), document_of(new))]
    return render(request, "lead/arrangements_diff.html", page_context(
        request, principal, page_title=f"Changes from version {old_n} to version {new_n}", pid=pid,
        q=_query(pid, principal), old=_version_out(old), new=_version_out(new), changes=changes,
        numbers=[r.number for r in rows]))


# --- arrangements: the editor ----------------------------------------------------------------------------------


def _editor_context(request: Request, principal: Principal, pid: str, **context: Any) -> dict[str, Any]:
    q = _query(pid, principal)
    return page_context(request, principal, page_title="Change the arrangements", pid=pid, q=q,
                        action="/arrangements/edit" + (f"?{q}" if q else ""), max_bytes=MAX_DOCUMENT_BYTES,
                        note_max=NOTE_MAX, **context)


def _cannot_edit(request: Request, principal: Principal, pid: str) -> Response:
    q = _query(pid, principal)
    return error_page(request, 403, "Only the partnership’s leads can store a new version of its arrangements. "
                      "Nothing was stored.", heading="You cannot change these arrangements",
                      links=[{"text": "Read the arrangements and every earlier version",
                              "href": "/arrangements" + (f"?{q}" if q else "")}])


@router.get("/arrangements/edit")
def arrangements_editor(request: Request, principal: PagePrincipal, engine: DbEngine,
                        partnership: str | None = None) -> Response:
    """Upload a file or paste the document; the current version is in the box to start from."""
    pid = _partnership_of_page(request, principal, partnership, "/arrangements/edit")
    if isinstance(pid, Response):
        return pid
    if not principal.can_manage_arrangements(pid):
        return _cannot_edit(request, principal, pid)
    with Session(engine) as session:
        try:
            current = get_version(session, pid)
        except VersionNotFoundError:
            current = None
    text = json.dumps(document_of(current), indent=2, ensure_ascii=False) if current else ""
    return render(request, "lead/arrangements_edit.html", _editor_context(
        request, principal, pid, text=text, note="", issues=[], current=_version_out(current) if current else None,
        yearly_report_warning=publish_by_warning(document_of(current)) if current else None), block="editor")


async def _drain(request: Request) -> int:
    """Read and discard the rest of an oversized body (bounded), so the browser reads our answer."""
    declared = request.headers.get("content-length", "")
    if declared.isdecimal() and int(declared) > DRAIN_LIMIT:
        return int(declared)
    size = 0
    while size <= DRAIN_LIMIT:
        message = await request.receive()
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return int(declared) if declared.isdecimal() else size


def _too_large(size: int | None) -> ValidationIssue:
    got = f" ({size:,} bytes, {size / 1_000_000:.1f} MB)" if size else ""
    return ValidationIssue("", None, f"The upload is too large{got}. The limit is {MAX_DOCUMENT_BYTES:,} bytes "
                                     "(1 MB) for the document; arrangements are normally well under 100 KB, so "
                                     "check it is the right file. Nothing was stored.")


async def _submitted(request: Request) -> tuple[str | bytes | None, str | None, str, str]:
    """(document, its file name, the pasted text, the note) from the form; ArrangementsError when too large."""
    try:
        body = await read_limited_body(request, BODY_LIMIT)
    except ApiError as exc:
        if exc.status != 413:
            raise
        declared = request.headers.get("content-length", "")
        await _drain(request)
        raise ArrangementsError(_too_large(int(declared) if declared.isdecimal() else None)) from None
    form = await Request(request.scope, receive=replay(body)).form(max_files=1, max_fields=20,
                                                                    max_part_size=BODY_LIMIT)
    try:
        upload, pasted, note = form.get("file"), form.get("document"), form.get("note")
        pasted = pasted if isinstance(pasted, str) else ""
        note = note.strip()[:NOTE_MAX] if isinstance(note, str) else ""
        if isinstance(upload, UploadFile) and upload.filename:
            data = await upload.read(MAX_DOCUMENT_BYTES + 1)
            if len(data) > MAX_DOCUMENT_BYTES:
                size = upload.size if upload.size is not None else None
                raise ArrangementsError(_too_large(size))
            if data:
                return data, upload.filename, pasted, note
        return (pasted or None), None, pasted, note
    finally:
        await form.close()


@router.post("/arrangements/edit")
async def arrangements_store(request: Request, principal: PagePrincipal, engine: DbEngine,
                             partnership: str | None = None) -> Response:
    """Check the document with the one validator; store it as the next version when it is valid and new."""
    pid = _resolve(request, principal, partnership)
    if pid is None:
        await _drain(request)
        return not_found(request)
    if not principal.can_manage_arrangements(pid):
        await _drain(request)
        await run_in_threadpool(audit, engine, principal, "arrangements.store", partnership_id=pid, outcome="rejected",
              detail="forbidden: only the partnership's leads may change its arrangements")
        return _cannot_edit(request, principal, pid)
    text, note, filename = "", "", None
    try:
        document, filename, text, note = await _submitted(request)
        if document is None:
            raise ArrangementsError(ValidationIssue("", None, "Choose a file or paste the arrangements into the "
                                                              "box: there was nothing to check."))
        doc = load(document, filename=filename)
        with Session(engine) as session:
            try:
                stored = store_version(session, pid, doc, author=principal.email, change_note=note)
                session.commit()
            except ArrangementsError:
                session.rollback()
                raise
    except ArrangementsError as exc:
        too_large = any(i.message.startswith("The upload is too large") for i in exc.issues)
        await run_in_threadpool(audit, engine, principal, "arrangements.store", partnership_id=pid, outcome="rejected",
              detail=f"{'too_large' if too_large else 'invalid_arrangements'}: {exc}")
        status = 413 if too_large and not is_fragment_request(request) else 422  # htmx swaps 422 only
        issues = [{"n": n, "path": i.path or "(whole document)", "message": i.message,
                   "value": None if i.value is None else json.dumps(i.value, ensure_ascii=False),
                   # the line in the box, which the editor leads to (issue 17.7); not for an uploaded file
                   "line": line_of(text, i) if text and filename is None else None}
                  for n, i in enumerate(exc.issues, start=1)]
        return render(request, "lead/arrangements_edit.html", _editor_context(
            request, principal, pid, text=text, note=note, issues=issues, current=None, page_has_errors=True),
            block="editor", status_code=status)
    if not stored.created:
        await run_in_threadpool(audit, engine, principal, "arrangements.store", partnership_id=pid,
                                detail=f"unchanged (v{stored.number})")
        return render(request, "lead/arrangements_edit.html", _editor_context(
            request, principal, pid, text=text, note=note, issues=[], current=None, unchanged=stored.number),
            block="editor")
    await run_in_threadpool(audit, engine, principal, "arrangements.store", partnership_id=pid,
                            detail=f"v{stored.number}")
    q = _query(pid, principal)
    target = f"/arrangements/{stored.number}?{q + '&' if q else ''}stored=1"
    if is_fragment_request(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


@router.get("/arrangements/{number:int}")
def arrangements_version(request: Request, principal: PagePrincipal, engine: DbEngine, number: int = Path(le=MAX_INT),
                         partnership: str | None = None,
                         stored: str | None = None) -> Response:
    """One version: who stored it, when and why, and its document (pretty JSON)."""
    pid = _resolve(request, principal, partnership)
    if pid is None:
        return not_found(request)
    with Session(engine) as session:
        try:
            row = get_version(session, pid, number)
        except VersionNotFoundError:
            return not_found(request)
        latest = get_version(session, pid).number
    text = json.dumps(document_of(row), indent=2, ensure_ascii=False, sort_keys=False)
    return render(request, "lead/arrangements_version.html", page_context(
        request, principal, page_title=f"Arrangements version {number}", pid=pid, q=_query(pid, principal),
        version=_version_out(row), latest=latest, text=text, stored=stored == "1"))
