"""Issue 17's journeys in a real browser (Debian's Chromium via Playwright), at a desktop (1280x900) and a phone
(390x844), against the app under uvicorn, a time-skipping Temporal server and an in-process worker; axe-core checks
each page on the way (no violation of impact serious or critical).

1 a sign-off shows what is signed (the decision, the meeting, the agencies' summaries); 2 a refusal sends the
decision back: its banner says who and why, and the form starts from the earlier answers; 3 someone else claims an
open task: the page says so politely, keeps what was typed, and the submit keeps it too; 4 the incident form reports
every problem in one round; 5 recording an incident confirms it; 7 the arrangements editor's "Go to line N" puts the
cursor on that line; 10 Claim keeps the focus and says what happened, and the inbox's periodic update is announced;
11 a task page's back link and highlighted menu item follow how the person arrived.
"""

from __future__ import annotations

import re
import uuid

import pytest

from safeguarding.case_commands import act_on_task, actor_of
from safeguarding.case_records import TaskCommand
from safeguarding.clock import london_today
from tests.support.browser import assert_accessible, browser_skip_reason, fill_incident_form, live_browser, signed_in
from tests.support.workflow_driver import CaseDriver, principal

pytestmark = pytest.mark.skipif(browser_skip_reason() is not None, reason=browser_skip_reason() or "")

VIEWPORTS = [pytest.param((1280, 900), id="desktop"), pytest.param((390, 844), id="phone")]
DCS = "rv-la-dcs@demo.test"
LEAD = "rv-business-manager@demo.test"


def email_of(user_ref: str) -> str:
    return f"{user_ref.removeprefix('u-')}@demo.test"


@pytest.fixture
async def stack(time_env, seeded_engine, settings):
    """(base URL, Chromium, a CaseDriver factory): the app under uvicorn, a worker."""
    async with live_browser(time_env, seeded_engine, settings) as (url, browser):
        yield url, browser, lambda: CaseDriver(time_env, seeded_engine, settings)


async def open_as(stack, email: str, viewport: tuple[int, int], *, clock: bool = False):
    url, browser, _ = stack
    return await signed_in(browser, url, email, width=viewport[0], height=viewport[1], clock=clock)


def words(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("viewport", VIEWPORTS)
async def test_a_sign_off_shows_what_is_signed_and_a_refusal_comes_back_with_its_reason(stack, viewport):
    """Journeys 1 and 2."""
    driver = stack[2]()
    case_id = await driver.to_signoff(london_today())
    signer = await open_as(stack, email_of(driver.candidates("signoff-vale-icb")[0]), viewport)
    await signer.goto("/tasks")
    await signer.get_by_role("link", name=re.compile("^Sign off")).first.click()
    await signer.locator("#task-form").wait_for()
    text = words(await signer.locator("main").inner_text())
    assert "What you are signing off" in text
    assert "Agencies did not share information at weekends." in text  # the decision
    for summary in ("Facts gathered at the meeting.", "Attendance fell in the autumn term."):
        # the meeting and the summaries are folded away (GOV.UK details): open them, they are there
        details = signer.locator("details").filter(has_text=re.compile(r"meeting|summary|Summary|Meeting"))
        for i in range(await details.count()):
            if not await details.nth(i).evaluate("d => d.open"):
                await details.nth(i).locator("summary").click()
        assert summary in words(await signer.locator("main").inner_text()), summary
    await assert_accessible(signer, "sign-off")

    await signer.get_by_label("No", exact=True).check()
    await signer.locator("#comments").fill("The decision must name the part the school played.")
    await signer.get_by_role("button", name="Save and complete").click()
    await signer.get_by_role("heading", name="What happens next").wait_for()
    assert "goes back to be reconsidered" in words(await signer.locator("#next-steps").inner_text())
    await assert_accessible(signer, "sign-off refused")

    chair = await open_as(stack, email_of(driver.candidates("decision-2")[0]), viewport)
    await chair.goto(f"/cases/{case_id}/tasks/decision-2")
    banner = chair.locator(".govuk-notification-banner")
    await banner.get_by_text("The decision was sent back").wait_for()
    said = words(await banner.inner_text())
    assert "did not sign off" in said and "The decision must name the part the school played." in said
    assert await chair.locator("input[name=hold_lcspr][value=yes]").is_checked()  # the earlier answers
    assert await chair.locator("#rationale").input_value() == "Agencies did not share information at weekends."
    await assert_accessible(chair, "decision sent back")


@pytest.mark.parametrize("viewport", VIEWPORTS)
async def test_someone_else_claiming_an_open_task_is_said_and_typed_text_kept(stack, viewport):
    """Journey 3: the open page hears it (a polite status beside the form), the form and its text stay; the submit
    comes back with what was typed."""
    driver = stack[2]()
    case_id = await driver.open(london_today())
    writer, claimer = driver.candidates("notification")[:2]
    page = await open_as(stack, email_of(writer), viewport, clock=True)
    await page.goto(f"/cases/{case_id}/tasks/notification")
    notes = page.get_by_label("Notes (optional)")
    await notes.fill("Spoke to the duty manager at 9.")
    await page.locator("#local_partners_notified").check()
    # Claim and Release redraw the page's content with htmx: what was typed stays
    await page.get_by_role("button", name="Claim it").click()
    await page.get_by_role("button", name="Release it").wait_for()
    assert await notes.input_value() == "Spoke to the duty manager at 9."
    assert await page.locator("#local_partners_notified").is_checked()
    await page.get_by_role("button", name="Release it").click()
    await page.get_by_role("button", name="Claim it").wait_for()
    assert await notes.input_value() == "Spoke to the duty manager at 9."
    live = page.locator("#task-live")
    assert await live.get_attribute("aria-live") == "polite" and await live.get_attribute("role") == "status"
    assert await live.locator("form").count() == 0

    await act_on_task(driver.env.client, case_id, "claim",
                      TaskCommand(task_key="notification", actor=actor_of(principal(driver.engine, claimer))))
    await page.clock.fast_forward(21_000)  # the page's next look (every 20 seconds)
    await live.get_by_role("heading", name="Someone else claimed this task").wait_for()
    said = words(await live.inner_text())
    assert re.search(r"claimed this task at \d", said) and "What you typed is kept on this page" in said, said
    assert "<" not in said, said  # markup, not text
    assert await notes.input_value() == "Spoke to the duty manager at 9."  # the form was not replaced
    # where Claim was, the page says who has the task now
    await page.locator("#task-claim").get_by_text("has claimed this task").wait_for()
    assert await page.get_by_role("button", name="Claim it").count() == 0
    await assert_accessible(page, "task claimed by someone else")

    await page.get_by_role("button", name="Save and complete").click()
    await page.get_by_role("heading", name="What you typed has not been saved").wait_for()
    assert "Spoke to the duty manager at 9." in await page.locator("main").inner_text()
    await assert_accessible(page, "task not saved")


@pytest.mark.parametrize("viewport", VIEWPORTS)
async def test_the_incident_form_lists_every_problem_at_once_then_confirms(stack, viewport):
    """Journeys 4 and 5."""
    page = await open_as(stack, LEAD, viewport)
    await page.goto("/incidents/new")
    await page.get_by_role("button", name="Record the incident").click()
    summary = page.locator(".govuk-error-summary")
    await summary.wait_for()
    links = await summary.locator("a").all_inner_texts()
    fields = await summary.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    for field in ("#case_ref", "#aware_date", "#category", "#child-1-pseudonym", "#summary"):
        assert any(f.startswith(field) for f in fields), (field, fields, links)
    assert await page.evaluate("() => document.activeElement.closest('.govuk-error-summary') !== null")
    assert (await page.title()).startswith("Error: ")
    await assert_accessible(page, "incident form with every problem")

    today = london_today()
    ref = f"RV-J-{uuid.uuid4().hex[:6]}"
    await fill_incident_form(page, ref, today)
    await page.get_by_role("heading", name=f"Incident recorded: {ref}").wait_for()
    await assert_accessible(page, "incident recorded")


@pytest.mark.parametrize("viewport", VIEWPORTS)
async def test_go_to_line_puts_the_cursor_on_that_line(stack, viewport):
    """Journey 7: a problem's "Go to line N" focuses the document box with the cursor at the start of line N."""
    page = await open_as(stack, LEAD, viewport)
    await page.goto("/arrangements/edit")
    box = page.locator("#document")
    text = await box.input_value()
    lines = text.split("\n")
    at = next(i for i, line in enumerate(lines) if re.search(r"\d\s*,?\s*$", line) and i > 5)
    lines[at] = re.sub(r"\d+(\s*,?\s*)$", r'"not a number"\1', lines[at])
    await box.fill("\n".join(lines))
    await page.get_by_role("button", name="Check and store").click()
    goto = page.locator("a.app-goto-line").first
    await goto.wait_for()
    line = int(await goto.get_attribute("data-line"))
    await assert_accessible(page, "arrangements with a problem")
    await goto.click()
    where = await page.evaluate("""() => { const box = document.activeElement;
        return {id: box.id, line: box.value.slice(0, box.selectionStart).split('\\n').length}; }""")
    assert where == {"id": "document", "line": line}, where


@pytest.mark.parametrize("viewport", VIEWPORTS)
async def test_claim_and_the_inboxs_periodic_update_are_announced(stack, viewport):
    """Journey 10: after Claim the focus is on the row's new button and the polite status says so; when the list
    changes by itself (polling), the status says that too."""
    driver = stack[2]()
    await driver.open(london_today())
    page = await open_as(stack, DCS, viewport)
    await page.goto("/tasks")
    status = page.locator("#inbox-status")
    row = page.get_by_role("row").filter(has_text="Notify the national Panel").first
    await row.get_by_role("button", name=re.compile("^Claim")).click()
    await row.get_by_text("Claimed by you").wait_for()
    await page.wait_for_function("() => document.getElementById('inbox-status').textContent.includes('claimed')")
    focused = await page.evaluate("() => document.activeElement.textContent.trim()")
    assert focused.startswith("Release") and "Notify the national Panel" in focused, focused
    await assert_accessible(page, "my tasks after Claim")

    tasks_before = await page.locator("#inbox tbody tr").count()
    await stack[2]().open(london_today())  # a new case: a new task for this person, seen by the next poll
    await page.wait_for_function(
        "n => document.querySelectorAll('#inbox tbody tr').length > n", arg=tasks_before, timeout=15_000)
    await page.wait_for_function(
        "() => document.getElementById('inbox-status').textContent.includes('updated')")
    focused = await page.evaluate("() => document.activeElement.textContent.trim()")
    assert focused.startswith("Release") and "Notify the national Panel" in focused, focused  # kept across it
    said = await status.inner_text()
    caption = words(await page.locator("#inbox caption").inner_text())  # "4 tasks"
    assert said == f"Your task list has been updated: {caption}.", said
    assert await page.locator("#inbox #inbox-status").count() == 0  # outside the part that is swapped
    await assert_accessible(page, "my tasks after an update")


@pytest.mark.parametrize("viewport", VIEWPORTS)
async def test_the_back_link_and_menu_follow_how_you_arrived(stack, viewport):
    """Journey 11: from My tasks, the task page leads back there (and My tasks is highlighted); from the case page,
    back to the case; the Panel's task from its overview, back to the overview."""
    driver = stack[2]()
    case_id = await driver.open(london_today())
    page = await open_as(stack, DCS, viewport)
    await page.goto("/tasks")
    await page.get_by_role("row").filter(has_text="Notify the national Panel").first.get_by_role(
        "link", name="Notify the national Panel").click()
    await page.get_by_role("heading", name="Notify the national Panel").wait_for()
    back = page.locator(".govuk-back-link")
    assert words(await back.inner_text()) == "Back to your tasks"
    assert await back.evaluate("a => a.closest('nav') !== null")  # in a landmark
    active = page.locator(".govuk-service-navigation__item--active")
    assert [words(t) for t in await active.all_text_contents()] == ["My tasks"]
    await assert_accessible(page, "task from My tasks")
    await back.click()
    await page.wait_for_url(re.compile(r"/tasks$"))

    await page.goto(f"/cases/{case_id}")
    await page.locator(f"a[href^='/cases/{case_id}/tasks/notification']").first.click()
    await page.get_by_role("heading", name="Notify the national Panel").wait_for()
    assert words(await back.inner_text()) == "Back to the case"
    assert [words(t) for t in await active.all_text_contents()] == ["Cases"]
    await back.click()
    await page.wait_for_url(re.compile(rf"/cases/{case_id}$"))

    # the Panel, from its overview's "Respond": back to the overview, which stays highlighted
    await driver.through_rapid_review(today=london_today(), decision="no")
    panel = await open_as(stack, "panel@demo.test", viewport)
    await panel.goto("/national")
    await panel.locator("a[href*='/tasks/panel-response']").first.click()
    await panel.locator("#task-form").wait_for()
    back = panel.locator(".govuk-back-link")
    assert words(await back.inner_text()) == "Back to the overview"
    assert [words(t) for t in await panel.locator(".govuk-service-navigation__item--active").all_text_contents()
            ] == ["Overview"]
    await assert_accessible(panel, "the Panel's task from the overview")
    await back.click()
    await panel.wait_for_url(re.compile(r"/national$"))
