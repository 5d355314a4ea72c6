"""Issue 16, points 1 and 3, through the web app: the intake asks the age where the category depends on it and
where the child lives; the resident partnership's coordinators find the case and their summary task in their lists,
read that case only, and complete the task from its page. On the time-skipping server."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from sqlmodel import Session, select

from safeguarding.clock import london_today
from safeguarding.tables import Case, Task
from sgflow.seed import DEMO_PASSWORD
from tests.support.incident import running_worker
from tests.support.pages import Pages
from web.app import create_app

RV, NE = "riverford-and-vale", "northmoor-and-eastholme"
LEAD = ("rv-business-manager@demo.test", DEMO_PASSWORD)
NE_COORDINATOR = ("ne-review-coordinator@demo.test", DEMO_PASSWORD)
NE_OTHER = ("ne-social-worker@demo.test", DEMO_PASSWORD)
NE_LEAD = ("ne-business-manager@demo.test", DEMO_PASSWORD)
NATIONAL = ("panel@demo.test", DEMO_PASSWORD)


@pytest.fixture
async def app(time_env, seeded_engine, settings):
    async with running_worker(time_env, seeded_engine, settings):
        yield create_app(settings, engine=seeded_engine, temporal_client=time_env.client, connect_temporal=False)


@pytest.fixture
async def api(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client


def incident(**extra) -> dict:
    return {"case_ref": f"RV-{uuid.uuid4().hex[:6]}", "aware_date": london_today().isoformat(),
            "category": "serious_harm_abuse_neglect", "children": [{"pseudonym": "Child A"}],
            "summary": "Injuries.", "agencies": ["vale-icb"], **extra}


async def test_the_api_asks_the_age_where_the_category_depends_on_it_and_checks_where_the_child_lives(
        api, seeded_engine):
    no_age = await api.post(f"/api/partnerships/{RV}/incidents", auth=LEAD,
                            json=incident(category="care_leaver_death_to_24"))
    assert no_age.status_code == 422
    (field,) = no_age.json()["error"]["fields"]
    assert field["path"] == "/age_at_incident" and "covers ages from 16 to 24" in field["message"]
    too_old = await api.post(f"/api/partnerships/{RV}/incidents", auth=LEAD,
                             json=incident(category="care_leaver_death_to_24", age_at_incident=25))
    assert too_old.status_code == 422 and "not 25" in too_old.json()["error"]["fields"][0]["message"]
    own = await api.post(f"/api/partnerships/{RV}/incidents", auth=LEAD, json=incident(resident_partnership_id=RV))
    assert own.status_code == 422
    assert own.json()["error"]["fields"][0]["path"] == "/resident_partnership_id"
    with Session(seeded_engine) as session:
        assert session.exec(select(Case)).first() is None  # nothing opened by a refusal

    leaver = await api.post(f"/api/partnerships/{RV}/incidents", auth=LEAD,
                            json=incident(category="care_leaver_death_to_24", age_at_incident=19))
    assert leaver.status_code == 201, leaver.text
    tasks = (await api.get(f"/api/cases/{leaver.json()['case_id']}", auth=LEAD)).json()["tasks"]
    assert "Notify the Secretary of State and Ofsted" in [t["title"] for t in tasks]


async def test_the_child_lives_in_northmoor_whose_coordinators_contribute_and_read_that_case_only(
        app, api, seeded_engine):
    opened = await api.post(f"/api/partnerships/{RV}/incidents", auth=LEAD,
                            json=incident(resident_partnership_id=NE))
    assert opened.status_code == 201, opened.text
    case_id = opened.json()["case_id"]
    own = await api.post(f"/api/partnerships/{RV}/incidents", auth=LEAD, json=incident())  # Riverford's own child
    assert own.status_code == 201

    # Northmoor's coordinator: the case in their list, their summary in their tasks, that case readable
    listed = (await api.get("/api/cases", auth=NE_COORDINATOR)).json()
    assert [c["id"] for c in listed] == [case_id]
    mine = (await api.get("/api/tasks", auth=NE_COORDINATOR)).json()
    assert [(t["case_id"], t["key"]) for t in mine] == [(case_id, "summary-resident")]
    assert (await api.get(f"/api/cases/{case_id}", auth=NE_COORDINATOR)).status_code == 200
    assert (await api.get(f"/api/cases/{own.json()['case_id']}", auth=NE_COORDINATOR)).status_code == 404
    # Northmoor's lead reads it too; others of Northmoor do not
    assert (await api.get(f"/api/cases/{case_id}", auth=NE_LEAD)).status_code == 200
    assert (await api.get(f"/api/cases/{case_id}", auth=NE_OTHER)).status_code == 404
    assert (await api.get("/api/cases", auth=NE_OTHER)).json() == []

    # the task page: the coordinator claims and completes it
    page = Pages(app)
    try:
        await page.sign_in(*NE_COORDINATOR)
        inbox = await page.get("/tasks")
        assert f"/cases/{case_id}/tasks/summary-resident" in inbox.text
        task = await page.get(f"/cases/{case_id}/tasks/summary-resident")
        assert task.status_code == 200 and "where the child lives" in task.text
        done = await page.post(f"/cases/{case_id}/tasks/summary-resident",
                               {"involvement": "Known to children's services since 2024."})
        assert done.status_code in (200, 303), done.text
    finally:
        await page.close()
    with Session(seeded_engine) as session:
        row = session.get(Task, f"{case_id}/summary-resident")
        national_ref = session.get(Case, case_id).national_ref
    assert (row.status, row.completed_by) == ("done", "u-ne-review-coordinator")

    # the Panel's page of the case shows both areas and how many children, never who
    panel = Pages(app)
    try:
        await panel.sign_in(*NATIONAL)
        shown = await panel.get(f"/national/cases/{national_ref}")
        assert shown.status_code == 200
        text = " ".join(re.sub(r"<[^>]+>", " ", shown.text).split())
        assert "Child lives in Northmoor and Eastholme Safeguarding Children Partnership (the case is led by" in text
        assert "Children 1" in text and "Child A" not in text
    finally:
        await panel.close()


async def test_the_intake_form_asks_the_age_and_where_the_child_lives(app, seeded_engine):
    page = Pages(app)
    try:
        await page.sign_in(*LEAD)
        form = await page.get("/incidents/new")
        assert "Where does the child live?" in form.text and 'name="age_at_incident"' in form.text
        assert "Northmoor and Eastholme" in form.text  # the other partnership on the service, to choose
        today = london_today()
        sent = {"case_ref": f"RV-{uuid.uuid4().hex[:6]}", "aware_date-day": str(today.day),
                "aware_date-month": str(today.month), "aware_date-year": str(today.year),
                "category": "care_leaver_death_to_24", "child-1-pseudonym": "Child A", "summary": "Died.",
                "resident": "elsewhere"}
        bad = await page.post("/incidents/new", sent)
        assert bad.status_code == 422
        assert 'href="#age_at_incident"' in bad.text and "covers ages from 16 to 24" in bad.text
        assert "Choose the partnership where the child lives" in bad.text
        opened = await page.post("/incidents/new", {**sent, "age_at_incident": "19", "resident_partnership_id": NE})
        assert opened.status_code == 303, opened.text
        case_id = opened.headers["location"].removeprefix("/cases/").removesuffix("?recorded=1")
    finally:
        await page.close()
    with Session(seeded_engine) as session:
        case = session.get(Case, case_id)
    assert (case.resident_partnership_id, case.panel_sees) == (NE, False)


async def test_a_bad_age_or_area_is_refused_naming_the_field(app, api):
    """Bad input on the new intake fields: a clear error that names the field, nothing opened."""
    for extra, path, words in (({"age_at_incident": 31}, "/age_at_incident", "the child's age"),
                               ({"age_at_incident": "nineteen"}, "/age_at_incident", "the child's age"),
                               ({"resident_area_name": "x" * 201}, "/resident_area_name", "area")):
        refused = await api.post(f"/api/partnerships/{RV}/incidents", auth=LEAD,
                                 json=incident(category="care_leaver_death_to_24", **extra))
        assert refused.status_code == 422, extra
        (field,) = [f for f in refused.json()["error"]["fields"] if f["path"] == path]
        assert words in field["message"].lower() and "input should" not in field["message"].lower()
    page = Pages(app)
    try:
        await page.sign_in(*LEAD)
        await page.get("/incidents/new")
        today = london_today()
        bad = await page.post("/incidents/new", {
            "case_ref": "RV-AGE-1", "aware_date-day": str(today.day), "aware_date-month": str(today.month),
            "aware_date-year": str(today.year), "category": "care_leaver_death_to_24",
            "child-1-pseudonym": "Child A", "summary": "Died.", "age_at_incident": "nineteen"})
        assert bad.status_code == 422 and 'href="#age_at_incident"' in bad.text
        assert "Input should" not in bad.text
    finally:
        await page.close()
