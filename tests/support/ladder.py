"""Drives an escalation ladder as its people would: raised through intake (or started in the past, to see its dates
across a bank holiday), each stage's outcome through an Update; reads the read model."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlmodel import Session, select

from safeguarding.case_commands import act_on_task, actor_of, start_case
from safeguarding.case_records import TaskCommand
from safeguarding.intake import EscalationIn, ladder_input, raise_escalation
from safeguarding.tables import Case, CaseEvent, Task
from safeguarding.versions import document_of, get_version
from tests.support.workflow_driver import RV, principal
from workflows.ladder import EscalationLadder, ladder_workflow_id


class Ladder:
    def __init__(self, env, engine, settings):
        self.env, self.engine, self.settings = env, engine, settings

    async def raise_(self, *, by="u-rv-social-worker", partnership=RV, urgent=False, raised_on: date | None = None,
                     **fields) -> str:
        who = principal(self.engine, by)
        body = EscalationIn(subject=fields.pop("subject", "Threshold for a strategy discussion not agreed."),
                            agencies=fields.pop("agencies", ["riverford-council", "vale-police"]),
                            issue_type=fields.pop("issue_type", "threshold"), urgent=urgent, **fields)
        if raised_on is None:
            self.case_id, _ = await raise_escalation(self.engine, self.env.client, self.settings.task_queue, who,
                                                     partnership, body)
            return self.case_id
        # a ladder raised in the past, to see its dates across a bank holiday
        with Session(self.engine) as session:
            version = get_version(session, partnership)
        reference = f"T-{raised_on.isoformat()}"
        inp = ladder_input(document_of(version), version.number, body, who, reference,
                           datetime.combine(raised_on, datetime.min.time(), tzinfo=UTC).replace(hour=10))
        self.case_id = ladder_workflow_id(partnership, reference)
        await start_case(self.env.client, EscalationLadder.run, EscalationLadder.opened, inp, case_id=self.case_id,
                         task_queue=self.settings.task_queue, partnership_id=partnership, process="escalation",
                         reference=reference, what="escalation")
        return self.case_id

    def case(self) -> Case:
        with Session(self.engine) as session:
            return session.get(Case, self.case_id)

    def tasks(self) -> dict[str, Task]:
        with Session(self.engine) as session:
            return {t.key: t for t in session.exec(select(Task).where(Task.case_id == self.case_id))}

    def events(self, kind: str) -> list[CaseEvent]:
        with Session(self.engine) as session:
            return list(session.exec(select(CaseEvent).where(CaseEvent.case_id == self.case_id,
                                                             CaseEvent.kind == kind).order_by(CaseEvent.seq)))

    async def outcome(self, stage: int, by: str, data: dict):
        return await act_on_task(self.env.client, self.case_id, "complete",
                                 TaskCommand(f"stage-{stage}", actor_of(principal(self.engine, by)), data))
