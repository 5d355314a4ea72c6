"""Issue 15, point 8 (web side): a change that goes through Temporal answers within
settings.temporal_timeout_seconds, never hangs: 503 "not applied, try again" (one error shape, Retry-After) or
202 "accepted, will be applied"; and a retried POST with the same Idempotency-Key creates nothing new.

The worker is stopped (or never started) on the time-skipping server so the workflow cannot progress; a client
pointed at a closed port stands for Temporal being down.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import pytest
from sqlmodel import Session, func, select
from temporalio.client import Client
from temporalio.worker import Worker

from activities import build_activities
from safeguarding.case_commands import act_on_task, actor_of
from safeguarding.case_records import TaskCommand
from safeguarding.clock import london_today
from safeguarding.tables import Case, CaseEvent, Task
from tests.conftest import free_port
from tests.support.pages import Pages
from tests.support.workflow_driver import CaseDriver, principal, running_worker
from web.app import create_app
from workflows.registry import WORKFLOWS

PASSWORD = "demo-password"
LEAD = ("rv-business-manager@demo.test", PASSWORD)
DCS = ("rv-la-dcs@demo.test", PASSWORD)  # a notifying officer: does the notification task
SOCIAL_WORKER = ("rv-social-worker@demo.test", PASSWORD)
LEARNING_LEAD = ("rv-learning-lead@demo.test", PASSWORD)
BOUND = 1.0


def incident(ref: str) -> dict:
    return {"case_ref": ref, "aware_date": london_today().isoformat(), "category": "serious_harm_abuse_neglect",
            "children": [{"pseudonym": "Child A"}], "summary": "Admitted with injuries.",
            "agencies": ["riverford-council", "vale-icb", "riverford-schools"]}


@asynccontextmanager
async def uncached_worker(env, engine, settings):
    """A worker that keeps no workflow in its cache: once it stops, the case's next workflow task goes to the task
    queue, not to this worker's sticky queue (which the time-skipping server would hold on to), as after a crash
    and restart of a real worker whose sticky queue has timed out."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        async with Worker(env.client, task_queue=settings.task_queue, workflows=WORKFLOWS, max_cached_workflows=0,
                          activities=build_activities(engine, settings), activity_executor=pool):
            yield


def client_for(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def count(engine, model, *where) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(model).where(*where)).one()


@pytest.fixture
def bounded_settings(settings):
    return settings.model_copy(update={"temporal_timeout_seconds": BOUND})


async def retry_until_answered(api: httpx.AsyncClient, url: str, body: dict, key: dict,
                               auth: tuple[str, str] = DCS) -> httpx.Response:
    deadline = time.monotonic() + 30
    while True:
        response = await api.post(url, json=body, auth=auth, headers=key)
        if response.status_code not in (503, 202) or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.5)


def assert_not_applied(response: httpx.Response, took: float) -> None:
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "not_applied" and "same Idempotency-Key" in error["message"]
    assert int(response.headers["retry-after"]) > 0
    assert took < BOUND + 1.5, f"answered after {took:.1f} s"


async def test_a_completion_with_no_worker_answers_503_in_time_and_its_retry_applies_once(
        time_env, seeded_engine, bounded_settings):
    settings = bounded_settings
    driver = CaseDriver(time_env, seeded_engine, settings)
    async with uncached_worker(time_env, seeded_engine, settings):
        case_id = await driver.open(london_today())
    app = create_app(settings, engine=seeded_engine, temporal_client=time_env.client, connect_temporal=False)
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    body = {"sent_on": london_today().isoformat(), "local_partners_notified": True}
    url = f"/api/cases/{case_id}/tasks/notification/complete"
    async with client_for(app) as api:
        started = time.monotonic()
        first = await api.post(url, json=body, auth=DCS, headers=key)  # no worker: the Update is never accepted
        assert_not_applied(first, time.monotonic() - started)
        assert driver.task("notification").status == "open"
        page = Pages(app)  # the page's form gets the same outcome as a GOV.UK page, not a 500
        await page.sign_in(DCS[0])
        await page.get(f"/cases/{case_id}/tasks/notification")
        day = london_today()
        started = time.monotonic()
        shown = await page.post(f"/cases/{case_id}/tasks/notification", {
            "sent_on-day": str(day.day), "sent_on-month": str(day.month), "sent_on-year": str(day.year),
            "local_partners_notified": "true"})
        assert shown.status_code in (503, 202) and time.monotonic() - started < BOUND + 1.5
        assert ("Your change has not been saved yet" in shown.text if shown.status_code == 503
                else "accepted" in shown.text)
        await page.close()
        async with running_worker(time_env, seeded_engine, settings):
            # the same request again, as a client that honours Retry-After would (the restarted worker may take a
            # few seconds to pick the case up: Temporal first offers it to the stopped worker's sticky queue)
            again = await retry_until_answered(api, url, body, key)
            assert again.status_code == 200, again.text
            again = await api.post(url, json=body, auth=DCS, headers=key)
    assert again.status_code == 200, again.text  # a retry of a completed request answers like the first
    assert again.json()["task_key"] == "notification" and driver.task("notification").status == "done"
    completions = count(seeded_engine, CaseEvent, CaseEvent.case_id == case_id, CaseEvent.kind == "task_completed",
                        CaseEvent.task_key == "notification")
    assert completions == 1


async def test_an_incident_opened_while_the_worker_is_down_is_accepted_and_its_retry_opens_nothing_new(
        time_env, seeded_engine, bounded_settings):
    app = create_app(bounded_settings, engine=seeded_engine, temporal_client=time_env.client, connect_temporal=False)
    key = {"Idempotency-Key": "incident-retry-1"}
    async with client_for(app) as api:
        started = time.monotonic()
        first = await api.post("/api/partnerships/riverford-and-vale/incidents", json=incident("BW-1"), auth=LEAD,
                               headers=key)
        assert time.monotonic() - started < BOUND + 1.5
        assert first.status_code == 202, first.text  # the workflow is started; it opens the case when a worker runs
        case_id = first.json()["case_id"]
        assert case_id == "incident-riverford-and-vale-BW-1" and first.json()["status"] == "accepted"
        async with running_worker(time_env, seeded_engine, bounded_settings):
            retry = await retry_until_answered(api, "/api/partnerships/riverford-and-vale/incidents",
                                               incident("BW-1"), key, auth=LEAD)
            assert retry.status_code == 201 and retry.json()["case_id"] == case_id, retry.text
            other = await api.post("/api/partnerships/riverford-and-vale/incidents", json=incident("BW-1"),
                                   auth=LEAD, headers={"Idempotency-Key": "another-request"})
            assert other.status_code == 409  # the same reference from another request is still a conflict
            again = await api.post("/api/partnerships/riverford-and-vale/incidents", json=incident("BW-1"),
                                   auth=LEAD, headers=key)
    assert again.status_code == 201 and again.json()["case_id"] == case_id
    assert count(seeded_engine, Case) == 1


async def test_with_temporal_unreachable_a_request_answers_503_quickly(seeded_engine, bounded_settings):
    down = await Client.connect(f"127.0.0.1:{free_port()}", lazy=True)
    app = create_app(bounded_settings, engine=seeded_engine, temporal_client=down, connect_temporal=False)
    async with client_for(app) as api:
        started = time.monotonic()
        response = await api.post("/api/partnerships/riverford-and-vale/incidents", json=incident("DOWN-1"),
                                  auth=LEAD, headers={"Idempotency-Key": "down-1"})
        assert_not_applied(response, time.monotonic() - started)
        page = Pages(app)
        await page.sign_in(LEAD[0])
        await page.get("/incidents/new")
        day = london_today()
        started = time.monotonic()
        shown = await page.post("/incidents/new", {
            "case_ref": "DOWN-2", "aware_date-day": str(day.day), "aware_date-month": str(day.month),
            "aware_date-year": str(day.year), "category": "serious_harm_abuse_neglect",
            "child-1-pseudonym": "Child A", "summary": "Admitted."})
        assert shown.status_code == 503 and "Your change has not been saved yet" in shown.text
        assert "govuk-error-summary" in shown.text and int(shown.headers["retry-after"]) > 0
        assert time.monotonic() - started < BOUND + 1.5
        await page.close()
    assert count(seeded_engine, Case) == 0


async def test_retried_posts_with_the_same_key_create_exactly_one_thing(time_env, seeded_engine, settings):
    app = create_app(settings, engine=seeded_engine, temporal_client=time_env.client, connect_temporal=False)
    async with running_worker(time_env, seeded_engine, settings), client_for(app) as api:
        # an escalation: its made-up reference comes from the key
        body = {"subject": "Threshold not met.", "agencies": ["vale-police"], "issue_type": "threshold"}
        answers = [await api.post("/api/partnerships/riverford-and-vale/escalations", json=body, auth=SOCIAL_WORKER,
                                  headers={"Idempotency-Key": "esc-1"}) for _ in range(3)]
        assert [a.status_code for a in answers] == [201, 201, 201], answers[-1].text
        assert len({a.json()["case_id"] for a in answers}) == 1
        assert count(seeded_engine, Case, Case.process == "escalation") == 1
        # a learning event likewise
        day = (london_today() - timedelta(days=2)).isoformat()
        event = {"occurred_on": day, "kind": "near_miss", "what_happened": "A referral sat in an inbox.",
                 "what_was_expected": "Triage within a day.", "agencies": ["riverford-council"],
                 "factors": ["inter-agency-working"], "themes": ["information-sharing"]}
        answers = [await api.post("/api/partnerships/riverford-and-vale/learning-events", json=event,
                                  auth=SOCIAL_WORKER, headers={"Idempotency-Key": "learn-1"}) for _ in range(2)]
        assert [a.status_code for a in answers] == [201, 201] and answers[0].json() == answers[1].json()
        assert count(seeded_engine, Case, Case.process == "learning") == 1
        learning_id = answers[0].json()["case_id"]
        # a task completion: the second answers like the first, one completion
        await act_on_task(time_env.client, learning_id, "complete", TaskCommand(
            "triage", actor_of(principal(seeded_engine, "u-rv-learning-lead")),
            {"response": "after_action_review", "rationale": "Proportionate."}))
        # an action: one, however often it is sent
        action = {"owner": "riverford-council", "description": "Check the shared inbox rota.",
                  "due_date": (london_today() + timedelta(days=30)).isoformat()}
        answers = [await api.post(f"/api/cases/{learning_id}/actions", json=action, auth=LEARNING_LEAD,
                                  headers={"Idempotency-Key": "act-1"}) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 200], answers[-1].text
        assert len({a.json()["task_key"] for a in answers}) == 1
        assert count(seeded_engine, Task, Task.case_id == learning_id, Task.key.like("action-%")) == 1
        driver = CaseDriver(time_env, seeded_engine, settings)
        case_id = await driver.open(london_today())
        url = f"/api/cases/{case_id}/tasks/notification/complete"
        data = {"sent_on": london_today().isoformat(), "local_partners_notified": True}
        answers = [await api.post(url, json=data, auth=DCS, headers={"Idempotency-Key": "done-1"}) for _ in range(2)]
        assert [a.status_code for a in answers] == [200, 200] and answers[0].json() == answers[1].json()
        other = await api.post(url, json=data, auth=DCS, headers={"Idempotency-Key": "done-2"})
        assert other.status_code == 409  # a different request for a done task is still refused
        assert count(seeded_engine, CaseEvent, CaseEvent.case_id == case_id, CaseEvent.kind == "task_completed") == 1
