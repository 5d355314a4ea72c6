"""Browser sessions, CSRF tokens and sign-in throttling: the web UI's security plumbing, in one module.

Session
    A signed cookie (``sgflow_session``), no server-side store: ``base64url(JSON) "." base64url(HMAC-SHA256)``
    keyed with ``settings.resolved_secret_key()``. It holds the user's id, a fingerprint of their password
    hash (changing the password ends every session), the CSRF token, and two times: when it was issued and
    when it was last used. It expires after ``IDLE`` without use (8 hours) and ``ABSOLUTE`` after sign-in
    (12 hours), whichever comes first. Every request re-checks the user (still there, still active, same
    password), so a deactivated account is out at its next click. Polling requests (``poll=1``) do not count as
    use: an open tab on its own never keeps a session alive. The cookie is HttpOnly, SameSite=Lax, Path=/, and
    Secure when the request came over HTTPS (run uvicorn with ``--proxy-headers`` behind a TLS proxy).
    Limitation (documented): being stateless, a copied cookie stays valid until it expires even after sign-out;
    the short lifetimes bound that.

CSRF
    Every session (also an anonymous one, for the sign-in form) has a random token. ``SessionMiddleware``
    refuses any POST/PUT/PATCH/DELETE whose token (hidden form field ``csrf_token``, or the ``X-CSRF-Token``
    header htmx sends) does not match, with 403 and nothing done. API calls that carry no session cookie
    (HTTP Basic clients) are exempt: a browser never adds Basic credentials on its own, as the API never asks
    for them with ``WWW-Authenticate``. SameSite=Lax is a second line of defence.

Throttling
    ``SignInThrottle`` counts failed sign-ins per email address and per client IP, in memory (per process; a
    multi-replica deployment gets per-replica limits, which still bounds guessing). After ``EMAIL_FREE``
    failures for an address (``IP_FREE`` for an IP) within ``WINDOW``, each further failure locks that key for
    30 s, 1, 2, 4, 8, then at most 15 minutes. While locked, sign-in is refused (429) without checking the
    password. A success clears the address's count. The lock-out is short on purpose: someone who knows a
    colleague's email address can delay their sign-in by minutes, not lock them out.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE_NAME = "sgflow_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
IDLE = 8 * 3600  # seconds without use before a session ends
ABSOLUTE = 12 * 3600  # seconds after sign-in before a session ends however busy
REFRESH_AFTER = 60  # re-issue the cookie (sliding expiry) at most once a minute
FORM_BODY_LIMIT = 2_000_000  # bytes of a form the middleware reads to find its token (else 413)
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


# --- signing ----------------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, b"sgflow-session\0" + payload.encode("ascii"), hashlib.sha256).digest())


def sign(key: bytes, data: dict[str, Any]) -> str:
    payload = _b64(json.dumps(data, separators=(",", ":"), sort_keys=True).encode("utf-8"))
    return f"{payload}.{_mac(key, payload)}"


def unsign(key: bytes, value: str) -> dict[str, Any] | None:
    payload, sep, mac = value.partition(".")
    if not sep or not hmac.compare_digest(mac, _mac(key, payload)):
        return None
    try:
        data = json.loads(_unb64(payload))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def signing_key(secret: str) -> bytes:
    """The session-signing key derived from the app's secret (kept apart from its other uses)."""
    return hashlib.sha256(b"sgflow-session-key\0" + secret.encode("utf-8")).digest()


def password_fingerprint(password_hash: str) -> str:
    """Changes when the password does, so a new password ends the old sessions."""
    return hashlib.sha256(password_hash.encode("utf-8")).hexdigest()[:16]


# --- the session of one request ------------------------------------------------------------------------------


@dataclass
class SessionState:
    data: dict[str, Any] = field(default_factory=dict)
    modified: bool = False
    cleared: bool = False
    expired: bool = False  # a signed-in session came in but had run out (the sign-in page says so)
    had_cookie: bool = False

    @property
    def user_id(self) -> int | None:
        uid = self.data.get("uid")
        return uid if isinstance(uid, int) else None


def session_of(request: Request) -> SessionState:
    state = request.scope.setdefault("state", {})
    session = state.get("session")
    if session is None:  # no middleware (e.g. a bare test app): a throwaway session
        session = state["session"] = SessionState()
    return session


def csrf_token(request: Request) -> str:
    """This session's CSRF token (one is made, and the cookie set, if the session has none yet)."""
    session = session_of(request)
    token = session.data.get("csrf")
    if not isinstance(token, str) or not token:
        token = session.data["csrf"] = secrets.token_urlsafe(32)
        now = int(time.time())
        session.data.setdefault("iat", now)
        session.data["seen"] = now
        session.modified = True
    return token


def start_session(request: Request, user_id: int, password_hash: str) -> None:
    """After a successful sign-in: a brand-new session (new token: no session fixation)."""
    session = session_of(request)
    now = int(time.time())
    session.data = {"uid": user_id, "ph": password_fingerprint(password_hash), "csrf": secrets.token_urlsafe(32),
                    "iat": now, "seen": now}
    session.modified, session.cleared, session.expired = True, False, False


def end_session(request: Request) -> None:
    session = session_of(request)
    session.data = {}
    session.cleared, session.modified = True, False


def is_secure(scope: Scope) -> bool:
    return scope.get("scheme") == "https"


# --- middleware ---------------------------------------------------------------------------------------------


class SessionMiddleware:
    """Loads the session cookie into ``request.state.session``, enforces CSRF, writes the cookie back.

    ``on_csrf_failure(request, reason)`` and ``on_too_large(request)`` build the refusal responses (HTML or JSON:
    ``web.errors`` decides); ``on_csrf_failure`` may also send people whose session ran out to sign in.
    """

    def __init__(self, app: ASGIApp, *, secret_key: Callable[[], str],
                 on_csrf_failure: Callable[[Request, str], Any], on_too_large: Callable[[Request], Any],
                 clock: Callable[[], float] = time.time):
        self.app = app
        self._secret_key = secret_key
        self._key: bytes | None = None
        self.on_csrf_failure, self.on_too_large, self.clock = on_csrf_failure, on_too_large, clock

    @property
    def key(self) -> bytes:
        if self._key is None:
            self._key = signing_key(self._secret_key())
        return self._key

    def load(self, scope: Scope) -> SessionState:
        headers = Headers(scope=scope)
        raw = None
        for chunk in headers.getlist("cookie"):
            cookie = SimpleCookie()
            with contextlib.suppress(Exception):  # a malformed Cookie header: ignore it, as browsers do
                cookie.load(chunk)
            if COOKIE_NAME in cookie:
                raw = cookie[COOKIE_NAME].value
        state = SessionState(had_cookie=raw is not None)
        if raw is None:
            return state
        data = unsign(self.key, raw)
        if data is None:
            return state
        now = self.clock()
        seen, iat = data.get("seen"), data.get("iat")
        if not isinstance(seen, int | float) or not isinstance(iat, int | float) or \
                now - seen > IDLE or now - iat > ABSOLUTE:
            state.expired = "uid" in data
            state.cleared = True  # drop the stale cookie
            return state
        state.data = data
        return state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        session = self.load(scope)
        scope.setdefault("state", {})["session"] = session
        request = Request(scope, receive)
        polling = request.query_params.get("poll") == "1"

        if scope["method"] in UNSAFE and not (scope["path"].startswith("/api/") and not session.had_cookie):
            token = request.headers.get(CSRF_HEADER)
            body: bytes | None = None
            if token is None:
                content_type = request.headers.get("content-type", "")
                if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
                    declared = request.headers.get("content-length", "")
                    if declared.isdecimal() and int(declared) > FORM_BODY_LIMIT:
                        await self.on_too_large(request)(scope, receive, send)
                        return
                    chunks, size = [], 0
                    async for chunk in request.stream():
                        size += len(chunk)
                        if size > FORM_BODY_LIMIT:
                            await self.on_too_large(request)(scope, receive, send)
                            return
                        chunks.append(chunk)
                    body = b"".join(chunks)
                    request._body = body  # so form() below parses what we read
                    try:
                        form = await request.form()
                        value = form.get(CSRF_FIELD)
                        token = value if isinstance(value, str) else None
                        await form.close()
                    except Exception:  # an unparsable form has no token
                        token = None
            expected = session.data.get("csrf")
            if not (isinstance(token, str) and isinstance(expected, str) and expected
                    and hmac.compare_digest(token.encode("utf-8"), expected.encode("utf-8"))):
                reason = "expired" if session.expired or (session.had_cookie and not session.data) else (
                    "missing" if not token else "mismatch")
                await self.on_csrf_failure(request, reason)(scope, receive, send)
                return
            if body is not None:
                receive = _replay(body)

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                cookie = self._cookie_header(session, scope, polling)
                if cookie:
                    headers = MutableHeaders(scope=message)
                    headers.append("set-cookie", cookie)
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def _cookie_header(self, session: SessionState, scope: Scope, polling: bool) -> str | None:
        secure = "; Secure" if is_secure(scope) else ""
        if session.cleared and not session.modified:
            return f"{COOKIE_NAME}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{secure}"
        if not session.data:
            return None
        now = int(self.clock())
        if not session.modified:
            seen = session.data.get("seen", 0)
            if polling or now - seen < REFRESH_AFTER:
                return None
        session.data["seen"] = now
        session.data.setdefault("iat", now)
        max_age = max(0, min(IDLE, int(session.data["iat"]) + ABSOLUTE - now))
        return (f"{COOKIE_NAME}={sign(self.key, session.data)}; Path=/; Max-Age={max_age}; HttpOnly; "
                f"SameSite=Lax{secure}")


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


# --- throttling -----------------------------------------------------------------------------------------------

EMAIL_FREE = 5  # failures allowed per email address within WINDOW before locks start
IP_FREE = 20  # failures allowed per client IP within WINDOW
WINDOW = 15 * 60  # a key's failures are forgotten this long after its last failure
FIRST_LOCK = 30  # seconds; doubles with every further failure
MAX_LOCK = 15 * 60
MAX_KEYS = 50_000  # memory bound: forget the oldest keys beyond this


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    locked_until: float = 0.0


class SignInThrottle:
    """Failed sign-ins per key (``email:...``, ``ip:...``), with exponential lock-outs. Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._keys: dict[str, _Failures] = {}
        self._lock = threading.Lock()

    @staticmethod
    def keys(email: str, ip: str | None) -> list[str]:
        return [f"email:{email.strip().lower()}"] + ([f"ip:{ip}"] if ip else [])

    def wait_seconds(self, keys: Iterable[str]) -> int:
        """0 when an attempt may go ahead, else how long the longest lock on these keys still runs."""
        now = self.clock()
        with self._lock:
            waits = [f.locked_until - now for k in keys if (f := self._keys.get(k)) is not None]
        longest = max(waits, default=0)
        return int(longest) + 1 if longest > 0 else 0

    def failed(self, keys: Iterable[str]) -> None:
        now = self.clock()
        with self._lock:
            for key in keys:
                entry = self._keys.get(key)
                if entry is None or now - entry.last > WINDOW:
                    entry = self._keys[key] = _Failures()
                entry.count += 1
                entry.last = now
                free = IP_FREE if key.startswith("ip:") else EMAIL_FREE
                if entry.count >= free:
                    entry.locked_until = now + min(FIRST_LOCK * 2 ** (entry.count - free), MAX_LOCK)
            if len(self._keys) > MAX_KEYS:
                for key, _ in sorted(self._keys.items(), key=lambda kv: kv[1].last)[: len(self._keys) - MAX_KEYS]:
                    del self._keys[key]

    def succeeded(self, email: str) -> None:
        with self._lock:
            self._keys.pop(f"email:{email.strip().lower()}", None)
