"""Pages read the database off the event loop (issue 18): after an htmx claim or release, or a form sent back with
its errors, the task page or inbox that comes back is read in the thread pool, never on the loop's thread (a slow
query there would hold up every other request)."""

from __future__ import annotations

import asyncio

import pytest

import web.views.inbox as inbox_view
import web.views.tasks as task_view
from safeguarding.clock import london_today
from tests.support.pages import DCS, HX


def on_the_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.fixture
def reads(monkeypatch):
    """Where each page's reads ran: True for a read on the event loop's thread."""
    seen: dict[str, list[bool]] = {"task": [], "inbox": []}
    task_names, inbox_rows = task_view.display_names, inbox_view.inbox_rows

    def names(*args, **kwargs):
        seen["task"].append(on_the_event_loop())
        return task_names(*args, **kwargs)

    def rows(*args, **kwargs):
        seen["inbox"].append(on_the_event_loop())
        return inbox_rows(*args, **kwargs)

    monkeypatch.setattr(task_view, "display_names", names)
    monkeypatch.setattr(inbox_view, "inbox_rows", rows)
    return seen


async def test_htmx_claims_and_form_errors_read_the_database_in_the_thread_pool(site, reads):
    browser, driver = site
    case_id = await driver.open(london_today())
    b = browser()
    await b.sign_in(DCS)
    await b.get(f"/cases/{case_id}/tasks/notification")
    claimed = await b.client.post(f"/cases/{case_id}/tasks/notification/claim",
                                  data={"csrf_token": b.token, "back": f"/cases/{case_id}/tasks/notification"},
                                  headers=HX)
    assert claimed.status_code == 200 and "Release" in claimed.text  # the task block, claimed
    released = await b.client.post(f"/cases/{case_id}/tasks/notification/release",
                                   data={"csrf_token": b.token, "back": "/tasks"}, headers=HX)
    assert released.status_code == 200 and released.text.lstrip().startswith('<div id="inbox"')
    await b.get(f"/cases/{case_id}/tasks/notification")
    impossible = await b.post(f"/cases/{case_id}/tasks/notification",
                              {"sent_on-day": "30", "sent_on-month": "2", "sent_on-year": "2026"})
    assert impossible.status_code == 422  # a date the browser sent that is no date: the page with its errors
    later = london_today().replace(year=london_today().year + 1)
    future = await b.post(f"/cases/{case_id}/tasks/notification",
                          {"sent_on-day": str(later.day), "sent_on-month": str(later.month),
                           "sent_on-year": str(later.year), "local_partners_notified": "false"})
    assert future.status_code == 422 and "cannot be in the future" in future.text  # the workflow's validator
    assert reads["task"] and reads["inbox"]  # the pages did read
    assert reads == {"task": [False] * len(reads["task"]), "inbox": [False] * len(reads["inbox"])}
