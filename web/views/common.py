"""What the people's pages share: status labels, "N working days left", the names of the people a page names, a
task's address. The facts of a case's arrangements version come from ``safeguarding.pinned``."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam
from sqlalchemy import select as sql_select

from safeguarding.tables import Case, User

POLL_SECONDS = 5
CASE_STATUSES = {"open": "Open", "closed": "Closed", "awaiting_lcspr": "Awaiting the local review",
                 "national_review": "National review", "resolved": "Resolved", "withdrawn": "Withdrawn",
                 "suspended": "Suspended", "published": "Published"}
# an escalation's issue types (its "category"), for the form and every page that shows one
ISSUE_TYPES: dict[str, tuple[str, str]] = {
    "threshold": ("Threshold", "Whether a child’s needs meet the threshold for a service or an assessment"),
    "information_sharing": ("Information sharing", "Information that was not shared, or shared too late"),
    "case_closure": ("Case closure", "Closing a case, or stepping a child down to another service"),
    "plan_or_decision": ("A plan or decision", "A child protection, child in need or other plan, or another "
                                               "decision about the child"),
    "other": ("Something else", ""),
}
ISSUE_LABELS = {key: label for key, (label, _) in ISSUE_TYPES.items()} | {"overdue_work": "Overdue statutory work"}
STATUS_TAGS = {"open": "govuk-tag--blue", "closed": "govuk-tag--grey", "awaiting_lcspr": "govuk-tag--yellow",
               "national_review": "govuk-tag--purple", "resolved": "govuk-tag--green", "withdrawn": "govuk-tag--grey",
               "suspended": "govuk-tag--orange", "published": "govuk-tag--green"}


def days_left_text(left: int | None) -> str:
    if left is None:
        return ""
    if left > 0:
        return f"{left} working day{'s' if left != 1 else ''} left"
    if left == 0:
        return "Due today"
    return f"{-left} working day{'s' if left != -1 else ''} late"


_users = User.__table__.c
_DISPLAY_NAMES = sql_select(_users.user_ref, _users.display_name).where(
    _users.user_ref.in_(bindparam("refs", expanding=True)))


NOBODY = ("", "system")  # actor and claimer references that are no account's


def display_names(engine, refs: set[str]) -> dict[str, str]:
    """user_ref -> display name of the people among ``refs`` (those with no account are left out)."""
    with engine.connect() as conn:
        return names_on(conn, refs)


def names_on(conn, refs: set[str]) -> dict[str, str]:
    """``display_names`` on a connection the caller has open."""
    refs = {r for r in refs if r not in NOBODY}
    if not refs:
        return {}
    return dict(conn.execute(_DISPLAY_NAMES, {"refs": sorted(refs)}).all())


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes (stored as UTC): make them aware, as the date filters require."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def children_of(case: Case) -> list[dict[str, str]]:
    """Children by pseudonym (incidents store objects, escalations plain pseudonyms)."""
    children = json.loads(case.children or "[]")
    return [c if isinstance(c, dict) else {"pseudonym": str(c), "local_ref": ""} for c in children]


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, default=str, sort_keys=True).encode()).hexdigest()[:16]


def account_of(account, user_ref):
    """Outer-join condition: the account whose ``user_ref`` is in that column (``NOBODY``'s are no account's, as in
    ``display_names``). ``user_ref`` is unique, so the join adds no rows."""
    return and_(account.c.user_ref == user_ref, *(user_ref != ref for ref in NOBODY))  # not NOT IN: no re-render


def task_href(case_id: str, national_ref: str, key: str, national: bool) -> str:
    """A task's page: the national body reaches it by the case's pseudonymous reference, never the local one."""
    return f"/national/cases/{national_ref}/tasks/{key}" if national else f"/cases/{case_id}/tasks/{key}"
