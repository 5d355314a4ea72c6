"""Issue 17, points 1 and 2: a partner's sign-off page shows what is being signed (the decision with its rationale,
the meeting record and the agency summaries); a refusal's confirmation says what happens next; the decision sent
back says who refused and why and starts from the earlier answers. On the time-skipping server."""

from __future__ import annotations

import re

import pytest

from safeguarding.case_commands import act_on_task, actor_of
from safeguarding.case_records import TaskCommand
from safeguarding.clock import london_today
from tests.support.pages import PASSWORD, Pages
from tests.support.workflow_driver import CaseDriver, principal, running_worker
from web.app import create_app


def words(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def email_of(user_ref: str) -> str:
    return f"{user_ref.removeprefix('u-')}@demo.test"


@pytest.fixture
async def at_signoff(time_env, seeded_engine, settings):
    async with running_worker(time_env, seeded_engine, settings):
        app = create_app(settings, engine=seeded_engine, temporal_client=time_env.client, connect_temporal=False)
        driver = CaseDriver(time_env, seeded_engine, settings)
        await driver.to_signoff(london_today())
        page = Pages(app)
        yield driver, page
        await page.close()


async def test_the_sign_off_shows_what_is_signed_and_a_refusal_goes_back_with_its_reason(at_signoff):
    driver, page = at_signoff
    signer = driver.candidates("signoff-vale-icb")[0]
    await page.sign_in(email_of(signer), PASSWORD)
    task = await page.get(f"/cases/{driver.case_id}/tasks/signoff-vale-icb")
    assert task.status_code == 200
    text = words(task.text)
    assert "What you are signing off" in text
    assert "Agencies did not share information at weekends." in text  # the decision's rationale
    assert "Facts gathered at the meeting." in text and "Attendance fell in the autumn term." in text

    refused = await page.post(f"/cases/{driver.case_id}/tasks/signoff-vale-icb",
                              {"agree": "false", "comments": "The decision must name the part the school played."})
    assert refused.status_code == 303, refused.text
    confirmation = words((await page.get(refused.headers["location"])).text)
    assert "What happens next" in confirmation and "the decision goes back to be reconsidered" in confirmation
    assert "the next steps have started" not in confirmation
    assert "Go to your tasks" in confirmation

    decider = driver.candidates("decision-2")[0]
    chair = Pages(page.app)
    try:
        await chair.sign_in(email_of(decider), PASSWORD)
        again = await chair.get(f"/cases/{driver.case_id}/tasks/decision-2")
        text = words(again.text)
        assert "The decision was sent back" in text
        assert "The decision must name the part the school played." in text and "did not sign off" in text
        # the form starts from the earlier answers
        assert "Agencies did not share information at weekends." in again.text
        assert re.search(r'<input[^>]*name="hold_lcspr"[^>]*value="yes"[^>]*checked', again.text)
    finally:
        await chair.close()


async def test_typed_work_is_kept_when_someone_else_claims_the_task_meanwhile(at_signoff):
    """Issue 17.3: the submit comes back with what was typed, names who claimed it, and nothing is lost."""
    driver, page = at_signoff
    writer, claimer = driver.candidates("notification")[:2]
    await page.sign_in(email_of(writer), PASSWORD)
    form = await page.get(f"/cases/{driver.case_id}/tasks/notification")
    assert form.status_code == 200 and 'id="task-form"' in form.text
    await act_on_task(driver.env.client, driver.case_id, "claim",
                      TaskCommand(task_key="notification", actor=actor_of(principal(driver.engine, claimer))))
    sent_on = london_today()
    answer = await page.post(f"/cases/{driver.case_id}/tasks/notification", {
        "sent_on-day": str(sent_on.day), "sent_on-month": str(sent_on.month), "sent_on-year": str(sent_on.year),
        "local_partners_notified": "true"})
    assert answer.status_code == 409
    text = words(answer.text)
    assert "What you typed has not been saved" in text and "claimed by someone else" in text
    claimer_name = driver.task("notification").claimed_by
    assert claimer_name == claimer
    assert "Yes" in text and sent_on.strftime("%B %Y") in text  # the answers, to copy
    assert driver.task("notification").status == "open"


async def test_a_task_form_reports_every_problem_in_one_round(at_signoff):
    """Issue 17.4: a future date is reported with the form's other problems, not only after they are fixed."""
    driver, page = at_signoff
    writer = driver.candidates("notification")[0]
    await page.sign_in(email_of(writer), PASSWORD)
    await page.get(f"/cases/{driver.case_id}/tasks/notification")
    future = london_today().replace(year=london_today().year + 1)
    answer = await page.post(f"/cases/{driver.case_id}/tasks/notification", {
        "sent_on-day": str(future.day), "sent_on-month": str(future.month), "sent_on-year": str(future.year)})
    assert answer.status_code == 422
    summary = words(answer.text.split("govuk-error-summary__list")[1].split("</ul>")[0])
    assert "cannot be in the future" in summary  # the date rule the case knows
    assert "Select" in summary or "local partners" in summary.lower()  # and the missing answer, at once
    assert driver.task("notification").status == "open"
