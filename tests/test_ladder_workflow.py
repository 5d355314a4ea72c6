"""Escalation ladders on the time-skipping server: each path a disagreement or overdue work can take."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pytest
from sqlmodel import Session, select

from safeguarding.case_commands import withdraw_escalation
from safeguarding.clock import london_today
from safeguarding.tables import Case, OutboxMessage
from safeguarding.versions import document_of, get_version
from tests.support.ladder import Ladder
from tests.support.workflow_driver import RV, CaseDriver, eventually, principal, running_worker
from web.errors import ApiError

NE = "northmoor-and-eastholme"


@pytest.fixture
async def ladder(time_env, seeded_engine, settings):
    async with running_worker(time_env, seeded_engine, settings):
        yield Ladder(time_env, seeded_engine, settings)


RESOLVED = {"outcome": "resolved", "agreed_actions": "Strategy discussion on Monday; police to attend.",
            "learning_theme": "information-sharing"}


async def test_resolved_at_stage_one(ladder):
    await ladder.raise_()
    case = ladder.case()
    assert (case.process, case.ladder_id, case.current_stage, case.status) == (
        "escalation", "professional-disagreement", 1, "open")
    assert ladder.tasks()["stage-1"].due_date > london_today()
    result = await ladder.outcome(1, "u-rv-police-officer", RESOLVED)
    assert result.case_status == "resolved"
    case = ladder.case()
    assert (case.status, case.outcome, case.learning_theme, case.highest_stage) == (
        "resolved", "resolved", "information-sharing", 1)
    assert "Strategy discussion on Monday" in ladder.events("task_completed")[0].message
    assert ladder.events("business_unit_told") == []  # told from stage 2 only


async def test_no_answer_climbs_every_stage_to_the_scrutineer(ladder):
    await ladder.raise_()
    await ladder.env.sleep(timedelta(days=60))
    case = ladder.case()
    assert (case.current_stage, case.highest_stage, case.timeouts, case.status) == (4, 4, 4, "open")
    timed = [json.loads(e.data) for e in ladder.events("escalated")]
    assert [(t["from"], t["to"], t["by"]) for t in timed] == [(1, 2, "timer"), (2, 3, "timer"), (3, 4, "timer")]
    assert [e.message for e in ladder.events("business_unit_told")] == [
        "Business unit told: stage 2", "Business unit told: stage 3", "Business unit told: stage 4"]
    # stage 4's timeout action names the scrutineer's role, and the last stage always tells the scrutineer: once
    assert len(ladder.events("scrutineer_notified")) == 1 and ladder.events("role_notified") == []
    with Session(ladder.engine) as session:
        mails = session.exec(select(OutboxMessage).where(OutboxMessage.case_id == ladder.case_id)).all()
    to_scrutineer = [m for m in mails if "u-rv-scrutineer" in json.loads(m.to_user_refs)]
    assert len(to_scrutineer) == 1 and "last stage" in to_scrutineer[0].subject
    tasks = ladder.tasks()
    assert [tasks[f"stage-{n}"].status for n in (1, 2, 3)] == ["cancelled"] * 3
    assert tasks["stage-4"].status == "open" and tasks["stage-4"].overdue
    # each stage's clock started from the previous stage's deadline (this partnership's rule)
    cal = ladder_calendar(ladder)
    assert tasks["stage-2"].due_date == cal.add_working_days(tasks["stage-1"].due_date, 5)
    assert tasks["stage-3"].due_date == cal.add_working_days(tasks["stage-2"].due_date, 2)


def ladder_calendar(ladder):
    from safeguarding.calendar import WorkingCalendar

    with Session(ladder.engine) as session:
        doc = document_of(get_version(session, ladder.case().partnership_id))
    return WorkingCalendar.for_config(doc["calendar"], 2025, 2030)


async def test_an_urgent_case_starts_at_the_urgent_stage(ladder):
    await ladder.raise_(urgent=True)
    case = ladder.case()
    assert (case.current_stage, case.urgent) == (3, True)
    tasks = ladder.tasks()
    assert "stage-1" not in tasks and tasks["stage-3"].candidate_role == "designated_safeguarding_leads"
    assert ladder.events("business_unit_told")  # stage 3 is past the business unit's threshold


async def test_withdrawal(ladder):
    await ladder.raise_()
    stranger = principal(ladder.engine, "u-rv-teacher-dsl")
    with pytest.raises(ApiError) as err:
        await withdraw_escalation(ladder.env.client, ladder.case_id, stranger, "no longer needed")
    assert err.value.status == 403
    raiser = principal(ladder.engine, "u-rv-social-worker")
    with pytest.raises(ApiError) as err:
        await withdraw_escalation(ladder.env.client, ladder.case_id, raiser, "   ")
    assert err.value.status == 422 and err.value.fields[0].path == "/reason"
    assert await withdraw_escalation(ladder.env.client, ladder.case_id, raiser, "Agreed over the phone.") == "withdrawn"
    case = ladder.case()
    assert (case.status, case.outcome) == ("withdrawn", "withdrawn") and "Agreed over the phone" in case.stage
    with pytest.raises(ApiError) as err:
        await withdraw_escalation(ladder.env.client, ladder.case_id, raiser, "again")
    assert err.value.status == 409


async def test_clock_from_previous_deadline_across_a_bank_holiday(ladder):
    # Riverford: stage 1 has 2 working days, stage 2 has 5 from stage 1's deadline. Raised Thu 27 Aug 2026:
    # Fri 28 (1), [Sat, Sun, Mon 31 Aug bank holiday], Tue 1 Sep (2) -> stage 1 due Tue 1 Sep;
    # stage 2: Wed 2 (1), Thu 3 (2), Fri 4 (3), Mon 7 (4), Tue 8 Sep (5).
    await ladder.raise_(raised_on=date(2026, 8, 27))
    tasks = ladder.tasks()
    assert tasks["stage-1"].due_date == date(2026, 9, 1)
    assert tasks["stage-2"].due_date == date(2026, 9, 8)


async def test_clock_from_previous_start_across_a_bank_holiday(ladder):
    # Northmoor: stage 1 has 5 working days from raising, stage 2 has 7 from stage 1's START. Raised Thu 27 Aug
    # 2026: 28 Aug (1), [31 Aug bank holiday], 1 (2), 2 (3), 3 (4), Fri 4 Sep (5) -> stage 1 due Fri 4 Sep;
    # stage 2: 7 working days from 27 Aug -> Mon 7 (6), Tue 8 Sep (7).
    await ladder.raise_(raised_on=date(2026, 8, 27), partnership=NE, by="u-ne-social-worker",
                        agencies=[_ne_agency(ladder)])
    tasks = ladder.tasks()
    assert tasks["stage-1"].due_date == date(2026, 9, 4)
    assert tasks["stage-2"].due_date == date(2026, 9, 8)


def _ne_agency(ladder) -> str:
    with Session(ladder.engine) as session:
        return document_of(get_version(session, NE))["safeguarding_partners"][0]["id"]


async def test_bad_outcomes_are_refused(ladder):
    await ladder.raise_(urgent=True)  # stage 3 of 4
    with pytest.raises(ApiError) as err:  # not a handler of stage 3
        await ladder.outcome(3, "u-rv-teacher-dsl", RESOLVED)
    assert err.value.status == 403
    with pytest.raises(ApiError) as err:
        await ladder.outcome(3, "u-rv-police-di", {**RESOLVED, "learning_theme": "astrology"})
    assert err.value.status == 422 and err.value.fields[0].path == "/learning_theme"
    with pytest.raises(ApiError) as err:
        await ladder.outcome(3, "u-rv-police-di", {"outcome": "escalated"})
    assert err.value.status == 422 and err.value.fields[0].path == "/reason"
    await ladder.outcome(3, "u-rv-police-di", {"outcome": "escalated", "reason": "Leads could not agree."})
    assert ladder.case().current_stage == 4
    with pytest.raises(ApiError) as err:  # the last stage cannot escalate further
        await ladder.outcome(4, "u-rv-business-manager", {"outcome": "escalated", "reason": "Still stuck."})
    assert err.value.status == 422 and "last stage" in err.value.fields[0].message
    await ladder.outcome(4, "u-rv-business-manager", {**RESOLVED, "learning_theme": "rural-isolation"})  # local theme
    with pytest.raises(ApiError) as err:  # escalating a resolved ladder
        await ladder.outcome(4, "u-rv-business-manager", {"outcome": "escalated", "reason": "Reopen."})
    assert err.value.status in (409,)


@pytest.mark.parametrize(("fields", "path"), [
    ({"ladder": "no-such-ladder"}, "/ladder"),
    ({"agencies": ["riverford-council", "eastholme-police"]}, "/agencies/1"),
    ({"case_id": "incident-northmoor-and-eastholme-X"}, "/case_id"),
])
async def test_bad_escalations_are_refused_before_anything_starts(ladder, fields, path):
    with pytest.raises(ApiError) as err:
        await ladder.raise_(**fields)
    assert err.value.status == 422 and err.value.fields[0].path == path
    with Session(ladder.engine) as session:
        assert session.exec(select(Case).where(Case.process == "escalation")).all() == []


async def test_overdue_rapid_review_work_climbs_the_ladder_and_stops_when_done(time_env, seeded_engine, settings):
    today = london_today()
    async with running_worker(time_env, seeded_engine, settings):
        drv = CaseDriver(time_env, seeded_engine, settings)
        await drv.open(today, agencies=["vale-icb"])
        await drv.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True})
        await time_env.sleep(timedelta(days=30))  # the ICB's summary is never written
        ladder_id = f"escalation-{RV}-{drv.case().case_ref}-summary-vale-icb"
        with Session(seeded_engine) as session:
            ladder = session.get(Case, ladder_id)
        assert ladder.parent_case_id == drv.case_id and ladder.highest_stage >= 2 and ladder.status == "open"
        await drv.complete("summary-vale-icb", {"involvement": "Late, but here."})

        def ladder_status():
            with Session(seeded_engine) as session:
                return session.get(Case, ladder_id).status

        await eventually(lambda: ladder_status() == "resolved")


async def test_a_stage_counted_from_the_previous_start_is_never_due_before_it_opens(ladder):
    """Northmoor's overdue-work ladder counts every stage from the previous stage's start (2, 5, then 10 working
    days). The handler escalates stage 1 on the day it is raised, so stage 2 runs its full 5 days; stage 3 opens
    at stage 2's deadline and must still have time (with 5 days, as the example had, it was due the day it
    opened, and the validator now refuses that)."""
    await ladder.raise_(partnership=NE, by="u-ne-social-worker", agencies=[_ne_agency(ladder)],
                        ladder="overdue-work", issue_type="overdue_work")
    stage_1 = ladder.tasks()["stage-1"]
    handler = stage_1_handler(ladder, "stage-1")
    await ladder.outcome(1, handler, {"outcome": "escalated", "reason": "No reply from the agency."})
    await ladder.env.sleep(timedelta(days=60))
    tasks, cal = ladder.tasks(), ladder_calendar(ladder)
    opened = {key: datetime.fromisoformat(str(t.opened_at)).date() for key, t in tasks.items()}
    assert tasks["stage-2"].due_date == cal.add_working_days(opened["stage-2"], 5)
    assert opened["stage-3"] == tasks["stage-2"].due_date  # opened when stage 2 timed out
    assert tasks["stage-3"].due_date == cal.add_working_days(opened["stage-2"], 10) > opened["stage-3"]
    assert stage_1.due_date == cal.add_working_days(opened["stage-1"], 2)
    assert len(ladder.events("scrutineer_notified")) == 1  # the last stage timed out once


def stage_1_handler(ladder, key: str) -> str:
    from safeguarding.tables import TaskCandidate

    with Session(ladder.engine) as session:
        return session.exec(select(TaskCandidate.user_ref).where(
            TaskCandidate.task_id == f"{ladder.case_id}/{key}")).first()
