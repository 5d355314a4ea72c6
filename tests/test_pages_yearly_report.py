"""The yearly report page, its downloads and its JSON API, over HTTP, with a worker on the time-skipping server;
and the publish_by warning on the lead's arrangements pages and in the editor."""

from __future__ import annotations

import csv
import io
import re

import httpx
import pytest
from docx import Document
from sqlmodel import Session, select

from safeguarding.tables import AuditEntry, Case
from sgflow.seed import DEMO_PASSWORD
from tests.support.workflow_driver import running_worker
from web.app import create_app

RV = "riverford-and-vale"
LEAD, NE_LEAD = "rv-business-manager@demo.test", "ne-business-manager@demo.test"
TEACHER, NATIONAL = "rv-teacher-dsl@demo.test", "panel@demo.test"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
WARNING = "set no date by which the yearly report must be published"


@pytest.fixture
async def web(time_env, seeded_engine, settings):
    app = create_app(settings, engine=seeded_engine, temporal_client=time_env.client, connect_temporal=False)
    clients: list[httpx.AsyncClient] = []

    async def sign_in(email: str) -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
        clients.append(client)
        token = TOKEN.search((await client.get("/sign-in")).text).group(1)
        response = await client.post("/sign-in", data={"email": email, "password": DEMO_PASSWORD, "csrf_token": token})
        assert response.status_code == 303
        return client

    def api(email: str) -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                                   auth=(email, DEMO_PASSWORD))
        clients.append(client)
        return client

    async with running_worker(time_env, seeded_engine, settings):
        yield sign_in, api, seeded_engine
    for client in clients:
        await client.aclose()


def _token(page: str) -> str:
    return TOKEN.search(page).group(1)


def _reports(engine) -> list[Case]:
    with Session(engine) as session:
        return list(session.exec(select(Case).where(Case.process == "yearly_report")))


async def test_the_lead_starts_a_report_from_the_page_and_takes_the_figures(web):
    sign_in, _api, engine = web
    lead = await sign_in(LEAD)
    page = await lead.get("/yearly-report")
    assert page.status_code == 200
    assert WARNING in page.text  # Riverford & Vale leave publish_by empty
    assert "2025-26 (1 April 2025 to 31 March 2026)" in page.text
    assert "each partner’s lead safeguarding partner" in page.text
    # a date that does not exist: the page says which field, and nothing starts
    bad = await lead.post("/yearly-report", data={"csrf_token": _token(page.text), "period_start": "2025-04-01",
                                                  "previous-day": "31", "previous-month": "2", "previous-year": "2026"})
    assert bad.status_code == 422
    assert "The date the previous report was published must be a real date" in bad.text
    assert _reports(engine) == []
    started = await lead.post("/yearly-report", data={"csrf_token": _token(page.text), "period_start": "2025-04-01",
                                                      "previous-day": "30", "previous-month": "6",
                                                      "previous-year": "2026"})
    assert started.status_code == 303
    assert started.headers["location"] == "/cases/yearly_report-riverford-and-vale-YR-2025-26"
    case_page = await lead.get(started.headers["location"])
    assert "Draft the yearly report" in case_page.text
    listing = await lead.get("/yearly-report")
    assert "YR-2025-26" in listing.text and "30 June 2027" in listing.text
    again = await lead.post("/yearly-report", data={"csrf_token": _token(listing.text), "period_start": "2025-04-01"})
    assert again.status_code == 409 and "already exists" in again.text

    docx = await lead.get("/yearly-report/figures.docx?period=2025-04-01")
    assert docx.status_code == 200
    assert docx.headers["content-type"].startswith("application/vnd.openxmlformats-officedocument")
    assert "attachment" in docx.headers["content-disposition"]
    document = Document(io.BytesIO(docx.content))
    assert any(p.text.endswith("yearly report 2025-26") for p in document.paragraphs)
    text = (await lead.get("/yearly-report/figures.csv?period=2025-04-01")).content.decode("utf-8-sig")
    assert next(csv.reader(io.StringIO(text))) == ["Period", "Section", "Measure", "Value"]
    with Session(engine) as session:
        exports = session.exec(select(AuditEntry.detail).where(AuditEntry.action == "yearly_report.export")).all()
    assert sorted(exports) == ["figures 2025-26 as csv", "figures 2025-26 as docx"]


async def test_who_sees_the_yearly_report(web):
    sign_in, _api, _engine = web
    teacher = await sign_in(TEACHER)  # a practitioner: no start form, no figures
    page = await teacher.get("/yearly-report")
    assert page.status_code == 200 and "Start the yearly report" not in page.text
    assert (await teacher.get("/yearly-report/figures.csv")).status_code == 403
    panel = await sign_in(NATIONAL)  # the national body has no partnership here
    assert (await panel.get("/yearly-report")).status_code == 404
    assert (await panel.get("/yearly-report/figures.docx")).status_code == 404


async def test_the_publish_by_warning_on_the_arrangements_pages(web):
    sign_in, _api, _engine = web
    lead = await sign_in(LEAD)
    assert WARNING in (await lead.get("/arrangements")).text
    assert WARNING in (await lead.get("/arrangements/edit")).text
    other = await sign_in(NE_LEAD)  # Northmoor & Eastholme set 30 September
    assert WARNING not in (await other.get("/arrangements")).text
    assert WARNING not in (await other.get("/yearly-report")).text


async def test_the_json_api(web):
    _sign_in, api, engine = web
    lead = api(LEAD)
    unknown = await lead.post(f"/api/partnerships/{RV}/yearly-reports", json={"period": "2025-04-01"})
    assert unknown.status_code == 422
    assert any("period" in str(f) for f in unknown.json()["error"]["fields"])
    wrong = await lead.post(f"/api/partnerships/{RV}/yearly-reports", json={"period_start": "2025-01-01"})
    assert wrong.status_code == 422
    assert wrong.json()["error"]["fields"][0]["path"] == "/period_start"
    assert _reports(engine) == []
    made = await lead.post(f"/api/partnerships/{RV}/yearly-reports",
                           json={"period_start": "2025-04-01", "previous_published_on": "2026-06-30"})
    assert made.status_code == 201
    body = made.json()
    assert (body["reference"], body["due_date"], body["period"]["end"]) == ("YR-2025-26", "2027-06-30", "2026-03-31")
    listed = (await lead.get(f"/api/partnerships/{RV}/yearly-reports")).json()
    assert [r["reference"] for r in listed["reports"]] == ["YR-2025-26"] and listed["warnings"]
    figures = await lead.get(f"/api/partnerships/{RV}/yearly-reports/figures", params={"period_start": "2025-04-01"})
    assert figures.status_code == 200
    assert [s["title"] for s in figures.json()["sections"]][:2] == ["Serious incident notifications", "Rapid reviews"]
    detail = (await lead.get(f"/api/cases/{body['case_id']}")).json()
    assert [t["key"] for t in detail["tasks"]] == ["draft"]
    panel = api(NATIONAL)
    assert (await panel.get(f"/api/partnerships/{RV}/yearly-reports")).status_code == 404
    assert (await panel.post(f"/api/partnerships/{RV}/yearly-reports", json={})).status_code == 404
    assert (await panel.get(f"/api/cases/{body['case_id']}")).status_code == 404
