"""Issue 17, point 8 (the workflows' part): plain English in what people read. Dates as "24 December 2026", never
ISO; counts as "1 child"; the arrangements' ids (``la_becomes_aware``) in words. Machine fields stay ISO."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta

import pytest
from sqlmodel import Session, select

from safeguarding.clock import london_today
from safeguarding.tables import Case, CaseEvent, OutboxMessage, Task
from safeguarding.wording import clock_start_text, long_date, plural
from tests.support.lcspr_review import Review
from tests.support.workflow_driver import CaseDriver, calendar_for, running_worker
from web.errors import ApiError

ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
SNAKE_ID = re.compile(r"\b[a-z0-9]+(?:_[a-z0-9]+)+\b")


def test_long_date_is_a_plain_english_date():
    assert long_date(date(2027, 3, 1)) == "1 March 2027"  # no leading zero
    assert long_date(date(2026, 12, 24)) == "24 December 2026"
    assert long_date("2026-01-09") == "9 January 2026"  # a date field as the form sent it
    assert long_date("2026-12-24T09:30:00+00:00") == "24 December 2026"  # an instant's date
    assert long_date("soon") == "soon"  # never raises inside a workflow


def test_plural_counts_in_words():
    assert plural(1, "child", "children") == "1 child"
    assert plural(2, "child", "children") == "2 children"
    assert plural(0, "working day", "working days") == "0 working days"


def test_clock_starts_are_words_not_ids():
    assert clock_start_text("la_becomes_aware") == "from when the local authority became aware"
    assert clock_start_text("notification_sent") == "from the notification"
    assert not SNAKE_ID.search(clock_start_text("some_new_start"))


def readable(engine, case_id: str) -> list[str]:
    """Everything a person reads of a case and of the overdue ladders it started: timeline, task titles, emails."""
    with Session(engine) as session:
        ids = [case_id, *session.exec(select(Case.id).where(Case.parent_case_id == case_id))]
        texts = [e.message for e in session.exec(select(CaseEvent).where(CaseEvent.case_id.in_(ids)))]
        texts += [t.title for t in session.exec(select(Task).where(Task.case_id.in_(ids)))]
        for mail in session.exec(select(OutboxMessage).where(OutboxMessage.case_id.in_(ids))):
            texts += [mail.subject, mail.body]
    return texts


@pytest.fixture
async def driver(time_env, seeded_engine, settings):
    async with running_worker(time_env, seeded_engine, settings):
        yield CaseDriver(time_env, seeded_engine, settings)


async def test_a_cases_timeline_tasks_and_emails_carry_no_iso_date_and_no_id(driver):
    today = london_today()
    cal = calendar_for(driver.engine)
    await driver.open(today)
    # the reminders come, then every step is overdue and goes up the overdue ladder (its tasks and emails too)
    await driver.env.sleep(timedelta(days=20))
    late = today + timedelta(days=10)
    with pytest.raises(ApiError) as refused:  # a validator's message: the date in words, the value still ISO
        await driver.complete("notification", {"sent_on": (today + timedelta(days=60)).isoformat(),
                                               "local_partners_notified": True})
    (field,) = refused.value.fields
    assert field.value == (today + timedelta(days=60)).isoformat()
    now = await driver.env.get_current_time()
    assert f"today is {long_date(cal.local_date(now))})" in field.message
    assert not ISO_DATE.search(field.message) and refused.value.message.startswith("1 problem in the form")
    await driver.complete("notification", {"sent_on": late.isoformat(), "local_partners_notified": True})
    await driver.through_rapid_review(today=late)
    await driver.complete("panel-response", {"response": "agrees"}, user_ref="u-panel-analyst")

    case = driver.case()
    assert case.notification_due == cal.add_working_days(today, 5)  # the case's values stay dates
    (opened,) = driver.events("case_opened")
    assert f", aware {long_date(today)}, 1 child, " in opened.message
    (started,) = driver.events("rapid_review_started")
    assert started.message == (f"Rapid review started: counted from when the local authority became aware "
                               f"({long_date(today)}), due {long_date(case.rapid_review_due)}")
    days_late = plural(case.notification_days_late, "working day", "working days")
    assert f"Notification sent to the Panel on {long_date(late)} ({days_late} late)" in [
        e.message for e in driver.events("task_completed")]
    reminded = driver.events("reminder_sent")
    assert reminded and all(long_date(driver.task(e.task_key).due_date) in e.message for e in reminded)
    assert driver.events("task_overdue") and driver.events("escalated")
    texts = readable(driver.engine, driver.case_id)
    assert len(texts) > 20
    with Session(driver.engine) as session:
        assert session.exec(select(OutboxMessage).where(OutboxMessage.case_id == driver.case_id)).first()
        assert session.exec(select(Case).where(Case.parent_case_id == driver.case_id)).first()  # a ladder
    assert [t for t in texts if ISO_DATE.search(t)] == []
    assert [t for t in texts if SNAKE_ID.search(t)] == []
    # the event data a machine reads keeps its ids
    assert any(json.loads(e.data).get("ladder") for e in driver.events("escalated"))


@pytest.fixture
async def review(time_env, seeded_engine, settings):
    async with running_worker(time_env, seeded_engine, settings):
        yield Review(time_env, seeded_engine, settings)


async def test_a_local_reviews_timeline_tasks_and_emails_carry_no_iso_date_and_no_id(review):
    today = london_today()
    await review.start(today)
    await review.to_final_report(today)
    await review.action("vale-icb", "Weekend information-sharing protocol", today + timedelta(days=3))
    await review.sign_off()
    await review.do("recommendations", {"recommendations": "1. Share information at weekends.",
                                        "all_actions_added": True})
    planned = today + timedelta(days=21)
    await review.do("publication-plan", {"publish": "yes", "planned_publication_date": planned.isoformat()})
    await review.do("prepublication", {"sent_on": today.isoformat()})
    await review.env.sleep(timedelta(days=21))  # the action is overdue and goes up the ladder meanwhile
    now = await review.today()
    await review.do("published", {"published_on": now.isoformat(), "url": "https://rvscp.example/reviews/child-a"})
    (started,) = review.events("lcspr_started")
    assert started.message.startswith(f"Local review started: decision {long_date(today)}, final report due ")
    assert "6 calendar months" in started.message
    (notice,) = review.events("notice_sent")
    assert json.loads(notice.data)["sent_on"] == today.isoformat()  # the data a machine reads stays ISO
    assert review.events("task_overdue")
    texts = readable(review.engine, review.case().id)
    assert len(texts) > 15
    assert [t for t in texts if ISO_DATE.search(t)] == []
    assert [t for t in texts if SNAKE_ID.search(t)] == []
