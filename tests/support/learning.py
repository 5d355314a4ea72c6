"""Drives an everyday-learning event: recorded through the JSON API as its reporter, worked through Updates by the
learning lead; reads the read model."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlmodel import Session

from safeguarding.case_commands import act_on_task, actor_of
from safeguarding.case_records import TaskCommand
from safeguarding.clock import london_today
from safeguarding.tables import Case, Task
from sgflow.seed import DEMO_PASSWORD
from tests.support.workflow_driver import principal

REPORTER = ("rv-health-visitor@demo.test", DEMO_PASSWORD)
LEAD_REF = "u-rv-learning-lead"


def event(**overrides) -> dict:
    body = {"occurred_on": (london_today() - timedelta(days=2)).isoformat(), "kind": "near_miss",
            "what_happened": "A referral sent on Friday evening was not picked up until Tuesday.",
            "what_was_expected": "Referrals are triaged within one working day.",
            "agencies": ["riverford-council", "riverford-hospitals"], "factors": ["tools-and-information-systems",
                                                                              "inter-agency-working"],
            "themes": ["information-sharing"], "anonymous": False}
    body.update(overrides)
    return body


class Learning:
    def __init__(self, env, engine, settings, api):
        self.env, self.engine, self.settings, self.api = env, engine, settings, api

    async def record(self, auth=REPORTER, **overrides) -> httpx.Response:
        response = await self.api.post("/api/partnerships/riverford-and-vale/learning-events", json=event(**overrides),
                                       auth=auth)
        if response.status_code == 201:
            self.case_id = response.json()["case_id"]
        return response

    async def do(self, key: str, data: dict, by: str = LEAD_REF):
        return await act_on_task(self.env.client, self.case_id, "complete",
                                 TaskCommand(key, actor_of(principal(self.engine, by)), data))

    def case(self) -> Case:
        with Session(self.engine) as session:
            return session.get(Case, self.case_id)

    def task(self, key: str) -> Task | None:
        with Session(self.engine) as session:
            return session.get(Task, f"{self.case_id}/{key}")
