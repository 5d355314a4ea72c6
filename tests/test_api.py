"""The JSON API without Temporal: arrangements (validate, store, versions, diff), intake checks, access, errors."""

from __future__ import annotations

import copy
import json
from datetime import timedelta

import httpx
import pytest
import yaml
from sqlmodel import Session, func, select

from safeguarding.clock import london_today
from safeguarding.tables import ArrangementsVersion, AuditEntry
from sgflow.seed import DEMO_PASSWORD
from web.app import create_app

LEAD = ("rv-business-manager@demo.test", DEMO_PASSWORD)
REVIEWER = ("rv-teacher-dsl@demo.test", DEMO_PASSWORD)
OTHER_LEAD = ("ne-business-manager@demo.test", DEMO_PASSWORD)
NATIONAL = ("panel@demo.test", DEMO_PASSWORD)


@pytest.fixture
async def api(seeded_engine, settings):
    app = create_app(settings, engine=seeded_engine, temporal_client=None, connect_temporal=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client


def versions(engine) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(ArrangementsVersion)).one()


async def test_every_request_needs_credentials_and_errors_have_one_shape(api):
    response = await api.get("/api/cases")
    assert response.status_code == 401
    body = response.json()["error"]
    assert body["code"] == "unauthenticated" and body["status"] == 401 and body["fields"] == []
    response = await api.get("/api/cases", auth=(LEAD[0], "wrong"))
    assert response.status_code == 401


async def test_validate_lists_every_problem_by_path(api, riverford, seeded_engine):
    bad = copy.deepcopy(riverford)
    bad["rapid_review"]["dedline"] = bad["rapid_review"].pop("deadline")
    bad["calendar"]["extra_closure_days"] = [{"date": "2026-02-30", "reason": "typo"}]
    response = await api.post("/api/arrangements/validate", json=bad, auth=LEAD)
    assert response.status_code == 422
    fields = response.json()["error"]["fields"]
    paths = [f["path"] for f in fields]
    assert "/calendar/extra_closure_days/0/date" in paths
    assert any(p.startswith("/rapid_review") for p in paths)
    assert any("deadline" in f["message"] for f in fields)
    good = await api.post("/api/arrangements/validate", json=riverford, auth=LEAD)
    assert good.status_code == 200 and good.json() == {"valid": True, "partnership_id": "riverford-and-vale"}


async def test_yaml_is_accepted_and_its_syntax_errors_give_line_and_column(api, riverford):
    text = yaml.safe_dump(riverford, sort_keys=False)
    ok = await api.post("/api/arrangements/validate", content=text, auth=LEAD,
                        headers={"content-type": "application/yaml"})
    assert ok.status_code == 200
    broken = await api.post("/api/arrangements/validate", content="partnership:\n  id: [unclosed\n", auth=LEAD,
                            headers={"content-type": "application/yaml"})
    assert broken.status_code == 422
    assert "line" in broken.json()["error"]["fields"][0]["message"]


async def test_storing_versions_through_the_api(api, riverford, seeded_engine):
    before = versions(seeded_engine)
    same = await api.post("/api/partnerships/riverford-and-vale/arrangements", json=riverford, auth=LEAD)
    assert same.status_code == 200 and same.json()["created"] is False and versions(seeded_engine) == before
    changed = copy.deepcopy(riverford)
    changed["rapid_review"]["reminders"]["working_days_before_due"] = 3
    stored = await api.post("/api/partnerships/riverford-and-vale/arrangements?note=earlier%20reminders",
                            json=changed, auth=LEAD)
    assert stored.status_code == 201 and stored.json()["number"] == 2
    assert stored.json()["author"] == LEAD[0] and stored.json()["change_note"] == "earlier reminders"
    listed = await api.get("/api/partnerships/riverford-and-vale/arrangements", auth=REVIEWER)
    assert [v["number"] for v in listed.json()] == [2, 1]
    diff = await api.get("/api/partnerships/riverford-and-vale/arrangements/diff?from=1&to=2", auth=LEAD)
    assert [c["text"] for c in diff.json()] == ["/rapid_review/reminders/working_days_before_due: 2 → 3"]
    one = await api.get("/api/partnerships/riverford-and-vale/arrangements/2", auth=LEAD)
    assert one.json()["document"] == changed
    with Session(seeded_engine) as session:
        entries = session.exec(select(AuditEntry).where(AuditEntry.action == "arrangements.store")).all()
    assert [(e.actor, e.outcome) for e in entries] == [("u-rv-business-manager", "ok")] * 2


async def test_bad_arrangements_store_nothing(api, riverford, seeded_engine):
    before = versions(seeded_engine)
    bad = copy.deepcopy(riverford)
    bad["escalation"]["ladders"][0]["stages"][1]["handler_role"] = "no-such-role"
    response = await api.post("/api/partnerships/riverford-and-vale/arrangements", json=bad, auth=LEAD)
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["path"] == "/escalation/ladders/0/stages/1/handler_role"
    huge = b'{"x": "' + b"a" * 5_000_000 + b'"}'
    response = await api.post("/api/partnerships/riverford-and-vale/arrangements", content=huge, auth=LEAD,
                              headers={"content-type": "application/json"})
    assert response.status_code == 413 and "limit" in response.json()["error"]["message"]
    response = await api.post("/api/partnerships/riverford-and-vale/arrangements", content=b"{not json", auth=LEAD,
                              headers={"content-type": "application/json"})
    assert response.status_code == 422 and "line 1" in response.json()["error"]["fields"][0]["message"]
    assert versions(seeded_engine) == before
    with Session(seeded_engine) as session:
        rows = session.exec(select(AuditEntry).where(AuditEntry.action == "arrangements.store"))
        outcomes = [e.outcome for e in rows]
    # each refusal that reached the route is in the audit log, and nothing was stored; the oversized body was
    # refused (413) before it was read or its sender authenticated, so it never reached the route
    assert outcomes == ["rejected"] * 2


async def test_only_the_partnerships_leads_store_its_arrangements(api, riverford, seeded_engine):
    before = versions(seeded_engine)
    for who in (REVIEWER, OTHER_LEAD, NATIONAL):
        response = await api.post("/api/partnerships/riverford-and-vale/arrangements", json=riverford, auth=who)
        assert response.status_code == 403
    assert versions(seeded_engine) == before
    hidden = await api.get("/api/partnerships/riverford-and-vale/arrangements", auth=OTHER_LEAD)
    assert hidden.status_code == 404  # another partnership's people do not learn it exists


def incident(**overrides):
    body = {"case_ref": "RV-1", "aware_date": london_today().isoformat(), "category": "serious_harm_abuse_neglect",
            "children": [{"pseudonym": "Child A"}], "summary": "Injuries.", "agencies": ["vale-icb"]}
    body.update(overrides)
    return body


@pytest.mark.parametrize(("overrides", "path", "words"), [
    ({"category": "burglary"}, "/category", "Select the incident category"),
    ({"aware_date": (london_today() + timedelta(days=1)).isoformat()}, "/aware_date", "today or in the past"),
    ({"aware_date": "2017-12-31"}, "/aware_date", "2018 or later"),
    ({"children": [{"pseudonym": f"Child {c}"} for c in "ABCDE"]}, "/children", "at most 4"),
    ({"agencies": ["vale-icb", "northmoor-council"]}, "/agencies/1", "not a partner"),
    ({"children": []}, "/children", ""),
    ({"case_ref": "RV 1/2"}, "/case_ref", "letters, digits"),
    ({"aware_date": "2026-02-30"}, "/aware_date", ""),
    ({"summary": "   "}, "/summary", "Describe what happened"),
])
async def test_bad_incidents_name_the_field_and_start_nothing(api, overrides, path, words):
    response = await api.post("/api/partnerships/riverford-and-vale/incidents", json=incident(**overrides), auth=LEAD)
    assert response.status_code == 422, response.text
    fields = response.json()["error"]["fields"]
    assert any(f["path"] == path and words in f["message"] for f in fields), fields


async def test_intake_refuses_unknown_fields_naming_each(api, seeded_engine):
    """Issue 16.6: a field the API does not take is refused (422, nothing started), each named by its path, not
    silently dropped."""
    body = incident(colour="red")
    body["children"][0]["shoe_size"] = 4
    response = await api.post("/api/partnerships/riverford-and-vale/incidents", json=body, auth=LEAD)
    assert response.status_code == 422, response.text
    fields = {f["path"]: f["message"] for f in response.json()["error"]["fields"]}
    assert set(fields) == {"/colour", "/children/0/shoe_size"}, fields
    assert "‘colour’" in fields["/colour"] and "‘shoe_size’" in fields["/children/0/shoe_size"]
    spec = (await api.get("/openapi.json")).json()["components"]["schemas"]
    assert spec["IncidentIn"]["additionalProperties"] is False and spec["ChildIn"]["additionalProperties"] is False


@pytest.mark.parametrize(("overrides", "left_out", "path", "message"), [
    ({}, "aware_date", "/aware_date", "Enter the date the local authority became aware of the incident"),
    ({"aware_date": "2026-02-30"}, None, "/aware_date",
     "The date the local authority became aware of the incident must be a real date"),
    ({"aware_date": (london_today() + timedelta(days=1)).isoformat()}, None, "/aware_date",
     "The date the local authority became aware of the incident must be today or in the past"),
    ({"children": [{"local_ref": "LA-1"}]}, None, "/children/0/pseudonym", "Enter the child's pseudonym"),
    ({}, "category", "/category", "Select the incident category"),
    ({}, "case_ref", "/case_ref", "Enter your reference for this incident"),
    ({"summary": "x" * 5001}, None, "/summary", "What happened must be 5000 characters or fewer"),
])
async def test_intake_messages_name_the_field_in_plain_english(api, overrides, left_out, path, message):
    """Issue 16.6: intake errors say which field, as people know it, not pydantic's phrasing."""
    body = incident(**overrides)
    body.pop(left_out or "", None)
    response = await api.post("/api/partnerships/riverford-and-vale/incidents", json=body, auth=LEAD)
    assert response.status_code == 422, response.text
    fields = response.json()["error"]["fields"]
    assert any(f["path"] == path and f["message"].startswith(message) for f in fields), fields
    assert not any(words in f["message"] for f in fields for words in ("Field required", "Input should", "String "))


async def test_incidents_for_unknown_or_other_partnerships(api):
    response = await api.post("/api/partnerships/atlantis/incidents", json=incident(), auth=LEAD)
    assert response.status_code == 404
    response = await api.post("/api/partnerships/northmoor-and-eastholme/incidents", json=incident(), auth=LEAD)
    assert response.status_code == 404
    response = await api.post("/api/partnerships/riverford-and-vale/incidents", json=incident(), auth=REVIEWER)
    assert response.status_code == 403


async def test_openapi_documents_the_api(api):
    spec = (await api.get("/openapi.json")).json()
    for path in ("/api/partnerships/{partnership_id}/incidents", "/api/cases/{case_id}",
                 "/api/cases/{case_id}/tasks/{key}/complete", "/api/tasks", "/api/arrangements/validate"):
        assert path in spec["paths"]
    assert "ErrorResponse" in json.dumps(spec["components"])


async def test_every_json_case_route_documents_its_answer(api):
    """Issue 18.2: the case routes answer through response models, so OpenAPI describes what each returns."""
    spec = (await api.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]

    def answer(path: str, method: str, status: str = "200") -> str:
        content = spec["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]
        return json.dumps(content)

    assert "CaseOpened" in answer("/api/partnerships/{partnership_id}/incidents", "post", "201")
    assert "CaseSummaryOut" in answer("/api/cases", "get")
    assert "CaseDetailOut" in answer("/api/cases/{case_id}", "get")
    assert "TaskResultOut" in answer("/api/cases/{case_id}/tasks/{key}/complete", "post")
    assert "FileStored" in answer("/api/cases/{case_id}/files", "post", "201")
    assert "for" in schemas["TaskOut"]["properties"] and "tasks" in schemas["CaseDetailOut"]["properties"]


def test_no_page_route_answers_an_api_path_nor_an_api_route_a_page_path():
    """web.app includes the inbox and the case page before the API (the busiest pages are found sooner): that is only
    the same app while no route of one answers a path of the other."""
    from fastapi.routing import APIRoute
    from starlette.routing import Match

    from web.api import arrangements, cases
    from web.app import page_modules

    def routes_of(*modules) -> list[APIRoute]:
        return [r for m in modules for r in m.router.routes if isinstance(r, APIRoute)]

    api = routes_of(arrangements, cases)
    pages = routes_of(*page_modules())
    assert len(api) >= 15 and len(pages) >= 40 and all(r.path.startswith("/api/") for r in api)

    def example(path: str) -> str:  # a concrete path for a route's template
        return path.replace("{", "").replace("}", "")

    for group, others in ((api, pages), (pages, api)):
        for route in group:
            for method in route.methods:
                scope = {"type": "http", "method": method, "path": example(route.path), "root_path": ""}
                assert all(other.matches(scope)[0] == Match.NONE for other in others), route.path
