"""Lead and national pages in a real browser: Debian's Chromium driven by Playwright, against uvicorn.

The server is the real app (``create_app``) under uvicorn on a free 127.0.0.1 port in a background thread
(``tests.support.browser.LiveServer``), over a seeded SQLite database; Temporal is not needed for these pages.
Skipped, with the reason, when /usr/bin/chromium or playwright is missing (never a downloaded browser).
axe-core (vendored under tests/vendor/axe-core) checks every main page: no serious or critical violation.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from safeguarding.clock import london_today
from safeguarding.db import make_engine, upgrade
from safeguarding.settings import Settings
from sgflow.seed import DEMO_PASSWORD, EXAMPLES, seed_demo
from tests.support.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    LiveServer,
    assert_accessible,
    browser_skip_reason,
)
from tests.support.read_model_rows import NAMES, NE, RV, add_case, add_message, add_task, versions

pytestmark = pytest.mark.skipif(browser_skip_reason() is not None, reason=browser_skip_reason() or "")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app under uvicorn over a seeded database with cases whose free text names people."""
    from web.app import create_app

    tmp = tmp_path_factory.mktemp("browser")
    engine = make_engine(f"sqlite:///{tmp / 'app.db'}")
    upgrade(engine)
    list(seed_demo(engine))
    today = london_today()
    children = json.dumps([{"pseudonym": NAMES[0]}])
    summary = f"{NAMES[1]} found {NAMES[0]} injured; {NAMES[2]} was present."
    late = add_case(engine, "rv-browser-1", notification_due=today - timedelta(days=20),
                    notification_sent_on=today - timedelta(days=18), notification_days_late=2,
                    rapid_review_due=today - timedelta(days=2), children=children, summary=summary)
    waiting = add_case(engine, "rv-browser-2", notification_due=today - timedelta(days=20),
                       notification_sent_on=today - timedelta(days=21), notification_days_late=0,
                       rapid_review_due=today - timedelta(days=4), rapid_review_submitted_on=today - timedelta(days=5),
                       rapid_review_days_late=0, stage="Awaiting the Panel's response", children=children,
                       summary=summary)
    add_case(engine, "ne-browser-1", pid=NE, notification_due=today + timedelta(days=3))
    add_task(engine, late, "meeting", claimed_by="u-rv-review-officer", candidate_label=NAMES[1], overdue=True,
             due_date=today - timedelta(days=3), title="Record the rapid review meeting")
    add_task(engine, waiting, "panel-response", candidate_role="national_panel", title="Respond to the rapid review")
    add_message(engine, "rv#1", RV, f"Overdue: meeting ({NAMES[0]})", to=["bm@rv.example"], status="held",
                created_at=datetime.now(UTC))
    app = create_app(Settings(data_dir=tmp / "data", secret_key="browser-test-secret"), engine=engine,
                     temporal_client=None, connect_temporal=False)
    with LiveServer(app) as url:
        yield {"url": url, "engine": engine, "national_refs": [late.national_ref, waiting.national_ref]}
    engine.dispose()


@pytest.fixture
async def browser():
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        await chromium.close()


async def signed_in_page(browser, server: dict, email: str):
    context = await browser.new_context(base_url=server["url"])
    context.set_default_timeout(15_000)
    page = await context.new_page()
    await page.goto("/sign-in")
    await page.get_by_label("Email address").fill(email)
    await page.get_by_label("Password", exact=True).fill(DEMO_PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_load_state()
    assert "/sign-in" not in page.url
    return page


# --- tests ----------------------------------------------------------------------------------------------------------


async def test_a_lead_pastes_arrangements_with_mistakes_and_sees_them_by_path(browser, server):
    page = await signed_in_page(browser, server, "rv-business-manager@demo.test")
    before = versions(server["engine"])
    doc = json.loads((EXAMPLES / "riverford-and-vale.json").read_text())
    bad = copy.deepcopy(doc)
    bad["escalation"]["ladders"][0]["stages"][1]["handler_role"] = "no-such-role"
    bad["rapid_review"]["deadline"]["value"] = "fifteen"
    await page.goto("/arrangements/edit")
    await assert_accessible(page, "/arrangements/edit")
    await page.get_by_label("Or paste the whole document").fill(yaml.safe_dump(bad, sort_keys=False))
    await page.get_by_label("What changed and why").fill("Trying a change")
    await page.get_by_role("button", name="Check and store").click()
    summary = page.locator(".govuk-error-summary")
    await summary.wait_for()
    text = await summary.inner_text()
    assert "/escalation/ladders/0/stages/1/handler_role" in text and "/rapid_review/deadline/value" in text
    table = await page.locator("table").first.inner_text()
    assert "no-such-role" in table and "fifteen" in table
    assert (await page.locator("#document").input_value()).startswith("schema_version")  # what they typed stays
    await assert_accessible(page, "/arrangements/edit with errors")
    # issue 17.7: each problem names its line and leads to it; the title says Error: after the htmx answer too
    typed = yaml.safe_dump(bad, sort_keys=False).splitlines()
    line = next(n for n, text in enumerate(typed, start=1) if "fifteen" in text)
    assert f"Line {line}, /rapid_review/deadline/value" in text
    assert (await page.title()).startswith("Error: ")
    await page.get_by_role("link", name=f"Go to line {line}").click()
    assert await page.evaluate("document.activeElement.id") == "document"
    selected = await page.evaluate("(() => { const b = document.getElementById('document');"
                                   " return b.value.slice(b.selectionStart, b.selectionEnd); })()")
    assert "fifteen" in selected
    assert versions(server["engine"]) == before


async def test_a_lead_uploads_files_with_mistakes(browser, server, tmp_path):
    page = await signed_in_page(browser, server, "rv-business-manager@demo.test")
    before = versions(server["engine"])
    broken = tmp_path / "arrangements.yaml"
    broken.write_text("schema_version: '1.0'\npartnership:\n  id: [riverford-and-vale\n  name: x\n")
    await page.goto("/arrangements/edit")
    await page.set_input_files("#file", str(broken))
    await page.get_by_role("button", name="Check and store").click()
    await page.locator(".govuk-error-summary").wait_for()
    assert "line" in await page.locator(".govuk-error-summary").inner_text()
    # a file over the limit: refused with a clear message, nothing stored
    huge = tmp_path / "huge.json"
    huge.write_bytes(b'{"x": "' + b"a" * (2 * 1024 * 1024) + b'"}')
    await page.set_input_files("#file", str(huge))
    await page.get_by_role("button", name="Check and store").click()
    await page.get_by_text("The upload is too large").first.wait_for()
    assert versions(server["engine"]) == before


async def test_a_lead_stores_a_change_and_reads_the_diff(browser, server):
    page = await signed_in_page(browser, server, "rv-business-manager@demo.test")
    doc = json.loads((EXAMPLES / "riverford-and-vale.json").read_text())
    doc["rapid_review"]["reminders"]["working_days_before_due"] = 3
    await page.goto("/arrangements/edit")
    await page.get_by_label("Or paste the whole document").fill(json.dumps(doc, indent=2))
    await page.get_by_label("What changed and why").fill("Earlier reminders")
    await page.get_by_role("button", name="Check and store").click()
    await page.wait_for_url("**/arrangements/*?stored=1")
    assert "stored" in await page.locator(".govuk-notification-banner").inner_text()
    await assert_accessible(page, "/arrangements/N")
    await page.get_by_role("link", name="What changed from version").click()
    await page.wait_for_url("**/arrangements/diff*")
    assert "/rapid_review/reminders/working_days_before_due" in await page.locator("table").inner_text()
    await assert_accessible(page, "/arrangements/diff")
    await page.goto("/arrangements")
    await assert_accessible(page, "/arrangements")
    await page.goto("/outbox")
    assert "nothing leaves this machine" in await page.locator("main").inner_text()
    await assert_accessible(page, "/outbox")


async def test_national_pages_show_no_child_or_practitioner_names(browser, server):
    page = await signed_in_page(browser, server, "panel@demo.test")
    seen = []
    await page.goto("/national")
    await assert_accessible(page, "/national")
    seen.append(await page.locator("body").inner_text())
    await page.get_by_label("Partnership").select_option(RV)
    await page.get_by_role("button", name="Apply filters").click()
    await page.wait_for_url(f"**/national?partnership={RV}*")
    await page.locator("#results h2", has_text="Riverford").wait_for()
    seen.append(await page.locator("body").inner_text())
    for ref in server["national_refs"]:
        await page.goto(f"/national/cases/{ref}")
        assert ref in await page.locator("h1").inner_text()
        seen.append(await page.locator("body").inner_text())
    await assert_accessible(page, "/national/cases/REF")
    for text in seen:
        for name in NAMES:
            assert name not in text
        assert "u-rv-" not in text and "Child A" not in text
