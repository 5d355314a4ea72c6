"""safeguarding.pinned: one typed, cached view of a stored arrangements version (issue 18.1)."""

from __future__ import annotations

import copy
from datetime import date

from sqlalchemy import event
from sqlmodel import Session

from safeguarding.pinned import Pinned, current, pinned
from safeguarding.versions import store_version

RV = "riverford-and-vale"


def counting(engine):
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    return statements


def test_a_pinned_version_is_read_once_and_has_its_facts(seeded_engine):
    statements = counting(seeded_engine)
    first = pinned(seeded_engine, RV, 1)
    assert first is not None and first.number == 1 and first.partnership_id == RV
    read = len(statements)
    assert pinned(seeded_engine, RV, 1) is first and len(statements) == read  # cached: no query
    assert pinned(seeded_engine, RV, 99) is None and pinned(seeded_engine, "atlantis", 1) is None
    assert "vale-icb" in first.agency_ids and first.agencies["vale-icb"]
    assert first.categories["death_abuse_neglect"].startswith("Child died")
    assert first.themes and "no_further_action" in first.learning_responses
    assert first.ladders[first.disagreement_ladder].stages
    assert first.options["themes"] is first.themes


def test_working_days_left_and_since_count_the_partnerships_calendar():
    doc = {"partnership": {"id": "p"}, "calendar": {"region": "england-and-wales"}}
    facts = Pinned.of(doc, 1)
    friday, monday = date(2026, 3, 6), date(2026, 3, 9)
    assert facts.working_days_left(friday, monday) == 1
    assert facts.working_days_left(monday, friday) == -1
    assert facts.working_days_since(friday, monday) == 1 and facts.working_days_since(monday, friday) == 0
    assert facts.working_days_left(friday, None) is None and facts.working_days_since(None, friday) is None
    broken = Pinned.of({"partnership": {"id": "p"}}, 1)
    assert broken.calendar is None and broken.working_days_left(friday, monday) is None


def test_current_is_the_latest_version(seeded_engine, riverford):
    assert current(seeded_engine, RV).number == 1
    changed = copy.deepcopy(riverford)
    changed["roles"][0]["title"] = "Renamed role"
    with Session(seeded_engine) as session:
        store_version(session, RV, changed, author="test", change_note="rename")
        session.commit()
    latest = current(seeded_engine, RV)
    assert latest.number == 2 and latest.role_titles[changed["roles"][0]["id"]] == "Renamed role"
    assert current(seeded_engine, "atlantis") is None
