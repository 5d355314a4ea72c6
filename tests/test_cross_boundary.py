"""Issue 16, point 3: a cross-boundary case. The notifying partnership (Riverford & Vale) leads; the child lives in
Northmoor and Eastholme, which uses this service: it is recorded, invited as a contributor with its own agency
summary task, and reads that case only. The national view shows both areas and the number of children.

Workflow tests on the time-skipping server, with the dates written out.
"""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select
from sqlmodel import Session

from safeguarding import national
from safeguarding.accounts import Principal
from safeguarding.case_records import Actor
from safeguarding.cross_boundary import (
    ResidentArea,
    contributed_cases,
    contributor_may_read,
    contributor_tasks,
    resident_area,
)
from safeguarding.tables import Case, CasePartnership, Task, User
from tests.support.incident import NE, RV, RV_NOTIFIER, Incident, running_worker

HARM = "serious_harm_abuse_neglect"
NE_NAME = "Northmoor and Eastholme Safeguarding Children Partnership"
NE_COORDINATOR = Actor(user_ref="u-ne-review-coordinator", kind="reviewer", partnership_id=NE)


def principal(engine, user_ref: str) -> Principal:
    with Session(engine) as session:
        return Principal.of(session.execute(select(User).where(User.user_ref == user_ref)).scalar_one())


def where_the_child_lives(engine, **kw) -> tuple[ResidentArea | None, list[tuple[str, str]]]:
    with engine.connect() as conn:
        return resident_area(conn, RV, **kw)


# --- intake's check of where the child lives -------------------------------------------------------------------


def test_a_partnership_on_the_service_is_recorded_with_its_coordinators_as_contributor(seeded_engine):
    area, problems = where_the_child_lives(seeded_engine, partnership_id=NE)
    assert problems == [] and area.partnership_id == NE and area.area_name == NE_NAME
    assert area.contributor == {"partnership_id": NE, "name": NE_NAME, "role": "review_coordinators",
                                "role_title": "Review coordinators",
                                "members": ["u-ne-business-manager", "u-ne-review-coordinator"]}
    assert area.input_fields()["resident_partnership_id"] == NE


def test_an_area_not_on_the_service_is_recorded_by_its_name(seeded_engine):
    area, problems = where_the_child_lives(seeded_engine, area_name="  Westshire  ")
    assert problems == [] and area == ResidentArea(None, "Westshire", None)
    assert where_the_child_lives(seeded_engine) == (None, [])


@pytest.mark.parametrize(("given", "field", "words"), [
    ({"partnership_id": RV}, "resident_partnership_id", "your own area"),
    ({"partnership_id": "no-such-partnership"}, "resident_partnership_id", "uses this service"),
    ({"area_name": NE_NAME.upper()}, "resident_area_name", "choose it from the list"),
    ({"area_name": "Riverford & Vale Safeguarding Children Partnership"}, "resident_area_name", "your own area"),
    ({"area_name": "x" * 201}, "resident_area_name", "200 characters"),
])
def test_where_the_child_lives_is_checked(seeded_engine, given, field, words):
    area, ((found, message),) = where_the_child_lives(seeded_engine, **given)
    assert area is None and found == field and words in message


# --- the case, on the time-skipping server ----------------------------------------------------------------------


@pytest.fixture
async def incident(time_env, seeded_engine, settings):
    async with running_worker(time_env, seeded_engine, settings):
        yield Incident(time_env, seeded_engine, settings)


async def test_the_resident_partnership_contributes_its_own_summary(incident, seeded_engine):
    area, _ = where_the_child_lives(seeded_engine, partnership_id=NE)
    # aware Mon 16 Nov 2026 (Riverford's rapid review runs from awareness): agency summaries are due 10 working
    # days later, Mon 30 Nov 2026; the rapid review 15, Mon 7 Dec 2026
    await incident.open(date(2026, 11, 16), HARM, area=area, children=2)
    case = incident.case()
    assert (case.partnership_id, case.resident_partnership_id, case.resident_area_name) == (RV, NE, NE_NAME)
    assert case.children_count == 2 and case.rapid_review_due == date(2026, 12, 7)
    (recorded,) = incident.events("resident_area")
    assert recorded.message == f"The child lives in {NE_NAME}: {NE_NAME} is invited to contribute (Review coordinators)"
    summary = incident.task("summary-resident")
    assert summary.title == f"Agency summary: {NE_NAME} (where the child lives)"
    assert (summary.candidate_role, summary.due_date) == (f"contributor:{NE}", date(2026, 11, 30))
    assert summary.partnership_id == RV  # the lead's case
    assert incident.candidates("summary-resident") == ["u-ne-business-manager", "u-ne-review-coordinator"]
    assert incident.task("summary-riverford-council").due_date == date(2026, 11, 30)  # the lead's own agencies too
    with Session(seeded_engine) as session:
        rows = session.execute(select(CasePartnership.partnership_id, CasePartnership.role)
                               .where(CasePartnership.case_id == incident.case_id)).all()
    assert sorted(rows) == [(NE, "resident"), (RV, "lead")]

    # only the resident partnership's coordinators may do it: not the lead's people, not others of Northmoor
    assert await incident.refused("summary-resident", {"involvement": "Known to us."}, RV_NOTIFIER) == "forbidden"
    other = Actor(user_ref="u-ne-social-worker", kind="reviewer", partnership_id=NE)
    assert await incident.refused("summary-resident", {"involvement": "Known to us."}, other) == "forbidden"
    # nor someone of the lead's partnership who happens to share a user ref's role elsewhere
    impostor = Actor(user_ref="u-ne-review-coordinator", kind="reviewer", partnership_id=RV)
    assert await incident.refused("summary-resident", {"involvement": "Known to us."}, impostor) == "forbidden"
    # and the resident partnership has no say in the lead's own tasks
    assert await incident.refused("summary-riverford-council", {"involvement": "x"}, NE_COORDINATOR) == "forbidden"

    coordinator = principal(seeded_engine, "u-ne-review-coordinator")
    with Session(seeded_engine) as session:
        assert session.execute(select(Task.key).where(contributor_tasks(coordinator))).scalars().all() == [
            "summary-resident"]
    await incident.complete("summary-resident", {"involvement": "Known to children's services since 2024."},
                            NE_COORDINATOR)
    assert incident.task("summary-resident").status == "done"
    assert incident.task("summary-resident").completed_by == "u-ne-review-coordinator"


async def test_the_resident_partnership_reads_that_case_only(incident, seeded_engine):
    area, _ = where_the_child_lives(seeded_engine, partnership_id=NE)
    shared = await incident.open(date(2026, 11, 16), HARM, area=area)
    other = Incident(incident.env, incident.engine, incident.settings)
    await other.open(date(2026, 11, 17), HARM)  # a Riverford case with no tie to Northmoor
    ne_lead = principal(seeded_engine, "u-ne-business-manager")
    coordinator = principal(seeded_engine, "u-ne-review-coordinator")
    social_worker = principal(seeded_engine, "u-ne-social-worker")
    rv_officer = principal(seeded_engine, "u-rv-review-officer")
    panel = principal(seeded_engine, "u-panel-analyst")
    with seeded_engine.connect() as conn:
        shared_case, other_case = (conn.execute(select(Case.__table__).where(Case.id == i)).one()
                                   for i in (shared, other.case_id))
        assert contributor_may_read(conn, ne_lead, shared_case) and contributor_may_read(conn, coordinator,
                                                                                          shared_case)
        assert not contributor_may_read(conn, social_worker, shared_case)  # nothing of theirs in it
        assert not contributor_may_read(conn, ne_lead, other_case)  # that case only
        assert not contributor_may_read(conn, rv_officer, shared_case)  # the lead's own rules decide for its people
        assert not contributor_may_read(conn, panel, shared_case)
    with Session(seeded_engine) as session:
        for who, expected in ((ne_lead, [shared]), (coordinator, [shared]), (social_worker, []), (rv_officer, []),
                              (panel, [])):
            assert session.execute(select(Case.id).where(contributed_cases(who))).scalars().all() == expected


async def test_an_area_not_on_the_service_is_recorded_and_no_one_is_invited(incident, seeded_engine):
    area, _ = where_the_child_lives(seeded_engine, area_name="Westshire")
    await incident.open(date(2026, 11, 16), HARM, area=area)
    case = incident.case()
    assert (case.resident_partnership_id, case.resident_area_name) == (None, "Westshire")
    assert [e.message for e in incident.events("resident_area")] == [
        "The child lives in Westshire (not on this service)"]
    assert incident.task("summary-resident") is None
    with Session(seeded_engine) as session:
        assert session.execute(select(CasePartnership).where(
            CasePartnership.case_id == incident.case_id)).first() is None


async def test_the_national_view_shows_both_areas_and_the_number_of_children(incident, seeded_engine):
    area, _ = where_the_child_lives(seeded_engine, partnership_id=NE)
    await incident.open(date(2026, 11, 16), HARM, area=area, children=3)
    with Session(seeded_engine) as session:
        (found, tasks), = national.cases_by_ref(session, date(2026, 12, 1), incident.case().national_ref)
        listed, _ = national.list_cases(session, date(2026, 12, 1), partnership_id=RV)
    assert (found.partnership_name, found.child_lives_in, found.children_count) == (
        "Riverford & Vale Safeguarding Children Partnership", NE_NAME, 3)
    assert [(c.child_lives_in, c.children_count) for c in listed] == [(NE_NAME, 3)]
    assert "summary-resident" in {t.key for t in tasks}
    out = national.case_out(found, tasks)
    assert out["child_lives_in"] == NE_NAME and out["children_count"] == 3 and "children" not in out


def test_the_intake_checks_the_age_and_the_area_in_one_call(seeded_engine):
    from safeguarding.cross_boundary import intake_fields
    from tests.support.incident import arrangements

    _, doc = arrangements(seeded_engine, RV)
    with seeded_engine.connect() as conn:
        extra, problems = intake_fields(conn, doc, RV, category="care_leaver_death_to_24", age_at_incident=19,
                                        resident_partnership_id=NE)
        assert problems == [] and extra["age_at_incident"] == 19 and extra["resident_partnership_id"] == NE
        assert extra["resident_contributor"]["role"] == "review_coordinators"
        extra, problems = intake_fields(conn, doc, RV, category="care_leaver_death_to_24",
                                        resident_partnership_id=RV)
        assert [field for field, _ in problems] == ["age_at_incident", "resident_partnership_id"]
        extra, problems = intake_fields(conn, doc, RV, category=HARM)
        assert (extra, problems) == ({"age_at_incident": None}, [])
