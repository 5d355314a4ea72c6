"""Who is asking: the one place requests are authenticated.

API clients send HTTP Basic credentials; browsers carry a signed session (added with the web UI). Both end
in a ``Principal``; routes ask for one with ``Depends(require_principal)``.
"""

from __future__ import annotations

import base64
import binascii

from fastapi import Request
from sqlmodel import Session

from safeguarding.accounts import Principal, authenticate
from web.errors import ApiError


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


def require_principal(request: Request) -> Principal:
    principal = getattr(request.state, "principal", None)
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
