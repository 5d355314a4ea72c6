"""The database layer on SQLite and PostgreSQL: migrations, arrangements versions, users, the demo seed."""

from __future__ import annotations

import copy

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, func, select

from safeguarding.accounts import authenticate, hash_password
from safeguarding.arrangements import ArrangementsError
from safeguarding.db import DatabaseUnavailableError, check_connection, make_engine, upgrade
from safeguarding.tables import ArrangementsVersion, Partnership, User
from safeguarding.versions import diff, document_of, get_version, list_versions, store_version
from sgflow.seed import DEMO_PASSWORD, seed_demo


def test_migrations_create_the_tables_and_are_idempotent(engine):
    tables = set(inspect(engine).get_table_names())
    assert {"partnership", "arrangements_version", "app_user", "alembic_version"} <= tables
    upgrade(engine)  # second run changes nothing and does not fail
    assert set(inspect(engine).get_table_names()) == tables


def test_storing_versions_numbers_them_and_skips_identical_documents(engine, riverford):
    with Session(engine) as session:
        first = store_version(session, "riverford-and-vale", riverford, author="lead@rv", change_note="first")
        session.commit()
        again = store_version(session, "riverford-and-vale", copy.deepcopy(riverford), author="someone else")
        session.commit()
        changed = copy.deepcopy(riverford)
        changed["rapid_review"]["deadline"]["value"] = 20
        second = store_version(session, "riverford-and-vale", changed, author="lead@rv", change_note="longer RR")
        session.commit()
        assert (first.number, first.created) == (1, True)
        assert (again.number, again.created) == (1, False)
        assert (second.number, second.created) == (2, True)
        assert [v.number for v in list_versions(session, "riverford-and-vale")] == [2, 1]
        assert session.get(Partnership, "riverford-and-vale").name == riverford["partnership"]["name"]
        v1, v2 = get_version(session, "riverford-and-vale", 1), get_version(session, "riverford-and-vale")
        assert v2.number == 2 and v1.author == "lead@rv" and v2.change_note == "longer RR"
        assert document_of(v1) == riverford  # stored exactly, retrievable
        changes = diff(document_of(v1), document_of(v2))
        assert [str(c) for c in changes] == ["/rapid_review/deadline/value: 15 → 20"]


def test_an_invalid_document_stores_nothing(engine, riverford):
    bad = copy.deepcopy(riverford)
    bad["rapid_review"]["deadline"]["value"] = -3
    with Session(engine) as session:
        with pytest.raises(ArrangementsError) as err:
            store_version(session, "riverford-and-vale", bad, author="x")
        session.rollback()
        assert any(i.path == "/rapid_review/deadline/value" for i in err.value.issues)
        assert session.exec(select(func.count()).select_from(ArrangementsVersion)).one() == 0
        assert session.exec(select(func.count()).select_from(Partnership)).one() == 0


def test_a_document_for_another_partnership_is_refused(engine, riverford):
    with Session(engine) as session, pytest.raises(ArrangementsError) as err:
        store_version(session, "northmoor-and-eastholme", riverford, author="x")
    assert err.value.issues[0].path == "/partnership/id"


def test_version_numbers_are_unique_per_partnership(engine, riverford):
    with Session(engine) as session:
        store_version(session, "riverford-and-vale", riverford, author="x")
        session.commit()
        row = session.exec(select(ArrangementsVersion)).one()
        session.add(ArrangementsVersion(partnership_id=row.partnership_id, number=1, content_hash="0" * 64,
                                        document="{}", author="y"))
        with pytest.raises(IntegrityError):
            session.commit()


def test_seed_is_idempotent_and_users_can_sign_in(engine):
    first = list(seed_demo(engine))
    second = list(seed_demo(engine))
    assert any("stored riverford-and-vale" in line for line in first)
    assert second == []  # nothing new the second time
    with Session(engine) as session:
        users = list(session.exec(select(User)))
        assert {u.kind for u in users} >= {"partnership_lead", "reviewer", "national_body", "administrator"}
        assert len({u.email for u in users}) == len(users)
        lead = next(u for u in users if u.kind == "partnership_lead")
        assert authenticate(session, lead.email, DEMO_PASSWORD).user_ref == lead.user_ref
        assert authenticate(session, lead.email.upper(), DEMO_PASSWORD) is not None  # emails are case-blind
        assert authenticate(session, lead.email, "wrong") is None
        assert authenticate(session, "nobody@demo.test", DEMO_PASSWORD) is None
        assert all(u.password_hash.startswith("$argon2") for u in users)


def test_emails_are_unique(engine):
    with Session(engine) as session:
        for ref in ("u-a", "u-b"):
            session.add(User(email="same@demo.test", display_name="A", user_ref=ref, kind="reviewer",
                             password_hash=hash_password("x")))
        with pytest.raises(IntegrityError):
            session.commit()


def test_an_unreachable_database_gives_one_clear_error():
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(DatabaseUnavailableError) as err:
        check_connection(engine)
    message = str(err.value)
    assert "cannot connect to the database" in message and "DATABASE_URL" in message
    assert "\n" not in message


def test_a_malformed_database_url_is_named():
    with pytest.raises(DatabaseUnavailableError, match="DATABASE_URL is not a valid database URL"):
        make_engine("not a url")


def test_the_inbox_query_pages_and_counts_on_both_databases(engine):
    """The inbox's one statement (tasks joined to cases, the total as a window count) on SQLite and PostgreSQL."""
    from datetime import UTC, datetime, timedelta

    from safeguarding.accounts import Principal
    from safeguarding.clock import london_today
    from safeguarding.tables import Case, Task, TaskCandidate
    from web.views.inbox import inbox_rows

    list(seed_demo(engine))
    today, now = london_today(), datetime.now(UTC)
    case_id = "incident-riverford-and-vale-PAGED"
    with Session(engine) as session:
        session.add(Case(id=case_id, partnership_id="riverford-and-vale", case_ref="PAGED", process="incident",
                         national_ref="N-PAGED", category="serious_harm_abuse_neglect", status="open", stage="",
                         arrangements_version=1, aware_date=today, opened_by="u-rv-la-dcs", opened_at=now,
                         children="[]", agencies="[]"))
        session.flush()
        for n in range(30):
            session.add(Task(id=f"{case_id}/step-{n:02d}", case_id=case_id, partnership_id="riverford-and-vale",
                             key=f"step-{n:02d}", type="rr_meeting", title=f"Step {n:02d}", form="rr_meeting.v1",
                             candidate_role="review_officer", candidate_label="Review officer", status="open",
                             due_date=today + timedelta(days=30 - n), opened_at=now))
        session.flush()
        session.add_all([TaskCandidate(task_id=f"{case_id}/step-{n:02d}", user_ref="u-rv-review-officer")
                         for n in range(30)])
        session.commit()
        officer = Principal.of(session.exec(select(User).where(User.user_ref == "u-rv-review-officer")).one())
        other = Principal.of(session.exec(select(User).where(User.user_ref == "u-rv-la-dcs")).one())
    filters = {"status": "open", "overdue": False, "page": 1}
    rows, total, page = inbox_rows(engine, officer, filters)
    assert (total, page, len(rows)) == (30, 1, 25)
    assert [r["title"] for r in rows[:2]] == ["Step 29", "Step 28"]  # soonest due first
    assert rows[0]["case_label"] == "PAGED" and rows[0]["href"] == f"/cases/{case_id}/tasks/step-29"
    rows, total, page = inbox_rows(engine, officer, {**filters, "page": 2})
    assert (total, page, [r["title"] for r in rows]) == (30, 2, [f"Step {n:02d}" for n in range(4, -1, -1)])
    assert inbox_rows(engine, officer, {**filters, "page": 9})[1:] == (30, 2)  # past the end: the last page
    assert inbox_rows(engine, officer, {**filters, "overdue": True}) == ([], 0, 1)
    assert inbox_rows(engine, other, filters)[1] == 0  # not one of the role
