"""The serious incident -> notification -> rapid review -> Panel response process, on the time-skipping server.

Cases are opened through the same intake the API uses, tasks completed through the same Update calls,
and every assertion reads the read model (what a person would see on the pages).
"""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from sqlmodel import Session, select

from safeguarding.case_commands import act_on_task, actor_of
from safeguarding.clock import london_today
from safeguarding.tables import Case, CaseEvent, OutboxMessage, Task, TaskCandidate
from safeguarding.wording import long_date, plural
from tests.support.workflow_driver import (
    NE,
    RV,
    CaseDriver,
    calendar_for,
    driver_case,
    eventually,
    principal,
    running_worker,
)
from web.errors import ApiError


@pytest.fixture
async def driver(time_env, seeded_engine, settings):
    async with running_worker(time_env, seeded_engine, settings):
        yield CaseDriver(time_env, seeded_engine, settings)


async def test_on_time_case_runs_to_the_panel_and_closes(driver):
    today = london_today()
    cal = calendar_for(driver.engine)
    await driver.open(today)
    case = driver.case()
    assert case.status == "open" and case.arrangements_version == 1
    assert case.notification_due == cal.add_working_days(today, 5)
    assert case.rapid_review_due == cal.add_working_days(today, 15)
    # the rapid review starts at once (clock from awareness): a summary per agency, and the meeting record
    assert driver.task("summary-riverford-schools").candidate_label.startswith("Education")
    assert driver.candidates("summary-riverford-schools") == ["u-rv-education-lead"]
    assert driver.candidates("notification") == ["u-rv-la-dcs", "u-rv-la-head-qa"]
    assert driver.task("summary-vale-icb").due_date == cal.add_working_days(today, 10)

    await driver.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True})
    assert driver.case().notification_days_late == 0
    await driver.through_rapid_review(today=today, decision="no")
    case = driver.case()
    assert case.rapid_review_submitted_on == today and case.rapid_review_days_late == 0
    assert case.stage == "Awaiting the Panel's response"
    # the Panel's response is a national-body task; its 10-working-day expectation is shown, not enforced
    panel = driver.task("panel-response")
    assert panel.candidate_role == "national_panel" and panel.due_date is None
    assert panel.follow_up_date == cal.add_working_days(today, 10)
    result = await driver.complete("panel-response", {"response": "agrees"}, user_ref="u-panel-analyst")
    assert result.case_status == "closed"
    case = driver.case()
    assert (case.status, case.panel_response, case.lcspr_decision) == ("closed", "agrees", "no")
    kinds = [e.kind for e in driver.events()]
    assert kinds[0] == "case_opened" and kinds[-1] == "case_closed"
    assert kinds.count("task_completed") == 1 + 3 + 1 + 1 + 3 + 1 + 1
    assert all(e.actor for e in driver.events())
    completed = driver.events("task_completed")
    assert completed[0].actor in ("u-rv-la-dcs", "u-rv-la-head-qa")
    assert "(on time)" in completed[0].message
    with Session(driver.engine) as session:
        open_tasks = session.exec(select(Task).where(Task.case_id == driver.case_id, Task.status == "open")).all()
    assert open_tasks == []


async def test_a_new_case_decides_its_code_changes_by_its_engine_not_by_markers(driver):
    """Cases started under case_records.ENGINE take every guarded change from their input: no patch marker and
    no search-attribute upsert in their history (older cases, with engine 1, still decide by markers: the
    recorded histories in tests/histories replay both)."""
    from temporalio.api.enums.v1 import EventType

    from safeguarding.case_records import ENGINE

    today = london_today()
    await driver.open(today)
    await driver.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True})
    await driver.through_rapid_review(today=today, decision="no")
    assert driver.task("decision").form == "lcspr_decision.v3"  # themes and decision date, without a marker
    history = await driver.env.client.get_workflow_handle(driver.case_id).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    (plain,) = await driver.env.client.data_converter.payload_codec.decode(started.input.payloads[:1])  # encrypted
    assert ENGINE >= 2 and json.loads(plain.data)["engine"] == ENGINE
    kinds = {e.event_type for e in history.events}
    assert EventType.EVENT_TYPE_MARKER_RECORDED not in kinds
    assert EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES not in kinds


async def test_late_notification_is_overdue_escalated_and_counted_in_working_days(driver):
    today = london_today()
    cal = calendar_for(driver.engine)
    aware = today - timedelta(days=12)
    await driver.open(aware)
    due = cal.add_working_days(aware, 5)
    assert due < today
    # the deadline had already passed when the case opened: overdue at once, handed to the overdue ladder
    task = driver.task("notification")
    assert task.overdue
    escalated = driver.events("escalated")
    assert escalated and "Overdue work handed to ‘Chasing overdue work’" in escalated[0].message
    ladder_id = json.loads(escalated[0].data)["escalation_id"]
    await eventually(lambda: driver_case(driver, ladder_id) is not None)
    ladder = driver_case(driver, ladder_id)  # the overdue ladder runs as its own case, a child workflow
    assert (ladder.process, ladder.ladder_id, ladder.current_stage) == ("escalation", "overdue-work", 1)
    assert ladder.parent_case_id == driver.case_id
    with Session(driver.engine) as session:
        stage_task = session.get(Task, f"{ladder_id}/stage-1")
        candidates = session.exec(select(TaskCandidate.user_ref).where(
            TaskCandidate.task_id == f"{ladder_id}/stage-1")).all()
    assert stage_task.status == "open" and candidates == ["u-rv-business-manager"]  # stage 1: business manager

    def overdue_mail() -> OutboxMessage:
        with Session(driver.engine) as session:
            return session.exec(select(OutboxMessage).where(OutboxMessage.case_id == driver.case_id,
                                                            OutboxMessage.subject.like("Overdue: Notify%"))).one()

    assert sorted(json.loads(overdue_mail().to_user_refs)) == ["u-rv-la-dcs", "u-rv-la-head-qa"]
    await eventually(lambda: overdue_mail().status == "held")  # no SMTP: kept in the outbox, nothing leaves
    await driver.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True})
    case = driver.case()
    assert case.notification_sent_on == today
    assert case.notification_days_late == cal.working_days_late(due, today) > 0
    late = plural(case.notification_days_late, "working day", "working days")
    assert f"({late} late)" in driver.events("task_completed")[-1].message
    # the work is done, so the ladder stops
    await eventually(lambda: driver_case(driver, ladder_id).status == "resolved")
    assert driver_case(driver, ladder_id).outcome == "work done"


async def test_awareness_on_a_bank_holiday_uses_the_worked_example(driver):
    # domain brief (c): aware Mon 31 Aug 2026 (Summer bank holiday) -> notification Mon 7 Sep, RR Mon 21 Sep
    await driver.open(date(2026, 8, 31))
    case = driver.case()
    assert case.notification_due == date(2026, 9, 7)
    assert case.rapid_review_due == date(2026, 9, 21)


async def test_awareness_before_christmas(driver):
    # aware Tue 23 Dec 2025: 24 Dec (1), [25, 26 Dec bank holidays, weekend], 29 (2), 30 (3), 31 (4),
    # [1 Jan bank holiday], Fri 2 Jan 2026 (5)
    await driver.open(date(2025, 12, 23))
    assert driver.case().notification_due == date(2026, 1, 2)


async def test_clock_from_notification_starts_the_rapid_review_when_the_notification_is_sent(time_env,
                                                                                             seeded_engine, settings):
    today = london_today()
    async with running_worker(time_env, seeded_engine, settings):
        ne = CaseDriver(time_env, seeded_engine, settings, partnership=NE)
        from safeguarding.versions import document_of, get_version

        with Session(seeded_engine) as session:
            doc = document_of(get_version(session, NE))
        assert doc["rapid_review"]["deadline"]["clock_start"] == "notification_sent"
        agency = doc["relevant_agencies"][0]["id"]
        aware = today - timedelta(days=3)
        await ne.open(aware, agencies=[agency])
        assert ne.case().rapid_review_due is None and ne.task("meeting") is None  # not started yet
        await ne.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True})
        cal = calendar_for(seeded_engine, NE)
        assert ne.case().rapid_review_due == cal.add_working_days(today, doc["rapid_review"]["deadline"]["value"])
        assert ne.task("meeting").status == "open"
        assert any(f"counted from the notification ({long_date(today)})" in e.message
                   for e in ne.events("rapid_review_started"))


async def test_a_missing_signoff_becomes_overdue_and_is_handed_on(driver):
    today = london_today()
    await driver.open(today)
    await driver.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True})
    for agency in ("riverford-council", "vale-icb", "riverford-schools"):
        await driver.complete(f"summary-{agency}", {"involvement": "Known to services."})
    await driver.complete("meeting", {"held_on": today.isoformat(), "summary": "Facts gathered."})
    await driver.complete("decision", {"hold_lcspr": "yes", "national_importance": False,
                                       "decided_on": today.isoformat(),
                                       "learning_themes": ["information-sharing"],
                                       "rationale": "Recurrent theme.", "learning": "Escalation was slow."})
    await driver.complete("signoff-riverford-council", {"agree": True})
    await driver.complete("signoff-vale-icb", {"agree": True})
    signoff = driver.task("signoff-vale-police")
    assert not signoff.overdue and signoff.follow_up_date < signoff.due_date
    await driver.env.sleep(timedelta(days=40))  # time-skipping: weeks pass in milliseconds
    signoff = driver.task("signoff-vale-police")
    assert signoff.status == "open" and signoff.overdue
    assert [e.task_key for e in driver.events("reminder_sent")].count("signoff-vale-police") == 1
    assert any(e.task_key == "signoff-vale-police" for e in driver.events("escalated"))
    assert driver.case().overdue_tasks >= 1
    # completing it late records how late, and the process goes on to the submission
    await driver.complete("signoff-vale-police", {"agree": True})
    assert driver.task("signoff-vale-police").days_late > 0
    assert driver.task("submission").status == "open"


async def test_a_partner_who_does_not_sign_off_sends_the_decision_back(driver):
    today = london_today()
    await driver.open(today)
    await driver.complete("meeting", {"held_on": today.isoformat(), "summary": "Facts gathered."})
    await driver.complete("decision", {"hold_lcspr": "no", "national_importance": False,
                                       "decided_on": today.isoformat(),
                                       "learning_themes": ["information-sharing"],
                                       "rationale": "Single agency issue.", "learning": "Handover notes."})
    await driver.complete("signoff-vale-icb", {"agree": False, "comments": "Two agencies were involved."})
    assert driver.task("signoff-riverford-council").status == "cancelled"
    assert driver.task("decision-2").status == "open"


async def test_the_panel_asking_for_a_national_review(driver):
    today = london_today()
    await driver.open(today)
    await driver.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True})
    await driver.through_rapid_review(today=today, decision="yes")
    await driver.complete("panel-response", {"response": "national_review"}, user_ref="u-panel-analyst")
    case = driver.case()
    assert (case.status, case.panel_response) == ("national_review", "national_review")


async def test_a_care_leaver_death_needs_the_notification_only(driver):
    today = london_today()
    await driver.open(today, category="care_leaver_death_to_24", age=19)
    assert driver.task("meeting") is None and driver.case().rapid_review_due is None
    await driver.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True})
    assert driver.case().status == "closed"


async def test_bad_completions_are_refused_with_field_errors_and_change_nothing(driver):
    today = london_today()
    await driver.open(today)
    before = len(driver.events())
    with pytest.raises(ApiError) as err:
        await driver.complete("notification", {"local_partners_notified": "yes", "colour": "red"})
    assert err.value.status == 422
    paths = {f.path for f in err.value.fields}
    assert {"/sent_on", "/local_partners_notified", "/colour"} <= paths or {"", "/local_partners_notified"} <= paths
    with pytest.raises(ApiError) as err:
        await driver.complete("notification", {"sent_on": (today + timedelta(days=3)).isoformat(),
                                               "local_partners_notified": True})
    assert err.value.status == 422 and err.value.fields[0].path == "/sent_on"
    assert "future" in err.value.fields[0].message
    with pytest.raises(ApiError) as err:  # someone who is not in the notifying role
        await driver.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True},
                              user_ref="u-rv-teacher-dsl")
    assert err.value.status == 403
    with pytest.raises(ApiError) as err:
        await driver.complete("no-such-task", {})
    assert err.value.status == 404
    assert len(driver.events()) == before  # nothing recorded
    history = await driver.env.client.get_workflow_handle(driver.case_id).fetch_history()
    accepted = [e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
                for e in history.events if e.HasField("workflow_execution_update_accepted_event_attributes")]
    assert accepted == ["opened"]  # the rejected attempts never reached the history
    await driver.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True})
    with pytest.raises(ApiError) as err:
        await driver.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True},
                              user_ref="u-rv-la-dcs")
    assert err.value.status == 409 and "already completed" in err.value.message


async def test_the_decision_records_learning_themes_counted_beside_learning_events(driver):
    from safeguarding.learning_stats import events_behind, partnership_counts
    from safeguarding.tables import LearningTag

    today = london_today()
    await driver.open(today)
    await driver.complete("meeting", {"held_on": today.isoformat(), "summary": "Facts gathered."})
    assert driver.task("decision").form == "lcspr_decision.v3"
    decision = {"hold_lcspr": "no", "national_importance": False, "rationale": "Single agency.",
                "decided_on": today.isoformat(),
                "learning": "Handover notes."}
    with pytest.raises(ApiError) as err:  # the themes are required
        await driver.complete("decision", decision)
    assert err.value.status == 422 and [f.path for f in err.value.fields] == ["/learning_themes"]
    with pytest.raises(ApiError) as err:  # and must be the partnership's
        await driver.complete("decision", {**decision, "learning_themes": ["neglect", "weather"]})
    assert err.value.status == 422 and err.value.fields[0].path == "/learning_themes"
    assert "weather" in err.value.fields[0].message and driver.task("decision").status == "open"
    await driver.complete("decision", {**decision, "learning_themes": ["neglect", "whole-family"]})
    with Session(driver.engine) as session:
        tags = session.exec(select(LearningTag).where(LearningTag.case_id == driver.case_id)).all()
        assert sorted((t.tag, t.source) for t in tags) == [("neglect", "rapid_review"),
                                                          ("whole-family", "rapid_review")]
        counts = partnership_counts(session, RV, today)
        assert counts.themes["neglect"]["rapid_review"] >= 1 and counts.events["rapid_review"] >= 1
        rows, _ = events_behind(session, RV, today, theme="neglect", source="rapid_review")
        assert driver.case_id in [r.case_id for r in rows]
    # a partner sends the decision back: the new decision's themes replace the old ones
    await driver.complete("signoff-vale-icb", {"agree": False, "comments": "Two agencies were involved."})
    await driver.complete("decision-2", {**decision, "learning_themes": ["multi-agency-working"]})
    with Session(driver.engine) as session:
        tags = session.exec(select(LearningTag.tag).where(LearningTag.case_id == driver.case_id)).all()
    assert tags == ["multi-agency-working"]


async def test_claim_and_release(driver):
    today = london_today()
    await driver.open(today)
    dcs, qa = (principal(driver.engine, r) for r in ("u-rv-la-dcs", "u-rv-la-head-qa"))
    from safeguarding.case_records import TaskCommand

    await act_on_task(driver.env.client, driver.case_id, "claim", TaskCommand("notification", actor_of(dcs)))
    assert driver.task("notification").claimed_by == "u-rv-la-dcs"
    with pytest.raises(ApiError) as err:
        await act_on_task(driver.env.client, driver.case_id, "complete", TaskCommand(
            "notification", actor_of(qa), {"sent_on": today.isoformat(), "local_partners_notified": True}))
    assert err.value.status == 403 and "claimed" in err.value.message
    await act_on_task(driver.env.client, driver.case_id, "release", TaskCommand("notification", actor_of(dcs)))
    assert driver.task("notification").claimed_by is None
    await act_on_task(driver.env.client, driver.case_id, "complete", TaskCommand(
        "notification", actor_of(qa), {"sent_on": today.isoformat(), "local_partners_notified": True}))
    assert driver.task("notification").completed_by == "u-rv-la-head-qa"


async def test_a_double_submit_opens_nothing_new(driver):
    today = london_today()
    await driver.open(today, ref="RV-2026-001")
    with pytest.raises(ApiError) as err:
        await driver.open(today, ref="RV-2026-001")
    assert err.value.status == 409 and "already exists" in err.value.message
    with Session(driver.engine) as session:
        assert len(session.exec(select(Case).where(Case.case_ref == "RV-2026-001")).all()) == 1


async def test_closed_case_tasks_are_refused(driver):
    today = london_today()
    await driver.open(today, category="care_leaver_death_to_24", age=19)
    await driver.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True})
    await driver.env.client.get_workflow_handle(driver.case_id).result()
    with pytest.raises(ApiError) as err:
        await driver.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True},
                              user_ref="u-rv-la-dcs")
    assert err.value.status == 409


async def test_emails_leave_only_through_a_configured_mail_server(time_env, seeded_engine, settings, smtp):
    """The embedded default has no SMTP server: a new task's email is held in the outbox at once and the case
    starts no delivery. With a server configured, the same emails are delivered through it, once each."""

    def outbox(case_id: str) -> list[OutboxMessage]:
        with Session(seeded_engine) as session:
            return list(session.exec(select(OutboxMessage).where(OutboxMessage.case_id == case_id)))

    async def deliveries(case_id: str) -> int:
        history = await time_env.client.get_workflow_handle(case_id).fetch_history()
        return sum(1 for e in history.events if e.HasField("activity_task_scheduled_event_attributes")
                   and e.activity_task_scheduled_event_attributes.activity_type.name == "deliver_outbox")

    today = london_today()
    async with running_worker(time_env, seeded_engine, settings):
        kept = CaseDriver(time_env, seeded_engine, settings)
        await kept.open(today)
    held = outbox(kept.case_id)
    assert len(held) == 5  # "New task" to the notifiers, each of 3 agencies and the coordinator
    assert {m.status for m in held} == {"held"} and all(json.loads(m.to_addresses) for m in held)
    assert await deliveries(kept.case_id) == 0

    inbox, port = smtp
    with_server = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_starttls": False})
    async with running_worker(time_env, seeded_engine, with_server):
        sent = CaseDriver(time_env, seeded_engine, with_server)
        await sent.open(today)
        await eventually(lambda: {m.status for m in outbox(sent.case_id)} == {"sent"})
    assert len(inbox.messages) == len(outbox(sent.case_id)) == len(held)
    assert {a for m in outbox(sent.case_id) for a in json.loads(m.to_addresses)} == {
        a for envelope in inbox.messages for a in envelope.rcpt_tos}
    assert await deliveries(sent.case_id) == 1  # one delivery for the emails of one write


async def test_a_read_model_restored_from_an_older_backup_is_brought_up_to_date_at_the_next_change(driver):
    """A sync sends only what changed; when the read model holds an older revision (restored from a backup taken
    before the notification was recorded), the next change sends the whole case, tasks and timeline again."""
    today = london_today()
    await driver.open(today)
    backup = driver.case().revision
    await driver.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True})
    timeline = len(driver.events())
    with Session(driver.engine) as session:  # as the backup had it: before the notification was recorded
        case, notification = driver.case(), driver.task("notification")
        case.revision, case.notification_sent_on, case.notification_days_late = backup, None, None
        notification.status, notification.completed_by, notification.completed_at = "open", None, None
        session.add_all([case, notification])
        for row in session.exec(select(CaseEvent).where(CaseEvent.case_id == driver.case_id,
                                                        CaseEvent.kind == "task_completed")):
            session.delete(row)
        session.commit()
    assert driver.task("notification").status == "open" and len(driver.events()) < timeline

    await driver.complete("summary-vale-icb", {"involvement": "Health visiting since birth."})
    case = driver.case()
    assert case.notification_sent_on == today and case.notification_days_late == 0
    assert driver.task("notification").status == "done" and driver.task("summary-vale-icb").status == "done"
    assert len(driver.events()) == timeline + 1  # the lost event is back, and the new one
    assert [e.task_key for e in driver.events("task_completed")] == ["notification", "summary-vale-icb"]


# --- issue 16, point 5: the decision's own date, and the Panel chased ----------------------------------------


def configure(engine, change, partnership=RV) -> None:
    """Store the partnership's arrangements as ``change`` leaves them (validated): the next case pins them."""
    from safeguarding.versions import document_of, get_version, store_version

    with Session(engine) as session:
        doc = document_of(get_version(session, partnership))
        change(doc)
        store_version(session, partnership, doc, author="test", change_note="test arrangements")
        session.commit()


async def test_the_lcspr_decision_records_the_day_the_partners_decided(driver):
    today = london_today()
    await driver.open(date(2026, 11, 16))
    await driver.complete("notification", {"sent_on": "2026-11-18", "local_partners_notified": True})
    for agency in ("riverford-council", "vale-icb", "riverford-schools"):
        await driver.complete(f"summary-{agency}", {"involvement": "Health visiting since birth."})
    await driver.complete("meeting", {"held_on": "2026-11-20", "summary": "Facts gathered."})
    decision = {"hold_lcspr": "yes", "national_importance": False, "learning_themes": ["neglect"],
                "rationale": "Agencies did not share information.", "learning": "Weekend handovers."}
    for bad, words in (({}, "Enter date of the decision"),
                       ({"decided_on": "2026-11-13"}, "before the local authority became aware"),
                       ({"decided_on": (today + timedelta(days=1)).isoformat()}, "future")):
        with pytest.raises(ApiError) as err:
            await driver.complete("decision", {**decision, **bad})
        assert err.value.status == 422 and err.value.fields[0].path == "/decided_on"
        assert words in err.value.fields[0].message
    await driver.complete("decision", {**decision, "decided_on": "2026-11-20"})  # recorded some days later
    assert "decided on 20 November 2026" in driver.events("task_completed")[-1].message
    for partner in ("riverford-council", "vale-icb", "vale-police"):
        await driver.complete(f"signoff-{partner}", {"agree": True})
    await driver.complete("submission", {"submitted_on": "2026-11-27"})
    await driver.complete("panel-response", {"response": "agrees"}, user_ref="u-panel-analyst")
    review_id = f"lcspr-{RV}-{driver.case().case_ref}"
    await eventually(lambda: driver_case(driver, review_id) is not None)
    review = driver_case(driver, review_id)
    # six months from Fri 20 Nov 2026, the decision: Thu 20 May 2027 (not six months from the day it was typed)
    assert (review.aware_date, review.report_due) == (date(2026, 11, 20), date(2027, 5, 20))


async def test_a_late_panel_response_is_chased_when_the_arrangements_enforce_it(time_env, seeded_engine, settings):
    configure(seeded_engine, lambda doc: doc["rapid_review"]["panel_response_expected"].update(enforce=True))
    async with running_worker(time_env, seeded_engine, settings):
        drv = CaseDriver(time_env, seeded_engine, settings)
        await drv.open(date(2026, 11, 16))
        await drv.complete("notification", {"sent_on": "2026-11-18", "local_partners_notified": True})
        await drv.through_rapid_review(today=date(2026, 11, 20), decision="no")
        # submitted Fri 20 Nov 2026: the response is expected within 10 working days, by Fri 4 Dec 2026
        panel = drv.task("panel-response")
        assert panel.due_date == date(2026, 12, 4) and panel.overdue and panel.status == "open"
        chase = drv.task("panel-chase")
        assert (chase.title, chase.candidate_role, chase.due_date) == (
            "Chase the national Panel for its response", "review_officer", date(2026, 12, 7))  # next working day
        assert drv.candidates("panel-chase") == ["u-rv-business-manager", "u-rv-review-officer"]
        assert [e.task_key for e in drv.events("panel_response_late")] == ["panel-response"]
        assert "by 4 December 2026" in drv.events("panel_response_late")[0].message
        # the Panel's work never goes up the partnership's overdue ladder
        assert not [e for e in drv.events("escalated") if e.task_key == "panel-response"]
        await time_env.sleep(timedelta(days=2))
        assert len(drv.events("panel_response_late")) == 1  # chased once
        await drv.complete("panel-chase", {"chased_on": "2026-12-05"}, user_ref="u-rv-review-officer")
        assert "chased for its response on 5 December 2026" in drv.events("task_completed")[-1].message
        await drv.complete("panel-response", {"response": "agrees"}, user_ref="u-panel-analyst")
        assert drv.case().status == "closed"


async def test_a_panel_response_only_expected_is_never_chased(driver):
    today = london_today()
    await driver.open(today)
    await driver.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True})
    await driver.through_rapid_review(today=today, decision="no")
    await driver.env.sleep(timedelta(days=30))  # far past the 10 working days Riverford expects
    panel = driver.task("panel-response")
    assert panel.status == "open" and not panel.overdue and driver.task("panel-chase") is None
    assert driver.events("panel_response_late") == []


async def test_the_panel_responding_cancels_the_chase(time_env, seeded_engine, settings):
    configure(seeded_engine, lambda doc: doc["rapid_review"]["panel_response_expected"].update(enforce=True))
    today = london_today()
    async with running_worker(time_env, seeded_engine, settings):
        drv = CaseDriver(time_env, seeded_engine, settings)
        await drv.open(today)
        await drv.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True})
        await drv.through_rapid_review(today=today, decision="no")
        assert drv.task("panel-chase") is None
        await time_env.sleep(timedelta(days=20))  # 10 working days pass on the time-skipping server
        assert drv.task("panel-chase").status == "open"
        await drv.complete("panel-response", {"response": "agrees"}, user_ref="u-panel-analyst")
        assert drv.task("panel-chase").status == "cancelled" and drv.case().status == "closed"
