"""What every request and response goes through before the app sees it: trusted proxies, body size, headers.

Trusted proxies
    ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed only from the addresses in
    ``settings.trusted_proxies`` (IPs or CIDR networks; empty, the default: none), by uvicorn's own
    ``ProxyHeadersMiddleware`` added in ``create_app`` (``sgflow web`` runs uvicorn with ``proxy_headers=False``, so
    this is the only place that reads them). From anyone else the headers are ignored: a client cannot choose the
    address its sign-in attempts are counted under, the address written to the audit log, or make the app believe
    the request came over HTTPS (the session cookie's ``Secure`` flag and HSTS follow the real scheme).

Body size (``BodyLimitMiddleware``)
    A JSON, urlencoded or any other body is refused with 413 (the one error shape) before the app parses it or
    authenticates the request when it is over ``settings.max_json_kb``: a declared ``Content-Length`` over the
    limit is refused without reading a byte; a body without one (chunked) is read up to the limit and no further,
    then handed to the app whole (so the app never sees the start of a body that turns out too large). Multipart
    forms to the file endpoints (``UPLOAD_ROUTES``) may be up to ``settings.max_upload_mb`` (plus the form's
    overhead); they are not held in memory here but counted as the app reads them (Starlette spools files to disk),
    and the read that goes past the limit raises 413 instead of handing out more.

Security headers (``SecurityHeadersMiddleware``)
    Every response: ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``, ``Referrer-Policy:
    same-origin``, a Content-Security-Policy (pages: scripts and styles from this site only, no inline script but the
    GOV.UK template's one-line ``js-enabled`` script allowed by its hash, no framing; everything else:
    ``default-src 'none'``), ``Cache-Control: no-store`` on everything but ``/static`` (pages and API answers hold
    case data; no shared or back-button cache keeps them), and HSTS when the request came over HTTPS (as decided
    by the trusted-proxy rule). A header a route set itself (a download's sandbox CSP) is kept.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from collections.abc import Callable, Iterable

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MULTIPART_OVERHEAD = 64 * 1024  # boundaries, the token and a few small fields beside the file
# The routes that take files (multipart) up to settings.max_upload_mb: (method, route path).
# tests/test_security_limits.py checks each is a route of the app, so a renamed route cannot silently lose its limit.
UPLOAD_ROUTES = (("POST", "/reviews/{case_id}/report"), ("POST", "/api/cases/{case_id}/files"),
                 ("POST", "/arrangements/edit"))


def parse_trusted_proxies(value: str) -> list[str]:
    """``settings.trusted_proxies`` as a list of IPs / networks; a bad entry is a clear error naming it."""
    entries = [part.strip() for part in (value or "").split(",") if part.strip()]
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(f"SGFLOW_TRUSTED_PROXIES: ‘{entry}’ is not an IP address or network (CIDR)") from None
    return entries


# --- body size ------------------------------------------------------------------------------------------------


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body goes past its limit; an HTTPException so that FastAPI's and
    Starlette's body readers let it through unchanged and ``web.errors`` answers 413 in the usual shape."""

    def __init__(self, limit: int):
        super().__init__(413, f"Nothing was changed: the upload is over the limit of {limit / 1024 / 1024:.0f} MB.")
        self.limit = limit


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, json_limit: int, upload_limit: int,
                 upload_routes: Iterable[tuple[str, str]],
                 on_too_large: Callable[[Request, int, bool, int | None], ASGIApp]):
        self.app, self.json_limit, self.upload_limit, self.on_too_large = app, json_limit, upload_limit, on_too_large
        self.uploads: list[tuple[str, re.Pattern]] = [(method, compile_path(path)[0])
                                                       for method, path in upload_routes]

    def _is_upload(self, scope: Scope) -> bool:
        method, path = scope["method"], scope["path"]
        return any(method == m and pattern.match(path) for m, pattern in self.uploads)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        if scope["method"] not in BODY_METHODS and not chunked and (declared in (None, "0")):
            await self.app(scope, receive, send)  # the usual GET: no body, nothing to count
            return
        multipart = headers.get("content-type", "").lower().startswith("multipart/form-data")
        streamed = multipart and self._is_upload(scope)
        limit = self.upload_limit + MULTIPART_OVERHEAD if streamed else self.json_limit
        if declared is not None and (not declared.isdecimal() or int(declared) > limit):
            size = int(declared) if declared.isdecimal() else None
            await self.on_too_large(Request(scope), limit, streamed, size)(scope, receive, send)
            return
        if streamed:
            await self.app(scope, _counting(receive, limit), send)
            return
        # Small bodies: read it all (up to the limit) before the app parses or authenticates anything.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay(chunks, receive, message), send)  # a disconnect: let the app see it
                return
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                await self.on_too_large(Request(scope), limit, False, None)(scope, receive, send)
                return
            if body:
                chunks.append(body)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(chunks, receive), send)


def _replay(chunks: list[bytes], receive: Receive, after: Message | None = None) -> Receive:
    """The buffered body as one message, then the real ``receive`` (so a disconnect is still seen)."""
    pending: list[Message] = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]
    if after is not None:
        pending.append(after)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


def _counting(receive: Receive, limit: int) -> Receive:
    size = 0

    async def counted() -> Message:
        nonlocal size
        if size > limit:
            raise BodyTooLarge(limit)
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise BodyTooLarge(limit)
        return message

    return counted


# --- security headers -----------------------------------------------------------------------------------------


def _inline_script_hashes() -> list[str]:
    """CSP hashes of the GOV.UK page template's inline script (``js-enabled`` / ``govuk-frontend-supported``),
    computed from the installed template so an upgrade of govuk-frontend-jinja cannot silently break it."""
    from web.templating import env

    source, _, _ = env.loader.get_source(env, "govuk_frontend_jinja/template.html")
    hashes = []
    for body in re.findall(r"<script\b[^>]*>(.*?)</script>", source, flags=re.S):
        if "{{" in body or "{%" in body:
            raise RuntimeError("the GOV.UK template's inline script is templated: a CSP hash cannot cover it")
        digest = base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode("ascii")
        hashes.append(f"'sha256-{digest}'")
    return hashes


def page_csp() -> str:
    scripts = " ".join(["'self'", *_inline_script_hashes()])
    return ("default-src 'self'; "
            f"script-src {scripts}; "
            "style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")


OTHER_CSP = "default-src 'none'; frame-ancestors 'none'"
HSTS = "max-age=31536000"


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, static_prefix: str = "/static/"):
        self.app, self.static_prefix = app, static_prefix
        self.page_csp = page_csp()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith(self.static_prefix)
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                html = headers.get("content-type", "").startswith("text/html")
                defaults = {"x-content-type-options": "nosniff", "x-frame-options": "DENY",
                            "referrer-policy": "same-origin",
                            "content-security-policy": self.page_csp if html else OTHER_CSP}
                if not static:
                    defaults["cache-control"] = "no-store"
                if https:
                    defaults["strict-transport-security"] = HSTS
                for name, value in defaults.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
