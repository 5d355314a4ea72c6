"""Every JSON case route answers through a response model (issue 18): OpenAPI names what /api/tasks, the national
list and case, and adding an action return, and the file download is documented as a file; the bodies are what the
routes built before, field for field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.encoders import jsonable_encoder
from sqlmodel import Session

from safeguarding import national
from safeguarding.case_queries import my_tasks
from safeguarding.clock import london_today
from safeguarding.tables import TaskCandidate
from sgflow.seed import DEMO_PASSWORD
from tests.support.read_model_rows import add_case, add_task
from tests.support.workflow_driver import principal
from web.api.case_models import MyTaskOut, NationalCaseListed, NationalCaseOut, PanelTaskOut
from web.app import create_app

LEAD = ("rv-business-manager@demo.test", DEMO_PASSWORD)
PANEL = ("panel@demo.test", DEMO_PASSWORD)


@pytest.fixture
async def api(seeded_engine, settings):
    app = create_app(settings, engine=seeded_engine, temporal_client=None, connect_temporal=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client


async def test_openapi_names_the_answer_of_every_json_case_route(api):
    spec = (await api.get("/openapi.json")).json()

    def answer(path: str, method: str, status: str = "200") -> str:
        return json.dumps(spec["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"])

    tasks = answer("/api/tasks", "get")
    assert "MyTaskOut" in tasks and "PanelTaskOut" in tasks
    assert "NationalCaseListed" in answer("/api/national/cases", "get")
    assert "NationalCaseOut" in answer("/api/national/cases/{national_ref}", "get")
    assert "TaskResultOut" in answer("/api/cases/{case_id}/actions", "post")
    download = spec["paths"]["/api/cases/{case_id}/files/{file_id}"]["get"]["responses"]["200"]["content"]
    assert list(download) == ["application/octet-stream"]  # a file, not JSON
    schemas = spec["components"]["schemas"]
    assert "claimed_by_you" in schemas["PanelTaskOut"]["properties"]
    assert "tasks" in schemas["NationalCaseOut"]["properties"] and "url" in schemas["NationalCaseListed"]["properties"]


async def test_the_answers_validate_and_are_unchanged(api, seeded_engine):
    today = london_today()
    case = add_case(seeded_engine, "RM-1", status="open", stage="Awaiting the Panel's response")
    add_task(seeded_engine, case, "panel-response", type="panel_response", title="Respond to the rapid review",
             candidate_role="national_panel", candidate_label="the national Panel", due_date=today + timedelta(days=5))
    add_task(seeded_engine, case, "meeting", type="rr_meeting", title="Record the rapid review meeting",
             due_date=today - timedelta(days=1), overdue=True, opened_at=datetime.now(UTC) - timedelta(days=3))
    with Session(seeded_engine) as session:
        session.add(TaskCandidate(task_id=f"{case.id}/meeting", user_ref="u-rv-business-manager"))
        session.commit()

    panel_tasks = (await api.get("/api/tasks", auth=PANEL)).json()
    with Session(seeded_engine) as session:
        expected = national.panel_tasks(session, "u-panel-analyst")
    assert panel_tasks == jsonable_encoder(expected) and len(panel_tasks) == 1
    assert set(panel_tasks[0]) == set(PanelTaskOut.model_fields)
    PanelTaskOut.model_validate(panel_tasks[0])

    local_tasks = (await api.get("/api/tasks", auth=LEAD)).json()
    assert local_tasks == jsonable_encoder(my_tasks(seeded_engine, principal(seeded_engine, "u-rv-business-manager")))
    assert [t["key"] for t in local_tasks] == ["meeting"] and "for" in local_tasks[0]
    MyTaskOut.model_validate(local_tasks[0])

    listed = (await api.get("/api/national/cases", auth=PANEL)).json()
    with Session(seeded_engine) as session:
        rows, _ = national.list_cases(session, today)
        (found,) = national.cases_by_ref(session, today, case.national_ref)
    assert listed == jsonable_encoder([national.case_out(r, []) | {"url": f"/api/national/cases/{r.national_ref}"}
                                       for r in rows])
    assert set(listed[0]) == set(NationalCaseListed.model_fields)
    NationalCaseListed.model_validate(listed[0])
    one = (await api.get(f"/api/national/cases/{case.national_ref}", auth=PANEL)).json()
    assert one == jsonable_encoder(national.case_out(*found))
    assert set(one) == set(NationalCaseOut.model_fields) and len(one["tasks"]) == 2
    NationalCaseOut.model_validate(one)


async def test_a_cases_answer_has_its_published_plan(api, seeded_engine):
    """/api/cases/{id} says the steps the case's workflow planned (engine 6), and null for a case from before."""
    plan = [{"type": "notification_sent", "title": "Notify the national Panel", "applies": True},
            {"type": "panel_response", "title": "The national Panel’s response", "applies": False}]
    planned = add_case(seeded_engine, "PL-1", plan=json.dumps(plan))
    older = add_case(seeded_engine, "PL-2")
    answer = (await api.get(f"/api/cases/{planned.id}", auth=LEAD)).json()
    assert answer["plan"] == plan
    assert (await api.get(f"/api/cases/{older.id}", auth=LEAD)).json()["plan"] is None
    spec = (await api.get("/openapi.json")).json()
    assert "plan" in spec["components"]["schemas"]["CaseDetailOut"]["properties"]
