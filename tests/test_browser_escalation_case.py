"""An escalation's case page in a real browser (Debian's Chromium via Playwright): its ladder table and its steps
pass axe (no violation of impact serious or critical), with the current stage marked."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from safeguarding.intake import EscalationIn, raise_escalation
from safeguarding.tables import Case
from tests.support.browser import PASSWORD, assert_accessible, browser_skip_reason, live_browser
from tests.support.workflow_driver import RV, eventually, principal

pytestmark = pytest.mark.skipif(browser_skip_reason() is not None, reason=browser_skip_reason() or "")


def stored(engine, case_id: str) -> bool:
    with Session(engine) as session:
        return session.get(Case, case_id) is not None


async def test_an_escalation_case_page_is_accessible(time_env, seeded_engine, settings):
    async with live_browser(time_env, seeded_engine, settings) as (url, browser):
        body = EscalationIn(subject="Strategy discussion refused", agencies=["riverford-council", "vale-police"],
                            issue_type="threshold", urgent=True)
        case_id, _ = await raise_escalation(seeded_engine, time_env.client, settings.task_queue,
                                            principal(seeded_engine, "u-rv-social-worker"), RV, body)
        await eventually(lambda: stored(seeded_engine, case_id))
        page = await (await browser.new_context(base_url=url)).new_page()
        page.set_default_timeout(10_000)
        await page.goto(f"/cases/{case_id}")
        await page.get_by_label("Email address").fill("rv-business-manager@demo.test")
        await page.get_by_label("Password", exact=True).fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        ladder = "The ladder: Resolving professional disagreements"
        await page.get_by_role("heading", name=ladder).wait_for()
        current = page.get_by_role("row").filter(has_text="Current stage")
        assert "Stage 3: Designated and senior safeguarding leads" in await current.inner_text()
        await assert_accessible(page, "the escalation page")
