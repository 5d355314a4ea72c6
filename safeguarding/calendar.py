"""Working-day calendar: pure, deterministic date arithmetic for statutory deadlines.

The module has two halves.

1. **Building** a calendar from a partnership's ``calendar`` config section:
   :meth:`WorkingCalendar.for_config`. Only this consults the ``holidays`` package, and it imports
   it lazily, inside the function. Call it *outside* workflows (in the starter or an activity).
2. **Using** a calendar: a frozen :class:`WorkingCalendar` whose methods are pure date arithmetic
   over the list of non-working dates it carries (stdlib only: ``datetime``, ``zoneinfo``,
   ``bisect``). It never reads the clock or the ``holidays`` package, so it is safe inside the
   Temporal workflow sandbox, and importing this module is cheap and free of side effects.
   Pass ``calendar.to_payload()`` (plain JSON types, about 1 KB for six years) in the workflow
   input and rebuild it inside the workflow with :meth:`WorkingCalendar.from_payload`; a replay
   then always sees the same dates. (Do not pass the dataclass itself to Temporal: its default
   JSON converter cannot encode ``date``.)

Counting rules (the domain brief's "Proposed default", plus the options a partnership may choose)
--------------------------------------------------------------------------------------------------
* **Working day** = Monday-Friday, minus England & Wales bank holidays
  (``holidays.country_holidays("GB", subdiv="ENG")``, substitute days included), minus the
  partnership's ``extra_closure_days``. 24 and 31 December are working days unless listed as
  closure days. Weekends are implicit and never listed in ``non_working``.
* **Covered range.** A calendar covers whole years, ``first_day``..``last_day`` inclusive. Every
  method that takes or returns a date raises :class:`CalendarRangeError` (a ``ValueError``) when
  an input or the result would fall outside that range; it never guesses. Build the calendar wide
  enough (e.g. from last year to five years ahead).
* **N working days after a trigger** (:meth:`WorkingCalendar.add_working_days`). Default
  ``trigger_day_counts: false`` (CPR 2.8 style "clear start"): the trigger day is day 0 and is not
  counted; day 1 is the first working day after it; the deadline is the Nth working day. A trigger
  on a non-working day therefore has day 1 = the next working day. Precisely: the result is a
  working day and there are exactly N working days in ``(trigger, result]``.
  With ``trigger_day_counts: true`` a *working* trigger day is day 1 itself, so there are N - 1
  working days in ``(trigger, result]``; a *non-working* trigger gives the same date as the
  default (N working days). ``n == 0`` returns the trigger date unchanged (a zero-length period)
  under both rules. ``n < 0`` raises ``ValueError``; a non-int raises ``TypeError``.
* **N working days before an event X** (:meth:`WorkingCalendar.nth_working_day_before`). X itself
  is never counted (working day or not); for ``n >= 1`` the result is a working day before X.

  - ``nth_working_day_before_event`` (default): the Nth working day counting back from X, i.e.
    exactly N working days in ``[result, X)`` (N - 1 of them strictly between result and X).
  - ``clear_days_both_ends`` (CPR-style clear days): both the result and X are excluded and N
    *clear* working days lie strictly between them, i.e. exactly N working days in
    ``(result, X)``. The result is a working day, one working day earlier than the default rule.

  ``n == 0``: the default rule returns X itself (zero-length period, as ``add_working_days``
  does); the clear-days rule returns the last working day before X (no clear day in between).
  ``n < 0`` raises ``ValueError``.
* **Calendar months** (:meth:`WorkingCalendar.add_months`): the same day of the month N months
  later. When that day does not exist, ``clamp_to_month_end`` gives the month's last day
  (31 Aug + 6 months = 28 Feb, or 29 Feb in a leap year) and ``roll_to_next_month_start`` gives
  the 1st of the following month (31 Aug + 6 months = 1 Mar; any overflow rolls to the 1st, so
  30 Jan + 1 month = 1 Mar as well, never 2 Mar). Then, with
  ``month_deadline_on_non_working_day: roll_forward`` (the default), a non-working result moves to the
  next working day; with ``keep`` it stays as it is. The default follows practice: a report due on a
  Sunday or a bank holiday is expected on the next working day (the way the working-day deadlines already
  end on a working day), and nobody is late for not working on a bank holiday. The rule applies to
  ``n == 0`` too (the start date itself). ``n < 0`` raises ``ValueError``.
* **Lateness** (:meth:`WorkingCalendar.working_days_late`): 0 when ``done <= due``; otherwise the
  number of working days in ``(due, done]``. So finishing on the Saturday after a Friday deadline
  is late (``done > due``) but 0 *working days* late; use ``done > due`` (or compare with
  :meth:`deadline_at`) for the yes/no question.
* **Deadline instant** (:meth:`WorkingCalendar.deadline_at`): ``deadline_end_time`` (``HH:MM``,
  24-hour) on the due date in ``rules.timezone``, as an aware UTC datetime (23:59 London is
  22:59 UTC in BST, 23:59 UTC in GMT). An ambiguous or non-existent local time (possible only for
  end times between 01:00 and 02:00 on a clock-change day) follows ``zoneinfo``'s ``fold=0``:
  the first occurrence, or the offset in force before the change.

Config keys read by :meth:`CountingRules.from_config` (from the ``calendar`` section):
``timezone`` and ``counting.{trigger_day_counts, before_event_rule, month_overflow,
month_deadline_on_non_working_day, deadline_end_time}``. For the older example config in the
domain brief, ``counting.roll_forward_non_working`` (boolean) is accepted as an alias of
``month_deadline_on_non_working_day`` (``true`` = ``roll_forward``; a conflict raises), and
``counting.non_working_trigger`` is accepted only with the one behaviour implemented
(``day1_is_next_working_day``). Other keys are ignored (the config is validated elsewhere).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, time
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "BEFORE_EVENT_RULES",
    "MONTH_NON_WORKING_RULES",
    "MONTH_OVERFLOW_RULES",
    "NON_WORKING_TRIGGER_RULES",
    "PAYLOAD_FORMAT",
    "SUPPORTED_BANK_HOLIDAY_REGIONS",
    "CalendarRangeError",
    "CountingRules",
    "WorkingCalendar",
]

BEFORE_EVENT_RULES = ("nth_working_day_before_event", "clear_days_both_ends")
MONTH_OVERFLOW_RULES = ("clamp_to_month_end", "roll_to_next_month_start")
MONTH_NON_WORKING_RULES = ("keep", "roll_forward")
NON_WORKING_TRIGGER_RULES = ("day1_is_next_working_day",)
# gov.uk/bank-holidays.json division name -> arguments for holidays.country_holidays
SUPPORTED_BANK_HOLIDAY_REGIONS: dict[str, tuple[str, str]] = {"england-and-wales": ("GB", "ENG")}
PAYLOAD_FORMAT = 1

_END_TIME_RE = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


class CalendarRangeError(ValueError):
    """A date (given or computed) lies outside the years a :class:`WorkingCalendar` covers."""


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"calendar counting rule {name}={value!r} is not one of {', '.join(allowed)}")


@dataclass(frozen=True)
class CountingRules:
    """How a partnership counts working days and months. See the module docstring for the exact semantics."""

    trigger_day_counts: bool = False
    before_event_rule: str = "nth_working_day_before_event"
    month_overflow: str = "clamp_to_month_end"
    month_deadline_on_non_working_day: str = "roll_forward"  # a config that leaves it out: the next working day
    deadline_end_time: str = "23:59"
    timezone: str = "Europe/London"

    def __post_init__(self) -> None:
        if not isinstance(self.trigger_day_counts, bool):
            raise ValueError(f"calendar counting rule trigger_day_counts must be true or false, "
                             f"not {self.trigger_day_counts!r}")
        _check_choice("before_event_rule", self.before_event_rule, BEFORE_EVENT_RULES)
        _check_choice("month_overflow", self.month_overflow, MONTH_OVERFLOW_RULES)
        _check_choice("month_deadline_on_non_working_day", self.month_deadline_on_non_working_day,
                      MONTH_NON_WORKING_RULES)
        if not isinstance(self.deadline_end_time, str) or not _END_TIME_RE.fullmatch(self.deadline_end_time):
            raise ValueError(f"calendar counting rule deadline_end_time={self.deadline_end_time!r} "
                             f"is not a 24-hour HH:MM time such as '23:59'")
        if not isinstance(self.timezone, str) or not self.timezone:
            raise ValueError(f"calendar timezone must be an IANA name such as 'Europe/London', "
                             f"not {self.timezone!r}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"calendar timezone {self.timezone!r} is not a known IANA time zone") from err

    @classmethod
    def from_config(cls, calendar_section: Mapping[str, Any]) -> CountingRules:
        """Rules from an arrangements config's ``calendar`` section (``timezone`` + ``counting``)."""
        counting: Mapping[str, Any] = calendar_section.get("counting") or {}
        kwargs: dict[str, Any] = {}
        for name in ("trigger_day_counts", "before_event_rule", "month_overflow",
                     "month_deadline_on_non_working_day", "deadline_end_time"):
            if name in counting:
                kwargs[name] = counting[name]
        if "roll_forward_non_working" in counting:  # alias used by the domain brief's example config
            legacy = counting["roll_forward_non_working"]
            if not isinstance(legacy, bool):
                raise ValueError(f"calendar counting rule roll_forward_non_working must be true or false, "
                                 f"not {legacy!r}")
            value = "roll_forward" if legacy else "keep"
            if kwargs.setdefault("month_deadline_on_non_working_day", value) != value:
                raise ValueError("calendar counting rules roll_forward_non_working and "
                                 "month_deadline_on_non_working_day disagree")
        if "non_working_trigger" in counting:
            _check_choice("non_working_trigger", counting["non_working_trigger"], NON_WORKING_TRIGGER_RULES)
        if "timezone" in calendar_section:
            kwargs["timezone"] = calendar_section["timezone"]
        return cls(**kwargs)

    def to_payload(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> CountingRules:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in payload.items() if k in names})

    @property
    def end_time(self) -> time:
        hours, minutes = self.deadline_end_time.split(":")
        return time(int(hours), int(minutes))


def _as_date(value: Any, what: str) -> date:
    """Accept a ``date`` (not a ``datetime``) or an ISO ``YYYY-MM-DD`` string."""
    if isinstance(value, datetime):
        raise TypeError(f"{what} must be a date, not a datetime ({value!r})")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError as err:
            raise ValueError(f"{what} {value!r} is not an ISO date (YYYY-MM-DD)") from err
    raise TypeError(f"{what} must be a date or an ISO date string, not {type(value).__name__}")


def _month_length(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _check_count(n: Any, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{what} must be an int, not {type(n).__name__}")
    if n < 0:
        raise ValueError(f"{what} must be >= 0, got {n}")
    return n


@lru_cache(maxsize=64)
def _bank_holidays(region: str, start_year: int, end_year: int) -> frozenset[date]:
    """The region's bank holidays in those years, from the ``holidays`` package (remembered: working them out
    took about 2 ms for seven years, on every incident opened and every task page)."""
    import holidays  # lazy: keeps importing this module cheap inside the workflow sandbox

    country, subdiv = SUPPORTED_BANK_HOLIDAY_REGIONS[region]
    first, last = date(start_year, 1, 1), date(end_year, 12, 31)
    bank = holidays.country_holidays(country, subdiv=subdiv, years=range(start_year, end_year + 1))
    return frozenset(d for d in bank if first <= d <= last)


@dataclass(frozen=True)
class WorkingCalendar:
    """Non-working dates for a range of whole years plus the partnership's counting rules.

    ``non_working`` holds the bank holidays and closure days that fall on weekdays inside the
    range, sorted and unique (the constructor normalises: it sorts, de-duplicates and drops
    weekend dates, which are implicit). All methods are pure; see the module docstring.
    """

    first_day: date
    last_day: date
    non_working: tuple[date, ...] = ()
    rules: CountingRules = field(default_factory=CountingRules)

    if TYPE_CHECKING:  # precomputed in __post_init__; not dataclass fields (no eq/repr/asdict)
        _working: list[int]  # ordinals of every working day in the range, ascending
        _closed: frozenset[int]  # ordinals of the listed non-working weekdays
        _zone: ZoneInfo

    # ---------------------------------------------------------------------------------------- building
    def __post_init__(self) -> None:
        first = _as_date(self.first_day, "first_day")
        last = _as_date(self.last_day, "last_day")
        if first > last:
            raise ValueError(f"calendar first_day {first} is after last_day {last}")
        if not isinstance(self.rules, CountingRules):
            raise TypeError(f"rules must be CountingRules, not {type(self.rules).__name__}")
        days = set()
        for value in self.non_working:
            d = _as_date(value, "non-working date")
            if not first <= d <= last:
                raise CalendarRangeError(
                    f"non-working date {d} is outside the calendar range {first} to {last}")
            if d.weekday() < 5:
                days.add(d)
        non_working = tuple(sorted(days))
        object.__setattr__(self, "first_day", first)
        object.__setattr__(self, "last_day", last)
        object.__setattr__(self, "non_working", non_working)

        # Precomputed index: bisect on the working-day ordinals turns counting into two look-ups.
        closed = {d.toordinal() for d in non_working}
        start, end = first.toordinal(), last.toordinal()
        weekday = first.weekday()
        working: list[int] = []
        for ordinal in range(start, end + 1):
            if weekday < 5 and ordinal not in closed:
                working.append(ordinal)
            weekday = 0 if weekday == 6 else weekday + 1
        object.__setattr__(self, "_closed", frozenset(closed))
        object.__setattr__(self, "_working", working)
        object.__setattr__(self, "_zone", ZoneInfo(self.rules.timezone))

    @classmethod
    def for_config(
        cls, calendar_section: Mapping[str, Any], start_year: int, end_year: int
    ) -> WorkingCalendar:
        """Calendar for years ``start_year``..``end_year`` (inclusive) from a config ``calendar`` section.

        Uses the ``holidays`` package (imported here, lazily): call this outside workflows.
        """
        for name, year in (("start_year", start_year), ("end_year", end_year)):
            if isinstance(year, bool) or not isinstance(year, int) or not 1 <= year <= 9999:
                raise ValueError(f"{name} must be a year (int), got {year!r}")
        if start_year > end_year:
            raise ValueError(f"start_year {start_year} is after end_year {end_year}")
        region = calendar_section.get("bank_holiday_region", "england-and-wales")
        if region not in SUPPORTED_BANK_HOLIDAY_REGIONS:
            raise ValueError(f"bank_holiday_region {region!r} is not supported "
                             f"(supported: {', '.join(SUPPORTED_BANK_HOLIDAY_REGIONS)})")
        rules = CountingRules.from_config(calendar_section)
        first, last = date(start_year, 1, 1), date(end_year, 12, 31)
        days = set(_bank_holidays(region, start_year, end_year))
        for i, entry in enumerate(calendar_section.get("extra_closure_days") or ()):
            raw = entry.get("date") if isinstance(entry, Mapping) else entry
            d = _as_date(raw, f"extra_closure_days[{i}].date")
            if first <= d <= last:  # closure days in years the calendar does not cover are irrelevant to it
                days.add(d)
        return cls(first_day=first, last_day=last, non_working=tuple(days), rules=rules)

    def to_payload(self) -> dict[str, Any]:
        """Plain JSON types (ISO date strings), for the workflow input."""
        return {
            "format": PAYLOAD_FORMAT,
            "first_day": self.first_day.isoformat(),
            "last_day": self.last_day.isoformat(),
            "non_working": [d.isoformat() for d in self.non_working],
            "rules": self.rules.to_payload(),
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> WorkingCalendar:
        """Inverse of :meth:`to_payload`; pure (safe inside workflows)."""
        fmt = payload.get("format")
        if fmt != PAYLOAD_FORMAT:
            raise ValueError(f"calendar payload format {fmt!r} is not supported (expected {PAYLOAD_FORMAT})")
        return cls(
            first_day=_as_date(payload["first_day"], "first_day"),
            last_day=_as_date(payload["last_day"], "last_day"),
            non_working=tuple(_as_date(d, "non-working date") for d in payload.get("non_working", ())),
            rules=CountingRules.from_payload(payload.get("rules") or {}),
        )

    # ----------------------------------------------------------------------------------------- helpers
    def _ordinal(self, d: Any, what: str) -> int:
        # fast path for plain dates; reject datetimes (a date subclass) and everything else
        if type(d) is not date and (isinstance(d, datetime) or not isinstance(d, date)):
            raise TypeError(f"{what} must be a date, not {type(d).__name__} ({d!r})")
        if not self.first_day <= d <= self.last_day:
            raise CalendarRangeError(
                f"{what} {d.isoformat()} is outside the working-day calendar's range "
                f"{self.first_day.isoformat()} to {self.last_day.isoformat()}")
        return d.toordinal()

    def _working_at(self, index: int, what: str) -> date:
        working: list[int] = self._working
        if index < 0 or index >= len(working):
            direction = "before" if index < 0 else "after"
            raise CalendarRangeError(
                f"{what} would fall {direction} the working-day calendar's range "
                f"{self.first_day.isoformat()} to {self.last_day.isoformat()}")
        return date.fromordinal(working[index])

    def covers(self, d: date) -> bool:
        """True when ``d`` is inside the calendar's range."""
        return self.first_day <= d <= self.last_day

    # ----------------------------------------------------------------------------------------- queries
    def is_working_day(self, d: date) -> bool:
        ordinal = self._ordinal(d, "date")
        return d.weekday() < 5 and ordinal not in self._closed

    def next_working_day_on_or_after(self, d: date) -> date:
        """``d`` itself when it is a working day, else the next working day."""
        ordinal = self._ordinal(d, "date")
        index = bisect_left(self._working, ordinal)
        return self._working_at(index, f"the first working day on or after {d.isoformat()}")

    def non_working_in(self, year: int) -> tuple[date, ...]:
        """Listed non-working weekdays (bank holidays + closure days) in ``year``, e.g. for display."""
        lo = bisect_left(self.non_working, date(year, 1, 1))
        hi = bisect_right(self.non_working, date(year, 12, 31))
        return self.non_working[lo:hi]

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in ``(start, end]``.

        When ``end < start`` it is the negative of the working days in ``(end, start]``, so
        ``working_days_between(a, b) == -working_days_between(b, a)``; 0 when ``start == end``.
        """
        working = self._working
        end_ordinal = self._ordinal(end, "end")
        return bisect_right(working, end_ordinal) - bisect_right(working, self._ordinal(start, "start"))

    def working_days_late(self, due: date, done: date) -> int:
        """0 when ``done <= due``; else the number of working days in ``(due, done]``."""
        count = self.working_days_between(due, done)
        return count if count > 0 else 0

    # -------------------------------------------------------------------------------------- arithmetic
    def add_working_days(self, trigger: date, n: int) -> date:
        """Deadline N working days after ``trigger`` (day 0, or day 1 if ``trigger_day_counts``)."""
        ordinal = self._ordinal(trigger, "trigger date")
        _check_count(n, "number of working days")
        if n == 0:
            return trigger
        working = self._working
        day1 = bisect_right(working, ordinal)  # index of the first working day after the trigger
        if self.rules.trigger_day_counts and day1 > 0 and working[day1 - 1] == ordinal:
            day1 -= 1  # a working trigger day is day 1 itself
        index = day1 + n - 1
        if index < len(working):
            return date.fromordinal(working[index])
        raise CalendarRangeError(
            f"{n} working days after {trigger.isoformat()} would fall after the working-day calendar's range "
            f"{self.first_day.isoformat()} to {self.last_day.isoformat()}")

    def nth_working_day_before(self, event: date, n: int) -> date:
        """Deadline N working days before ``event`` (not counted), per ``rules.before_event_rule``."""
        ordinal = self._ordinal(event, "event date")
        _check_count(n, "number of working days")
        clear = self.rules.before_event_rule == "clear_days_both_ends"
        if n == 0 and not clear:
            return event
        index = bisect_left(self._working, ordinal) - n - (1 if clear else 0)
        return self._working_at(index, f"{n} working days before {event.isoformat()}")

    def add_months(self, start: date, n: int) -> date:
        """Same day-of-month ``n`` calendar months after ``start``, per ``rules.month_overflow`` and
        ``rules.month_deadline_on_non_working_day``."""
        self._ordinal(start, "start date")
        _check_count(n, "number of months")
        years, month0 = divmod(start.month - 1 + n, 12)
        year = start.year + years
        if year > 9999:
            raise CalendarRangeError(f"{n} months after {start.isoformat()} is past the year 9999")
        month = month0 + 1
        length = _month_length(year, month)
        if start.day <= length:
            result = date(year, month, start.day)
        elif self.rules.month_overflow == "clamp_to_month_end":
            result = date(year, month, length)
        else:  # only months shorter than 31 days overflow, so never December: no year change
            result = date(year, month + 1, 1)
        if not self.covers(result):
            raise CalendarRangeError(
                f"{n} months after {start.isoformat()} is {result.isoformat()}, outside the "
                f"working-day calendar's range {self.first_day.isoformat()} to {self.last_day.isoformat()}")
        if self.rules.month_deadline_on_non_working_day == "roll_forward":
            result = self.next_working_day_on_or_after(result)
        return result

    def deadline_at(self, d: date) -> datetime:
        """Aware UTC datetime of ``rules.deadline_end_time`` on ``d`` in ``rules.timezone``."""
        self._ordinal(d, "deadline date")
        local = datetime.combine(d, self.rules.end_time, tzinfo=self._zone)
        return local.astimezone(UTC)

    def instant(self, d: date, at: time) -> datetime:
        """Aware UTC datetime of the local time ``at`` on ``d`` in ``rules.timezone`` (e.g. a reminder hour)."""
        self._ordinal(d, "date")
        return datetime.combine(d, at, tzinfo=self._zone).astimezone(UTC)

    def local_date(self, moment: datetime) -> date:
        """The date in ``rules.timezone`` at an aware ``moment`` (e.g. "today" from ``workflow.now()``)."""
        if moment.tzinfo is None:
            raise TypeError("local_date needs an aware datetime")
        return moment.astimezone(self._zone).date()

    def due(self, trigger: date, n: int) -> tuple[date, datetime]:
        """Convenience: (due date, deadline instant in UTC) for N working days after ``trigger``."""
        due_date = self.add_working_days(trigger, n)
        return due_date, self.deadline_at(due_date)

