"""Driving a case through its workflow in tests: a worker on the time-skipping server, a CaseDriver that opens
cases and acts on tasks as the API does, and waiting for the read model."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import date

from sqlmodel import Session, select
from temporalio.worker import Worker

from activities import build_activities
from safeguarding.accounts import Principal
from safeguarding.calendar import WorkingCalendar
from safeguarding.case_commands import act_on_task, actor_of
from safeguarding.intake import IncidentIn, open_incident
from safeguarding.tables import Case, CaseEvent, Task, TaskCandidate, User
from workflows.registry import WORKFLOWS

RV = "riverford-and-vale"
NE = "northmoor-and-eastholme"


def principal(engine, user_ref: str) -> Principal:
    with Session(engine) as session:
        return Principal.of(session.exec(select(User).where(User.user_ref == user_ref)).one())


@asynccontextmanager
async def running_worker(env, engine, settings):
    with ThreadPoolExecutor(max_workers=8) as pool:
        async with Worker(env.client, task_queue=settings.task_queue, workflows=WORKFLOWS,
                          activities=build_activities(engine, settings), activity_executor=pool):
            yield


class CaseDriver:
    """Drives one case as its people would, through intake and Updates."""

    def __init__(self, env, engine, settings, partnership=RV):
        self.env, self.engine, self.settings, self.partnership = env, engine, settings, partnership

    async def open(self, aware: date, *, category="serious_harm_abuse_neglect", agencies=None, opener=None,
                   ref=None, age: int | None = None) -> str:
        lead = principal(self.engine, opener or ("u-rv-business-manager" if self.partnership == RV
                                                 else self._lead()))
        incident = IncidentIn(case_ref=ref or f"T-{uuid.uuid4().hex[:8]}", aware_date=aware, category=category,
                              children=[{"pseudonym": "Child A"}], summary="Infant admitted with injuries.",
                              agencies=agencies if agencies is not None else ["riverford-council", "vale-icb",
                                                                              "riverford-schools"],
                              age_at_incident=age)
        self.case_id, status = await open_incident(self.engine, self.env.client, self.settings.task_queue, lead,
                                                   self.partnership, incident)
        assert status == "open"
        return self.case_id

    def _lead(self) -> str:
        with Session(self.engine) as session:
            return session.exec(select(User.user_ref).where(User.partnership_id == self.partnership,
                                                            User.kind == "partnership_lead")).first()

    def task(self, key: str) -> Task:
        with Session(self.engine) as session:
            return session.get(Task, f"{self.case_id}/{key}")

    def case(self) -> Case:
        with Session(self.engine) as session:
            return session.get(Case, self.case_id)

    def events(self, kind: str | None = None) -> list[CaseEvent]:
        with Session(self.engine) as session:
            query = select(CaseEvent).where(CaseEvent.case_id == self.case_id).order_by(CaseEvent.seq)
            return [e for e in session.exec(query) if kind is None or e.kind == kind]

    def candidates(self, key: str) -> list[str]:

        with Session(self.engine) as session:
            return sorted(session.exec(select(TaskCandidate.user_ref).where(
                TaskCandidate.task_id == f"{self.case_id}/{key}")))

    async def complete(self, key: str, data: dict, user_ref: str | None = None):
        from safeguarding.case_records import TaskCommand

        user_ref = user_ref or self.candidates(key)[0] if user_ref is None and self.candidates(key) else user_ref
        who = principal(self.engine, user_ref or "u-panel-analyst")
        return await act_on_task(self.env.client, self.case_id, "complete",
                                 TaskCommand(task_key=key, actor=actor_of(who), data=data))

    async def to_signoff(self, today: date) -> str:
        """Opens an incident aware ``today`` and takes it to the partners' sign-off: each agency's summary in its
        own words, the meeting and a decision to hold a local review; the case id."""
        case_id = await self.open(today)
        for agency, text in (("riverford-council", "Known to children's social care since March."),
                             ("vale-icb", "Health visiting since birth."),
                             ("riverford-schools", "Attendance fell in the autumn term.")):
            await self.complete(f"summary-{agency}", {"involvement": text})
        await self.complete("meeting", {"held_on": today.isoformat(), "summary": "Facts gathered at the meeting."})
        await self.complete("decision", {"hold_lcspr": "yes", "national_importance": False,
                                         "decided_on": today.isoformat(), "learning_themes": ["information-sharing"],
                                         "rationale": "Agencies did not share information at weekends.",
                                         "learning": "Information sharing at weekends."})
        return case_id

    async def through_rapid_review(self, *, today: date, decision="yes", decided_on: date | None = None,
                                   submitted_on: date | None = None):
        for agency in ("riverford-council", "vale-icb", "riverford-schools"):
            await self.complete(f"summary-{agency}", {"involvement": "Health visiting since birth."})
        await self.complete("meeting", {"held_on": (decided_on or today).isoformat(), "summary": "Facts gathered."})
        await self.complete("decision", {"hold_lcspr": decision, "national_importance": False,
                                         "decided_on": (decided_on or today).isoformat(),
                                         "learning_themes": ["information-sharing"],
                                         "rationale": "Agencies did not share information.",
                                         "learning": "Information sharing at weekends."})
        for partner in ("riverford-council", "vale-icb", "vale-police"):
            await self.complete(f"signoff-{partner}", {"agree": True})
        await self.complete("submission", {"submitted_on": (submitted_on or today).isoformat()})


async def eventually(check, timeout: float = 10.0) -> None:
    """For work the workflow hands to background activities (email delivery)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def driver_case(driver, case_id: str) -> Case | None:
    with Session(driver.engine) as session:
        return session.get(Case, case_id)


def calendar_for(engine, partnership=RV) -> WorkingCalendar:
    from safeguarding.versions import document_of, get_version

    with Session(engine) as session:
        doc = document_of(get_version(session, partnership))
    return WorkingCalendar.for_config(doc["calendar"], 2018, date.today().year + 3)
