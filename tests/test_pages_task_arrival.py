"""A task page follows how the person arrived (issue 17, point 11) and says, while its form is open, when someone
else claims or completes the task (issue 17, point 3). Over HTTP, against the app, a time-skipping Temporal server
and an in-process worker."""

from __future__ import annotations

import re

from safeguarding.clock import london_today
from tests.support.pages import DCS, HX, NE_LEAD, PANEL, task_row, visible

HEAD_QA = "rv-la-head-qa@demo.test"  # in the notifying role, as DCS


def back_link(html: str) -> tuple[str, str]:
    match = re.search(r'<a href="([^"]*)" class="govuk-back-link">([^<]*)</a>', html)
    assert match, "no back link"
    return match.group(1), match.group(2).strip()


def active_menu(html: str) -> list[str]:
    return [visible(m).strip() for m in re.findall(
        r'<li class="govuk-service-navigation__item govuk-service-navigation__item--active">(.*?)</li>', html, re.S)]


async def test_the_back_link_and_the_menu_follow_how_you_arrived(site):
    browser, driver = site
    case_id = await driver.open(london_today())
    task = f"/cases/{case_id}/tasks/notification"
    b = browser()
    await b.sign_in(DCS)
    inbox = await b.get("/tasks")
    assert f'href="{task}?from=tasks"' in inbox.text  # the inbox's task links say where they come from

    from_inbox = await b.get(f"{task}?from=tasks")
    assert back_link(from_inbox.text) == ("/tasks", "Back to your tasks")
    assert active_menu(from_inbox.text) == ["My tasks"]
    # Claim, Release and the form keep it, with JavaScript (the fragment) or without (the redirect)
    assert f'action="{task}/claim?from=tasks"' in from_inbox.text
    assert f'action="{task}?from=tasks"' in from_inbox.text
    claimed = await b.post(f"{task}/claim?from=tasks", {"back": f"{task}?from=tasks"})
    assert claimed.status_code == 303 and claimed.headers["location"] == f"{task}?from=tasks"
    fragment = await b.client.post(f"{task}/release?from=tasks", data={"csrf_token": b.token, "back": task},
                                   headers=HX)
    assert f'action="{task}/claim?from=tasks"' in fragment.text

    from_list = await b.get(task, headers={"Referer": "http://testserver/tasks?status=open&page=1"})
    assert back_link(from_list.text) == ("/tasks", "Back to your tasks")
    for arrival in ("", "?from=case", "?from=https://evil.example/", "?from=//evil.example", "?from=overview",
                    "?from=%2Ftasks"):
        page = await b.get(task + arrival)
        assert page.status_code == 200, arrival
        assert back_link(page.text) == (f"/cases/{case_id}", "Back to the case"), arrival
        assert active_menu(page.text) == ["Cases"], arrival
        assert "evil.example" not in page.text, arrival
        assert f'action="{task}/claim"' in page.text, arrival


async def test_the_panels_task_goes_back_to_where_the_panel_came_from(site):
    browser, driver = site
    today = london_today()
    await driver.open(today)
    await driver.through_rapid_review(today=today, decision="no")
    ref = driver.case().national_ref
    task = f"/national/cases/{ref}/tasks/panel-response"
    panel = browser()
    await panel.sign_in(PANEL)
    for arrival, href, text, menu in [("", "/tasks", "Back to your tasks", "Panel tasks"),
                                      ("?from=tasks", "/tasks", "Back to your tasks", "Panel tasks"),
                                      ("?from=overview", "/national", "Back to the overview", "Overview"),
                                      ("?from=case", f"/national/cases/{ref}", "Back to the case", "Overview"),
                                      ("?from=/evil", "/tasks", "Back to your tasks", "Panel tasks")]:
        page = await panel.get(task + arrival)
        assert page.status_code == 200, (arrival, page.text[:300])
        assert back_link(page.text) == (href, text), arrival
        assert active_menu(page.text) == [menu], arrival
    # the Panel's lists link without ?from=: the page they were on (this site's only) says where to go back
    for referer, href, text in [("http://testserver/national", "/national", "Back to the overview"),
                                ("http://testserver/national?partnership=x", "/national", "Back to the overview"),
                                (f"http://testserver/national/cases/{ref}", f"/national/cases/{ref}",
                                 "Back to the case"),
                                ("http://evil.example/national", "/tasks", "Back to your tasks"),
                                ("http://testserver/national/monitoring", "/tasks", "Back to your tasks")]:
        page = await panel.get(task, headers={"Referer": referer})
        assert back_link(page.text) == (href, text), referer
    # the open Panel task page's watch: the same scope as the page
    assert 'hx-get="' + task + '/status?seen=ok"' in (await panel.get(task)).text
    assert (await panel.get(f"{task}/status?seen=ok", headers=HX)).status_code == 204
    local = browser()
    await local.sign_in(DCS)
    assert (await local.get(f"{task}/status?seen=ok", headers=HX)).status_code == 404


async def test_an_open_task_page_hears_when_someone_else_claims_it(site):
    browser, driver = site
    case_id = await driver.open(london_today())
    task = f"/cases/{case_id}/tasks/notification"
    mine, theirs = browser(), browser()
    await mine.sign_in(DCS)
    await theirs.sign_in(HEAD_QA)
    page = await mine.get(task)
    # the page polls a small status, inside a polite status region beside the form (not the form itself)
    live = re.search(r'<div id="task-live" role="status" aria-live="polite">(.*?)</div>\s*</div>', page.text, re.S)
    assert live and f'hx-get="{task}/status?seen=ok"' in live.group(1) and "<form" not in live.group(1)
    assert (await mine.get(f"{task}/status?seen=ok", headers=HX)).status_code == 204  # nothing changed

    await mine.post(f"{task}/claim", {"back": task})  # my own claim changes nothing for me
    assert (await mine.get(f"{task}/status?seen=ok", headers=HX)).status_code == 204

    await mine.post(f"{task}/release", {"back": task})
    await theirs.post(f"{task}/claim", {"back": task})
    assert task_row(driver.engine, case_id, "notification").claimed_by == "u-rv-la-head-qa"
    notice = await mine.get(f"{task}/status?seen=ok", headers=HX)
    assert notice.status_code == 200 and notice.text.lstrip().startswith('<div id="task-watch"')
    assert "&lt;" not in notice.text and '<h3 class="govuk-notification-banner__heading">' in notice.text
    words = " ".join(visible(notice.text).split())
    assert re.search(r"\S.* claimed this task at \d{1,2}(:\d\d)?(am|pm)\.", words), words
    assert "What you typed is kept on this page" in words and "ask" in words and "to release it" in words
    # where Claim was, the page now says who has the task (out of band: the form is not touched)
    assert re.search(r'<div id="task-claim" hx-swap-oob="true">.*has claimed this task.*</div>', notice.text, re.S)
    assert "Claim it" not in notice.text and "<form" not in notice.text
    seen = re.search(r"seen=([0-9a-f]+)", notice.text).group(1)
    assert (await mine.get(f"{task}/status?seen={seen}", headers=HX)).status_code == 204  # said once

    await theirs.post(f"{task}/release", {"back": task})
    free = await mine.get(f"{task}/status?seen={seen}", headers=HX)
    assert free.status_code == 200 and "You can complete this task again" in free.text
    assert f'action="{task}/claim"' in free.text and 'name="csrf_token"' in free.text  # Claim is back
    kept = await mine.get(f"{task}/status?seen={seen}&from=tasks", headers=HX)  # as the page arrived
    assert f'action="{task}/claim?from=tasks"' in kept.text and "seen=ok&amp;from=tasks" in kept.text

    # whoever may not see the task page may not poll it either
    stranger = browser()
    await stranger.sign_in(NE_LEAD)
    assert (await stranger.get(f"{task}/status?seen=ok", headers=HX)).status_code == 404
    assert (await stranger.get(task)).status_code == 404

    await driver.complete("notification", {"sent_on": london_today().isoformat(), "local_partners_notified": True},
                          user_ref="u-rv-la-head-qa")
    done = await mine.get(f"{task}/status?seen=ok", headers=HX)
    assert done.status_code == 286  # htmx stops polling: nothing more can change
    assert "completed this task" in done.text
    assert re.search(r'<div id="task-claim" hx-swap-oob="true">.*has completed this task\.', done.text, re.S)


async def test_the_confirmation_page_keeps_how_you_arrived(site):
    browser, driver = site
    today = london_today()
    case_id = await driver.open(today)
    task = f"/cases/{case_id}/tasks/notification"
    b = browser()
    await b.sign_in(DCS)
    await b.post(f"{task}/claim?from=tasks", {"back": f"{task}?from=tasks"})
    data = {"sent_on-day": str(today.day), "sent_on-month": str(today.month), "sent_on-year": str(today.year),
            "local_partners_notified": "true"}
    done = await b.post(f"{task}?from=tasks", data)
    assert done.status_code == 303 and done.headers["location"] == f"{task}?done=1&from=tasks"
    confirmation = await b.get(done.headers["location"])
    assert "Task complete" in confirmation.text
    assert back_link(confirmation.text) == ("/tasks", "Back to your tasks")
    assert active_menu(confirmation.text) == ["My tasks"]


async def test_the_confirmation_page_keeps_only_allow_listed_arrivals(site):
    browser, driver = site
    today = london_today()
    await driver.open(today)
    await driver.through_rapid_review(today=today, decision="no")
    ref = driver.case().national_ref
    task = f"/national/cases/{ref}/tasks/panel-response"
    panel = browser()
    await panel.sign_in(PANEL)
    await panel.post(f"{task}/claim", {"back": task})
    done = await panel.post(f"{task}?from=https://evil.example/", {"response": "agrees"})
    assert done.status_code == 303 and done.headers["location"] == f"{task}?done=1"  # not kept: not a known place


async def test_the_panels_confirmation_page_goes_back_to_the_overview(site):
    browser, driver = site
    today = london_today()
    await driver.open(today)
    await driver.through_rapid_review(today=today, decision="no")
    ref = driver.case().national_ref
    task = f"/national/cases/{ref}/tasks/panel-response"
    panel = browser()
    await panel.sign_in(PANEL)
    await panel.post(f"{task}/claim?from=overview", {"back": f"{task}?from=overview"})
    done = await panel.post(f"{task}?from=overview", {"response": "agrees"})
    assert done.status_code == 303 and done.headers["location"] == f"{task}?done=1&from=overview"
    confirmation = await panel.get(done.headers["location"])
    assert back_link(confirmation.text) == ("/national", "Back to the overview")
    assert active_menu(confirmation.text) == ["Overview"]
