"""Plain English for what people read: dates, counts and the arrangements' ids, in words.

Used by the workflows for timeline messages, task titles, emails and validator messages (issue 17, point 8).
Machine fields (case values, event data, a refused form's ``value``) stay ISO dates and ids.

Deterministic and free of side effects: no locale (``strftime`` would follow the machine's), no clock, no I/O,
stdlib only, so the workflow sandbox imports it as it is.
"""

from __future__ import annotations

from datetime import date

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")

# where a deadline's clock starts (schemas/arrangements.schema.json, ``clock_start``), after "counted"
CLOCK_STARTS = {
    "la_becomes_aware": "from when the local authority became aware",
    "notification_sent": "from the notification",
    "rapid_review_sent": "from when the rapid review was sent to the Panel",
    "decision_to_initiate": "from the decision to hold the review",
    "planned_publication": "back from the planned publication date",
    "previous_stage_start": "from the start of the previous stage",
    "previous_stage_deadline": "from the previous stage's deadline",
}


def long_date(day: date | str) -> str:
    """"24 December 2026" (GOV.UK style: no weekday, no leading zero); an ISO string is read first.

    Never raises for a string: one that is not an ISO date comes back as it is (a message is no place for a
    workflow to fail; the forms and validators check the dates)."""
    if isinstance(day, str):
        try:
            day = date.fromisoformat(day[:10])
        except ValueError:
            return day
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def plural(n: int, one: str, many: str) -> str:
    """"1 child", "2 children", "0 children"."""
    return f"{n} {one if n == 1 else many}"


def clock_start_text(clock_start: str) -> str:
    """"from when the local authority became aware" for ``la_becomes_aware``; an unknown id in words."""
    return CLOCK_STARTS.get(clock_start, "from " + clock_start.replace("_", " "))
