"""What the browser tests need: Debian's Chromium through Playwright, the app in a real server, and axe-core.

- Chromium: ``/usr/bin/chromium`` from Debian (``apt-get install chromium``; ``scripts/test.sh`` tries when it
  runs as root). Never a browser Playwright downloads. Without it the browser tests skip, saying why.
- The app runs under uvicorn in a background thread (its own event loop) on a free loopback port; its lifespan
  connects its own Temporal client to the test's server, so the worker the test runs in its loop does the work.
- axe-core is vendored under ``tests/vendor/axe-core`` (version and checksum in ``VERSION.json``, checked here).
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
AXE_DIR = Path(__file__).resolve().parents[1] / "vendor" / "axe-core"
BLOCKING_IMPACTS = ("serious", "critical")


def browser_skip_reason() -> str | None:
    """None when the browser tests can run, else why not (they skip with this reason)."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed: pip install -e '.[test]'"
    if not CHROMIUM.exists():
        return (f"{CHROMIUM} not found: install Debian's Chromium (apt-get install chromium; scripts/test.sh does "
                "this when run as root) to run the browser tests")
    return None


def axe_source() -> str:
    meta = json.loads((AXE_DIR / "VERSION.json").read_text())
    data = (AXE_DIR / "axe.min.js").read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != meta["files"]["axe.min.js"]:
        raise AssertionError(f"tests/vendor/axe-core/axe.min.js does not match VERSION.json (sha256 {digest})")
    return data.decode("utf-8")


async def serious_violations(page) -> list[dict[str, Any]]:
    """axe-core's violations of impact serious or critical on the page as it is now (WCAG 2.x A and AA rules)."""
    if not await page.evaluate("() => typeof window.axe !== 'undefined'"):
        # Evaluated through the DevTools protocol, which the page's Content-Security-Policy does not govern (an
        # inline <script> tag, as add_script_tag makes, is refused: the app allows no inline script).
        await page.evaluate(axe_source() + "\n;undefined")
    result = await page.evaluate("""() => axe.run(document, {
        runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']},
        resultTypes: ['violations']})""")
    found = []
    for v in result["violations"]:
        nodes = [n for n in v["nodes"] if not _govuk_conditional_radio(v["id"], n)]
        if v.get("impact") in BLOCKING_IMPACTS and nodes:
            found.append({"id": v["id"], "impact": v["impact"], "help": v["help"],
                          "nodes": [n["target"] for n in nodes][:5]})
    return found


async def assert_accessible(page, name: str) -> None:
    """Fails, naming the page, when axe finds a serious or critical violation on it."""
    violations = await serious_violations(page)
    assert violations == [], f"axe: serious/critical violations on {name}: {violations}"


def _govuk_conditional_radio(rule: str, node: dict[str, Any]) -> bool:
    """GOV.UK Frontend's conditional reveal sets ``aria-expanded`` on a radio that controls revealed questions. axe
    reports it (aria-allowed-attr); GOV.UK keeps it on purpose, as screen readers announce it, and lists the report
    as a known issue (alphagov/govuk-frontend#979). Only that exact case is let through: a radio with
    ``aria-controls`` whose one disallowed attribute is ``aria-expanded``."""
    if rule != "aria-allowed-attr":
        return False
    html = node.get("html", "")
    data = [value for check in node.get("any", []) + node.get("all", [])
            for value in ((check.get("data") or {}).get("values") or [])]
    return ('type="radio"' in html and "aria-controls=" in html and bool(data)
            and all(str(d).startswith("aria-expanded=") for d in data))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """uvicorn serving ``app`` on 127.0.0.1 in a daemon thread; ``with LiveServer(app) as url: ...``."""

    def __init__(self, app, port: int | None = None):
        import uvicorn

        self.port = port or free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on", access_log=False))
        self.thread = threading.Thread(target=self.server.run, name="live-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise AssertionError("the live server did not start")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


PASSWORD = "demo-password"


@asynccontextmanager
async def live_browser(time_env, engine, settings) -> AsyncIterator[tuple[str, Any]]:
    """``(base URL, Chromium)``: the app under uvicorn (its own Temporal client, to the test's time-skipping
    server), a worker in the test's loop, and Debian's Chromium, all stopped on the way out."""
    from playwright.async_api import async_playwright

    from tests.support.workflow_driver import running_worker
    from web.app import create_app

    target = time_env.client.service_client.config.target_host
    app = create_app(settings.model_copy(update={"temporal_address": target}), engine=engine, connect_temporal=True)
    async with running_worker(time_env, engine, settings):
        with LiveServer(app) as url:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
                try:
                    yield url, browser
                finally:
                    await browser.close()


async def fill_incident_form(page, ref: str, today) -> None:
    """Fills the incident form with a valid incident aware ``today`` (the first category and agency) and sends it."""
    await page.get_by_label("Your reference for this incident").fill(ref)
    await page.locator("#aware_date-day").fill(str(today.day))
    await page.locator("#aware_date-month").fill(str(today.month))
    await page.locator("#aware_date-year").fill(str(today.year))
    await page.locator("input[name=category]").first.check()
    await page.get_by_label("Child 1: pseudonym").fill("Child A")
    await page.locator("input[name=agencies]").first.check()
    await page.get_by_label("What happened").fill("Infant admitted with injuries.")
    await page.get_by_role("button", name="Record the incident").click()


async def signed_in(browser, url: str, email: str, *, width: int, height: int, clock: bool = False):
    """A new browser context of ``width`` x ``height``, signed in as ``email``; its page. ``clock``: Playwright's
    fake clock, installed before the first page loads, so a test can move time on (``page.clock.fast_forward``) and
    polling that waits tens of seconds happens at once."""
    context = await browser.new_context(base_url=url, viewport={"width": width, "height": height})
    context.set_default_timeout(10_000)
    page = await context.new_page()
    if clock:
        await page.clock.install()
    await page.goto("/sign-in")
    await page.get_by_label("Email address").fill(email)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_load_state()
    assert "/sign-in" not in page.url, f"{email} could not sign in"
    return page
