"""Issue 15, point 10: numbers beyond what the database holds are a 422 (never a 500), on SQLite and PostgreSQL
(which raises on an out-of-range integer); and the OpenAPI document declares reference patterns and the errors
each route can answer."""

from __future__ import annotations

import httpx
import pytest

from sgflow.seed import DEMO_PASSWORD, seed_demo
from tests.support.pages import Pages
from web.app import create_app

LEAD = ("rv-business-manager@demo.test", DEMO_PASSWORD)
PANEL = ("panel@demo.test", DEMO_PASSWORD)
HUGE = "99999999999999999999"  # beyond 2^63


@pytest.fixture
async def app(engine, settings):
    list(seed_demo(engine))
    return create_app(settings, engine=engine, temporal_client=None, connect_temporal=False)


@pytest.mark.parametrize(("who", "path"), [
    (LEAD, f"/api/cases?offset={HUGE}"),
    (LEAD, f"/api/partnerships/riverford-and-vale/arrangements/{HUGE}"),
    (LEAD, f"/api/partnerships/riverford-and-vale/arrangements/diff?from={HUGE}&to=1"),
    (LEAD, f"/api/partnerships/riverford-and-vale/arrangements/diff?from=1&to={HUGE}"),
    (PANEL, f"/api/national/cases?offset={HUGE}"),
])
async def test_api_numbers_beyond_the_database_are_422(app, who, path):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                 base_url="http://test") as api:
        response = await api.get(path, auth=who)
    assert response.status_code == 422, (path, response.status_code, response.text[:300])
    error = response.json()["error"]
    assert error["code"] == "invalid" and error["fields"], error


async def test_page_numbers_beyond_the_database_are_422_or_the_first_page(app):
    page = Pages(app)
    await page.sign_in(LEAD[0])
    version = await page.get(f"/arrangements/{HUGE}")
    assert version.status_code == 422 and "There is a problem" in version.text
    for path in (f"/tasks?page={HUGE}", f"/outbox?page={HUGE}", f"/arrangements/diff?from={HUGE}&to=1",
                 f"/cases?page={HUGE}"):
        assert (await page.get(path)).status_code == 200, path
    await page.close()
    panel = Pages(app)
    await panel.sign_in(PANEL[0])
    for path in (f"/national?page={HUGE}", f"/tasks?page={HUGE}&status=done"):
        assert (await panel.get(path)).status_code == 200, path
    await panel.close()


def test_openapi_declares_reference_patterns_and_every_error_a_route_can_answer(seeded_engine, settings):
    spec = create_app(settings, engine=seeded_engine, temporal_client=None, connect_temporal=False).openapi()
    schemas = spec["components"]["schemas"]
    assert schemas["IncidentIn"]["properties"]["case_ref"]["pattern"] == "^[A-Za-z0-9][A-Za-z0-9-]{0,39}$"
    assert "^[A-Za-z0-9]" in schemas["EscalationIn"]["properties"]["reference"]["pattern"]
    paths = spec["paths"]
    through_temporal = [("/api/partnerships/{partnership_id}/incidents", "post"),
                        ("/api/partnerships/{partnership_id}/escalations", "post"),
                        ("/api/partnerships/{partnership_id}/learning-events", "post"),
                        ("/api/cases/{case_id}/tasks/{key}/complete", "post"),
                        ("/api/cases/{case_id}/tasks/{key}/claim", "post"),
                        ("/api/cases/{case_id}/actions", "post"), ("/api/cases/{case_id}/withdraw", "post"),
                        ("/api/national/cases/{national_ref}/tasks/{key}/complete", "post")]
    for path, method in through_temporal:
        operation = paths[path][method]
        assert {"202", "400", "413", "429", "503"} <= set(operation["responses"]), path
        assert "Retry-After" in operation["responses"]["503"]["description"]
        assert "Idempotency-Key" in [p["name"] for p in operation.get("parameters", [])], path
    for path in ("/api/cases", "/api/tasks", "/api/cases/{case_id}", "/api/partnerships/{partnership_id}/arrangements"):
        assert {"400", "401", "404", "422", "429"} <= set(paths[path]["get"]["responses"]), path
    assert "413" in paths["/api/partnerships/{partnership_id}/arrangements"]["post"]["responses"]
    assert "413" in paths["/api/cases/{case_id}/files"]["post"]["responses"]
