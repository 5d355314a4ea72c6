"""Local child safeguarding practice reviews on the time-skipping server: from the decision to published
learning and completed actions, the national review path, and the bad inputs."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import Session, select

from safeguarding.calendar import WorkingCalendar
from safeguarding.case_records import ENGINE, ActionCommand, LcsprInput, TaskCommand
from safeguarding.tables import Case, CaseEvent, Task
from safeguarding.versions import document_of, get_version
from tests.test_incident_workflow import RV, CaseDriver, eventually, principal, running_worker
from web.cases import act_on_task, actor_of, london_today, start_case, update_case
from web.errors import ApiError
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

    def case(self) -> Case:
        with Session(self.engine) as session:
            return session.get(Case, self.case_id)

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


@pytest.fixture
async def review(time_env, seeded_engine, settings):
    async with running_worker(time_env, seeded_engine, settings):
        yield Review(time_env, seeded_engine, settings)


async def test_decision_to_publication_on_time(review):
    today = london_today()
    await review.start(today)
    cal = WorkingCalendar.for_config(review.doc(RV)[0]["calendar"], 2025, 2030)
    case = review.case()
    assert (case.process, case.status) == ("lcspr", "open")
    assert case.report_due == cal.add_months(today, 6)
    assert review.task("terms").due_date == cal.add_working_days(today, 20)
    await review.to_final_report(today)
    with pytest.raises(ApiError) as err:  # publishing before every partner signed off
        await review.do("publication-plan", {"publish": "no", "reasons": "x", "improvements_summary": "y"})
    assert err.value.status == 409 and "sign off" in err.value.message
    await review.action("vale-icb", "Weekend information-sharing protocol", today + timedelta(days=60))
    await review.sign_off()
    await review.do("recommendations", {"recommendations": "1. Share information at weekends.",
                                        "all_actions_added": True})
    planned = today + timedelta(days=21)
    await review.do("publication-plan", {"publish": "yes", "planned_publication_date": planned.isoformat()})
    copy = review.task("prepublication")
    assert copy.due_date == cal.nth_working_day_before(planned, 7)
    await review.do("prepublication", {"sent_on": today.isoformat()})
    await review.env.sleep(timedelta(days=21))
    now = await review.today()
    await review.do("published", {"published_on": now.isoformat(), "url": "https://rvscp.example/reviews/child-a"})
    assert review.case().status == "open"  # an action is still open
    await review.do("action-1", {"outcome": "done", "evidence": "Protocol signed by all agencies."},
                    by="u-rv-icb-cno")
    case = review.case()
    assert (case.status, case.published, case.publication_date) == ("closed", True, planned)
    assert any("Published at https://rvscp.example" in e.message for e in review.events("task_completed"))


async def test_a_six_month_date_on_the_31st(review):
    await review.start(date(2026, 8, 31))
    assert review.case().report_due == date(2027, 2, 28)  # clamped to the month's end
    review2 = Review(review.env, review.engine, review.settings)
    await review2.start(date(2026, 8, 31), partnership=NE, ref="R2")
    assert review2.case().report_due == date(2027, 3, 1)  # 28 Feb 2027 is a Sunday: this partnership rolls forward


async def test_pre_publication_over_christmas(review):
    today = london_today()
    await review.start(today)
    await review.to_final_report(today)
    await review.sign_off()
    # 7 working days before Mon 4 Jan 2027 (bank holidays 25, 28 Dec and 1 Jan): 31, 30, 29, 24, 23, 22, 21 Dec
    await review.do("publication-plan", {"publish": "yes", "planned_publication_date": "2027-01-04"})
    assert review.task("prepublication").due_date == date(2026, 12, 21)


async def test_a_publication_date_too_close_names_the_earliest_allowed(review):
    today = london_today()
    await review.start(today)
    await review.to_final_report(today)
    await review.sign_off()
    with pytest.raises(ApiError) as err:
        await review.do("publication-plan", {"publish": "yes",
                                             "planned_publication_date": (today + timedelta(days=2)).isoformat()})
    assert err.value.status == 422 and err.value.fields[0].path == "/planned_publication_date"
    cal = WorkingCalendar.for_config(review.doc(RV)[0]["calendar"], 2025, 2030)
    earliest = date.fromisoformat(err.value.fields[0].message.rsplit(" ", 1)[1])
    day_before = earliest - timedelta(days=1)
    assert cal.nth_working_day_before(earliest, 7) >= today > cal.nth_working_day_before(day_before, 7)
    assert review.task("publication-plan").status == "open"  # nothing changed


async def test_not_published(review):
    today = london_today()
    await review.start(today)
    await review.to_final_report(today)
    await review.sign_off()
    await review.do("recommendations", {"recommendations": "None beyond the rapid review's.",
                                        "all_actions_added": True})
    await review.do("publication-plan", {"publish": "no", "reasons": "The family could be identified.",
                                         "improvements_summary": "Agencies now share information at weekends."})
    with pytest.raises(ApiError) as err:
        await review.do("prepublication", {"sent_on": today.isoformat()})
    assert err.value.status == 409 and "not to publish" in err.value.message
    await review.do("not-published", {"notice_sent_on": today.isoformat(),
                                      "summary_url": "https://rvscp.example/learning/summary-7"})
    case = review.case()
    assert (case.status, case.published) == ("closed", False)


async def test_the_national_review_suspends_the_local_process(time_env, seeded_engine, settings):
    today = london_today()
    async with running_worker(time_env, seeded_engine, settings):
        drv = CaseDriver(time_env, seeded_engine, settings)
        await drv.open(today)
        await drv.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True})
        await drv.through_rapid_review(today=today, decision="yes")
        await drv.complete("panel-response", {"response": "national_review"}, user_ref="u-panel-analyst")
        review = Review(time_env, seeded_engine, settings)
        review.case_id, review.partnership = lcspr_workflow_id(RV, drv.case().case_ref), RV
        await eventually(lambda: review.case() is not None)
        case = review.case()
        assert (case.status, case.parent_case_id) == ("suspended", drv.case_id)
        assert review.task("national-info").status == "open" and review.task("immediate-actions").status == "open"
        assert review.task("terms") is None  # the local review waits
        assert review.task("national-review").candidate_role == "national_panel"
        await review.do("immediate-actions", {"reviewed_on": today.isoformat(), "status": "All in place."},
                        by="u-rv-review-officer")
        await review.do("national-review", {"outcome": "handed_back"}, by="u-panel-analyst")
        case = review.case()
        assert case.status == "open" and review.task("terms").status == "open"
        assert case.report_due == WorkingCalendar.for_config(review.doc(RV)[0]["calendar"], 2025, 2030).add_months(
            today, 6)


async def test_the_local_review_starts_from_the_rapid_review_decision(time_env, seeded_engine, settings):
    today = london_today()
    async with running_worker(time_env, seeded_engine, settings):
        drv = CaseDriver(time_env, seeded_engine, settings)
        await drv.open(today)
        await drv.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True})
        await drv.through_rapid_review(today=today, decision="yes")
        await drv.complete("panel-response", {"response": "agrees"}, user_ref="u-panel-analyst")
        review_id = lcspr_workflow_id(RV, drv.case().case_ref)
        assert drv.case().status == "awaiting_lcspr"
        assert any(json.loads(e.data).get("case_id") == review_id for e in drv.events("review_started"))

        def review_case():
            with Session(seeded_engine) as session:
                return session.get(Case, review_id)

        await eventually(lambda: review_case() is not None)
        assert (review_case().status, review_case().parent_case_id) == ("open", drv.case_id)


async def test_an_overdue_action_climbs_the_ladder(review):
    today = london_today()
    await review.start(today)
    await review.to_final_report(today)
    await review.action("vale-icb", "Weekend information-sharing protocol", today + timedelta(days=3))
    await review.env.sleep(timedelta(days=40))
    action = review.task("action-1")
    assert action.overdue and action.status == "open"
    ladder_id = f"escalation-{RV}-R1-action-1"

    def ladder():
        with Session(review.engine) as session:
            return session.get(Case, ladder_id)

    await eventually(lambda: ladder() is not None)
    assert ladder().highest_stage >= 2 and ladder().parent_case_id == review.case_id


@pytest.mark.parametrize(("owner", "description", "due", "path"), [
    ("", "Protocol", 30, "/owner"),
    ("no-such-agency", "Protocol", 30, "/owner"),
    ("vale-icb", "  ", 30, "/description"),
    ("vale-icb", "Protocol", -1, "/due_date"),
])
async def test_bad_actions_are_refused(review, owner, description, due, path):
    today = london_today()
    await review.start(today)
    await review.to_final_report(today)
    with pytest.raises(ApiError) as err:
        await review.action(owner, description, today + timedelta(days=due))
    assert err.value.status == 422 and err.value.fields[0].path == path
    with pytest.raises(ApiError) as err:  # only the commissioning role adds actions
        await review.action("vale-icb", "Protocol", today + timedelta(days=30), by="u-rv-teacher-dsl")
    assert err.value.status == 403
    assert review.task("action-1") is None
