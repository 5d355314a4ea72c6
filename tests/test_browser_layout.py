"""Every page each kind of user reaches fits a phone and a desktop (issue 17, points 5 and 6).

Real Chromium (Debian's, via Playwright) against the real app under uvicorn, a time-skipping Temporal server and
an in-process worker. The data: an incident at its LCSPR sign-off, one through the rapid review (awaiting the
Panel), and a professional disagreement on its escalation ladder. Each user signs in and walks the same-origin
links from the landing page (at most two pages of each path shape, at most ``MAX_PAGES``); on each page, at
390x844, 768x1024 (a tablet) and 1280x900, nothing scrolls sideways (``scrollWidth`` <= the viewport's width),
no button is off the screen, and there is exactly one ``<h1>``; each kind of page has its own <title>. Every
failing URL is listed in one assertion message.
"""

from __future__ import annotations

import re
from collections import deque
from urllib.parse import urlsplit

import pytest

from safeguarding.clock import london_today
from safeguarding.intake import EscalationIn, raise_escalation
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, LiveServer, axe_source, browser_skip_reason
from tests.support.browser import signed_in as signed_in_at
from tests.support.workflow_driver import RV, CaseDriver, principal, running_worker
from web.app import create_app

pytestmark = pytest.mark.skipif(browser_skip_reason() is not None, reason=browser_skip_reason() or "")

USERS = ["rv-business-manager@demo.test", "rv-la-head-qa@demo.test", "rv-icb-cno@demo.test",
         "rv-scrutineer@demo.test", "panel@demo.test"]
WIDTHS = [(390, 844), (768, 1024), (1280, 900)]
MAX_PAGES = 45
PER_SHAPE = 2
# never followed: signing out, files (CSV, Word), the API and its docs, static assets
SKIP = re.compile(r"^/(sign-out|api/|docs|redoc|openapi|static/)|\.(csv|docx|json|ya?ml|svg|png|css|js)$|"
                  r"[?&](format|download)=")


def shape(path: str, query: str) -> str:
    """/cases/incident-rv-T-1a2b -> /cases/*; the query's keys, not its values."""
    parts = ["*" if re.search(r"\d", part) else part for part in path.split("/")]
    keys = sorted({pair.split("=")[0] for pair in query.split("&") if pair})
    return "/".join(parts) + ("?" + "&".join(keys) if keys else "")


async def measure(page) -> dict:
    return await page.evaluate("""() => ({
        scroll: document.documentElement.scrollWidth, inner: window.innerWidth,
        h1: document.querySelectorAll('h1').length, title: document.title,
        offscreen: [...document.querySelectorAll('main .govuk-button')]
            .filter(b => b.getBoundingClientRect().right > window.innerWidth).length,
        wide: [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1
                && !e.parentElement.closest('.app-table-scroll'))
            .slice(-3).map(e => e.tagName.toLowerCase()
                + (typeof e.className === 'string' && e.className ? '.' + e.className.split(' ')[0] : ''))})""")


@pytest.fixture
async def site(time_env, seeded_engine, settings):
    """(base URL, browser) over an app with an incident at sign-off, one awaiting the Panel and an escalation."""
    from playwright.async_api import async_playwright

    today = london_today()
    target = time_env.client.service_client.config.target_host
    app = create_app(settings.model_copy(update={"temporal_address": target}), engine=seeded_engine,
                     connect_temporal=True)
    async with running_worker(time_env, seeded_engine, settings):
        at_signoff = CaseDriver(time_env, seeded_engine, settings)
        await at_signoff.open(today, ref="LAYOUT-SIGNOFF-REFERENCE-LONG-NAME-2026")
        for agency in ("riverford-council", "vale-icb", "riverford-schools"):
            await at_signoff.complete(f"summary-{agency}", {"involvement": "Health visiting since birth."})
        await at_signoff.complete("meeting", {"held_on": today.isoformat(), "summary": "Facts gathered."})
        await at_signoff.complete("decision", {"hold_lcspr": "yes", "national_importance": False,
                                               "decided_on": today.isoformat(),
                                               "learning_themes": ["information-sharing"],
                                               "rationale": "Agencies did not share information.",
                                               "learning": "Information sharing at weekends."})
        reviewed = CaseDriver(time_env, seeded_engine, settings)
        await reviewed.open(today)
        await reviewed.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True})
        await reviewed.through_rapid_review(today=today, decision="no")
        await raise_escalation(seeded_engine, time_env.client, settings.task_queue,
                               principal(seeded_engine, "u-rv-social-worker"), RV,
                               EscalationIn(subject="Threshold for a strategy discussion not agreed.",
                                            agencies=["riverford-council", "vale-police"], issue_type="threshold"))
        with LiveServer(app) as url:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
                yield url, browser
                await browser.close()


async def signed_in(browser, url: str, email: str, width: int = WIDTHS[0][0], height: int = WIDTHS[0][1]):
    """Signed in at a phone's size unless told otherwise."""
    return await signed_in_at(browser, url, email, width=width, height=height)


async def walk(browser, url: str, email: str) -> tuple[list[str], int]:
    """(problems, pages seen) for one user's walk."""
    page = await signed_in(browser, url, email)
    context = page.context
    origin = urlsplit(url).netloc
    start = urlsplit(page.url)
    queue = deque([start.path + (f"?{start.query}" if start.query else "")])
    seen_urls, shapes, problems, pages, titles = set(queue), {}, [], 0, {}
    while queue and pages < MAX_PAGES:
        target = queue.popleft()
        await page.set_viewport_size({"width": WIDTHS[0][0], "height": WIDTHS[0][1]})
        try:
            response = await page.goto(target)
        except Exception:  # a download, or a link the browser does not load as a page
            continue
        if response is None or "text/html" not in (response.headers.get("content-type") or ""):
            continue
        pages += 1
        titles.setdefault(shape(urlsplit(target).path, ""), set()).add((await page.title()).split(" – ")[0])
        for width, height in WIDTHS:
            await page.set_viewport_size({"width": width, "height": height})
            got = await measure(page)
            if got["scroll"] > got["inner"]:
                problems.append(f"{email} {target} at {width}px: page is {got['scroll']}px wide "
                                f"(widest: {', '.join(got['wide'])})")
            if got["offscreen"]:
                problems.append(f"{email} {target} at {width}px: {got['offscreen']} button(s) off the screen")
            if got["h1"] != 1:
                problems.append(f"{email} {target} at {width}px: {got['h1']} <h1> elements")
                break
        hrefs = await page.eval_on_selector_all(
            "a[href]", "els => els.map(a => new URL(a.getAttribute('href'), location.href).href)")
        for href in hrefs:
            link = urlsplit(href)
            if link.netloc != origin or link.scheme not in ("http", "https"):
                continue
            path = link.path + (f"?{link.query}" if link.query else "")
            if path in seen_urls or SKIP.search(link.path) or SKIP.search(path) or link.path == "/sign-in":
                continue
            key = shape(link.path, link.query)
            if shapes.get(key, 0) >= PER_SHAPE:
                continue
            shapes[key] = shapes.get(key, 0) + 1
            seen_urls.add(path)
            queue.append(path)
    await context.close()
    # each kind of page says what it is in its <title> (issue 17, point 5), before the service's name
    bare = sorted(path for path, seen in titles.items() if "Safeguarding partnership workflows" in seen)
    if bare:
        problems.append(f"{email}: pages whose <title> is only the service's name: {bare}")
    return problems, pages


async def test_no_page_scrolls_sideways_and_each_has_one_heading(site):
    url, browser = site
    problems, counts = [], {}
    for email in USERS:
        found, counts[email] = await walk(browser, url, email)
        problems += found
    assert all(count >= 5 for count in counts.values()), f"too few pages walked: {counts}"
    assert problems == [], f"{len(problems)} layout problem(s):\n" + "\n".join(problems)


@pytest.mark.parametrize("width", [390, 1280])
async def test_claim_and_release_keep_the_focus_on_the_row_and_say_what_happened(site, width):
    """Issue 17, point 10: after htmx swaps the inbox, the keyboard focus is on the changed row's new button and a
    polite status message (outside the swapped part) says what happened; on a phone the button is on screen."""
    url, browser = site
    page = await signed_in(browser, url, "rv-la-head-qa@demo.test", width=width)
    await page.goto("/tasks")
    status = page.locator("#inbox-status")
    assert await status.get_attribute("aria-live") == "polite" and await status.get_attribute("role") == "status"
    assert await page.locator("#inbox #inbox-status").count() == 0  # not inside the swapped part
    row = page.get_by_role("row").filter(has_text="Notify the national Panel").first
    claim = row.get_by_role("button", name=re.compile("^Claim"))
    box = await claim.bounding_box()
    assert box is not None and box["x"] + box["width"] <= width, f"Claim is off the screen: {box}"
    await claim.focus()
    await page.keyboard.press("Enter")
    await row.get_by_text("Claimed by you").wait_for()
    await page.wait_for_function("() => document.getElementById('inbox-status').textContent.includes('claimed')")
    focused = await page.evaluate("() => document.activeElement.textContent.trim()")
    assert focused.startswith("Release") and "Notify the national Panel" in focused, focused
    assert "You claimed: Notify the national Panel" in await status.inner_text()

    await page.keyboard.press("Enter")  # the focused Release button
    await page.wait_for_function("() => document.getElementById('inbox-status').textContent.includes('released')")
    focused = await page.evaluate("() => document.activeElement.textContent.trim()")
    assert focused.startswith("Claim") and "Notify the national Panel" in focused, focused


async def test_the_leads_menu_fits_one_row_and_follows_the_section(site):
    """Issue 17, point 11: at 1280 px the lead's menu is one row; the highlighted item is the page's section."""
    url, browser = site
    page = await signed_in(browser, url, "rv-business-manager@demo.test", width=1280, height=900)
    await page.goto("/cases")
    rows = await page.evaluate("""() => [...new Set([...document.querySelectorAll(
        '.govuk-service-navigation__list > .govuk-service-navigation__item:not(.app-service-navigation__account)')]
        .map(li => li.getBoundingClientRect().top))]""")
    assert len(rows) == 1, f"the menu takes {len(rows)} rows at 1280 px: {rows}"

    async def active() -> list[str]:
        return [t.strip() for t in await page.locator(".govuk-service-navigation__item--active").all_inner_texts()]

    assert await active() == ["Cases"]
    links = await page.eval_on_selector_all("a[href^='/cases/']", "els => els.map(a => a.getAttribute('href'))")
    await page.goto("/escalations")
    assert await active() == ["Escalations"]
    escalation = await page.locator("a[href^='/cases/escalation-']").first.get_attribute("href")
    await page.goto(escalation)
    assert await active() == ["Escalations"], escalation
    incident = next(href for href in links if href.startswith("/cases/incident-"))
    await page.goto(incident)
    assert await active() == ["Cases"]
    await page.goto("/arrangements/1")
    assert await active() == ["Arrangements"]


async def axe_rules(page, rules: list[str]) -> list[dict]:
    """axe-core's violations of just these rules (whatever their impact), on the page as it is now."""
    if not await page.evaluate("() => typeof window.axe !== 'undefined'"):
        await page.evaluate(axe_source() + "\n;undefined")
    result = await page.evaluate("rules => axe.run(document, {runOnly: {type: 'rule', values: rules}})", rules)
    return [{"id": v["id"], "nodes": [n["target"] for n in v["nodes"]][:3]} for v in result["violations"]]


async def test_the_back_link_is_in_a_landmark(site):
    """axe: every part of a page with a back link is in a landmark (region)."""
    url, browser = site
    page = await signed_in(browser, url, "rv-business-manager@demo.test", width=1280, height=900)
    await page.goto("/cases")
    case = await page.locator("a[href^='/cases/incident-']").first.get_attribute("href")
    for path in (case, "/arrangements/edit"):
        await page.goto(path)
        back = page.locator(".govuk-back-link")
        assert await back.count() == 1, path
        assert await back.evaluate("a => a.closest('main, nav, header, footer, [role=region], aside') !== null")
        assert await axe_rules(page, ["region"]) == [], path


async def test_main_lists_are_one_card_per_row_on_a_phone(site):
    """Issue 17, point 6: on a phone the main lists (tasks, cases, escalations, the national overview) are stacked
    as cards, one per row, each value under its column's name; nothing in them needs scrolling sideways."""
    url, browser = site
    for email, paths in [("rv-business-manager@demo.test", ["/cases", "/escalations"]),
                         ("rv-la-head-qa@demo.test", ["/tasks"]), ("panel@demo.test", ["/national"])]:
        page = await signed_in(browser, url, email)
        for path in paths:
            await page.goto(path)
            table = page.locator("main table").first
            assert "app-table--stack" in (await table.get_attribute("class") or ""), path
            assert await table.evaluate("t => getComputedStyle(t).display") == "block", path
            overflow = await table.evaluate("t => t.scrollWidth - t.closest('.app-table-scroll').clientWidth")
            assert overflow <= 0, f"{path}: the list is {overflow}px too wide"
            labelled = await page.locator("main table td[data-label]").count()
            assert labelled > 0, path
        await page.context.close()


async def test_claim_on_a_task_page_keeps_the_focus_on_its_button(site):
    """Issue 17, point 10, on the task page: after Claim it (htmx swaps the page's content) the focus is on the
    new Release button and a polite status says what happened."""
    url, browser = site
    page = await signed_in(browser, url, "rv-la-head-qa@demo.test", width=1280, height=900)
    await page.goto("/tasks")
    await page.get_by_role("link", name="Notify the national Panel").first.click()
    await page.get_by_role("heading", name="Notify the national Panel").wait_for()
    status = page.locator("#task-status")
    assert await status.get_attribute("aria-live") == "polite"
    await page.get_by_role("button", name="Claim it").focus()
    await page.keyboard.press("Enter")
    await page.get_by_role("button", name="Release it").wait_for()
    await page.wait_for_function("() => document.getElementById('task-status').textContent.includes('claimed')")
    assert await page.evaluate("() => document.activeElement.textContent.trim()") == "Release it"
    assert "You claimed: Notify the national Panel" in await status.inner_text()


async def test_a_conditional_question_opens_under_its_answer(site):
    """Issue 17, point 9, in the browser: the sign-off's comments are asked under "No" (GOV.UK Frontend's
    conditional reveal, initialised by web/static/app.js), not labelled optional."""
    url, browser = site
    for email in ("rv-la-dcs@demo.test", "rv-la-head-qa@demo.test", "rv-icb-cno@demo.test",
                  "rv-business-manager@demo.test"):
        page = await signed_in(browser, url, email, width=1280, height=900)
        await page.goto("/tasks")
        link = page.get_by_role("link", name=re.compile("^Sign off"))
        if await link.count():
            break
        await page.context.close()
    else:
        raise AssertionError("nobody has a sign-off task")
    await link.first.click()
    comments = page.locator("#comments")
    await page.locator("#task-form").wait_for()
    assert not await comments.is_visible()
    await page.get_by_label("No", exact=True).check()
    await comments.wait_for(state="visible")
    assert "(optional)" not in await page.locator("label[for=comments]").inner_text()
    await page.get_by_label("Yes", exact=True).check()
    await comments.wait_for(state="hidden")
