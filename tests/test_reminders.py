"""Issue 17.11 (the workflow part), on the time-skipping server: no reminder dated before its task opened is posted,
and the overdue ladders of several overdue steps of one case give tasks that say which step each is for.

The rule (``Casework.open_task``): a task's reminder is set only when its day (``working_days_before_due`` working
days before the due date, at 08:00) comes after the day the task opens; a step opened on or after that day gets only
the new-task email, which gives the due date. Riverford and Vale remind 2 working days before a due date.

The time-skipping server's clock starts at the real "now" and cannot be set back, so the late case is written out
with dates that are past on any day this runs; the on-time cases count from today.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from sqlmodel import Session, select

from safeguarding.clock import london_today
from safeguarding.tables import OutboxMessage, Task
from safeguarding.wording import long_date
from tests.support.workflow_driver import CaseDriver, calendar_for, driver_case, eventually, running_worker

AWARE = date(2026, 11, 16)  # Mon 16 Nov 2026: every step of the rapid review is past its due date when it opens
STAGE_1 = "Reminder from the business unit"  # the first stage of Riverford and Vale's overdue-work ladder


@pytest.fixture
async def driver(time_env, seeded_engine, settings):
    async with running_worker(time_env, seeded_engine, settings):
        yield CaseDriver(time_env, seeded_engine, settings)


def reminder_mails(driver: CaseDriver) -> list[OutboxMessage]:
    with Session(driver.engine) as session:
        return list(session.exec(select(OutboxMessage).where(OutboxMessage.case_id == driver.case_id,
                                                             OutboxMessage.subject.like("Reminder:%"))))


def working_days_before(cal, due: date, n: int) -> date:
    day, counted = due, 0
    while counted < n:
        day -= timedelta(days=1)
        counted += cal.is_working_day(day)
    return day


async def test_steps_opened_past_their_reminder_day_post_no_reminder(driver):
    # aware Mon 16 Nov 2026, opened today (6 Dec 2026 or later): the notification is due Mon 23 Nov 2026 (its
    # reminder would have been Thu 19 Nov), the agency summaries Mon 30 Nov (Thu 26 Nov), the meeting Wed 2 Dec
    # (Mon 30 Nov): each would be "reminded" at once, dated before the task existed
    await driver.open(AWARE, agencies=["riverford-council", "vale-icb"])
    case = driver.case()
    assert case.notification_due == date(2026, 11, 23)
    assert driver.task("notification").due_date == date(2026, 11, 23)
    assert driver.task("summary-vale-icb").due_date == date(2026, 11, 30)
    assert driver.task("meeting").due_date == date(2026, 12, 2)
    for key in ("notification", "summary-riverford-council", "summary-vale-icb", "meeting"):
        task = driver.task(key)
        assert task.follow_up_date is None, key  # no reminder date at all, so none is shown either
        assert task.overdue, key  # the deadline has passed: overdue, and handed to the overdue ladder
    assert driver.events("reminder_sent") == []
    assert reminder_mails(driver) == []
    assert len(driver.events("task_overdue")) == 4
    # the next step opens late too (the decision is due with the meeting, Wed 2 Dec 2026): no reminder for it
    await driver.complete("meeting", {"held_on": london_today().isoformat(), "summary": "Facts gathered."})
    assert driver.task("decision").due_date == date(2026, 12, 2) and driver.task("decision").follow_up_date is None
    await driver.env.sleep(timedelta(days=20))
    assert driver.events("reminder_sent") == [] and reminder_mails(driver) == []


async def test_a_step_opened_on_or_after_its_reminder_day_but_not_yet_due_gets_no_reminder(driver):
    today = london_today()
    cal = calendar_for(driver.engine)
    # awareness a few days ago, so that the notification (5 working days) is still due but its reminder day
    # (2 working days before that) is today or earlier, e.g. aware Tue 1 Dec 2026, opened Mon 7 Dec 2026:
    # due Tue 8 Dec, the reminder would be Fri 4 Dec
    aware = next(today - timedelta(days=back) for back in range(1, 15)
                 if cal.add_working_days(today - timedelta(days=back), 5) > today
                 and working_days_before(cal, cal.add_working_days(today - timedelta(days=back), 5), 2) <= today)
    due = cal.add_working_days(aware, 5)
    await driver.open(aware)
    notification = driver.task("notification")
    assert notification.due_date == due > today and notification.follow_up_date is None
    assert not notification.overdue
    await driver.env.sleep(timedelta(days=20))  # past its due date: overdue, never reminded
    assert driver.task("notification").overdue
    assert "notification" not in [e.task_key for e in driver.events("reminder_sent")]
    assert not [m for m in reminder_mails(driver) if m.subject.startswith("Reminder: Notify")]


async def test_a_step_opened_before_its_reminder_day_is_still_reminded(driver):
    today = london_today()
    cal = calendar_for(driver.engine)
    await driver.open(today)
    due = cal.add_working_days(today, 5)
    notification = driver.task("notification")
    assert notification.due_date == due and notification.follow_up_date == working_days_before(cal, due, 2) > today
    assert driver.events("reminder_sent") == []  # not yet
    await driver.env.sleep(timedelta(days=20))
    reminded = [e for e in driver.events("reminder_sent") if e.task_key == "notification"]
    assert len(reminded) == 1 and reminded[0].message == f"Reminder: Notify the national Panel is due {long_date(due)}"
    assert [m for m in reminder_mails(driver) if m.subject.startswith(f"Reminder: Notify the national Panel is due "
                                                                       f"{long_date(due)}")]


async def test_overdue_steps_of_one_case_give_ladder_tasks_that_name_their_step(driver):
    # aware Mon 16 Nov 2026: the two agency summaries (due Mon 30 Nov 2026), the notification (Mon 23 Nov) and the
    # meeting (Wed 2 Dec) are overdue as the case opens; each goes up the overdue ladder, a child workflow each
    await driver.open(AWARE, agencies=["riverford-council", "vale-icb"])
    escalated = {e.task_key: json.loads(e.data)["escalation_id"] for e in driver.events("escalated")}
    assert sorted(escalated) == ["meeting", "notification", "summary-riverford-council", "summary-vale-icb"]
    for ladder_id in escalated.values():
        await eventually(lambda ladder_id=ladder_id: driver_case(driver, ladder_id) is not None)
    with Session(driver.engine) as session:
        stage_tasks = {key: session.get(Task, f"{ladder_id}/stage-1") for key, ladder_id in escalated.items()}
    titles = {key: task.title for key, task in stage_tasks.items()}
    assert titles["summary-vale-icb"] == ("Overdue: Agency summary: NHS Vale and Riverford Integrated Care Board"
                                          f" — stage 1: {STAGE_1}")
    assert titles["notification"] == f"Overdue: Notify the national Panel — stage 1: {STAGE_1}"
    for key, title in titles.items():  # each names its own step
        assert title == f"Overdue: {driver.task(key).title} — stage 1: {STAGE_1}"
    assert len(set(titles.values())) == 4  # four tasks in the business manager's inbox, none alike
    # a stage the ladder escalates to by its timer names the step too
    await driver.env.sleep(timedelta(days=10))
    with Session(driver.engine) as session:
        stage_2 = session.get(Task, f"{escalated['summary-vale-icb']}/stage-2")
    assert stage_2.title == ("Overdue: Agency summary: NHS Vale and Riverford Integrated Care Board"
                             " — stage 2: Delegated safeguarding partners")


async def test_a_disagreement_ladder_keeps_its_stage_titles(driver):
    from safeguarding.intake import EscalationIn, raise_escalation
    from tests.support.workflow_driver import RV, principal

    body = EscalationIn(subject="Threshold for a strategy discussion not agreed.", issue_type="threshold",
                        agencies=["riverford-council", "vale-police"], urgent=False)
    ladder_id, _ = await raise_escalation(driver.engine, driver.env.client, driver.settings.task_queue,
                                          principal(driver.engine, "u-rv-social-worker"), RV, body)
    with Session(driver.engine) as session:
        assert session.get(Task, f"{ladder_id}/stage-1").title == "Stage 1: Practitioner to practitioner"


def test_the_engine_5_paths_are_recorded():
    """tests/histories holds both changes, started under engine 5, for the replay tests: a case whose steps all
    opened late (aware Mon 16 Nov 2026) and one overdue step's ladder, whose input names the step."""
    import base64
    from pathlib import Path

    def _started_input(stem: str) -> dict:
        history = json.loads((Path(__file__).parent / "histories" / f"{stem}.json").read_text())
        payload = history["events"][0]["workflowExecutionStartedEventAttributes"]["input"]["payloads"][0]
        return json.loads(base64.b64decode(payload["data"]))

    late = _started_input("engine5_incident_late_steps_without_reminders")
    assert (late["engine"], late["aware_date"]) == (5, "2026-11-16")
    ladder = _started_input("engine5_ladder_names_the_overdue_step")
    assert ladder["engine"] == 5 and ladder["issue_type"] == "overdue_work"
    assert ladder["task_title_prefix"] == "Overdue: Agency summary: NHS Vale and Riverford Integrated Care Board"


async def test_a_case_started_under_engine_4_takes_both_changes_by_their_markers(driver, monkeypatch):
    """A case started before engine 5 and still running decides by ``workflow.patched``: steps it opens from now on
    (here, all of them: aware Mon 16 Nov 2026) record the markers and take the new way; its history from before
    replays the old way (tests/histories)."""
    import tests.support.incident as incident_support
    from tests.support.incident import Incident

    monkeypatch.setattr(incident_support, "ENGINE", 4)
    incident = Incident(driver.env, driver.engine, driver.settings)
    driver.case_id = await incident.open(AWARE, "serious_harm_abuse_neglect", agencies=["vale-icb"])
    assert driver.task("summary-vale-icb").follow_up_date is None and driver.events("reminder_sent") == []
    ladder_id = next(json.loads(e.data)["escalation_id"] for e in driver.events("escalated")
                     if e.task_key == "summary-vale-icb")
    await eventually(lambda: driver_case(driver, ladder_id) is not None)
    with Session(driver.engine) as session:
        stage_1 = session.get(Task, f"{ladder_id}/stage-1")
    assert stage_1.title == ("Overdue: Agency summary: NHS Vale and Riverford Integrated Care Board"
                             f" — stage 1: {STAGE_1}")
    history = await driver.env.client.get_workflow_handle(driver.case_id).fetch_history()
    markers = " ".join(str(e.marker_recorded_event_attributes) for e in history.events
                       if e.HasField("marker_recorded_event_attributes"))
    assert "no-reminder-before-opening" in markers and "overdue-ladder-names-the-step" in markers
