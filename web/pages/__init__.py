"""HTML pages (GOV.UK Design System, htmx). Each module is one router; ``web.app`` includes them all.

``page_context`` gives every page what ``base.html`` needs: the signed-in user, the navigation for their
kind of account, and the CSRF token their forms and htmx requests send back.
"""

from __future__ import annotations

import functools
import re
import uuid
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from safeguarding.accounts import Principal

NAV: dict[str, list[tuple[str, str]]] = {
    "reviewer": [("My tasks", "/tasks"), ("Cases", "/cases"), ("Escalations", "/escalations"),
                 ("Local reviews", "/reviews"), ("Record learning", "/learning/new"),
                 ("Learning themes", "/learning/themes")],
    "partnership_lead": [("My tasks", "/tasks"), ("Cases", "/cases"), ("Record an incident", "/incidents/new"),
                         ("Escalations", "/escalations"), ("Local reviews", "/reviews"), ("Learning", "/learning"),
                         ("Yearly report", "/yearly-report"), ("Outbox", "/outbox"), ("Arrangements", "/arrangements")],
    "scrutineer": [("My tasks", "/tasks"), ("Cases", "/cases"), ("Escalations", "/escalations"),
                   ("Local reviews", "/reviews"), ("Learning themes", "/learning/themes"),
                   ("Yearly report", "/yearly-report"), ("Arrangements", "/arrangements")],
    "national_body": [("Overview", "/national"), ("Monitoring", "/national/monitoring"), ("Panel tasks", "/tasks"),
                      ("Learning", "/national/learning")],
    "administrator": [("Cases", "/cases"), ("Arrangements", "/arrangements")],
}


def nav_items(principal: Principal | None, path: str) -> list[dict[str, Any]]:
    if principal is None:
        return []
    items = NAV.get(principal.kind, [])
    matches = [href for _, href in items if path == href or path.startswith(href + "/")]
    active = max(matches, key=len, default=None)  # /national/learning is "Learning", not also "Overview"
    return [{"text": text, "href": href, "active": href == active} for text, href in items]


def page_context(request: Request, principal: Principal | None, **context: Any) -> dict[str, Any]:
    from web.session import csrf_token

    values = context.get("values") if isinstance(context.get("values"), dict) else {}
    return {"current_user": principal, "nav_items": nav_items(principal, request.url.path),
            "csrf_token": csrf_token(request), "form_key": form_key(values), **context}


def form_key(values: dict[str, Any] | None = None) -> str:
    """The idempotency key a form that changes a case carries (hidden field ``idempotency_key``): the one it was
    sent with when it is shown again (after an error, or a "not saved yet, try again"), else a new one. Sending the
    same form twice is then one change (``safeguarding.case_commands.update_id_of``)."""
    sent = str((values or {}).get("idempotency_key", ""))
    return sent if FORM_KEY.fullmatch(sent) else uuid.uuid4().hex


FORM_KEY = re.compile(r"[0-9a-f]{32}")


def bounded_page(func):
    """For page routes whose form changes a case through Temporal: when the workflow service is slow or away the
    person gets a GOV.UK page saying what happened, never a 500 nor a hang (``refusals.NotApplied``: 503 "not
    saved yet, try again", with Retry-After; ``refusals.StillApplying``: 202 "accepted, will be applied")."""

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        from safeguarding.refusals import NotApplied, StillApplying

        try:
            return await func(*args, **kwargs)
        except NotApplied as exc:
            return outcome_page(kwargs["request"], kwargs.get("principal"), accepted=False, message=exc.message,
                                status_code=503, headers=exc.headers)
        except StillApplying as exc:
            return outcome_page(kwargs["request"], kwargs.get("principal"), accepted=True, message=exc.message,
                                status_code=202)

    return wrapper


def outcome_page(request: Request, principal: Principal | None, *, accepted: bool, message: str, status_code: int,
                 headers: dict[str, str] | None = None) -> Response:
    from web.templating import render

    back = request.url.path  # the form's own page (its GET shows the form again)
    context = page_context(request, principal, page_title="Accepted" if accepted else "Not saved yet",
                           accepted=accepted, message=message, back_href=back)
    return render(request, "outcome.html", context, block="content", status_code=status_code, headers=headers)
