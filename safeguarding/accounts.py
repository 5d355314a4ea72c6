"""Local accounts: argon2 password hashes (pwdlib) and who a signed-in person is.

Authentication sits behind this one seam (``authenticate`` -> ``Principal``) so that an OpenID Connect
provider can be added for production without touching the pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from pwdlib import PasswordHash
from sqlalchemy import Row
from sqlmodel import Session, select

from safeguarding.tables import User


@lru_cache
def _hasher() -> PasswordHash:
    return PasswordHash.recommended()


def hash_password(password: str) -> str:
    return _hasher().hash(password)


@lru_cache
def _dummy_hash() -> str:
    return hash_password("not-a-real-password")


@dataclass(frozen=True)
class Principal:
    user_id: int
    user_ref: str
    email: str
    display_name: str
    kind: str  # partnership_lead | reviewer | national_body | scrutineer | administrator
    partnership_id: str | None
    agency_id: str | None

    @classmethod
    def of(cls, user: User | Row) -> Principal:
        """From a ``User``, or a row with its columns (the session check reads only those it needs)."""
        assert user.id is not None
        return cls(user.id, user.user_ref, user.email, user.display_name, user.kind, user.partnership_id,
                   user.agency_id)

    @property
    def is_national(self) -> bool:
        return self.kind == "national_body"

    @property
    def is_admin(self) -> bool:
        return self.kind == "administrator"

    def can_read(self, partnership_id: str) -> bool:
        """Identified data of a partnership: only its own people (and administrators)."""
        return self.is_admin or self.partnership_id == partnership_id

    def can_manage_arrangements(self, partnership_id: str) -> bool:
        return self.is_admin or (self.kind == "partnership_lead" and self.partnership_id == partnership_id)


def authenticate(session: Session, email: str, password: str) -> Principal | None:
    """The person with this email and password, or None (same work either way: no hint which was wrong)."""
    user = session.exec(select(User).where(User.email == email.strip().lower())).first()
    if user is None or not user.active:
        _hasher().verify(password, _dummy_hash())
        return None
    if not _hasher().verify(password, user.password_hash):
        return None
    return Principal.of(user)
