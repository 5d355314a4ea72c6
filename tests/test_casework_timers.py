"""One Temporal timer per next wake-up instant: an Update that leaves the next deadline where it was starts
and cancels no timer; the timer is replaced only when the next reminder or deadline moves."""

from __future__ import annotations

from datetime import timedelta

from safeguarding.clock import london_today
from tests.support.workflow_driver import CaseDriver, running_worker


async def timer_events(env, case_id: str) -> tuple[int, int, int]:
    history = await env.client.get_workflow_handle(case_id).fetch_history()
    started = sum(1 for e in history.events if e.HasField("timer_started_event_attributes"))
    cancelled = sum(1 for e in history.events if e.HasField("timer_canceled_event_attributes"))
    fired = sum(1 for e in history.events if e.HasField("timer_fired_event_attributes"))
    return started, cancelled, fired


async def test_updates_that_leave_the_next_deadline_start_no_timer(time_env, seeded_engine, settings):
    async with running_worker(time_env, seeded_engine, settings):
        drv = CaseDriver(time_env, seeded_engine, settings)
        today = london_today()
        await drv.open(today)
        assert await timer_events(time_env, drv.case_id) == (1, 0, 0)  # the notification's reminder comes first
        for agency in ("riverford-council", "vale-icb"):  # the notification's reminder is still the next one
            await drv.complete(f"summary-{agency}", {"involvement": "Health visiting since birth."})
        assert await timer_events(time_env, drv.case_id) == (1, 0, 0)
        await drv.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True})
        assert await timer_events(time_env, drv.case_id) == (2, 1, 0)  # now the summaries' reminder is next


async def test_the_timer_still_sends_reminders_and_marks_overdue_work(time_env, seeded_engine, settings):
    async with running_worker(time_env, seeded_engine, settings):
        drv = CaseDriver(time_env, seeded_engine, settings)
        today = london_today()
        await drv.open(today)
        await time_env.sleep(timedelta(days=20))  # past every reminder and every rapid-review deadline
        assert drv.task("notification").overdue and drv.task("meeting").overdue
        assert drv.events("reminder_sent") and drv.events("task_overdue")
        started, cancelled, fired = await timer_events(time_env, drv.case_id)
        assert fired >= 2 and cancelled == 0 and started in (fired, fired + 1)  # at most the next one pending
        await drv.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True})
        assert drv.task("notification").status == "done"
