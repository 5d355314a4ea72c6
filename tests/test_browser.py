"""The pages in a real browser (Debian's Chromium via Playwright) against the app in a real server, a Temporal
server and an in-process worker: sign in, work a task (an error, then the fix), see the case move on by itself,
record an incident. axe-core checks every main page: no violation of impact serious or critical."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest

from safeguarding.clock import london_today
from tests.support.browser import PASSWORD, assert_accessible, browser_skip_reason, fill_incident_form, live_browser
from tests.support.workflow_driver import CaseDriver

pytestmark = pytest.mark.skipif(browser_skip_reason() is not None, reason=browser_skip_reason() or "")


@pytest.fixture
async def live(time_env, seeded_engine, settings):
    """(base URL, case driver, a new-page factory): the app under uvicorn, Chromium, a worker."""
    async with live_browser(time_env, seeded_engine, settings) as (url, browser):
        async def new_page():
            context = await browser.new_context(base_url=url)
            context.set_default_timeout(10_000)
            return await context.new_page()

        yield url, CaseDriver(time_env, seeded_engine, settings), new_page


async def sign_in(page, email: str, then: str = "/") -> None:
    await page.goto(then)
    assert "/sign-in" in page.url
    await page.get_by_label("Email address").fill(email)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_load_state()


async def test_sign_in_work_a_task_and_watch_the_case_move_on(live):
    _url, driver, new_page = live
    today = london_today()
    case_id = await driver.open(today)
    page = await new_page()

    await page.goto("/sign-in")
    await assert_accessible(page, "sign-in")
    await page.get_by_label("Email address").fill("rv-la-dcs@demo.test")
    await page.get_by_label("Password", exact=True).fill("wrong")
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_text("Enter a correct email address and password").first.wait_for()
    await assert_accessible(page, "sign-in with an error")

    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(re.compile(r"/tasks$"))
    await page.get_by_role("heading", name="My tasks").wait_for()
    await assert_accessible(page, "my tasks")

    # claim with htmx: only the inbox is swapped (the page itself is not reloaded)
    await page.evaluate("() => { window.__sameDocument = true; }")
    row = page.get_by_role("row").filter(has_text="Notify the national Panel")
    await row.get_by_role("button", name=re.compile("^Claim")).click()
    await row.get_by_text("Claimed by you").wait_for()
    assert await page.evaluate("() => window.__sameDocument === true")

    await row.get_by_role("link", name="Notify the national Panel").click()
    await page.get_by_role("heading", name="Notify the national Panel").wait_for()
    await assert_accessible(page, "task")

    # a date in the future: the workflow's validator refuses it; the error summary links to the field
    future = today + timedelta(days=3)
    await page.locator("#sent_on-day").fill(str(future.day))
    await page.locator("#sent_on-month").fill(str(future.month))
    await page.locator("#sent_on-year").fill(str(future.year))
    await page.locator("#local_partners_notified").check()
    await page.get_by_label("Notes (optional)").fill("<script>window.__xss = 1</script>")
    await page.get_by_role("button", name="Save and complete").click()
    summary = page.locator(".govuk-error-summary")
    await summary.wait_for()
    assert "cannot be in the future" in await summary.inner_text()
    assert await page.evaluate("() => document.activeElement.closest('.govuk-error-summary') !== null")
    assert await page.locator("#notes").input_value() == "<script>window.__xss = 1</script>"  # kept as typed
    await assert_accessible(page, "task with errors")

    await page.locator("#sent_on-day").fill(str(today.day))
    await page.locator("#sent_on-month").fill(str(today.month))
    await page.locator("#sent_on-year").fill(str(today.year))
    await page.get_by_role("button", name="Save and complete").click()
    await page.locator(".govuk-panel").get_by_text("Task complete").wait_for()
    assert await page.evaluate("() => window.__xss === undefined")  # shown as text, never run

    await page.get_by_role("link", name="Go to the case").first.click()
    await page.wait_for_url(f"**/cases/{case_id}")
    steps = page.locator(".govuk-task-list")
    notify = steps.locator(".govuk-task-list__item").filter(has_text="Notify the national Panel")
    assert "Completed" in await notify.inner_text()
    await assert_accessible(page, "case")

    # someone else records the meeting: the open case page shows it without a reload (htmx polling)
    await driver.complete("meeting", {"held_on": today.isoformat(), "summary": "Facts gathered."})
    meeting = steps.locator(".govuk-task-list__item").filter(has_text="Record the rapid review meeting")
    await meeting.get_by_text("Completed").wait_for(timeout=15_000)
    await page.get_by_text("Decide on a local child safeguarding practice review").first.wait_for()
    assert await page.evaluate("() => window.__xss === undefined")


async def test_record_an_incident_and_sign_out(live):
    _url, _driver, new_page = live
    page = await new_page()
    await sign_in(page, "rv-business-manager@demo.test", then="/incidents/new")
    await page.wait_for_url("**/incidents/new")
    await page.get_by_role("heading", name="Record a serious incident").wait_for()
    await assert_accessible(page, "incident form")

    await page.get_by_role("button", name="Record the incident").click()
    await page.locator(".govuk-error-summary").wait_for()
    await assert_accessible(page, "incident form with errors")

    today = london_today()
    ref = f"RV-B-{uuid.uuid4().hex[:6]}"
    await fill_incident_form(page, ref, today)
    await page.wait_for_url(re.compile(r"/cases/incident-"))
    await page.get_by_role("heading", name=ref, exact=True).wait_for()
    await page.get_by_role("heading", name=f"Incident recorded: {ref}").wait_for()  # the confirmation
    await page.get_by_text("Audit log").wait_for()

    await page.goto("/cases")
    await page.get_by_role("link", name=ref).wait_for()
    await assert_accessible(page, "cases")

    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/sign-in?signed_out=1")
    await page.goto("/cases")
    assert "/sign-in" in page.url
