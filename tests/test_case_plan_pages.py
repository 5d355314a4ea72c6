"""The case page renders each case's step plan from the read model (issue 18): the plan its workflow published
(engine 6), or, for a case from before plans, the page's old rendering; an escalation shows its ladder, every
stage, where it stands, and no incident wording."""

from __future__ import annotations

import html as html_lib
import json
import re

from sqlmodel import Session

from safeguarding.case_commands import act_on_task
from safeguarding.case_records import Actor, TaskCommand
from safeguarding.clock import london_today
from safeguarding.intake import EscalationIn, raise_escalation
from safeguarding.tables import Case
from tests.support.pages import LEAD, visible
from tests.support.workflow_driver import RV, eventually, principal
from web.templating import date_uk

INCIDENT_WORDS = ("Local authority became aware", "rapid review", "Rapid review", "national Panel", "Notify",
                  "About the incident", "LCSPR", "Recorded by")


def case_row(engine, case_id: str) -> Case:
    with Session(engine) as session:
        return session.get(Case, case_id)


def set_plan(engine, case_id: str, plan: list | None) -> None:
    with Session(engine) as session:
        row = session.get(Case, case_id)
        row.plan = None if plan is None else json.dumps(plan)
        row.revision += 1
        session.add(row)
        session.commit()


def steps_of(html: str) -> list[str]:
    """The task list's steps, in order: each one's title, hint and status as read."""
    return [html_lib.unescape(re.sub(r"\s+", " ", visible(t))).strip()
            for t in re.findall(r'<li class="govuk-task-list__item[^"]*">(.*?)</li>', html, re.S)]


async def test_an_incident_publishes_its_plan_and_the_page_renders_it(site):
    browser, driver = site
    case_id = await driver.open(london_today())
    plan = json.loads(case_row(driver.engine, case_id).plan)
    assert [step["type"] for step in plan] == ["notification_sent", "agency_summary", "rr_meeting", "lcspr_decision",
                                               "partner_signoff", "panel_submission", "panel_response"]
    assert plan[0]["title"] == "Notify the national Panel" and all(step["applies"] for step in plan)
    lead = browser()
    await lead.sign_in(LEAD)
    page = await lead.get(f"/cases/{case_id}")
    text = visible(page.text)
    assert "Partner sign-off" in text and "The national Panel’s response" in text  # steps not reached yet
    # the page follows the published plan (not a list of its own): a renamed planned step shows renamed
    plan[4]["title"] = "Every partner signs off"
    set_plan(driver.engine, case_id, plan)
    text = visible((await lead.get(f"/cases/{case_id}")).text)
    assert "Every partner signs off" in text and "Partner sign-off" not in text
    # a case from before plans (no plan on its row): the steps as the page always showed them
    set_plan(driver.engine, case_id, None)
    text = visible((await lead.get(f"/cases/{case_id}")).text)
    assert "Partner sign-off" in text and "The national Panel’s response" in text


async def _raise(driver, *, urgent: bool = False) -> str:
    body = EscalationIn(subject="Strategy discussion refused", agencies=["riverford-council", "vale-police"],
                        issue_type="threshold", urgent=urgent)
    case_id, _ = await raise_escalation(driver.engine, driver.env.client, driver.settings.task_queue,
                                        principal(driver.engine, "u-rv-social-worker"), RV, body)
    await eventually(lambda: case_row(driver.engine, case_id) is not None)
    return case_id


def ladder_rows(html: str) -> list[str]:
    table = re.search(r'id="ladder-stages".*?</table>', html, re.S).group(0)
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)[1:]  # the head row left out
    return [html_lib.unescape(re.sub(r"\s+", " ", visible(row))).strip() for row in rows]


async def test_an_escalation_page_shows_its_ladder_and_where_it_stands(site):
    browser, driver = site
    case_id = await _raise(driver)
    lead = browser()
    await lead.sign_in(LEAD)
    page = await lead.get(f"/cases/{case_id}")
    assert page.status_code == 200
    assert "The ladder: Resolving professional disagreements" in visible(page.text)
    rows = ladder_rows(page.text)
    assert len(rows) == 4  # every stage of the ladder, in order
    assert rows[0].startswith("Stage 1: Practitioner to practitioner Practitioners 2 working days Current stage "
                              "Reached ")
    assert rows[1] == "Stage 2: Manager to manager Line managers 5 working days Not reached"
    assert rows[3].startswith("Stage 4: Business unit") and "10 working days Not reached" in rows[3]
    steps = steps_of(page.text)  # the later stages are steps not reached yet, with who and their time limit
    assert steps[0].startswith("Stage 1: Practitioner to practitioner")
    assert steps[1] == ("Stage 2: Manager to manager Only if the escalation reaches it: for Line managers, "
                        "within 5 working days Cannot start yet")
    assert len(steps) == 4
    text = visible(page.text)
    assert "Raised on" in text and "Raised by" in text
    assert re.search(r"What it is about\s*</dt>", page.text) and not re.search(r"What happened\s*</dt>", page.text)
    for words in INCIDENT_WORDS:
        assert words not in text, words

    social_worker = Actor(user_ref="u-rv-social-worker", kind="reviewer", partnership_id=RV)
    await act_on_task(driver.env.client, case_id, "complete", TaskCommand(
        "stage-1", social_worker, {"outcome": "escalated", "reason": "No agreement on threshold."}))
    await eventually(lambda: case_row(driver.engine, case_id).current_stage == 2)
    rows = ladder_rows((await lead.get(f"/cases/{case_id}")).text)
    assert "Current stage" not in rows[0] and "escalated to the next stage" in rows[0]
    assert rows[1].startswith("Stage 2: Manager to manager Line managers 5 working days Current stage Reached ")
    assert "due " in rows[1]


async def test_an_urgent_escalation_shows_the_stages_it_skipped(site):
    browser, driver = site
    case_id = await _raise(driver, urgent=True)
    lead = browser()
    await lead.sign_in(LEAD)
    page = await lead.get(f"/cases/{case_id}")
    rows = ladder_rows(page.text)
    assert rows[0].endswith("Skipped: raised as urgent at a later stage") and "Skipped" in rows[1]
    assert "Current stage" in rows[2] and rows[3].endswith("Not reached")
    assert [s.split(" Only")[0].split(" For")[0] for s in steps_of(page.text)] == [
        "Stage 3: Designated and senior safeguarding leads",
        "Stage 4: Business unit and delegated safeguarding partners' meeting"]


async def test_an_escalation_from_before_plans_shows_its_ladder_from_its_arrangements(site):
    browser, driver = site
    case_id = await _raise(driver)
    set_plan(driver.engine, case_id, None)
    lead = browser()
    await lead.sign_in(LEAD)
    page = await lead.get(f"/cases/{case_id}")
    rows = ladder_rows(page.text)
    assert len(rows) == 4 and "Current stage" in rows[0]
    assert rows[1] == "Stage 2: Manager to manager Line managers 5 working days Not reached"
    assert len(steps_of(page.text)) == 1  # today's rendering: only the tasks it has


async def test_a_learning_events_page_follows_its_plan_as_the_triage_settles_it(site):
    from datetime import timedelta

    from safeguarding.intake import LearningIn, record_learning

    browser, driver = site
    learning, _ = await record_learning(
        driver.engine, driver.env.client, driver.settings.task_queue, principal(driver.engine, "u-rv-health-visitor"),
        RV, LearningIn(occurred_on=london_today() - timedelta(days=2), kind="near_miss",
                       what_happened="A referral sent on Friday was not picked up until Tuesday.",
                       what_was_expected="Referrals are triaged within one working day.",
                       agencies=["riverford-council"], factors=["inter-agency-working"],
                       themes=["information-sharing"]))
    await eventually(lambda: case_row(driver.engine, learning) is not None)
    lead = browser()
    await lead.sign_in(LEAD)
    steps = steps_of((await lead.get(f"/cases/{learning}")).text)
    assert [s.split(" For ")[0].split(" Opens ")[0] for s in steps] == [
        "Choose a proportionate learning response", "The learning response", "Feed back to the reporter"]
    assert steps[1].endswith("Cannot start yet") and steps[2].endswith("Cannot start yet")
    driver.case_id = learning
    await driver.complete("triage", {"response": "after_action_review", "rationale": "A recurring weekend gap."},
                          "u-rv-learning-lead")
    await eventually(lambda: case_row(driver.engine, learning).stage == "After action review")
    steps = steps_of((await lead.get(f"/cases/{learning}")).text)
    assert [s.split(" For ")[0].split(" Opens ")[0] for s in steps] == [
        "Choose a proportionate learning response", "After action review", "Feed back to the reporter"]
    assert steps[0].endswith("Completed") and not steps[1].endswith("Cannot start yet")


def summary_keys(html: str) -> list[str]:
    """Every summary list row's key on the page, in order."""
    return [" ".join(visible(k).split()) for k in re.findall(r'<dt class="govuk-summary-list__key">(.*?)</dt>', html,
                                                               re.S)]


async def test_learning_events_and_local_reviews_have_their_own_words(site):
    """Issue 17.8: a learning event's and a local review's pages say what their dates and details are, in their own
    words, with none of an incident's ("Local authority became aware", "Recorded by", "About the incident")."""
    from datetime import timedelta

    from sqlmodel import select

    from safeguarding.intake import LearningIn, record_learning

    browser, driver = site
    today = london_today()
    incident = await driver.open(today)
    await driver.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True})
    await driver.through_rapid_review(today=today, decision="yes")
    await driver.complete("panel-response", {"response": "agrees"}, user_ref="u-panel-analyst")

    def review() -> Case | None:
        with Session(driver.engine) as session:
            return session.exec(select(Case).where(Case.parent_case_id == incident, Case.process == "lcspr")).first()

    await eventually(lambda: review() is not None)
    reporter = principal(driver.engine, "u-rv-health-visitor")
    learning, _ = await record_learning(
        driver.engine, driver.env.client, driver.settings.task_queue, reporter, RV,
        LearningIn(occurred_on=today - timedelta(days=2), kind="near_miss", what_happened="A referral was missed.",
                   what_was_expected="Triage within a day.", agencies=["riverford-council"],
                   factors=["inter-agency-working"], themes=["information-sharing"], anonymous=True))
    await eventually(lambda: case_row(driver.engine, learning) is not None)
    lead = browser()
    await lead.sign_in(LEAD)

    page = await lead.get(f"/cases/{review().id}")
    keys = summary_keys(page.text)
    assert "Decided on" in keys and "Review of" in keys and "Opened" in keys, keys
    assert not {"Local authority became aware", "Recorded by", "Children", "What happened"} & set(keys), keys
    assert "About the review" in page.text and "About the incident" not in page.text
    incident_ref = case_row(driver.engine, incident).case_ref
    assert f'<a class="govuk-link" href="/cases/{incident}">Incident {incident_ref}</a>' in page.text
    assert re.search(r"Opened\s*</dt>\s*<dd[^>]*>\s*sgflow, ", page.text)  # not "system"

    page = await lead.get(f"/cases/{learning}")
    keys = summary_keys(page.text)
    assert "Happened on" in keys and "Reported" in keys and "What happened" in keys, keys
    assert not {"Local authority became aware", "Recorded by", "Children"} & set(keys), keys
    assert "About the event" in page.text and "About the incident" not in page.text
    assert re.search(r"Happened on\s*</dt>\s*<dd[^>]*>\s*" + re.escape(date_uk(today - timedelta(days=2))),
                     page.text)
    assert re.search(r"Reported\s*</dt>\s*<dd[^>]*>\s*[^<]*, anonymously\s*<", page.text)
    assert reporter.display_name not in page.text  # never who reported it
