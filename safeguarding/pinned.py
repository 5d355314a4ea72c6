"""One typed, cached view of a stored arrangements version: what pages and checks read from it.

A case is pinned to the arrangements version it was opened under; a stored version never changes. So the facts a
page needs of it (roles and their members, partners and agencies, incident categories, themes, ladders, learning
responses, and its working-day calendar) are read and built once per process and database (``pinned``), not once
per page or per row. ``current`` is the partnership's latest version (one small query for its number, then the same
cache).

Cache: a bounded LRU (``cachetools``) per database engine (kept while the engine lives), behind one lock.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import Any

from cachetools import LRUCache
from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection, Engine

from safeguarding.calendar import WorkingCalendar
from safeguarding.clock import london_today
from safeguarding.tables import ArrangementsVersion
from safeguarding.themes import themes_for

CACHED_VERSIONS = 1024  # per database: every partnership's versions in use, with room to spare
FIRST_YEAR = 2018  # the calendar covers 2018 (these processes began with the 2017 Act) to 3 years from now


@dataclass(frozen=True)
class Ladder:
    id: str
    name: str
    purpose: str
    stages: Mapping[int, str]
    urgent_start_stage: int
    business_unit: frozenset[str]  # members of its business_unit_role
    readers: frozenset[str]  # members of its business_unit_role and scrutineer_role (they read its escalations)


@dataclass(frozen=True, eq=False)
class Pinned:
    """The facts of version ``number`` of a partnership's arrangements (``document``: the whole document)."""

    partnership_id: str
    number: int
    document: Mapping[str, Any] = field(repr=False)

    @classmethod
    def of(cls, document: Mapping[str, Any], number: int = 0) -> Pinned:
        return cls(partnership_id=document.get("partnership", {}).get("id", ""), number=number, document=document)

    # --- who --------------------------------------------------------------------------------------------------

    @cached_property
    def name(self) -> str:
        return self.document.get("partnership", {}).get("name", self.partnership_id)

    @cached_property
    def roles(self) -> Mapping[str, frozenset[str]]:
        """Role id -> its members' user refs."""
        return {r["id"]: frozenset(r.get("members", [])) for r in self.document.get("roles", [])}

    @cached_property
    def role_titles(self) -> Mapping[str, str]:
        return {r["id"]: r.get("title", r["id"]) for r in self.document.get("roles", [])}

    def members(self, role: str | None) -> frozenset[str]:
        return self.roles.get(role or "", frozenset())

    @cached_property
    def partners(self) -> Mapping[str, str]:
        """The safeguarding partners: id -> organisation."""
        return {p["id"]: p.get("organisation", p["id"]) for p in self.document.get("safeguarding_partners", [])}

    @cached_property
    def agencies(self) -> Mapping[str, str]:
        """Partners and relevant agencies: id -> name (the agencies a case, an escalation or an event may name)."""
        return {**self.partners,
                **{a["id"]: a.get("name", a["id"]) for a in self.document.get("relevant_agencies", [])}}

    @cached_property
    def agency_ids(self) -> frozenset[str]:
        return frozenset(self.agencies)

    @cached_property
    def case_readers(self) -> frozenset[str]:
        """Who reads every case of the partnership by role: the scrutineer role and the re-identification key role."""
        doc = self.document
        return (self.members((doc.get("independent_scrutiny") or {}).get("scrutineer_role"))
                | self.members((doc.get("data_protection") or {}).get("reidentification_key_role")))

    # --- what -------------------------------------------------------------------------------------------------

    @cached_property
    def categories(self) -> Mapping[str, str]:
        """Incident categories: id -> label."""
        sin = self.document.get("serious_incident_notification") or {}
        return {c["id"]: c.get("label", c["id"]) for c in sin.get("categories", [])}

    @cached_property
    def themes(self) -> Mapping[str, str]:
        return themes_for(dict(self.document))

    @cached_property
    def ladders(self) -> Mapping[str, Ladder]:
        ladders = {}
        for lad in (self.document.get("escalation") or {}).get("ladders", []):
            business_unit = self.members(lad.get("business_unit_role"))
            ladders[lad["id"]] = Ladder(
                id=lad["id"], name=lad.get("name", lad["id"]), purpose=lad.get("purpose", ""),
                stages={int(s["stage"]): s.get("name", f"Stage {s['stage']}") for s in lad.get("stages", [])},
                urgent_start_stage=int(lad.get("urgent_start_stage", 1)), business_unit=business_unit,
                readers=business_unit | self.members(lad.get("scrutineer_role")))
        return ladders

    @cached_property
    def disagreement_ladder(self) -> str:
        return (self.document.get("escalation") or {}).get("disagreement_ladder", "")

    @cached_property
    def lcspr_role(self) -> str:
        """Who commissions a local review and adds its actions."""
        return (self.document.get("lcspr") or {}).get("reviewer_commissioning_role", "")

    @cached_property
    def learning(self) -> Mapping[str, Any]:
        return self.document.get("learning") or {}

    @cached_property
    def learning_lead_role(self) -> str:
        """Everyday learning is set up when the arrangements name its lead role."""
        return self.learning.get("learning_lead_role", "")

    @cached_property
    def learning_leads(self) -> frozenset[str]:
        return self.members(self.learning_lead_role)

    @cached_property
    def learning_lead_title(self) -> str:
        role = next((r for r in self.document.get("roles", []) if r.get("id") == self.learning_lead_role), {})
        return role.get("title", "learning lead")

    @cached_property
    def allow_anonymous_reports(self) -> bool:
        return bool(self.learning.get("allow_anonymous_reports"))

    @cached_property
    def learning_responses(self) -> Mapping[str, str]:
        """Learning responses: id -> "After action review (within 10 working days)", and "No further action"."""
        return {**{r["id"]: f"{r.get('label', r['id'])} (within {r.get('within_working_days')} working days)"
                   for r in self.learning.get("responses", [])}, "no_further_action": "No further action"}

    @cached_property
    def options(self) -> Mapping[str, Mapping[str, str]]:
        """The ``x-options`` lists task forms draw from."""
        return {"themes": self.themes, "learning_responses": self.learning_responses}

    # --- when -------------------------------------------------------------------------------------------------

    @cached_property
    def calendar(self) -> WorkingCalendar | None:
        """Working days from 2018 to three years from now (None if the version's calendar cannot be built)."""
        try:
            return WorkingCalendar.for_config(self.document["calendar"], FIRST_YEAR, london_today().year + 3)
        except (KeyError, ValueError, TypeError):
            return None

    def working_days_left(self, today: date, due: date | None) -> int | None:
        """Working days from today to the due date: 0 on the day, negative once past; None if unknown."""
        if self.calendar is None or due is None:
            return None
        try:
            return self.calendar.working_days_between(today, due)
        except ValueError:  # outside the calendar's years
            return None

    def working_days_since(self, start: date | None, today: date) -> int | None:
        """Working days from ``start`` to today (never negative); None if unknown."""
        if self.calendar is None or start is None:
            return None
        try:
            return max(self.calendar.working_days_between(start, today), 0)
        except ValueError:
            return None


_caches: weakref.WeakKeyDictionary[Engine, LRUCache] = weakref.WeakKeyDictionary()
_lock = threading.Lock()
_LATEST = (select(ArrangementsVersion.number).where(ArrangementsVersion.partnership_id == bindparam("pid"))
           .order_by(ArrangementsVersion.number.desc()).limit(1))


_DOCUMENT = select(ArrangementsVersion.document).where(ArrangementsVersion.partnership_id == bindparam("pid"),
                                                     ArrangementsVersion.number == bindparam("number"))


def _cache(engine: Engine) -> LRUCache:
    cache = _caches.get(engine)
    if cache is None:
        cache = _caches[engine] = LRUCache(maxsize=CACHED_VERSIONS)
    return cache


def pinned(engine: Engine, partnership_id: str, number: int, conn: Connection | None = None) -> Pinned | None:
    """Version ``number`` of the partnership's arrangements (None if there is no such version). ``conn``: a
    connection the caller has open (read on it when the version is not cached yet)."""
    key = (partnership_id, number)
    with _lock:
        found = _cache(engine).get(key)
    if found is not None:
        return found
    if conn is None:
        with engine.connect() as own:
            document = own.execute(_DOCUMENT, {"pid": partnership_id, "number": number}).scalar()
    else:
        document = conn.execute(_DOCUMENT, {"pid": partnership_id, "number": number}).scalar()
    if document is None:
        return None
    found = Pinned(partnership_id=partnership_id, number=number, document=json.loads(document))
    with _lock:
        return _cache(engine).setdefault(key, found)


def latest_number(conn: Connection, partnership_id: str) -> int | None:
    return conn.execute(_LATEST, {"pid": partnership_id}).scalar()


def current(engine: Engine, partnership_id: str, conn: Connection | None = None) -> Pinned | None:
    """The partnership's latest version (None if it has none). ``conn``: a connection the caller has open."""
    if conn is None:
        with engine.connect() as own:
            number = latest_number(own, partnership_id)
    else:
        number = latest_number(conn, partnership_id)
    return None if number is None else pinned(engine, partnership_id, int(number), conn)
