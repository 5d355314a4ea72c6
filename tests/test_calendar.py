"""Tests for safeguarding.calendar: worked examples, rule options, properties, determinism."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safeguarding import calendar as calendar_module
from safeguarding.calendar import CalendarRangeError, CountingRules, WorkingCalendar

ROOT = Path(__file__).resolve().parents[1]

SECTION = {
    "timezone": "Europe/London",
    "bank_holiday_region": "england-and-wales",
    "extra_closure_days": [],
    "counting": {
        "trigger_day_counts": False,
        "before_event_rule": "nth_working_day_before_event",
        "month_overflow": "clamp_to_month_end",
        "month_deadline_on_non_working_day": "keep",
        "deadline_end_time": "23:59",
    },
}


def section(closures=(), **counting):
    s = json.loads(json.dumps(SECTION))
    s["extra_closure_days"] = [{"date": d, "reason": "closure"} for d in closures]
    s["counting"].update(counting)
    return s


# Built once: England & Wales bank holidays 2018-2032 (property tests stay inside 2019-2030 +- 60 WD).
CAL = WorkingCalendar.for_config(SECTION, 2018, 2032)
D = date.fromisoformat


def with_rules(cal: WorkingCalendar, **rules) -> WorkingCalendar:
    return dataclasses.replace(cal, rules=dataclasses.replace(cal.rules, **rules))


# ------------------------------------------------------------------------------------------ bank holidays
def test_bank_holidays_2026_2027_2028_match_domain_brief():
    assert CAL.non_working_in(2026) == tuple(map(D, [
        "2026-01-01", "2026-04-03", "2026-04-06", "2026-05-04", "2026-05-25", "2026-08-31",
        "2026-12-25", "2026-12-28",  # Sat 26 Dec (Boxing Day) is a weekend: implicit, not listed
    ]))
    assert CAL.non_working_in(2027) == tuple(map(D, [
        "2027-01-01", "2027-03-26", "2027-03-29", "2027-05-03", "2027-05-31", "2027-08-30",
        "2027-12-27", "2027-12-28",
    ]))
    assert D("2028-01-03") in CAL.non_working  # New Year substitute
    # 24 and 31 December are ordinary working days
    for d in ("2026-12-24", "2026-12-31", "2027-12-24", "2027-12-31"):
        assert CAL.is_working_day(D(d))
    assert not CAL.is_working_day(D("2026-12-26"))  # Saturday
    assert not CAL.is_working_day(D("2026-12-28"))  # Boxing Day substitute


def test_for_config_matches_holidays_for_england_every_day():
    closures = ["2026-12-24", "2027-12-31", "2026-12-26", "2017-06-01"]  # a Saturday; one outside the range
    cal = WorkingCalendar.for_config(section(closures), 2019, 2030)
    assert (cal.first_day, cal.last_day) == (D("2019-01-01"), D("2030-12-31"))
    bank = holidays.country_holidays("GB", subdiv="ENG", years=range(2019, 2031))
    d = cal.first_day
    while d <= cal.last_day:
        expected = d.weekday() < 5 and d not in bank and d.isoformat() not in closures
        assert cal.is_working_day(d) == expected, d
        d += timedelta(days=1)
    assert all(x.weekday() < 5 for x in cal.non_working)
    assert list(cal.non_working) == sorted(set(cal.non_working))
    # one-off bank holidays come from `holidays` too
    for one_off in ("2022-06-03", "2022-09-19", "2023-05-08"):
        assert not cal.is_working_day(D(one_off))


# ----------------------------------------------------------------------------------------- worked examples
@pytest.mark.parametrize(("aware", "n", "due"), [
    # domain brief (c): Sat 23 May 2026, Mon 25 May is the Spring bank holiday
    ("2026-05-23", 5, "2026-06-01"),
    ("2026-05-23", 15, "2026-06-15"),
    # Mon 31 Aug 2026 is the Summer bank holiday
    ("2026-08-31", 5, "2026-09-07"),
    ("2026-08-31", 15, "2026-09-21"),
    # Wed 23 Dec 2026: Thu 24 (1), [Fri 25 BH, weekend, Mon 28 BH], Tue 29 (2), Wed 30 (3), Thu 31 (4),
    # [Fri 1 Jan BH, weekend], Mon 4 Jan 2027 (5)
    ("2026-12-23", 5, "2027-01-04"),
    # ... then 5 (6), 6 (7), 7 (8), 8 (9), 11 (10), 12 (11), 13 (12), 14 (13), 15 (14), Mon 18 Jan (15)
    ("2026-12-23", 15, "2027-01-18"),
    # Thu 23 Dec 2027: Fri 24 (1), [weekend, Mon 27 + Tue 28 substitutes], Wed 29 (2), Thu 30 (3), Fri 31 (4),
    # [weekend, Mon 3 Jan 2028 New Year substitute], Tue 4 Jan 2028 (5)
    ("2027-12-23", 5, "2028-01-04"),
    # Easter 2026: Thu 2 Apr, [Good Friday 3 Apr, weekend, Easter Monday 6 Apr], Tue 7 (1) .. Fri 10 (4),
    # Mon 13 (5)
    ("2026-04-02", 5, "2026-04-13"),
    # Easter 2027: Thu 25 Mar, [Good Friday 26 Mar, weekend, Easter Monday 29 Mar], Tue 30 (1), Wed 31 (2),
    # Thu 1 Apr (3), Fri 2 Apr (4), Mon 5 Apr (5)
    ("2027-03-25", 5, "2027-04-05"),
    # Friday trigger: Mon..Fri of next week
    ("2026-06-05", 5, "2026-06-12"),
    ("2026-06-05", 1, "2026-06-08"),
    ("2026-06-05", 0, "2026-06-05"),
])
def test_add_working_days_worked_examples(aware, n, due):
    assert CAL.add_working_days(D(aware), n) == D(due)
    assert CAL.working_days_between(D(aware), D(due)) == n


def test_extra_closure_day_christmas_eve_shifts_dates():
    cal = WorkingCalendar.for_config(section(["2026-12-24"]), 2026, 2027)
    assert not cal.is_working_day(D("2026-12-24"))
    # Wed 23 Dec: [24 closed, 25 BH, weekend, 28 BH], Tue 29 (1), 30 (2), 31 (3), [1 Jan BH, weekend],
    # Mon 4 Jan (4), Tue 5 Jan (5)
    assert cal.add_working_days(D("2026-12-23"), 5) == D("2027-01-05")
    assert CAL.add_working_days(D("2026-12-23"), 5) == D("2027-01-04")  # without the closure day


def test_trigger_day_counts():
    cal = with_rules(CAL, trigger_day_counts=True)
    # working trigger Mon 1 Jun 2026 is day 1: 1, 2, 3, 4, Fri 5 Jun (5)
    assert cal.add_working_days(D("2026-06-01"), 5) == D("2026-06-05")
    assert cal.add_working_days(D("2026-06-01"), 1) == D("2026-06-01")
    assert CAL.add_working_days(D("2026-06-01"), 5) == D("2026-06-08")
    # non-working trigger (Sat 23 May; Mon 25 May BH): day 1 is Tue 26 May under both conventions
    assert cal.add_working_days(D("2026-05-23"), 5) == D("2026-06-01")
    assert cal.add_working_days(D("2026-05-23"), 1) == D("2026-05-26")
    assert cal.add_working_days(D("2026-06-01"), 0) == D("2026-06-01")


def test_config_from_domain_brief_example_shape():
    rules = CountingRules.from_config({
        "timezone": "Europe/London",
        "counting": {"trigger_day_counts": False, "non_working_trigger": "day1_is_next_working_day",
                     "deadline_end_time": "23:59", "before_event_rule": "nth_working_day_before_event",
                     "forty_eight_hours_as_working_days": 2, "month_overflow": "clamp_to_month_end",
                     "roll_forward_non_working": True}})
    assert rules.month_deadline_on_non_working_day == "roll_forward"
    assert CountingRules.from_config({}) == CountingRules()
    with pytest.raises(ValueError, match="disagree"):
        CountingRules.from_config({"counting": {"roll_forward_non_working": True,
                                                "month_deadline_on_non_working_day": "keep"}})
    with pytest.raises(ValueError, match="non_working_trigger"):
        CountingRules.from_config({"counting": {"non_working_trigger": "trigger_is_day_1"}})


# ---------------------------------------------------------------------------------- before an event
def test_nth_working_day_before_publication_after_christmas():
    publication = D("2027-01-04")  # Monday after Christmas 2026
    # X not counted. Back from Mon 4 Jan: [weekend, Fri 1 Jan BH], Thu 31 Dec (1), Wed 30 (2), Tue 29 (3),
    # [Mon 28 BH, weekend, Fri 25 BH], Thu 24 (4), Wed 23 (5), Tue 22 (6), Mon 21 Dec (7)
    assert CAL.nth_working_day_before(publication, 7) == D("2026-12-21")
    sunday = D("2027-01-03")  # working days strictly between d and X = working days in (d, X - 1 day]
    assert CAL.working_days_between(D("2026-12-21"), sunday) == 6  # 22, 23, 24, 29, 30, 31
    # clear days at both ends: 7 working days strictly between deadline and X -> one working day earlier
    clear = with_rules(CAL, before_event_rule="clear_days_both_ends")
    assert clear.nth_working_day_before(publication, 7) == D("2026-12-18")
    assert clear.working_days_between(D("2026-12-18"), sunday) == 7
    # with a Christmas Eve closure both move back one more working day
    closed = WorkingCalendar.for_config(section(["2026-12-24"]), 2026, 2027)
    assert closed.nth_working_day_before(publication, 7) == D("2026-12-18")
    assert with_rules(closed, before_event_rule="clear_days_both_ends").nth_working_day_before(
        publication, 7) == D("2026-12-17")


def test_nth_working_day_before_small_n_and_non_working_event():
    clear = with_rules(CAL, before_event_rule="clear_days_both_ends")
    monday = D("2026-06-08")
    assert CAL.nth_working_day_before(monday, 1) == D("2026-06-05")  # the Friday before
    assert CAL.nth_working_day_before(monday, 0) == monday  # zero-length
    assert clear.nth_working_day_before(monday, 0) == D("2026-06-05")  # no clear day between
    assert clear.nth_working_day_before(monday, 1) == D("2026-06-04")  # Fri 5 Jun is the clear day
    saturday = D("2026-06-06")
    assert CAL.nth_working_day_before(saturday, 1) == D("2026-06-05")
    assert clear.nth_working_day_before(saturday, 1) == D("2026-06-04")


# --------------------------------------------------------------------------------------------- months
@pytest.mark.parametrize(("start", "n", "rules", "expected"), [
    ("2026-08-31", 6, {}, "2027-02-28"),  # clamp (Sun 28 Feb kept)
    ("2027-08-31", 6, {}, "2028-02-29"),  # leap year
    ("2026-08-31", 6, {"month_overflow": "roll_to_next_month_start"}, "2027-03-01"),
    ("2027-08-31", 6, {"month_overflow": "roll_to_next_month_start"}, "2028-03-01"),
    ("2026-01-30", 1, {"month_overflow": "roll_to_next_month_start"}, "2026-03-01"),  # never 2 Mar
    ("2026-08-15", 6, {}, "2027-02-15"),
    ("2026-11-30", 14, {}, "2028-01-30"),
    ("2026-05-31", 0, {}, "2026-05-31"),
    # Sun 28 Feb 2027 rolls forward to Mon 1 Mar
    ("2026-08-31", 6, {"month_deadline_on_non_working_day": "roll_forward"}, "2027-03-01"),
    # Sat 27 Mar 2027: keep it, or roll past Sun 28 and Easter Monday 29 Mar to Tue 30 Mar
    ("2026-09-27", 6, {}, "2027-03-27"),
    ("2026-09-27", 6, {"month_deadline_on_non_working_day": "roll_forward"}, "2027-03-30"),
    # 31 Jan 2026 + 1: rolls to Sun 1 Mar 2026, then forward to Mon 2 Mar
    ("2026-01-31", 1, {"month_overflow": "roll_to_next_month_start",
                       "month_deadline_on_non_working_day": "roll_forward"}, "2026-03-02"),
    # clamped to Sat 28 Feb 2026: kept, or rolled forward past the weekend to Mon 2 Mar
    ("2026-01-31", 1, {}, "2026-02-28"),
    ("2026-01-31", 1, {"month_deadline_on_non_working_day": "roll_forward"}, "2026-03-02"),
])
def test_add_months(start, n, rules, expected):
    assert with_rules(CAL, **rules).add_months(D(start), n) == D(expected)


def test_a_month_deadline_on_a_non_working_day_rolls_forward_unless_the_arrangements_keep_it():
    """The default (a config that leaves the rule out) is the next working day: 31 Aug 2026 + 6 months is
    Sun 28 Feb 2027 -> Mon 1 Mar 2027; 27 Sep 2026 + 6 months is Sat 27 Mar 2027 -> past Sun 28 and Easter
    Monday 29 Mar to Tue 30 Mar 2027. Stated as ``keep``, the dates stand."""
    unstated = json.loads(json.dumps(SECTION))
    del unstated["counting"]["month_deadline_on_non_working_day"]
    default = WorkingCalendar.for_config(unstated, 2025, 2028)
    assert CountingRules().month_deadline_on_non_working_day == "roll_forward"
    assert default.add_months(D("2026-08-31"), 6) == D("2027-03-01")
    assert default.add_months(D("2026-09-27"), 6) == D("2027-03-30")
    assert default.add_months(D("2026-08-15"), 6) == D("2027-02-15")  # a Monday: unchanged
    kept = WorkingCalendar.for_config(section(), 2025, 2028)
    assert kept.add_months(D("2026-08-31"), 6) == D("2027-02-28")


# --------------------------------------------------------------------------------- deadlines and lateness
def test_deadline_at_bst_and_gmt():
    assert CAL.deadline_at(D("2026-06-01")) == datetime(2026, 6, 1, 22, 59, tzinfo=UTC)
    assert CAL.deadline_at(D("2026-12-01")) == datetime(2026, 12, 1, 23, 59, tzinfo=UTC)
    assert CAL.deadline_at(D("2026-06-01")).tzinfo is UTC
    # clock-change days: BST starts Sun 29 Mar 2026, ends Sun 25 Oct 2026
    assert CAL.deadline_at(D("2026-03-29")) == datetime(2026, 3, 29, 22, 59, tzinfo=UTC)
    assert CAL.deadline_at(D("2026-10-25")) == datetime(2026, 10, 25, 23, 59, tzinfo=UTC)
    five = with_rules(CAL, deadline_end_time="17:00")
    assert five.deadline_at(D("2026-06-01")) == datetime(2026, 6, 1, 16, 0, tzinfo=UTC)
    assert CAL.due(D("2026-05-23"), 5) == (D("2026-06-01"), datetime(2026, 6, 1, 22, 59, tzinfo=UTC))


def test_working_days_late():
    due = D("2026-06-01")
    assert CAL.working_days_late(due, D("2026-06-02")) == 1
    assert CAL.working_days_late(due, D("2026-06-08")) == 5  # Tue 2, Wed 3, Thu 4, Fri 5, Mon 8
    assert CAL.working_days_late(due, D("2026-06-06")) == 4  # Saturday: 4 working days late
    assert CAL.working_days_late(due, due) == 0
    assert CAL.working_days_late(due, D("2026-05-20")) == 0
    # late by calendar but not by working days: Fri deadline, done on Saturday
    assert CAL.working_days_late(D("2026-06-05"), D("2026-06-06")) == 0
    assert CAL.working_days_between(D("2026-06-08"), due) == -5


# ------------------------------------------------------------------------------------------ errors
def test_range_errors_name_the_date_and_range():
    cal = WorkingCalendar.for_config(SECTION, 2026, 2027)
    with pytest.raises(CalendarRangeError, match=r"2028-03-01.*2026-01-01 to 2027-12-31"):
        cal.is_working_day(D("2028-03-01"))
    with pytest.raises(CalendarRangeError, match=r"2025-12-31"):
        cal.add_working_days(D("2025-12-31"), 1)
    with pytest.raises(CalendarRangeError, match=r"5 working days after 2027-12-29.*2027-12-31"):
        cal.add_working_days(D("2027-12-29"), 5)
    assert cal.add_working_days(D("2027-12-29"), 2) == D("2027-12-31")
    with pytest.raises(CalendarRangeError, match="before"):
        cal.nth_working_day_before(D("2026-01-05"), 3)
    with pytest.raises(CalendarRangeError, match="2028-02-29"):
        cal.add_months(D("2027-08-31"), 6)
    with pytest.raises(CalendarRangeError):
        cal.working_days_late(D("2027-12-31"), D("2028-01-04"))
    # the range need not be whole years: this one ends on Sun 27 Dec 2026
    short = WorkingCalendar(D("2026-01-01"), D("2026-12-27"), (D("2026-12-25"),),
                            CountingRules(month_deadline_on_non_working_day="roll_forward"))
    with pytest.raises(CalendarRangeError, match="on or after 2026-12-26"):
        short.add_months(D("2026-06-26"), 6)  # Sat 26 Dec; no working day left in range
    with pytest.raises(CalendarRangeError):
        cal.deadline_at(D("2030-01-01"))
    assert issubclass(CalendarRangeError, ValueError)


def test_bad_arguments():
    with pytest.raises(ValueError, match=">= 0"):
        CAL.add_working_days(D("2026-06-01"), -1)
    with pytest.raises(ValueError, match=">= 0"):
        CAL.nth_working_day_before(D("2026-06-01"), -1)
    with pytest.raises(ValueError, match=">= 0"):
        CAL.add_months(D("2026-06-01"), -1)
    with pytest.raises(TypeError):
        CAL.add_working_days(D("2026-06-01"), 1.0)
    with pytest.raises(TypeError):
        CAL.add_working_days(D("2026-06-01"), True)
    with pytest.raises(TypeError, match="datetime"):
        CAL.add_working_days(datetime(2026, 6, 1, 12, 0), 1)
    with pytest.raises(TypeError):
        CAL.is_working_day("2026-06-01")


@pytest.mark.parametrize("counting", [
    {"before_event_rule": "clear_days"},
    {"month_overflow": "roll"},
    {"month_deadline_on_non_working_day": "roll_back"},
    {"trigger_day_counts": "no"},
    {"deadline_end_time": "24:00"},
    {"deadline_end_time": "23:59\n"},
    {"deadline_end_time": "11pm"},
])
def test_invalid_counting_rules(counting):
    with pytest.raises(ValueError):
        CountingRules.from_config(section(**counting))


def test_invalid_config_values():
    with pytest.raises(ValueError, match="time zone"):
        CountingRules.from_config({"timezone": "Europe/Londinium"})
    with pytest.raises(ValueError, match="bank_holiday_region"):
        WorkingCalendar.for_config({**SECTION, "bank_holiday_region": "scotland"}, 2026, 2026)
    with pytest.raises(ValueError, match="after end_year"):
        WorkingCalendar.for_config(SECTION, 2027, 2026)
    with pytest.raises(ValueError, match="ISO date"):
        WorkingCalendar.for_config(section(["24/12/2026"]), 2026, 2026)
    with pytest.raises(CalendarRangeError):
        WorkingCalendar(D("2026-01-01"), D("2026-12-31"), (D("2027-01-01"),))
    with pytest.raises(ValueError, match="format"):
        WorkingCalendar.from_payload({**CAL.to_payload(), "format": 99})


# ------------------------------------------------------------------------------ payload and purity
def test_payload_round_trip_is_small_plain_json_and_survives_temporal_converter():
    payload = CAL.to_payload()
    text = json.dumps(payload)
    assert len(text) < 4000  # 15 years
    assert WorkingCalendar.from_payload(json.loads(text)) == CAL
    from temporalio.converter import DataConverter

    converter = DataConverter.default.payload_converter
    (back,) = converter.from_payloads(converter.to_payloads([payload]), [dict])
    assert WorkingCalendar.from_payload(back) == CAL


def test_constructor_normalises_non_working():
    cal = WorkingCalendar(D("2026-01-01"), D("2026-12-31"),
                          (D("2026-12-28"), D("2026-12-26"), D("2026-12-25"), D("2026-12-28")))
    assert cal.non_working == (D("2026-12-25"), D("2026-12-28"))
    assert hash(cal) == hash(WorkingCalendar.from_payload(cal.to_payload()))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cal.rules = CountingRules()  # type: ignore[misc]


def test_arithmetic_works_with_holidays_module_blocked(monkeypatch):
    payload = json.loads(json.dumps(CAL.to_payload()))
    monkeypatch.setitem(sys.modules, "holidays", None)  # any `import holidays` now raises ImportError
    cal = WorkingCalendar.from_payload(payload)
    assert cal.add_working_days(D("2026-05-23"), 15) == D("2026-06-15")
    assert cal.nth_working_day_before(D("2027-01-04"), 7) == D("2026-12-21")
    assert cal.add_months(D("2026-08-31"), 6) == D("2027-02-28")
    assert cal.working_days_late(D("2026-06-01"), D("2026-06-08")) == 5
    assert cal.deadline_at(D("2026-06-01")) == datetime(2026, 6, 1, 22, 59, tzinfo=UTC)
    assert cal.is_working_day(D("2026-12-24"))
    calendar_module._bank_holidays.cache_clear()  # years it has not worked out yet: it must ask `holidays`
    with pytest.raises(ImportError):  # only the builder needs `holidays`, and imports it lazily
        WorkingCalendar.for_config(SECTION, 2026, 2026)


def test_bank_holidays_are_worked_out_once_per_region_and_years(monkeypatch):
    calendar_module._bank_holidays.cache_clear()
    first = WorkingCalendar.for_config(SECTION, 2026, 2027)
    monkeypatch.setitem(sys.modules, "holidays", None)  # the same years again: remembered, no `holidays` needed
    assert WorkingCalendar.for_config(SECTION, 2026, 2027) == first
    assert not first.is_working_day(D("2026-12-25"))
    with pytest.raises(ImportError):  # other years are worked out afresh
        WorkingCalendar.for_config(SECTION, 2026, 2028)


def test_import_does_not_load_holidays():
    code = (
        "import json, sys; from datetime import date\n"
        "from safeguarding.calendar import WorkingCalendar\n"
        "cal = WorkingCalendar.from_payload(json.loads(sys.stdin.read()))\n"
        "assert cal.add_working_days(date(2026, 8, 31), 15) == date(2026, 9, 21)\n"
        "assert 'holidays' not in sys.modules, 'holidays was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], input=json.dumps(CAL.to_payload()),
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------------------------------- properties
PROPS = settings(max_examples=150, deadline=None, database=None)
dates = st.dates(min_value=D("2019-01-01"), max_value=D("2030-12-31"))
counts = st.integers(min_value=0, max_value=60)
closure_sets = st.lists(dates, max_size=25)
BASE_NON_WORKING = CAL.non_working


def calendar_with(closures, **rules) -> WorkingCalendar:
    return WorkingCalendar(CAL.first_day, CAL.last_day, BASE_NON_WORKING + tuple(closures),
                           CountingRules(**rules))


def naive_working(cal: WorkingCalendar, d: date) -> bool:
    return d.weekday() < 5 and d not in set(cal.non_working)


def naive_count(cal: WorkingCalendar, lo: date, hi: date, *, lo_incl=False, hi_incl=True) -> int:
    """Working days between lo and hi, by walking day by day."""
    closed = set(cal.non_working)
    d, total = lo if lo_incl else lo + timedelta(days=1), 0
    while d < hi or (hi_incl and d == hi):
        total += d.weekday() < 5 and d not in closed
        d += timedelta(days=1)
    return total


@PROPS
@given(closures=closure_sets, trigger=dates, n=counts, counts_trigger=st.booleans())
def test_prop_add_working_days(closures, trigger, n, counts_trigger):
    cal = calendar_with(closures, trigger_day_counts=counts_trigger)
    result = cal.add_working_days(trigger, n)
    if n == 0:
        assert result == trigger
        return
    assert naive_working(cal, result)
    expected = n - 1 if counts_trigger and naive_working(cal, trigger) else n
    assert naive_count(cal, trigger, result) == expected
    assert cal.working_days_between(trigger, result) == expected
    if expected:
        assert result > trigger
    else:
        assert result == trigger  # trigger counts, is a working day, n == 1
    # monotonic in n (strictly, once n >= 1)
    assert cal.add_working_days(trigger, n + 1) > result
    assert cal.add_working_days(trigger, n - 1) <= result


@PROPS
@given(closures=closure_sets, trigger=dates, n=counts, k=st.integers(0, 30), counts_trigger=st.booleans())
def test_prop_lateness_inverts_add(closures, trigger, n, k, counts_trigger):
    cal = calendar_with(closures, trigger_day_counts=counts_trigger)
    n = max(n, 1)
    due, done = cal.add_working_days(trigger, n), cal.add_working_days(trigger, n + k)
    assert cal.working_days_late(due, done) == k
    assert cal.working_days_late(done, due) == 0
    # default rule: holds from n = 0 too (day 0 is the trigger itself)
    plain = calendar_with(closures)
    assert plain.working_days_late(trigger, plain.add_working_days(trigger, k)) == k


@PROPS
@given(closures=closure_sets, event=dates, n=counts)
def test_prop_nth_working_day_before(closures, event, n):
    nth = calendar_with(closures)
    clear = calendar_with(closures, before_event_rule="clear_days_both_ends")
    a, b = nth.nth_working_day_before(event, n), clear.nth_working_day_before(event, n)
    assert naive_working(clear, b) and b < event
    assert naive_count(clear, b, event, hi_incl=False) == n  # n clear working days strictly between
    if n == 0:
        assert a == event
    else:
        assert naive_working(nth, a) and a < event
        assert naive_count(nth, a, event, lo_incl=True, hi_incl=False) == n  # [a, event)
        assert b < a and nth.working_days_between(b, a) == 1  # exactly one working day earlier
    assert b == nth.nth_working_day_before(event, n + 1)


@PROPS
@given(closures=closure_sets, a=dates, b=dates)
def test_prop_working_days_between(closures, a, b):
    cal = calendar_with(closures)
    lo, hi = min(a, b), max(a, b)
    count = naive_count(cal, lo, hi)
    assert cal.working_days_between(lo, hi) == count
    assert cal.working_days_between(hi, lo) == -count
    assert cal.is_working_day(a) == naive_working(cal, a)


@PROPS
@given(closures=closure_sets, start=dates, n=st.integers(0, 24),
       overflow=st.sampled_from(["clamp_to_month_end", "roll_to_next_month_start"]),
       non_working=st.sampled_from(["keep", "roll_forward"]))
def test_prop_add_months(closures, start, n, overflow, non_working):
    cal = calendar_with(closures, month_overflow=overflow, month_deadline_on_non_working_day=non_working)
    result = cal.add_months(start, n)
    year, month0 = divmod(start.year * 12 + start.month - 1 + n, 12)
    target = date(year, month0 + 1, 1)
    kept = calendar_with(closures, month_overflow=overflow, month_deadline_on_non_working_day="keep").add_months(
        start, n)
    if overflow == "clamp_to_month_end":
        assert (kept.year, kept.month) == (target.year, target.month)  # never overflows the month
        assert kept.day == start.day or (kept.day < start.day and (kept + timedelta(days=1)).day == 1)
    elif (kept.year, kept.month) == (target.year, target.month):
        assert kept.day == start.day
    else:
        assert kept.day == 1 and kept > target and (kept - timedelta(days=1)).month == target.month
    if non_working == "keep":
        assert result == kept
    else:
        assert naive_working(cal, result) and result >= kept
        assert naive_count(cal, kept, result, lo_incl=True, hi_incl=False) == 0  # the first working day


@PROPS
@given(closures=closure_sets, day=dates, n=counts, counts_trigger=st.booleans(),
       rule=st.sampled_from(["nth_working_day_before_event", "clear_days_both_ends"]))
def test_prop_payload_round_trip(closures, day, n, counts_trigger, rule):
    cal = calendar_with(closures, trigger_day_counts=counts_trigger, before_event_rule=rule)
    back = WorkingCalendar.from_payload(json.loads(json.dumps(cal.to_payload())))
    assert back == cal
    assert back.add_working_days(day, n) == cal.add_working_days(day, n)
    assert back.nth_working_day_before(day, n) == cal.nth_working_day_before(day, n)
    assert back.add_months(day, n % 25) == cal.add_months(day, n % 25)
    assert back.deadline_at(day) == cal.deadline_at(day)
