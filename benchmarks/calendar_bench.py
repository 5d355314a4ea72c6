"""Micro-benchmark for safeguarding.calendar.

Run: .venv/bin/python benchmarks/calendar_bench.py [--calls 200000]
Prints the cost of building a calendar and of each arithmetic method per call.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from datetime import date, timedelta

from safeguarding.calendar import WorkingCalendar

SECTION = {
    "timezone": "Europe/London",
    "bank_holiday_region": "england-and-wales",
    "extra_closure_days": [{"date": "2026-12-24", "reason": "Christmas Eve closure"}],
    "counting": {"trigger_day_counts": False, "before_event_rule": "nth_working_day_before_event",
                 "month_overflow": "clamp_to_month_end", "month_deadline_on_non_working_day": "keep",
                 "deadline_end_time": "23:59"},
}


def timed(label: str, calls: int, fn) -> None:
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    print(f"{label:<34} {elapsed / calls * 1e6:8.2f} us/call  ({calls} calls, {elapsed:.3f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    calls = args.calls

    t0 = time.perf_counter()
    cal = WorkingCalendar.for_config(SECTION, 2020, 2035)
    print(f"for_config 2020-2035 (holidays)     {(time.perf_counter() - t0) * 1e3:8.2f} ms")
    payload = json.dumps(cal.to_payload())
    print(f"payload size                        {len(payload):8d} bytes")
    t0 = time.perf_counter()
    for _ in range(100):
        WorkingCalendar.from_payload(json.loads(payload))
    print(f"from_payload (json.loads included)  {(time.perf_counter() - t0) * 10:8.3f} ms")

    rng = random.Random(1)
    base = date(2021, 1, 1)
    days = [base + timedelta(days=rng.randrange(0, 13 * 365)) for _ in range(calls)]
    ns = [rng.randrange(0, 61) for _ in range(calls)]
    pairs = list(zip(days, ns, strict=True))
    add, before, months = cal.add_working_days, cal.nth_working_day_before, cal.add_months
    late, at, is_wd = cal.working_days_late, cal.deadline_at, cal.is_working_day

    timed("add_working_days", calls, lambda: [add(d, n) for d, n in pairs])
    timed("nth_working_day_before", calls, lambda: [before(d, n) for d, n in pairs])
    timed("add_months", calls, lambda: [months(d, n % 25) for d, n in pairs])
    timed("working_days_late", calls, lambda: [late(d, d + timedelta(days=n)) for d, n in pairs])
    timed("is_working_day", calls, lambda: [is_wd(d) for d in days])
    timed("deadline_at", calls, lambda: [at(d) for d in days])


if __name__ == "__main__":
    main()
