"""The outbox (``/outbox``): a partnership's emails, newest first, for its leads (administrators: every partnership's,
or ``?partnership=<id>``). The arrangements pages are ``web.pages.arrangements``."""

from __future__ import annotations

import json
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import func
from sqlmodel import Session, select

from safeguarding.case_records import REPORTER
from safeguarding.tables import OutboxMessage, Partnership
from web.deps import AppSettings, DbEngine, PagePrincipal
from web.errors import error_page
from web.pages import page_context
from web.templating import render
from web.views.common import aware
from web.views.lead import not_found, small_int

router = APIRouter(include_in_schema=False)

OUTBOX_PAGE_SIZE = 25
OUTBOX_KINDS = ("partnership_lead", "administrator")
STATUS_TAGS = {"queued": ("Queued", "govuk-tag--blue"), "sent": ("Sent", "govuk-tag--green"),
               "held": ("Held", "govuk-tag--yellow"), "failed": ("Failed", "govuk-tag--red")}


def _partnership_name(session: Session, partnership_id: str) -> str | None:
    row = session.get(Partnership, partnership_id)
    return row.name if row is not None else None


def _addresses(text: str) -> list[str]:
    try:
        value = json.loads(text)
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


def _recipients(message: OutboxMessage) -> list[str]:
    """Who an email went to, as the outbox shows it. Feedback on a learning event goes to "the reporter": their
    address would name them, and a reporter's identity is for the learning lead's own page only."""
    if any(ref.startswith(REPORTER) for ref in _addresses(message.to_user_refs)):
        return ["the person who reported the learning event"]
    return _addresses(message.to_addresses)


@router.get("/outbox")
def outbox(request: Request, principal: PagePrincipal, engine: DbEngine, settings: AppSettings, page: str | None = None,
           partnership: str | None = None) -> Response:
    """The partnership's emails, newest first: what was sent, what is held here, what failed and why."""
    if principal.kind not in OUTBOX_KINDS:
        return error_page(request, 403, "Only the partnership’s leads can read the emails the service sends.",
                          heading="You cannot see the outbox")
    if partnership and not principal.can_read(partnership):
        return not_found(request)
    pid = partnership or principal.partnership_id  # None: an administrator sees every partnership's
    query, count = select(OutboxMessage), select(func.count()).select_from(OutboxMessage)
    if pid:
        query = query.where(OutboxMessage.partnership_id == pid)
        count = count.where(OutboxMessage.partnership_id == pid)
    with Session(engine) as session:
        total = session.exec(count).one()
        pages = max(1, -(-total // OUTBOX_PAGE_SIZE))
        page = min(max(small_int(page) or 1, 1), pages)
        rows = session.exec(query.order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
                            .offset((page - 1) * OUTBOX_PAGE_SIZE).limit(OUTBOX_PAGE_SIZE)).all()
        name = _partnership_name(session, pid) if pid else None
    if pid and name is None:
        return not_found(request)
    messages = [{"id": m.id, "to": _recipients(m), "subject": m.subject, "body": m.body,
                 "status": m.status, "tag": STATUS_TAGS.get(m.status, (m.status, "govuk-tag--grey")),
                 "last_error": m.last_error, "attempts": m.attempts, "created_at": aware(m.created_at),
                 "sent_at": aware(m.sent_at), "partnership_id": m.partnership_id, "case_id": m.case_id}
                for m in rows]
    base = "/outbox?" + (f"partnership={quote(pid)}&" if partnership else "")
    return render(request, "lead/outbox.html", page_context(
        request, principal, page_title="Outbox", messages=messages, total=total, page=page, pages=pages,
        first=(page - 1) * OUTBOX_PAGE_SIZE + 1, last=(page - 1) * OUTBOX_PAGE_SIZE + len(messages),
        previous_href=f"{base}page={page - 1}" if page > 1 else None,
        next_href=f"{base}page={page + 1}" if page < pages else None,
        partnership_name=name, all_partnerships=pid is None,
        smtp_configured=bool(getattr(settings, "smtp_host", None))), block="messages")
