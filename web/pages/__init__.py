"""HTML pages (GOV.UK Design System, htmx). Each module is one router; ``web.app`` includes them all.

``page_context`` gives every page what ``base.html`` needs: the signed-in user, the navigation for their
kind of account, and the CSRF token their forms and htmx requests send back.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from safeguarding.accounts import Principal

NAV: dict[str, list[tuple[str, str]]] = {
    "reviewer": [("My tasks", "/tasks"), ("Cases", "/cases"), ("Escalations", "/escalations"),
                 ("Local reviews", "/reviews"), ("Record learning", "/learning/new"),
                 ("Learning themes", "/learning/themes")],
    "partnership_lead": [("My tasks", "/tasks"), ("Cases", "/cases"), ("Record an incident", "/incidents/new"),
                         ("Escalations", "/escalations"), ("Local reviews", "/reviews"), ("Learning", "/learning"),
                         ("Outbox", "/outbox"), ("Arrangements", "/arrangements")],
    "scrutineer": [("My tasks", "/tasks"), ("Cases", "/cases"), ("Escalations", "/escalations"),
                   ("Local reviews", "/reviews"), ("Learning themes", "/learning/themes"),
                   ("Arrangements", "/arrangements")],
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

    return {"current_user": principal, "nav_items": nav_items(principal, request.url.path),
            "csrf_token": csrf_token(request), **context}
