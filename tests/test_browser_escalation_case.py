"""An escalation's case page in a real browser (Debian's Chromium via Playwright): its ladder table and its steps
pass axe (no violation of impact serious or critical), with the current stage marked."""

from __future__ import annotations

import pytest

from safeguarding.intake import EscalationIn, raise_escalation
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, LiveServer, browser_skip_reason, serious_violations
from tests.support.workflow_driver import RV, eventually, principal, running_worker
from web.app import create_app

pytestmark = pytest.mark.skipif(browser_skip_reason() is not None, reason=browser_skip_reason() or "")


async def test_an_escalation_case_page_is_accessible(time_env, seeded_engine, settings):
    from playwright.async_api import async_playwright
    from sqlmodel import Session

    from safeguarding.tables import Case

    target = time_env.client.service_client.config.target_host
    app = create_app(settings.model_copy(update={"temporal_address": target}), engine=seeded_engine,
                     connect_temporal=True)
    async with running_worker(time_env, seeded_engine, settings):
        body = EscalationIn(subject="Strategy discussion refused", agencies=["riverford-council", "vale-police"],
                            issue_type="threshold", urgent=True)
        case_id, _ = await raise_escalation(seeded_engine, time_env.client, settings.task_queue,
                                            principal(seeded_engine, "u-rv-social-worker"), RV, body)

        def stored() -> bool:
            with Session(seeded_engine) as session:
                return session.get(Case, case_id) is not None

        await eventually(stored)
        with LiveServer(app) as url:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
                try:
                    page = await (await browser.new_context(base_url=url)).new_page()
                    page.set_default_timeout(10_000)
                    await page.goto(f"/cases/{case_id}")
                    await page.get_by_label("Email address").fill("rv-business-manager@demo.test")
                    await page.get_by_label("Password", exact=True).fill("demo-password")
                    await page.get_by_role("button", name="Sign in").click()
                    ladder = "The ladder: Resolving professional disagreements"
                    await page.get_by_role("heading", name=ladder).wait_for()
                    current = page.get_by_role("row").filter(has_text="Current stage")
                    assert "Stage 3: Designated and senior safeguarding leads" in await current.inner_text()
                    violations = await serious_violations(page)
                    assert violations == [], f"axe: serious/critical violations on the escalation page: {violations}"
                finally:
                    await browser.close()
