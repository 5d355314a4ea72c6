"""A reminder's day (``Casework.working_days_before``) is counted by the calendar's own before-event rule
(``WorkingCalendar.nth_working_day_before``), for cases from engine 6; no reminder when the day would fall outside
the calendar's years (issue 17.8). Cases from before engine 6 keep the old count (the recorded histories replay)."""

from __future__ import annotations

from datetime import date

import pytest

from safeguarding.calendar import WorkingCalendar
from workflows.casework import Casework

FRIDAY = date(2026, 11, 20)  # no bank holidays that week


def casework(rule: str, engine: int = 6) -> Casework:
    calendar = WorkingCalendar.for_config({"bank_holiday_region": "england-and-wales",
                                           "counting": {"before_event_rule": rule}}, 2026, 2027)
    return Casework(case_id="c", partnership_id="p", case_ref="R", process="incident", calendar=calendar,
                    arrangements={}, engine=engine)


@pytest.mark.parametrize(("rule", "n", "reminder"), [
    ("nth_working_day_before_event", 2, date(2026, 11, 18)),  # Wednesday: two working days before, Friday itself not
    ("clear_days_both_ends", 2, date(2026, 11, 17)),  # Tuesday: two clear working days (Wed, Thu) in between
    ("nth_working_day_before_event", 5, date(2026, 11, 13)),  # across the weekend
    ("clear_days_both_ends", 5, date(2026, 11, 12)),
])
def test_reminders_follow_the_calendars_before_event_rule(rule, n, reminder):
    cw = casework(rule)
    assert cw.working_days_before(FRIDAY, n) == reminder == cw.calendar.nth_working_day_before(FRIDAY, n)


def test_no_reminder_for_none_or_outside_the_calendar():
    cw = casework("clear_days_both_ends")
    assert cw.working_days_before(FRIDAY, 0) is None
    assert cw.working_days_before(date(2026, 1, 2), 3) is None  # before the calendar's first year
    assert cw.working_days_before(date(2030, 1, 2), 3) is None  # a due date past its years: no reminder, no error
