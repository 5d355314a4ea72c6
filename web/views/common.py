"""What the people's pages share: status labels, the facts of an arrangements version a page shows, working days
left, the names of the people a page names."""

from __future__ import annotations

import hashlib
import json
import threading
import weakref
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import and_, bindparam
from sqlalchemy import select as sql_select
from sqlmodel import Session

from safeguarding.calendar import WorkingCalendar
from safeguarding.clock import london_today
from safeguarding.tables import Case, User
from safeguarding.themes import themes_for
from safeguarding.versions import VersionNotFoundError, document_of, get_version

POLL_SECONDS = 5
CASE_STATUSES = {"open": "Open", "closed": "Closed", "awaiting_lcspr": "Awaiting the local review",
                 "national_review": "National review"}
STATUS_TAGS = {"open": "govuk-tag--blue", "closed": "govuk-tag--grey", "awaiting_lcspr": "govuk-tag--yellow",
               "national_review": "govuk-tag--purple"}


# --- arrangements facts a page needs, cached per partnership and version (versions never change) --------------


@dataclass(frozen=True)
class VersionFacts:
    calendar: WorkingCalendar
    categories: dict[str, str]
    agencies: dict[str, str]
    options: dict[str, dict[str, str]]  # x-options lists for task forms (themes)


_facts: dict[tuple[str, int, str], VersionFacts] = {}
_facts_lock = threading.Lock()
# (partnership, number) -> facts, per database: a stored version never changes, so a page that needs the facts
# of a case's pinned version asks the database once per process, not once per row.
_pinned: weakref.WeakKeyDictionary[Any, dict[tuple[str, int], VersionFacts]] = weakref.WeakKeyDictionary()


def version_facts(engine, partnership_id: str, number: int | None = None) -> VersionFacts | None:
    """Facts of a version (``number``), or of the current one (None)."""
    if number is not None:
        with _facts_lock:
            cached = _pinned.get(engine, {}).get((partnership_id, number))
        if cached is not None:
            return cached
    facts = _version_facts(engine, partnership_id, number)
    if facts is not None and number is not None:
        with _facts_lock:
            _pinned.setdefault(engine, {})[(partnership_id, number)] = facts
    return facts


def _version_facts(engine, partnership_id: str, number: int | None) -> VersionFacts | None:
    with Session(engine) as session:
        try:
            row = get_version(session, partnership_id, number)
        except VersionNotFoundError:
            return None
    key = (partnership_id, row.number, row.content_hash)
    with _facts_lock:
        cached = _facts.get(key)
    if cached is not None:
        return cached
    doc = document_of(row)
    today = london_today()
    calendar = WorkingCalendar.for_config(doc["calendar"], 2018, today.year + 3)
    sin = doc.get("serious_incident_notification", {})
    facts = VersionFacts(
        calendar=calendar, categories={c["id"]: c.get("label", c["id"]) for c in sin.get("categories", [])},
        agencies={**{p["id"]: p.get("organisation", p["id"]) for p in doc.get("safeguarding_partners", [])},
                  **{a["id"]: a.get("name", a["id"]) for a in doc.get("relevant_agencies", [])}},
        options={"themes": themes_for(doc), "learning_responses": {
            **{r["id"]: f"{r['label']} (within {r['within_working_days']} working days)"
               for r in (doc.get("learning") or {}).get("responses", [])},
            "no_further_action": "No further action"}})
    with _facts_lock:
        _facts[key] = facts
    return facts


def working_days_left(calendar: WorkingCalendar | None, today: date, due: date | None) -> int | None:
    """Working days from today to the due date: 0 on the day, negative once past; None if unknown."""
    if calendar is None or due is None:
        return None
    try:
        return calendar.working_days_between(today, due)
    except ValueError:  # outside the calendar's years
        return None


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
