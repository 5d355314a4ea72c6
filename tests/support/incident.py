"""Opening incident cases with the engine-4 input (issue 16: age at the incident, where the child lives) straight
through Temporal, as the web intake does, and doing their tasks through Updates; every check reads the read model.

(The intake form's own fields are the web app's; these tests need only what the workflow is given.)
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session
from temporalio.client import WorkflowUpdateFailedError
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from safeguarding.calendar import WorkingCalendar
from safeguarding.case_records import ENGINE, Actor, IncidentInput, TaskCommand, TaskResult
from safeguarding.cross_boundary import ResidentArea
from safeguarding.tables import Case, CaseEvent, Task, TaskCandidate
from safeguarding.versions import document_of, get_version
from tests.support.workflow_driver import NE, RV, running_worker  # noqa: F401 (shared with the tests)
from workflows.incident import IncidentCase, workflow_id

RV_NOTIFIER = Actor(user_ref="u-rv-la-head-qa", kind="reviewer", partnership_id=RV)
RV_AGENCIES = ["riverford-council", "vale-icb", "riverford-schools"]


def arrangements(engine, partnership: str) -> tuple[int, dict[str, Any]]:
    with Session(engine) as session:
        version = get_version(session, partnership)
        return version.number, document_of(version)


class Incident:
    """One case, opened with an engine-4 input and driven by its people's Updates."""

    def __init__(self, env, engine, settings, partnership: str = RV):
        self.env, self.engine, self.settings, self.partnership = env, engine, settings, partnership
        self.case_id = ""

    async def open(self, aware: date, category: str, *, age: int | None = None, area: ResidentArea | None = None,
                   agencies: list[str] | None = None, children: int = 1, opener: Actor = RV_NOTIFIER) -> str:
        number, doc = arrangements(self.engine, self.partnership)
        ref = f"T-{uuid.uuid4().hex[:8]}"
        calendar = WorkingCalendar.for_config(doc["calendar"], aware.year - 1, aware.year + 5)
        inp = IncidentInput(
            partnership_id=self.partnership, case_ref=ref, arrangements_version=number, arrangements=doc,
            calendar=calendar.to_payload(), aware_date=aware.isoformat(), category=category,
            children=[{"pseudonym": f"Child {chr(65 + i)}", "local_ref": ""} for i in range(children)],
            summary="What happened, without names.", agencies=RV_AGENCIES if agencies is None else agencies,
            opened_by=opener, opened_at=datetime.now(UTC).isoformat(), engine=ENGINE, age_at_incident=age,
            **(area.input_fields() if area else {}))
        self.case_id = workflow_id(self.partnership, ref)
        handle = await self.env.client.start_workflow(
            IncidentCase.run, inp, id=self.case_id, task_queue=self.settings.task_queue,
            search_attributes=TypedSearchAttributes([
                SearchAttributePair(SearchAttributeKey.for_keyword("SgPartnership"), self.partnership),
                SearchAttributePair(SearchAttributeKey.for_keyword("SgProcess"), "incident"),
                SearchAttributePair(SearchAttributeKey.for_keyword("SgCaseRef"), ref)]))
        assert await handle.execute_update(IncidentCase.opened) == "open"
        return self.case_id

    async def complete(self, key: str, data: dict[str, Any], actor: Actor) -> TaskResult:
        handle = self.env.client.get_workflow_handle(self.case_id)
        return await handle.execute_update(IncidentCase.complete_task, TaskCommand(task_key=key, actor=actor,
                                                                                   data=data))

    async def refused(self, key: str, data: dict[str, Any], actor: Actor) -> str:
        """The kind of refusal (forbidden, invalid, ...) of completing a task."""
        try:
            await self.complete(key, data, actor)
        except WorkflowUpdateFailedError as exc:
            return exc.cause.type
        raise AssertionError("the update was accepted")

    def case(self) -> Case:
        with Session(self.engine) as session:
            return session.get(Case, self.case_id)

    def task(self, key: str) -> Task | None:
        with Session(self.engine) as session:
            return session.get(Task, f"{self.case_id}/{key}")

    def candidates(self, key: str) -> list[str]:
        with Session(self.engine) as session:
            return sorted(session.execute(select(TaskCandidate.user_ref).where(
                TaskCandidate.task_id == f"{self.case_id}/{key}")).scalars())

    def events(self, kind: str) -> list[CaseEvent]:
        with Session(self.engine) as session:
            return list(session.execute(select(CaseEvent).where(CaseEvent.case_id == self.case_id,
                                                                CaseEvent.kind == kind)
                                        .order_by(CaseEvent.seq)).scalars())
