"""Everyday learning on the time-skipping server: each response path, feedback to the reporter, actions, and
no blame by construction (the reporter's identity never reaches Temporal, the timeline or the audit log)."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from sqlmodel import Session, select

from safeguarding.case_commands import actor_of, update_case
from safeguarding.case_records import ActionCommand
from safeguarding.clock import london_today
from safeguarding.tables import AuditEntry, Case, CaseEvent, LearningReporter, LearningTag, OutboxMessage
from tests.support.learning import LEAD_REF, Learning
from tests.support.workflow_driver import eventually, principal, running_worker
from web.app import create_app
from web.errors import ApiError


@pytest.fixture
async def learning(time_env, seeded_engine, settings):
    app = create_app(settings, engine=seeded_engine, temporal_client=time_env.client, connect_temporal=False)
    async with running_worker(time_env, seeded_engine, settings), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test") as api:
        yield Learning(time_env, seeded_engine, settings, api)


async def test_an_after_action_review_feeds_back_to_the_reporter(learning):
    assert (await learning.record()).status_code == 201
    case = learning.case()
    assert (case.process, case.category, case.status, case.opened_by) == ("learning", "near_miss", "open", "reporter")
    triage = learning.task("triage")
    assert triage.candidate_role == "learning_lead" and triage.due_date > london_today()
    await learning.do("triage", {"response": "after_action_review", "rationale": "A recurring weekend gap."})
    assert learning.task("response").title == "After action review"
    await learning.do("response", {"findings": "The shared inbox is not watched at weekends.",
                                   "what_changed": "A weekend rota for the inbox."})
    await learning.do("feedback", {"feedback": "Thank you: the inbox now has a weekend rota."})
    assert learning.case().status == "closed"
    with Session(learning.engine) as session:
        mail = session.exec(select(OutboxMessage).where(OutboxMessage.case_id == learning.case_id,
                                                        OutboxMessage.subject.like("What we learned%"))).one()
    assert json.loads(mail.to_addresses) == ["rv-health-visitor@demo.test"]
    assert json.loads(mail.to_user_refs) == [f"reporter:{learning.case_id}"]  # the outbox names no one


async def test_no_further_action_goes_straight_to_feedback(learning):
    await learning.record(kind="good_practice")
    await learning.do("triage", {"response": "no_further_action", "rationale": "Good practice to share."})
    assert learning.task("response") is None and learning.task("feedback").status == "open"


async def test_an_anonymous_report_keeps_nobody_s_identity(learning):
    await learning.record(anonymous=True)
    with Session(learning.engine) as session:
        assert session.get(LearningReporter, learning.case_id) is None
    assert learning.case().opened_by == "anonymous"
    await learning.do("triage", {"response": "no_further_action", "rationale": "Noted."})
    await learning.do("feedback", {"feedback": "Thank you."})
    with Session(learning.engine) as session:
        events = session.exec(select(CaseEvent).where(CaseEvent.case_id == learning.case_id)).all()
    assert any("reported anonymously" in e.message for e in events)


async def test_the_reporter_never_reaches_temporal_the_timeline_or_the_audit(learning):
    await learning.record()
    await learning.do("triage", {"response": "no_further_action", "rationale": "Noted."})
    history = await learning.env.client.get_workflow_handle(learning.case_id).fetch_history()
    text = history.to_json()
    for secret in ("u-rv-health-visitor", "rv-health-visitor@demo.test"):
        assert secret not in text
    with Session(learning.engine) as session:
        events = session.exec(select(CaseEvent).where(CaseEvent.case_id == learning.case_id)).all()
        audit = session.exec(select(AuditEntry).where(AuditEntry.action == "learning.record")).all()
        reporter = session.get(LearningReporter, learning.case_id)
    assert all("health-visitor" not in (e.actor + e.message + e.data) for e in events)
    assert [a.actor for a in audit] == ["anonymous"]
    assert reporter.user_ref == "u-rv-health-visitor"  # kept for the learning lead only


async def test_themes_and_factors_are_counted(learning):
    await learning.record(themes=["information-sharing", "rural-isolation"])
    with Session(learning.engine) as session:
        tags = session.exec(select(LearningTag).where(LearningTag.case_id == learning.case_id)).all()
    assert {(t.tag_type, t.tag) for t in tags} == {("theme", "information-sharing"), ("theme", "rural-isolation"),
                                                  ("factor", "tools-and-information-systems"),
                                                  ("factor", "inter-agency-working")}
    assert {t.kind for t in tags} == {"near_miss"} and {t.source for t in tags} == {"learning"}


async def test_actions_and_an_overdue_one_climbing_the_ladder(learning):
    await learning.record()
    lead = actor_of(principal(learning.engine, LEAD_REF))
    with pytest.raises(ApiError) as err:  # before triage
        await update_case(learning.env.client, learning.case_id, "add_action", ActionCommand(
            lead, "riverford-council", "Weekend rota", (london_today() + timedelta(days=3)).isoformat()))
    assert err.value.status == 409
    await learning.do("triage", {"response": "round_table_review", "rationale": "Two agencies."})
    due = (london_today() + timedelta(days=3)).isoformat()
    await update_case(learning.env.client, learning.case_id, "add_action",
                      ActionCommand(lead, "riverford-council", "Weekend rota for the shared inbox", due))
    await learning.env.sleep(timedelta(days=40))
    assert learning.task("action-1").overdue
    ladder_id = f"escalation-riverford-and-vale-{learning.case().case_ref}-action-1"

    def ladder():
        with Session(learning.engine) as session:
            return session.get(Case, ladder_id)

    await eventually(lambda: ladder() is not None)
    assert ladder().parent_case_id == learning.case_id


@pytest.mark.parametrize(("overrides", "path"), [
    ({"themes": ["astrology"]}, "/themes/0"),
    ({"factors": ["bad-luck"]}, "/factors/0"),
    ({"kind": "disaster"}, "/kind"),
    ({"what_happened": "  "}, "/what_happened"),
    ({"agencies": ["eastholme-police"]}, "/agencies/0"),
    ({"occurred_on": (london_today() + timedelta(days=2)).isoformat()}, "/occurred_on"),
])
async def test_bad_learning_events_are_refused(learning, overrides, path):
    response = await learning.record(**overrides)
    assert response.status_code == 422
    assert path in [f["path"] for f in response.json()["error"]["fields"]]
    with Session(learning.engine) as session:
        assert session.exec(select(Case).where(Case.process == "learning")).all() == []
        assert session.exec(select(LearningReporter)).all() == []


async def test_a_triage_choice_not_offered_and_another_partnerships_lead_are_refused(learning):
    await learning.record()
    with pytest.raises(ApiError) as err:
        await learning.do("triage", {"response": "seance", "rationale": "x"})
    assert err.value.status == 422 and err.value.fields[0].path == "/response"
    with pytest.raises(ApiError) as err:
        await learning.do("triage", {"response": "no_further_action", "rationale": "x"}, by="u-ne-learning-lead")
    assert err.value.status == 403
