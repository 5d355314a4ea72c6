"""Driving a local child safeguarding practice review's workflow in tests (Review)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlmodel import Session, select

from safeguarding.calendar import WorkingCalendar
from safeguarding.case_commands import act_on_task, actor_of, start_case, update_case
from safeguarding.case_records import ENGINE, ActionCommand, LcsprInput, TaskCommand
from safeguarding.clock import london_today
from safeguarding.tables import Case, CaseEvent, Task
from safeguarding.versions import document_of, get_version
from tests.support.workflow_driver import RV, principal
from workflows.lcspr import LocalReview, lcspr_workflow_id

NE = "northmoor-and-eastholme"
REPORT = "a" * 64 + ".pdf"


class Review:
    def __init__(self, env, engine, settings):
        self.env, self.engine, self.settings = env, engine, settings

    def doc(self, partnership: str) -> tuple[dict, int]:
        with Session(self.engine) as session:
            version = get_version(session, partnership)
        return document_of(version), version.number

    async def start(self, decision: date, *, partnership=RV, national=False, ref="R1") -> str:
        doc, number = self.doc(partnership)
        calendar = WorkingCalendar.for_config(doc["calendar"], decision.year - 1, decision.year + 4)
        inp = LcsprInput(partnership_id=partnership, reference=ref, parent_case_id="", arrangements_version=number,
                         arrangements=doc, calendar=calendar.to_payload(), decision_date=decision.isoformat(),
                         national_review=national, opened_at=datetime.now(UTC).isoformat(), engine=ENGINE)
        self.case_id = lcspr_workflow_id(partnership, ref)
        self.partnership = partnership
        await start_case(self.env.client, LocalReview.run, LocalReview.opened, inp, case_id=self.case_id,
                         task_queue=self.settings.task_queue, partnership_id=partnership, process="lcspr",
                         reference=ref, what="review")
        return self.case_id

    def configure(self, change, partnership=RV) -> None:
        """Store the partnership's arrangements as ``change`` leaves them (validated), for the next case."""
        from safeguarding.versions import store_version

        doc, _ = self.doc(partnership)
        change(doc)
        with Session(self.engine) as session:
            store_version(session, partnership, doc, author="test", change_note="test arrangements")
            session.commit()

    def case(self) -> Case:
        with Session(self.engine) as session:
            return session.get(Case, self.case_id)

    def national(self):
        """The case as the national Panel sees it (pseudonymised): (NationalCase, [NationalTask])."""
        from safeguarding.national import cases_by_ref

        with Session(self.engine) as session:
            (found,) = cases_by_ref(session, london_today(), self.case().national_ref)
        return found

    def task(self, key: str) -> Task | None:
        with Session(self.engine) as session:
            return session.get(Task, f"{self.case_id}/{key}")

    def events(self, kind: str) -> list[CaseEvent]:
        with Session(self.engine) as session:
            return list(session.exec(select(CaseEvent).where(CaseEvent.case_id == self.case_id,
                                                             CaseEvent.kind == kind).order_by(CaseEvent.seq)))

    async def do(self, key: str, data: dict, by: str = "u-rv-business-manager"):
        return await act_on_task(self.env.client, self.case_id, "complete",
                                 TaskCommand(key, actor_of(principal(self.engine, by)), data))

    async def action(self, owner: str, description: str, due: date, by: str = "u-rv-business-manager"):
        return await update_case(self.env.client, self.case_id, "add_action", ActionCommand(
            actor=actor_of(principal(self.engine, by)), owner=owner, description=description, due_date=due.isoformat()))

    async def today(self) -> date:
        return (await self.env.get_current_time()).astimezone(WorkingCalendar.for_config(
            self.doc(self.partnership)[0]["calendar"], 2025, 2030)._zone).date()

    async def to_final_report(self, today: date):
        await self.do("terms", {"agreed_on": today.isoformat(), "scope": "Agency involvement since birth."})
        await self.do("reviewer", {"reviewer": "Independent reviewer Ltd", "commissioned_on": today.isoformat(),
                                   "independence_confirmed": True})
        await self.do("family", {"engagement": "engaged", "summary": "Mother met the reviewer twice."})
        await self.do("draft", {"received_on": today.isoformat()})
        await self.do("final-report", {"accepted_on": today.isoformat(), "report_file": REPORT,
                                       "findings": "Information was not shared at weekends."})

    async def sign_off(self):
        for partner, who in (("riverford-council", "u-rv-la-dcs"), ("vale-icb", "u-rv-icb-cno"),
                             ("vale-police", "u-rv-police-dcs")):
            await self.do(f"signoff-{partner}", {"agree": True}, by=who)


