"""Browser sessions and CSRF tokens: the web UI's session plumbing, in one module.

Session
    Server-side: a signed-in session is a row of ``web_session`` (``safeguarding.tables.WebSession``) keyed by the
    SHA-256 of a random session id; the database never holds the id itself, so a leaked table or backup cannot be
    replayed as cookies. The cookie (``sgflow_session``) carries the id signed with ``itsdangerous``
    (``TimestampSigner``, keyed with ``settings.resolved_secret_key()``): a forged or garbled cookie is refused
    without a database read, and a cookie older than ``ABSOLUTE`` is refused by its signed timestamp alone.
    ``web.auth.session_principal`` reads the row and its account in one indexed lookup on every request that
    needs a signed-in person, and ends the session (deletes the row) when the account is gone or inactive, its
    password changed (the row keeps a fingerprint of the password hash it started with), it has not been used for
    ``IDLE`` (8 hours) or it started more than ``ABSOLUTE`` (12 hours) ago. Use is recorded at most once a minute
    (one UPDATE), and polling requests (``poll=1``) never count as use: an open tab on its own never keeps a
    session alive. Signing out deletes the row, so a copied cookie is dead from then on. Signing in always starts
    a new id (no session fixation) and deletes expired rows (they never pile up: a row is at most 12 hours old
    when the next sign-in sweeps it; the sweep uses the ``created_at`` index).
    Before sign-in a visitor gets an *anonymous* id (signed, never stored) that only carries the sign-in form's
    CSRF token. The cookie is HttpOnly, SameSite=Lax, Path=/, and Secure when the request came over HTTPS (see
    ``web.security``: only a trusted proxy can say so).

CSRF
    The token is derived from the session id with ``itsdangerous`` (a keyed HMAC, salted apart from the cookie's
    signature): it is bound to that one session, dies with it, and needs no storage or database read to check.
    ``SessionMiddleware`` refuses any POST/PUT/PATCH/DELETE whose token (the ``X-CSRF-Token`` header htmx sends,
    else the hidden form field ``csrf_token``) does not match, with 403 and nothing done, before any route runs.
    A form without the header is read once here and parsed with Starlette's public API (a ``Request`` over the
    bytes read, ``.form()``); the same bytes are then handed to the app as its ``receive``, so the route reads the
    form (or the raw body: the arrangements editor) as usual and nothing writes Starlette's private attributes.
    (A FastAPI dependency calling ``request.form()`` would parse only once, but it consumes the stream that
    routes reading the raw body then cannot replay.) The body's size is bounded before this by ``web.security``
    (``settings.max_json_kb``; uploads ``settings.max_upload_mb``, so a report of up to 20 MB can be sent without
    JavaScript; that body is held in memory once while its token is found, as the upload itself is afterwards).
    API calls that carry no session cookie (HTTP Basic clients) are exempt: a browser never adds Basic
    credentials on its own, as the API never asks for them with ``WWW-Authenticate``. SameSite=Lax is a second
    line of defence.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie

from itsdangerous import BadSignature, SignatureExpired, Signer, TimestampSigner
from sqlalchemy import delete, insert
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web.security import BodyTooLarge

COOKIE_NAME = "sgflow_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
IDLE = 8 * 3600  # seconds without use before a session ends
ABSOLUTE = 12 * 3600  # seconds after sign-in before a session ends however busy
TOUCH_AFTER = 60  # record use (one UPDATE) at most once a minute
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ANONYMOUS, SIGNED_IN = "a", "u"


def password_fingerprint(password_hash: str) -> str:
    """Changes when the password does, so a new password ends the old sessions."""
    return hashlib.sha256(password_hash.encode("utf-8")).hexdigest()[:16]


def id_hash(session_id: str) -> str:
    """What the database keeps of a session id."""
    return hashlib.sha256(session_id.encode("ascii")).hexdigest()


def clock_of(request: Request) -> Callable[[], float]:
    """The app's clock (``app.state.clock``; tests set it to move time on)."""
    return getattr(request.app.state, "clock", None) or time.time


# --- the session of one request ------------------------------------------------------------------------------


@dataclass
class SessionState:
    session_id: str | None = None  # from a valid cookie, or made during this request
    kind: str | None = None  # ANONYMOUS or SIGNED_IN
    had_cookie: bool = False
    expired: bool = False  # a signed-in session came in but had run out (the sign-in page says so)
    issue: bool = False  # send a new cookie with this response
    clear: bool = False  # delete the cookie with this response

    @property
    def signed_in(self) -> bool:
        return self.kind == SIGNED_IN and self.session_id is not None

    def end(self, *, expired: bool) -> None:
        self.session_id, self.kind, self.issue, self.clear = None, None, False, True
        self.expired = self.expired or expired


def session_of(request: Request) -> SessionState:
    state = request.scope.setdefault("state", {})
    session = state.get("session")
    if session is None:  # no middleware (e.g. a bare test app): a throwaway session
        session = state["session"] = SessionState()
    return session


class Keys:
    """The cookie signer and the CSRF token maker, from the app's secret (each with its own salt)."""

    def __init__(self, secret: str):
        self.cookie = TimestampSigner(secret, salt="sgflow-session-cookie", digest_method=hashlib.sha256)
        self.csrf = Signer(secret, salt="sgflow-csrf-token", digest_method=hashlib.sha256)

    def csrf_token(self, session_id: str) -> str:
        return self.csrf.get_signature(session_id).decode("ascii")


def keys_of(request: Request) -> Keys:
    keys = getattr(request.app.state, "session_keys", None)
    if keys is None:
        keys = request.app.state.session_keys = Keys(request.app.state.settings.resolved_secret_key())
    return keys


def csrf_token(request: Request) -> str:
    """This session's CSRF token (an anonymous session, and its cookie, is made if there is none yet)."""
    session = session_of(request)
    if session.session_id is None:
        session.session_id, session.kind = secrets.token_urlsafe(32), ANONYMOUS
        session.issue, session.clear = True, False
    return keys_of(request).csrf_token(session.session_id)


def start_session(request: Request, engine, user_id: int, password_hash: str) -> None:
    """After a successful sign-in: a brand-new session id (no session fixation), stored as its hash. The
    previous signed-in session of this browser, if any, and every expired session are deleted. Blocking: call it
    from a thread."""
    from safeguarding.tables import WebSession

    session = session_of(request)
    now = int(clock_of(request)())
    new_id = secrets.token_urlsafe(32)
    table = WebSession.__table__
    with engine.begin() as conn:
        conn.execute(delete(table).where(table.c.created_at < now - ABSOLUTE))
        if session.signed_in:
            conn.execute(delete(table).where(table.c.id_hash == id_hash(session.session_id)))
        conn.execute(insert(table).values(id_hash=id_hash(new_id), user_id=user_id,
                                          password_fingerprint=password_fingerprint(password_hash),
                                          created_at=now, seen_at=now))
    session.session_id, session.kind = new_id, SIGNED_IN
    session.issue, session.clear, session.expired = True, False, False


def new_signed_in_cookie(app, user_id: int, password_hash: str, *, now: float | None = None) -> str:
    """A stored session for ``user_id`` and the cookie value that carries it, without signing in through the form
    (benchmarks and tests). Blocking."""
    from safeguarding.tables import WebSession

    now = int(time.time() if now is None else now)
    new_id = secrets.token_urlsafe(32)
    with app.state.engine.begin() as conn:
        conn.execute(insert(WebSession.__table__).values(
            id_hash=id_hash(new_id), user_id=user_id, password_fingerprint=password_fingerprint(password_hash),
            created_at=now, seen_at=now))
    return Keys(app.state.settings.resolved_secret_key()).cookie.sign(f"{SIGNED_IN}.{new_id}").decode("ascii")


def end_session(request: Request, engine) -> None:
    """Sign out: the session's row is deleted (its cookie, wherever copied, is dead) and the cookie cleared."""
    from safeguarding.tables import WebSession

    session = session_of(request)
    if session.signed_in:
        table = WebSession.__table__
        with engine.begin() as conn:
            conn.execute(delete(table).where(table.c.id_hash == id_hash(session.session_id)))
    session.end(expired=False)


def is_secure(scope: Scope) -> bool:
    return scope.get("scheme") == "https"


# --- CSRF -----------------------------------------------------------------------------------------------------

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def replay(body: bytes) -> Receive:
    """The body, read once here, for the app (then a disconnect: nothing more will come)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _form_token(scope: Scope, receive: Receive) -> tuple[str | None, bytes]:
    """The ``csrf_token`` field of a form body, and the body (read once, to replay to the app)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    try:  # parsed by Starlette's public API over the bytes just read; files are spooled, then closed
        async with Request(scope, replay(body)).form(max_files=1, max_fields=200,
                                                      max_part_size=max(1024 * 1024, len(body))) as form:
            value = form.get(CSRF_FIELD)
            return (value if isinstance(value, str) else None), body
    except Exception:  # an unreadable form has no token
        return None, body


# --- middleware ---------------------------------------------------------------------------------------------


class SessionMiddleware:
    """Reads the session cookie into ``request.state.session`` (signature and age only: no database read),
    enforces CSRF, and writes the cookie back when the session started, changed id or ended.

    ``on_csrf_failure(request, reason)`` and ``on_too_large(request)`` build the refusal responses (blocking: they
    run in a thread; HTML or JSON, ``web.errors`` decides); ``on_csrf_failure`` may also send people whose session
    ran out to sign in."""

    def __init__(self, app: ASGIApp, *, secret_key: Callable[[], str],
                 on_csrf_failure: Callable[[Request, str], ASGIApp], on_too_large: Callable[[Request], ASGIApp]):
        self.app = app
        self._secret_key = secret_key
        self._keys: Keys | None = None
        self.on_csrf_failure, self.on_too_large = on_csrf_failure, on_too_large

    @property
    def keys(self) -> Keys:
        if self._keys is None:
            self._keys = Keys(self._secret_key())
        return self._keys

    @property
    def signer(self) -> TimestampSigner:
        return self.keys.cookie

    def load(self, scope: Scope) -> SessionState:
        raw = None
        for chunk in Headers(scope=scope).getlist("cookie"):
            cookie = SimpleCookie()
            with contextlib.suppress(Exception):  # a malformed Cookie header: ignore it, as browsers do
                cookie.load(chunk)
            if COOKIE_NAME in cookie:
                raw = cookie[COOKIE_NAME].value
        state = SessionState(had_cookie=raw is not None)
        if raw is None:
            return state
        try:
            value = self.signer.unsign(raw, max_age=ABSOLUTE).decode("ascii")
        except SignatureExpired:  # signed by us, but older than ABSOLUTE
            state.clear, state.expired = True, raw.startswith(SIGNED_IN + ".")
            return state
        except BadSignature:  # forged or garbled: no session at all
            state.clear = True
            return state
        kind, _, session_id = value.partition(".")
        if kind in (ANONYMOUS, SIGNED_IN) and session_id:
            state.kind, state.session_id = kind, session_id
        else:
            state.clear = True
        return state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        session = self.load(scope)
        scope.setdefault("state", {})["session"] = session

        if scope["method"] in UNSAFE and not (scope["path"].startswith("/api/") and not session.had_cookie):
            headers = Headers(scope=scope)
            token = headers.get(CSRF_HEADER)
            if token is None and headers.get("content-type", "").lower().startswith(FORM_TYPES):
                try:
                    token, body = await _form_token(scope, receive)
                except BodyTooLarge:  # web.security's limit, met while reading the form
                    await self._refuse(self.on_too_large, scope, send)
                    return
                receive = replay(body)
            expected = self.keys.csrf_token(session.session_id) if session.session_id else None
            if not (token and expected and hmac.compare_digest(token.encode("utf-8"), expected.encode("ascii"))):
                await self._refuse(lambda request: self.on_csrf_failure(request, "missing" if not token else
                                                                        "mismatch"), scope, send)
                return

        await self.app(scope, receive, self._sending_cookie(session, scope, send))

    async def _refuse(self, respond: Callable[[Request], ASGIApp], scope: Scope, send: Send) -> None:
        request = Request(scope)
        response = await run_in_threadpool(respond, request)
        await response(scope, replay(b""), self._sending_cookie(session_of(request), scope, send))

    def _sending_cookie(self, session: SessionState, scope: Scope, send: Send) -> Send:
        """``send``, with the session's cookie (if it has one to set) added to the response's headers."""

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                cookie = self._cookie_header(session, scope)
                if cookie:
                    MutableHeaders(scope=message).append("set-cookie", cookie)
            await send(message)

        return send_with_cookie

    def _cookie_header(self, session: SessionState, scope: Scope) -> str | None:
        secure = "; Secure" if is_secure(scope) else ""
        if session.issue and session.session_id:
            value = self.signer.sign(f"{session.kind}.{session.session_id}").decode("ascii")
            return f"{COOKIE_NAME}={value}; Path=/; Max-Age={ABSOLUTE}; HttpOnly; SameSite=Lax{secure}"
        if session.clear and session.had_cookie:
            return f"{COOKIE_NAME}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{secure}"
        return None
