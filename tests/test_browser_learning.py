"""Everyday learning in a real browser (Debian's Chromium via Playwright) against the app under uvicorn, a
time-skipping Temporal server and an in-process worker: a practitioner records a learning event (an error first,
then the fix) and sees it counted on the themes page, then follows the count to the event; the learning lead
chooses a response. axe-core checks each page: no violation of impact serious or critical.
Skipped, with the reason, when /usr/bin/chromium or playwright is missing (never a downloaded browser)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from safeguarding.clock import london_today
from tests.support.browser import PASSWORD, assert_accessible, browser_skip_reason, live_browser

pytestmark = pytest.mark.skipif(browser_skip_reason() is not None, reason=browser_skip_reason() or "")

PRACTITIONER = "rv-police-officer@demo.test"
LEARNING_LEAD = "rv-learning-lead@demo.test"


@pytest.fixture
async def live(time_env, seeded_engine, settings):
    """A new-page factory over the app under uvicorn (its own Temporal client), Chromium and a worker."""
    async with live_browser(time_env, seeded_engine, settings) as (url, browser):
        async def new_page(email: str, then: str):
            context = await browser.new_context(base_url=url)
            context.set_default_timeout(15_000)
            page = await context.new_page()
            await page.goto(then)
            assert "/sign-in" in page.url
            await page.get_by_label("Email address").fill(email)
            await page.get_by_label("Password", exact=True).fill(PASSWORD)
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(f"**{then}")
            return page

        yield new_page


async def test_record_an_event_and_see_it_counted(live):
    page = await live(PRACTITIONER, "/learning/new")
    await page.get_by_role("heading", name="Record a learning event").wait_for()
    await assert_accessible(page, "/learning/new")

    await page.get_by_role("button", name="Record the learning event").click()
    summary = page.locator(".govuk-error-summary")
    await summary.wait_for()
    text = await summary.inner_text()
    assert "Select at least one contributory factor" in text and "Describe what happened" in text
    assert await page.evaluate("() => document.activeElement.closest('.govuk-error-summary') !== null")
    await assert_accessible(page, "/learning/new with errors")

    day = london_today() - timedelta(days=4)
    await page.locator("#occurred_on-day").fill(str(day.day))
    await page.locator("#occurred_on-month").fill(str(day.month))
    await page.locator("#occurred_on-year").fill(str(day.year))
    await page.get_by_label("Something nearly went wrong").check()
    await page.get_by_label("What happened?").fill("<b>A young carer</b> was not asked about caring at their "
                                                   "school health check.")
    await page.get_by_label("What was expected to happen?").fill("Young carers are identified at health checks.")
    await page.get_by_label("Riverford Borough Council").check()
    await page.get_by_label("Task", exact=True).check()
    await page.get_by_label("Young carers").check()
    await page.get_by_role("button", name="Record the learning event").click()
    await page.locator(".govuk-panel").get_by_text("Learning event recorded").wait_for()
    await page.get_by_text("will choose a proportionate learning response").wait_for()
    await assert_accessible(page, "recorded")

    await page.get_by_role("link", name="See the partnership’s learning themes").click()
    await page.wait_for_url("**/learning/themes")
    await page.get_by_role("heading", name="Learning themes").wait_for()
    await assert_accessible(page, "/learning/themes")
    bar = page.get_by_role("link", name="Young carers 1: 1 learning event")
    await bar.wait_for()
    await page.get_by_text("Themes as a table").click()
    row = page.locator("#themes-table tr").filter(has_text="Young carers")
    assert re.sub(r"\s+", " ", await row.inner_text()).strip() == "Young carers 1"
    await assert_accessible(page, "/learning/themes with the table open")

    await bar.click()  # the events behind the count
    await page.wait_for_url(re.compile(r"/learning/themes\?theme=young-carers#events$"))
    events = page.locator("#events-table")
    await events.get_by_text("<b>A young carer</b> was not asked").wait_for()  # shown as text, never as markup
    await assert_accessible(page, "/learning/themes?theme=young-carers")
    await events.get_by_role("link").first.click()
    await page.wait_for_url(re.compile(r"/cases/learning-riverford-and-vale-L-"))


async def test_the_learning_lead_chooses_a_response(live):
    reporter = await live(PRACTITIONER, "/learning/new")
    day = london_today() - timedelta(days=1)
    await reporter.locator("#occurred_on-day").fill(str(day.day))
    await reporter.locator("#occurred_on-month").fill(str(day.month))
    await reporter.locator("#occurred_on-year").fill(str(day.year))
    await reporter.get_by_label("Good practice others can learn from").check()
    await reporter.get_by_label("What happened?").fill("A joint visit before discharge.")
    await reporter.get_by_label("What was expected to happen?").fill("A letter at discharge.")
    await reporter.get_by_label("NHS Vale and Riverford Integrated Care Board").check()
    await reporter.get_by_label("Organisation and culture").check()
    await reporter.get_by_label("Vulnerable babies").check()
    await reporter.get_by_role("button", name="Record the learning event").click()
    await reporter.locator(".govuk-panel").wait_for()

    lead = await live(LEARNING_LEAD, "/learning")
    await lead.get_by_role("heading", name="Learning events").wait_for()
    await assert_accessible(lead, "/learning (learning lead)")
    await lead.locator("#triage-table").get_by_role("link", name=re.compile("^Choose a proportionate")).click()
    await lead.get_by_role("heading", name="Choose a learning response").wait_for()
    await assert_accessible(lead, "triage")
    await lead.get_by_label("No further action").check()
    await lead.get_by_label("Why is this response proportionate?").fill("Good practice to share at the forum.")
    await lead.get_by_role("button", name="Choose this response").click()
    await lead.get_by_text("Learning response chosen for").wait_for()
    await lead.locator("#feedback-table").get_by_text("A joint visit before discharge.").wait_for()
