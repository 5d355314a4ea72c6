"""Who is asking: the one place requests are authenticated.

API clients send HTTP Basic credentials; browsers carry a session cookie (``web.session``). Every password check,
the sign-in page's and HTTP Basic's, goes through ``check_password`` and its throttle. Both end in a
``Principal``. The API asks for one with ``web.deps.ApiPrincipal`` (session or Basic, else 401 JSON);
pages with ``web.deps.PagePrincipal`` (session only, else a redirect to ``/sign-in?next=<path>``).
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import time
from urllib.parse import quote, urlsplit

from fastapi import Request
from limits import RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import Connection, bindparam, delete, select, update
from sqlmodel import Session

from safeguarding.accounts import Principal, authenticate
from safeguarding.refusals import ApiError
from safeguarding.tables import User, WebSession
from web.session import ABSOLUTE, IDLE, TOUCH_AFTER, clock_of, id_hash, password_fingerprint, session_of

log = logging.getLogger("sgflow.web")


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        email, sep, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (email, password) if sep else None


# --- password guessing ------------------------------------------------------------------------------------------

# Failed password checks allowed per key within a moving window; beyond that the key is refused (429) without the
# password being checked until its oldest failure leaves the window. Short on purpose: someone who knows a
# colleague's email address can delay their sign-in by a few minutes, never lock them out for long.
EMAIL_LIMIT = RateLimitItemPerMinute(5, 5)  # 5 failures per address in 5 minutes
IP_LIMIT = RateLimitItemPerMinute(20, 5)  # 20 failures per client address in 5 minutes (offices share one)


class TooManyAttempts(Exception):
    def __init__(self, retry_after: int):
        super().__init__(retry_after)
        self.retry_after = retry_after


class PasswordThrottle:
    """Failed password checks per email address and per client IP, for EVERY password check (the sign-in page
    and HTTP Basic on the API), with the maintained ``limits`` library (moving windows).

    The counters live where ``settings.rate_limit_storage`` says (``limits.storage.storage_from_string``):
    ``memory://`` (the default) is embedded in the web process, so ``sgflow up`` needs nothing else running, but each
    process counts on its own (with N web processes a guesser gets N times the attempts); production with several
    web processes or replicas uses ``redis://host:6379`` so they all share one count (``pip install redis``).
    The client address is ``request.client.host``: the TCP peer, or what a *trusted* proxy says
    (``web.security``), so a spoofed ``X-Forwarded-For`` cannot choose it. The check and the count are two
    steps, so a burst of concurrent guesses can overshoot a limit by the number in flight, never more.
    """

    def __init__(self, storage_uri: str):
        self.storage = storage_from_string(storage_uri)
        self.limiter = MovingWindowRateLimiter(self.storage)

    @staticmethod
    def _keys(email: str, ip: str | None) -> list[tuple]:
        keys = [(EMAIL_LIMIT, "sgflow-password", "email", email.strip().lower())]
        if ip:
            keys.append((IP_LIMIT, "sgflow-password", "ip", ip))
        return keys

    def wait_seconds(self, email: str, ip: str | None) -> int:
        """0 when a check may go ahead, else how long until it may (for ``Retry-After``)."""
        wait = 0.0
        for item, *identifiers in self._keys(email, ip):
            if not self.limiter.test(item, *identifiers):
                reset = self.limiter.get_window_stats(item, *identifiers).reset_time
                wait = max(wait, reset - time.time(), 1)
        return math.ceil(wait)

    def failed(self, email: str, ip: str | None) -> None:
        for item, *identifiers in self._keys(email, ip):
            self.limiter.hit(item, *identifiers)

    def succeeded(self, email: str) -> None:
        """A right password clears the address's failures (not the IP's)."""
        item, *identifiers = self._keys(email, None)[0]
        self.limiter.clear(item, *identifiers)


def throttle_of(request: Request) -> PasswordThrottle:
    throttle = getattr(request.app.state, "password_throttle", None)
    if throttle is None:
        throttle = request.app.state.password_throttle = PasswordThrottle(
            request.app.state.settings.rate_limit_storage)
    return throttle


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def check_password(request: Request, email: str, password: str) -> Principal | None:
    """The one password check (blocking: call it from a thread): the person, None for wrong credentials, or
    ``TooManyAttempts`` without looking at the password when the address or the client is throttled."""
    throttle, ip = throttle_of(request), client_ip(request)
    wait = throttle.wait_seconds(email, ip)
    if wait:
        raise TooManyAttempts(wait)
    with Session(request.app.state.engine) as session:
        principal = authenticate(session, email, password)
    if principal is None:
        throttle.failed(email, ip)
    else:
        throttle.succeeded(email)
    return principal


# --- sessions ---------------------------------------------------------------------------------------------------

_users = User.__table__.c
_sessions = WebSession.__table__
# Built once (a Core statement, only the columns needed): it runs on every signed-in request. One primary-key
# lookup of the session joined to its account.
_SESSION_USER = select(
    _users.id, _users.user_ref, _users.email, _users.display_name, _users.kind, _users.partnership_id,
    _users.agency_id, _users.active, _users.password_hash, _sessions.c.password_fingerprint,
    _sessions.c.created_at, _sessions.c.seen_at,
).select_from(_sessions.join(User.__table__, _users.id == _sessions.c.user_id)).where(
    _sessions.c.id_hash == bindparam("id_hash"))
_END = delete(_sessions).where(_sessions.c.id_hash == bindparam("key"))
_TOUCH = update(_sessions).where(_sessions.c.id_hash == bindparam("key")).values(seen_at=bindparam("now"))


def session_principal(request: Request, conn: Connection | None = None) -> Principal | None:
    """The signed-in person of this request's session: a live session row, an active account, the same password;
    else None (and the session is ended: its row deleted, its cookie cleared).

    Asked of the database on every request, so signing out, a deactivated account or a changed password ends the
    session at its next click, wherever its cookie was copied. ``conn``: a connection the page has open for its
    own reads (else one is taken for this)."""
    state = request.scope.setdefault("state", {})
    if "principal" in state:
        return state["principal"]
    session = session_of(request)
    principal = None
    if session.signed_in:
        key = id_hash(session.session_id)
        if conn is None:
            with request.app.state.engine.connect() as own:
                row = own.execute(_SESSION_USER, {"id_hash": key}).first()
        else:
            row = conn.execute(_SESSION_USER, {"id_hash": key}).first()
        now = int(clock_of(request)())
        if (row is not None and row.active and row.password_fingerprint == password_fingerprint(row.password_hash)
                and now - row.seen_at <= IDLE and now - row.created_at <= ABSOLUTE):
            principal = Principal.of(row)
            if now - row.seen_at >= TOUCH_AFTER and request.query_params.get("poll") != "1":
                with request.app.state.engine.begin() as writer:  # use, at most once a minute; polls never
                    writer.execute(_TOUCH, {"key": key, "now": now})
        else:  # gone, run out, or its account changed: the session ends here, for every copy of its cookie
            if row is not None:
                with request.app.state.engine.begin() as writer:
                    writer.execute(_END, {"key": key})
            session.end(expired=True)
    state["principal"] = principal
    return principal


def require_principal(request: Request) -> Principal:
    principal = session_principal(request)
    if principal is not None:
        return principal
    creds = _basic_credentials(request)
    if creds is not None:
        try:
            principal = check_password(request, *creds)
        except TooManyAttempts as exc:
            log.warning("HTTP Basic throttled for %s from %s", creds[0][:254], client_ip(request))
            raise ApiError(429, "too_many_requests", "too many wrong passwords for this address or from this "
                           f"client: wait {exc.retry_after} seconds and try again; the password was not checked",
                           headers={"Retry-After": str(exc.retry_after)}) from None
        if principal is not None:
            request.state.principal = principal
            return principal
    raise ApiError(401, "unauthenticated", "sign in first: send your email and password (HTTP Basic)")


class SignInRequired(Exception):
    """Raised by ``require_page_principal``; ``web.errors`` answers with a redirect to the sign-in page."""

    def __init__(self, next_path: str, expired: bool = False):
        super().__init__(next_path)
        self.next_path, self.expired = next_path, expired


def safe_next(value: str | None) -> str:
    """A local path to go back to after sign-in (never another site: no open redirect)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")) or "\\" in value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def next_path_of(request: Request) -> str:
    """Where to come back to: this page for a GET, else the page the form was on (same site only)."""
    if request.method == "GET":
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return safe_next(path.replace("poll=1", "").rstrip("?&"))
    referer = request.headers.get("referer", "")
    parts = urlsplit(referer)
    if parts.netloc and parts.netloc == request.url.netloc:
        return safe_next(parts.path + (f"?{parts.query}" if parts.query else ""))
    return "/"


def sign_in_url(next_path: str, expired: bool = False) -> str:
    url = "/sign-in"
    params = []
    if next_path and next_path != "/":
        params.append("next=" + quote(next_path, safe="/"))
    if expired:
        params.append("expired=1")
    return url + ("?" + "&".join(params) if params else "")


def require_page_principal(request: Request) -> Principal:
    return page_principal_on(request, None)


def page_principal_on(request: Request, conn: Connection | None) -> Principal:
    """``require_page_principal`` for a page that calls it itself, with the connection it has open for its own
    reads (one connection a request instead of two). Not a dependency: FastAPI would take ``conn`` for a query
    parameter."""
    principal = session_principal(request, conn)
    if principal is None:
        raise SignInRequired(next_path_of(request), expired=session_of(request).expired)
    return principal
