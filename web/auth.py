"""Who is asking: the one place requests are authenticated.

API clients send HTTP Basic credentials; browsers carry a signed session (``web.session``). Both end in a
``Principal``. The API asks for one with ``Depends(require_principal)`` (session or Basic, else 401 JSON);
pages with ``Depends(require_page_principal)`` (session only, else a redirect to ``/sign-in?next=<path>``).
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import quote, urlsplit

from fastapi import Request
from sqlalchemy import Connection, bindparam, select
from sqlmodel import Session

from safeguarding.accounts import Principal, authenticate
from safeguarding.tables import User
from web.errors import ApiError
from web.session import password_fingerprint, session_of


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


_users = User.__table__.c
# Built once (a Core statement, only the columns needed): it runs on every signed-in request.
_SESSION_USER = select(_users.id, _users.user_ref, _users.email, _users.display_name, _users.kind,
                       _users.partnership_id, _users.agency_id, _users.active,
                       _users.password_hash).where(_users.id == bindparam("user_id"))


def session_principal(request: Request, conn: Connection | None = None) -> Principal | None:
    """The signed-in person of this request's session: still there, still active, same password; else None.

    Asked of the database on every request, so a deactivated account or a changed password ends the session at
    its next click. ``conn``: a connection the page has open for its own reads (else one is taken for this)."""
    state = request.scope.setdefault("state", {})
    if "principal" in state:
        return state["principal"]
    session = session_of(request)
    principal = None
    if session.user_id is not None:
        if conn is None:
            with request.app.state.engine.connect() as own:
                user = own.execute(_SESSION_USER, {"user_id": session.user_id}).first()
        else:
            user = conn.execute(_SESSION_USER, {"user_id": session.user_id}).first()
        if user is not None and user.active and session.data.get("ph") == password_fingerprint(user.password_hash):
            principal = Principal.of(user)
        else:  # the account went away or changed its password: the session ends here
            session.data, session.cleared, session.modified, session.expired = {}, True, False, True
    state["principal"] = principal
    return principal


def require_principal(request: Request) -> Principal:
    principal = session_principal(request)
    if principal is not None:
        return principal
    creds = _basic_credentials(request)
    if creds is not None:
        with Session(request.app.state.engine) as session:
            principal = authenticate(session, *creds)
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
