"""Drives a yearly report: started through the call the API and the lead's page use, its tasks done through
Updates; reads the read model."""

from __future__ import annotations

from sqlmodel import Session, select

from safeguarding.case_commands import act_on_task, actor_of
from safeguarding.case_records import TaskCommand
from safeguarding.tables import Case, CaseEvent, Task
from tests.support.workflow_driver import RV, principal
from web.api.yearly_reports import YearlyReportIn, start_yearly_report

URL = "https://rvscp.example/yearly-report-2025-26"


class Report:
    def __init__(self, env, engine, settings):
        self.env, self.engine, self.settings = env, engine, settings

    async def start(self, partnership=RV, by="u-rv-business-manager", **body) -> dict:
        out = await start_yearly_report(self.engine, self.env.client, self.settings.task_queue,
                                        principal(self.engine, by), partnership, YearlyReportIn(**body))
        self.case_id = out["case_id"]
        return out

    def case(self, case_id: str | None = None) -> Case | None:
        with Session(self.engine) as session:
            return session.get(Case, case_id or self.case_id)

    def task(self, key: str) -> Task | None:
        with Session(self.engine) as session:
            return session.get(Task, f"{self.case_id}/{key}")

    def open_keys(self) -> list[str]:
        with Session(self.engine) as session:
            return sorted(t.key for t in session.exec(select(Task).where(Task.case_id == self.case_id,
                                                                         Task.status == "open")))

    def messages(self, kind: str | None = None) -> list[str]:
        with Session(self.engine) as session:
            return [e.message for e in session.exec(select(CaseEvent).where(CaseEvent.case_id == self.case_id)
                                                    .order_by(CaseEvent.seq)) if kind is None or e.kind == kind]

    async def do(self, key: str, data: dict, by: str = "u-rv-business-manager"):
        return await act_on_task(self.env.client, self.case_id, "complete",
                                 TaskCommand(key, actor_of(principal(self.engine, by)), data))

    async def sign_all(self, suffix: str = ""):
        for partner, who in (("riverford-council", "u-rv-la-ceo"), ("vale-icb", "u-rv-icb-ceo"),
                             ("vale-police", "u-rv-police-cc")):
            await self.do(f"signoff-{partner}{suffix}", {"agree": True}, by=who)
