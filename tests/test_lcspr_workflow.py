"""Local child safeguarding practice reviews on the time-skipping server: from the decision to published
learning and completed actions, the national review path, and the bad inputs."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from sqlmodel import Session

from safeguarding.calendar import WorkingCalendar
from safeguarding.clock import london_today
from safeguarding.tables import Case
from safeguarding.wording import MONTHS
from tests.support.lcspr_review import NE, Review
from tests.support.workflow_driver import RV, CaseDriver, eventually, running_worker
from web.errors import ApiError
from workflows.lcspr import lcspr_workflow_id


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
    day, month, year = err.value.fields[0].message.rsplit(" ", 3)[1:]  # "… is 1 March 2027"
    earliest = date(int(year), MONTHS.index(month) + 1, int(day))
    day_before = earliest - timedelta(days=1)
    assert cal.nth_working_day_before(earliest, 7) >= today > cal.nth_working_day_before(day_before, 7)
    assert review.task("publication-plan").status == "open"  # nothing changed
    # issue 17.4: with a problem the schema finds (an unknown field), the date rule is still reported, at once
    with pytest.raises(ApiError) as err:
        await review.do("publication-plan", {"publish": "yes", "colour": "red",
                                             "planned_publication_date": (today + timedelta(days=2)).isoformat()})
    assert {"/planned_publication_date"} <= {f.path for f in err.value.fields} and len(err.value.fields) >= 2


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


# --- issue 16, point 5: clocks that match practice ------------------------------------------------------------


async def test_a_six_month_date_on_a_sunday_moves_to_the_next_working_day_by_default(review):
    def unstated(doc):  # the rule left out: the default applies
        del doc["calendar"]["counting"]["month_deadline_on_non_working_day"]

    review.configure(unstated)
    await review.start(date(2026, 8, 31))
    # 31 Aug 2026 + 6 months: clamped to Sun 28 Feb 2027, then the next working day, Mon 1 Mar 2027
    assert review.case().report_due == date(2027, 3, 1)
    assert "final report due 1 March 2027" in review.events("lcspr_started")[0].message


async def test_a_hand_back_restarts_the_clock_by_default(review):
    await review.start(date(2026, 6, 2), national=True)
    assert review.case().report_due is None and review.case().status == "suspended"
    await review.do("national-review", {"outcome": "handed_back"}, by="u-panel-analyst")
    today = london_today()
    cal = WorkingCalendar.for_config(review.doc(RV)[0]["calendar"], 2025, 2030)
    case = review.case()
    assert (case.status, case.report_due, case.aware_date) == ("open", cal.add_months(today, 6), today)
    assert "restarted when the national review handed the case back" in review.events("lcspr_started")[0].message


async def test_a_hand_back_can_keep_the_rapid_review_decision_clock(review):
    review.configure(lambda doc: doc["lcspr"].update(report_due_after_hand_back="keep"))
    await review.start(date(2026, 6, 2), national=True)
    await review.do("national-review", {"outcome": "handed_back"}, by="u-panel-analyst")
    today = london_today()
    case = review.case()
    # decided Tue 2 Jun 2026: the report stays due Wed 2 Dec 2026, six months on, national review or not
    assert (case.status, case.report_due, case.aware_date) == ("open", date(2026, 12, 2), date(2026, 6, 2))
    # the local steps count from the hand-back: the terms of reference are due 20 working days after it
    cal = WorkingCalendar.for_config(review.doc(RV)[0]["calendar"], 2025, 2030)
    assert review.task("terms").due_date == cal.add_working_days(today, 20)
    assert "kept through the national review" in review.events("lcspr_started")[0].message


# --- issue 16, point 4: notices the law requires, from config ------------------------------------------------


async def test_the_pre_publication_copy_goes_to_the_configured_recipients_and_the_panel_sees_it(review):
    review.configure(lambda doc: doc["lcspr"]["pre_publication"].update(copy_to=["national_panel"]))
    today = london_today()
    await review.start(date(2026, 11, 2))
    await review.to_final_report(date(2026, 11, 30))
    await review.sign_off()
    planned = today + timedelta(days=30)
    await review.do("publication-plan", {"publish": "yes", "planned_publication_date": planned.isoformat()})
    copy = review.task("prepublication")
    assert copy.title == "Send the pre-publication copy to the national Panel"  # not the Secretary of State
    assert review.national()[0].notices_received == ()
    await review.do("prepublication", {"sent_on": "2026-12-01"})
    (event,) = review.events("notice_sent")
    assert event.message == "Pre-publication copy sent on 1 December 2026 to the national Panel"
    assert json.loads(event.data) == {"notice": "pre_publication_copy", "recipients": ["national_panel"],
                                      "sent_on": "2026-12-01"}
    national, steps = review.national()
    assert [(n.title, n.received_on) for n in national.notices_received] == [
        ("Pre-publication copy of the final report", date(2026, 12, 1))]
    assert "Send the pre-publication copy to the national Panel" in [t.title for t in steps]


async def test_not_publishing_asks_for_what_the_arrangements_require(review):
    """Riverford requires reasons and an improvements summary and tells the Panel and the Secretary of State."""
    await review.start(date(2026, 11, 2))
    await review.to_final_report(date(2026, 11, 30))
    await review.sign_off()
    with pytest.raises(ApiError) as err:  # reasons of only spaces, and no improvements summary
        await review.do("publication-plan", {"publish": "no", "reasons": "   "})
    assert err.value.status == 422
    assert [(f.path, f.message) for f in err.value.fields] == [
        ("/reasons", "Enter the reasons for not publishing: spaces alone are not enough"),
        ("/improvements_summary", "Enter the summary of improvements to publish")]
    assert review.task("publication-plan").status == "open" and review.task("not-published") is None
    await review.do("publication-plan", {"publish": "no", "reasons": "The family could be identified.",
                                         "improvements_summary": "Agencies now share information at weekends."})
    notice = review.task("not-published")
    assert notice.title == "Send notice of not publishing to the national Panel and the Secretary of State"
    with pytest.raises(ApiError) as err:
        await review.do("not-published", {})
    assert [f.path for f in err.value.fields] == ["/notice_sent_on", "/summary_url"]
    assert "the national Panel and the Secretary of State" in err.value.fields[0].message
    await review.do("not-published", {"notice_sent_on": "2026-12-02",
                                      "summary_url": "https://rvscp.example/learning/summary-7"})
    assert review.case().published is False
    (event,) = review.events("notice_sent")
    assert json.loads(event.data)["recipients"] == ["national_panel", "secretary_of_state"]
    national, _ = review.national()
    assert [(n.notice, n.received_on) for n in national.notices_received] == [("not_published", date(2026, 12, 2))]


async def test_not_publishing_without_reasons_when_the_arrangements_do_not_require_them(review):
    def relaxed(doc):
        doc["lcspr"]["if_not_published"] = {"require_reasons": False, "publish_improvements_summary": False,
                                             "notify": ["secretary_of_state"]}

    review.configure(relaxed)
    await review.start(date(2026, 11, 2))
    await review.to_final_report(date(2026, 11, 30))
    await review.sign_off()
    with pytest.raises(ApiError) as err:  # spaces are never reasons, even when reasons are optional
        await review.do("publication-plan", {"publish": "no", "reasons": " \n "})
    assert [f.path for f in err.value.fields] == ["/reasons"]
    await review.do("publication-plan", {"publish": "no"})
    notice = review.task("not-published")
    assert notice.title == "Send notice of not publishing to the Secretary of State"
    with pytest.raises(ApiError) as err:
        await review.do("not-published", {})
    assert [(f.path, f.message) for f in err.value.fields] == [
        ("/notice_sent_on", "Enter the date the notice was sent to the Secretary of State")]
    await review.do("not-published", {"notice_sent_on": "2026-12-02"})
    assert json.loads(review.events("notice_sent")[0].data)["recipients"] == ["secretary_of_state"]
    assert review.national()[0].notices_received == ()  # the Panel was not told, so it shows nothing received


async def test_not_publishing_with_nothing_to_send_settles_publication(review):
    def nothing(doc):
        doc["lcspr"]["if_not_published"] = {"require_reasons": True, "publish_improvements_summary": False,
                                             "notify": []}

    review.configure(nothing)
    await review.start(date(2026, 11, 2))
    await review.to_final_report(date(2026, 11, 30))
    await review.sign_off()
    await review.do("recommendations", {"recommendations": "None.", "all_actions_added": True})
    await review.do("publication-plan", {"publish": "no", "reasons": "The family could be identified."})
    assert review.task("not-published") is None
    case = review.case()
    assert (case.status, case.published) == ("closed", False)
