"""The Jinja filters the pages' templates use, plain functions any module may call too: dates and times in the GOV.UK
style (``date_uk``, ``datetime_uk``, in Europe/London), JSON for an HTML attribute (``json_text``), and a quicker
``indent`` (the environment is ``web.templating``)."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from jinja2.filters import do_indent
from markupsafe import Markup

LONDON = ZoneInfo("Europe/London")
# Not strftime("%B"): that follows the process locale.
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


def _require_aware(value: datetime, filter_name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{filter_name}: naive datetime {value!r}; pass a timezone-aware datetime")
    return value


def date_uk(value: date | datetime | None) -> str:
    """``date(2026, 6, 1)`` -> ``"1 June 2026"`` (GOV.UK style). ``None`` -> ``""``.

    An aware datetime is first converted to Europe/London (so 23:30 UTC on 31 May in
    summer is ``"1 June 2026"``); a naive datetime is an error.
    """
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = _require_aware(value, "date_uk").astimezone(LONDON).date()
    return f"{value.day} {_MONTHS[value.month - 1]} {value.year}"


def _time_uk(value: datetime) -> str:
    """GOV.UK style: ``9am``, ``5:30pm``, ``11:59pm``, ``midday``, ``midnight``."""
    if value.hour == 0 and value.minute == 0:
        return "midnight"
    if value.hour == 12 and value.minute == 0:
        return "midday"
    hour = value.hour % 12 or 12
    suffix = "am" if value.hour < 12 else "pm"
    if value.minute == 0:
        return f"{hour}{suffix}"
    return f"{hour}:{value.minute:02d}{suffix}"


def datetime_uk(value: datetime | None) -> str:
    """Aware datetime -> ``"1 June 2026 at 11:59pm"`` in Europe/London (GMT or BST).

    ``None`` -> ``""``; a naive datetime raises ``ValueError`` (we never guess its zone).
    """
    if value is None:
        return ""
    local = _require_aware(value, "datetime_uk").astimezone(LONDON)
    return f"{date_uk(local.date())} at {_time_uk(local)}"


def indent(s: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> Any:
    """Jinja's ``indent`` filter, quicker on ``Markup`` and with the same result.

    The GOV.UK components indent HTML they were given or made (``item.hint.html | safe | trim | indent(8)``, a
    tag inside a task list): Jinja then splits and joins ``Markup`` pieces, each step escaping what it adds through
    Python, ~10 us a call. Only whitespace (or the ``width`` string, taken as safe either way) is added, so doing
    the same on the plain text and marking the result safe gives the same ``Markup``, in ~1 us.
    """
    if type(s) is Markup:
        return Markup(do_indent(str(s), width, first, blank))  # noqa: S704 (was Markup; only whitespace added)
    return do_indent(s, width, first, blank)


def json_text(value: Any) -> str:
    """JSON as a plain ``str`` (unlike ``tojson``, not ``Markup``), so autoescaping applies.

    For JSON inside an HTML attribute, e.g. ``hx-headers``/``hx-vals`` via
    ``govukAttributes`` or ``{{ ... }}`` in a double-quoted attribute.
    """
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
