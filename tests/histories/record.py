"""Record workflow histories for the replay tests: `python -m tests.histories.record`.

Run it when a workflow gains a new path worth protecting, and commit the JSON it writes. By default it
records only scenarios that have no file yet. Never re-record an existing file to make a replay test pass:
a failing replay means a running case would break; guard the change with ``workflow.patched`` instead.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from safeguarding.binaries import temporal_test_server
from safeguarding.clock import london_today
from safeguarding.db import make_engine, upgrade
from safeguarding.settings import Settings
from safeguarding.temporal_connection import ensure_search_attributes
from sgflow.seed import seed_demo
from tests.support.workflow_driver import CaseDriver, running_worker

HERE = Path(__file__).parent


async def scenario_full_path(drv: CaseDriver) -> None:
    today = london_today()
    await drv.open(today)
    await drv.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True})
    await drv.through_rapid_review(today=today, decision="yes")
    await drv.complete("panel-response", {"response": "agrees"}, user_ref="u-panel-analyst")


async def scenario_overdue_and_disagreement(drv: CaseDriver) -> None:
    today = london_today()
    await drv.open(today - timedelta(days=12))
    await drv.complete("meeting", {"held_on": today.isoformat(), "summary": "Facts gathered."})
    await drv.complete("decision", {"hold_lcspr": "no", "national_importance": True, "rationale": "Single agency.",
                                    "decided_on": today.isoformat(),
                                    "learning_themes": ["information-sharing"],
                                    "learning": "Handover notes."})
    await drv.complete("signoff-vale-icb", {"agree": False, "comments": "Two agencies were involved."})
    await drv.env.sleep(timedelta(days=30))
    await drv.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True})


async def scenario_notification_only(drv: CaseDriver) -> None:
    today = london_today()
    await drv.open(today, category="care_leaver_death_to_24", age=19)
    await drv.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": False})


async def scenario_ladder_climbs_to_the_scrutineer(drv: CaseDriver) -> None:
    from tests.support.ladder import Ladder

    ladder = Ladder(drv.env, drv.engine, drv.settings)
    drv.case_id = await ladder.raise_()
    await drv.env.sleep(timedelta(days=60))
    await ladder.outcome(4, "u-rv-business-manager", {"outcome": "resolved", "agreed_actions": "Meeting held.",
                                                      "learning_theme": "multi-agency-working"})


async def scenario_ladder_urgent_withdrawn(drv: CaseDriver) -> None:
    from safeguarding.case_commands import withdraw_escalation
    from tests.support.ladder import Ladder
    from tests.support.workflow_driver import principal

    ladder = Ladder(drv.env, drv.engine, drv.settings)
    drv.case_id = await ladder.raise_(urgent=True)
    await ladder.outcome(3, "u-rv-police-di", {"outcome": "escalated", "reason": "Leads could not agree."})
    await withdraw_escalation(drv.env.client, drv.case_id, principal(drv.engine, "u-rv-social-worker"), "Agreed.")


async def scenario_lcspr_not_published_with_action(drv: CaseDriver) -> None:
    from tests.support.lcspr_review import Review

    review = Review(drv.env, drv.engine, drv.settings)
    today = london_today()
    drv.case_id = await review.start(today)
    await review.to_final_report(today)
    await review.action("vale-icb", "Weekend information-sharing protocol", today + timedelta(days=5))
    await review.sign_off()
    await review.do("recommendations", {"recommendations": "1. Share at weekends.", "all_actions_added": True})
    await review.do("publication-plan", {"publish": "no", "reasons": "Identifiable.", "improvements_summary": "Done."})
    await review.do("not-published", {"notice_sent_on": today.isoformat(), "summary_url": "https://rv.example/s"})
    await drv.env.sleep(timedelta(days=30))
    await review.do("action-1", {"outcome": "done", "evidence": "Signed."}, by="u-rv-icb-cno")


async def scenario_incident_to_national_review(drv: CaseDriver) -> None:
    today = london_today()
    await drv.open(today)
    await drv.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True})
    await drv.through_rapid_review(today=today, decision="yes")
    await drv.complete("panel-response", {"response": "national_review"}, user_ref="u-panel-analyst")


async def scenario_incident_decision_themes_sent_back(drv: CaseDriver) -> None:
    """lcspr_decision.v2 (the "rapid-review-themes" patch): themes recorded, the decision sent back, decided again."""
    today = london_today()
    await drv.open(today)
    await drv.complete("meeting", {"held_on": today.isoformat(), "summary": "Facts gathered."})
    decision = {"hold_lcspr": "no", "national_importance": False, "rationale": "Single agency.",
                "decided_on": today.isoformat(),
                "learning": "Handover notes.", "learning_themes": ["neglect", "whole-family"]}
    await drv.complete("decision", decision)
    await drv.complete("signoff-vale-icb", {"agree": False, "comments": "Two agencies were involved."})
    await drv.complete("decision-2", {**decision, "learning_themes": ["multi-agency-working"]})


async def scenario_learning_round_table_with_action(drv: CaseDriver) -> None:
    import httpx

    from tests.support.learning import LEAD_REF, Learning
    from web.app import create_app

    app = create_app(drv.settings, engine=drv.engine, temporal_client=drv.env.client, connect_temporal=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as api:
        learning = Learning(drv.env, drv.engine, drv.settings, api)
        await learning.record()
        drv.case_id = learning.case_id
        await learning.do("triage", {"response": "round_table_review", "rationale": "Two agencies."})
        from safeguarding.case_commands import actor_of, update_case
        from safeguarding.case_records import ActionCommand
        from tests.support.workflow_driver import principal

        due = (london_today() + timedelta(days=3)).isoformat()
        await update_case(drv.env.client, drv.case_id, "add_action", ActionCommand(
            actor_of(principal(drv.engine, LEAD_REF)), "riverford-council", "Weekend rota", due))
        await learning.do("response", {"findings": "Inbox not watched at weekends."})
        await drv.env.sleep(timedelta(days=20))
        await learning.do("action-1", {"outcome": "done", "evidence": "Rota in place."}, by="u-rv-la-dcs")
        await learning.do("feedback", {"feedback": "Thank you."})


async def scenario_incident_panel_chased(drv: CaseDriver) -> None:
    """panel_response_expected.enforce: the late response is chased (the "chase-the-panel" change)."""
    from tests.support.workflow_driver import configure

    configure(drv.engine, lambda doc: doc["rapid_review"]["panel_response_expected"].update(enforce=True))
    today = london_today()
    await drv.open(today)
    await drv.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True})
    await drv.through_rapid_review(today=today, decision="no")
    await drv.env.sleep(timedelta(days=20))
    await drv.complete("panel-chase", {"chased_on": (await _today(drv)).isoformat()}, user_ref="u-rv-review-officer")
    await drv.complete("panel-response", {"response": "agrees"}, user_ref="u-panel-analyst")


async def _today(drv: CaseDriver):
    from zoneinfo import ZoneInfo

    return (await drv.env.get_current_time()).astimezone(ZoneInfo("Europe/London")).date()


async def scenario_lcspr_handed_back_and_published(drv: CaseDriver) -> None:
    """A national review hands the case back; the pre-publication copy goes to the configured recipients."""
    from tests.support.lcspr_review import Review

    review = Review(drv.env, drv.engine, drv.settings)
    today = london_today()
    drv.case_id = await review.start(today, national=True)
    await review.do("national-review", {"outcome": "handed_back"}, by="u-panel-analyst")
    await review.to_final_report(today)
    await review.sign_off()
    await review.do("recommendations", {"recommendations": "1. Share at weekends.", "all_actions_added": True})
    planned = today + timedelta(days=30)
    await review.do("publication-plan", {"publish": "yes", "planned_publication_date": planned.isoformat()})
    await review.do("prepublication", {"sent_on": today.isoformat()})
    await drv.env.sleep(timedelta(days=30))
    await review.do("published", {"published_on": (await _today(drv)).isoformat(), "url": "https://rv.example/r"})


async def scenario_yearly_report_sent_back_published_next_started(drv: CaseDriver) -> None:
    """Draft, the scrutineer asks for changes, the revision, sign-off, publication, copies, the next report starts."""
    from datetime import date

    from tests.support.yearly_report import URL, Report

    report = Report(drv.env, drv.engine, drv.settings)
    today = london_today()
    await report.start(period_start=date(2025, 4, 1), previous_published_on=date(2026, 6, 30))
    drv.case_id = report.case_id
    await report.do("draft", {"drafted_on": today.isoformat()})
    await report.do("scrutiny", {"reviewed_on": today.isoformat(), "changes_needed": True,
                                 "statement": "Add the learning."}, by="u-rv-scrutineer")
    await report.do("draft-2", {"drafted_on": today.isoformat(), "changes": "Learning added."})
    await report.do("scrutiny-2", {"reviewed_on": today.isoformat(), "changes_needed": False,
                                   "statement": "Agreed."}, by="u-rv-scrutineer")
    await report.sign_all("-2")
    await report.do("publish", {"published_on": today.isoformat(), "url": URL})
    await report.do("copy-national_panel", {"sent_on": today.isoformat()})
    await report.do("copy-foundations", {"sent_on": today.isoformat()})
    await drv.env.sleep(date(2027, 4, 2) - london_today())  # the next report opens on 1 April 2027
    from temporalio.client import WorkflowExecutionStatus

    handle = drv.env.client.get_workflow_handle(drv.case_id)
    while (await handle.describe()).status != WorkflowExecutionStatus.COMPLETED:
        await asyncio.sleep(0.1)


async def scenario_care_leaver_to_sos_and_ofsted(drv: CaseDriver) -> None:
    """Engine 4: a care leaver's death is notified to the Secretary of State and Ofsted, not the Panel."""
    from tests.support.incident import RV_NOTIFIER, Incident

    today = london_today()
    incident = Incident(drv.env, drv.engine, drv.settings)
    drv.case_id = await incident.open(today, "care_leaver_death_to_24", age=19)
    await incident.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True},
                            RV_NOTIFIER)


async def scenario_cross_boundary(drv: CaseDriver) -> None:
    """Engine 4: the child lives in Northmoor and Eastholme, whose coordinators contribute their own summary."""
    from safeguarding.case_records import Actor
    from safeguarding.cross_boundary import resident_area
    from tests.support.incident import NE, RV, Incident

    today = london_today()
    with drv.engine.connect() as conn:
        area, _ = resident_area(conn, RV, partnership_id=NE)
    incident = Incident(drv.env, drv.engine, drv.settings)
    drv.case_id = await incident.open(today, "serious_harm_abuse_neglect", area=area, children=2)
    await drv.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True})
    await incident.complete("summary-resident", {"involvement": "Known to children's services."},
                            Actor(user_ref="u-ne-review-coordinator", kind="reviewer", partnership_id=NE))
    await drv.through_rapid_review(today=today, decision="no")
    await drv.complete("panel-response", {"response": "agrees"}, user_ref="u-panel-analyst")


async def scenario_late_steps_without_reminders(drv: CaseDriver) -> None:
    """Engine 5: aware Mon 16 Nov 2026, every step opens past its reminder day (none is posted) and overdue; each
    overdue step's ladder names it; two are done late, the meeting opens the decision (late too)."""
    from datetime import date

    today = london_today()
    await drv.open(date(2026, 11, 16), agencies=["riverford-council", "vale-icb"])
    await drv.complete("summary-vale-icb", {"involvement": "Health visiting since birth."})
    await drv.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True})
    await drv.env.sleep(timedelta(days=10))
    await drv.complete("meeting", {"held_on": (await _today(drv)).isoformat(), "summary": "Facts gathered."})


async def scenario_overdue_ladder_names_the_step(drv: CaseDriver) -> None:
    """Engine 5: the overdue ladder of one step ("Overdue: Agency summary: … — stage N: …") climbs to stage 2 by
    its timer and stops when the step is done."""
    import json
    from datetime import date

    from temporalio.client import WorkflowExecutionStatus

    from tests.support.workflow_driver import driver_case, eventually

    await drv.open(date(2026, 11, 16), agencies=["riverford-council", "vale-icb"])
    parent = drv.case_id
    ladder_id = next(json.loads(e.data)["escalation_id"] for e in drv.events("escalated")
                     if e.task_key == "summary-vale-icb")
    await eventually(lambda: driver_case(drv, ladder_id) is not None)
    await drv.env.sleep(timedelta(days=10))
    await drv.complete("summary-vale-icb", {"involvement": "Health visiting since birth."})
    handle = drv.env.client.get_workflow_handle(ladder_id)
    while (await handle.describe()).status != WorkflowExecutionStatus.COMPLETED:
        await asyncio.sleep(0.1)
    drv.case_id = ladder_id
    assert parent != ladder_id


SCENARIOS = {"incident_full_path": scenario_full_path,
             "incident_overdue_and_disagreement": scenario_overdue_and_disagreement,
             "incident_notification_only": scenario_notification_only,
             "ladder_climbs_to_the_scrutineer": scenario_ladder_climbs_to_the_scrutineer,
             "ladder_urgent_withdrawn": scenario_ladder_urgent_withdrawn,
             "lcspr_not_published_with_action": scenario_lcspr_not_published_with_action,
             "incident_to_national_review": scenario_incident_to_national_review,
             "learning_round_table_with_action": scenario_learning_round_table_with_action,
             "incident_decision_themes_sent_back": scenario_incident_decision_themes_sent_back,
             # one timer per next deadline (casework ONE_TIMER_PATCH): the same paths, recorded with it
             "timer_incident_full_path": scenario_full_path,
             "timer_incident_overdue_and_disagreement": scenario_overdue_and_disagreement,
             "timer_ladder_climbs_to_the_scrutineer": scenario_ladder_climbs_to_the_scrutineer,
             "timer_lcspr_not_published_with_action": scenario_lcspr_not_published_with_action,
             "timer_learning_round_table_with_action": scenario_learning_round_table_with_action,
             # engine 2 (case_records.ENGINE): every change above on by the input, with no patch markers
             "engine2_incident_full_path": scenario_full_path,
             "engine2_incident_overdue_and_disagreement": scenario_overdue_and_disagreement,
             "engine2_incident_to_national_review": scenario_incident_to_national_review,
             "engine2_ladder_climbs_to_the_scrutineer": scenario_ladder_climbs_to_the_scrutineer,
             "engine2_lcspr_not_published_with_action": scenario_lcspr_not_published_with_action,
             "engine2_learning_round_table_with_action": scenario_learning_round_table_with_action,
             # engine 3: the decision's date, the Panel chased, notices from config, the scrutineer told once
             "engine3_incident_full_path": scenario_full_path,
             "engine3_incident_panel_chased": scenario_incident_panel_chased,
             "engine3_ladder_climbs_to_the_scrutineer": scenario_ladder_climbs_to_the_scrutineer,
             "engine3_lcspr_not_published_with_action": scenario_lcspr_not_published_with_action,
             "engine3_lcspr_handed_back_and_published": scenario_lcspr_handed_back_and_published,
             # engine 4 (issue 16): the notification to whom the category says; a cross-boundary case
             "engine4_incident_full_path": scenario_full_path,
             "engine4_incident_care_leaver_to_sos_and_ofsted": scenario_care_leaver_to_sos_and_ofsted,
             "engine4_incident_cross_boundary": scenario_cross_boundary,
             # engine 5 (issue 17.11): no reminder dated before its task opened; overdue ladders name their step
             "engine5_incident_late_steps_without_reminders": scenario_late_steps_without_reminders,
             "engine5_ladder_names_the_overdue_step": scenario_overdue_ladder_names_the_step,
             # engine 6 (issue 18): every process publishes its step plan in its snapshot (and again on a decision)
             "engine6_incident_full_path": scenario_full_path,
             "engine6_ladder_urgent_withdrawn": scenario_ladder_urgent_withdrawn,
             "engine6_lcspr_handed_back_and_published": scenario_lcspr_handed_back_and_published,
             "engine6_lcspr_not_published_with_action": scenario_lcspr_not_published_with_action,
             "engine6_learning_round_table_with_action": scenario_learning_round_table_with_action,
             "yearly_report_sent_back_published_next_started":
                 scenario_yearly_report_sent_back_published_next_started}


def wanted(argv: list[str]) -> dict:
    """Only the scenarios named on the command line (default: only those with no recording yet)."""
    names = argv or [name for name in SCENARIOS if not (HERE / f"{name}.json").exists()]
    return {name: SCENARIOS[name] for name in names}


async def main(argv: list[str]) -> None:
    for name, scenario in wanted(argv).items():
        tmp = Path(tempfile.mkdtemp())
        engine = make_engine(f"sqlite:///{tmp / 'app.db'}")
        upgrade(engine)
        list(seed_demo(engine))
        settings = Settings(data_dir=tmp, secret_key="record", task_queue=f"record-{uuid.uuid4().hex[:6]}")
        env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=str(temporal_test_server()))
        try:
            await ensure_search_attributes(env.client, settings.temporal_namespace)
            async with running_worker(env, engine, settings):
                drv = CaseDriver(env, engine, settings)
                await scenario(drv)
                history = await env.client.get_workflow_handle(drv.case_id).fetch_history()
            (HERE / f"{name}.json").write_text(history.to_json())
            print(f"recorded {name}: {len(history.events)} events")
        finally:
            await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
