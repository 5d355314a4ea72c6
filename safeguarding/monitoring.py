"""The national body's monitoring figures: aggregate SQL over the read model, pseudonymised.

What comes out of here is safe for the national Child Safeguarding Practice Review Panel: a case's
pseudonymous ``national_ref``, the partnership's name, the incident category (an id from the arrangements,
shown by its label), dates, lateness in working days, stage *numbers*, counts, and controlled vocabularies
(ladder purpose, outcome, learning theme). Never the local ``case_ref``, children, the summary, agencies'
people, user references, timeline messages, task form data, a ladder's free-text ``stage`` (a withdrawal
reason is typed by a person) or an escalation's issue type (free text through the API).

Every figure is a fixed number of SQL statements over ``case`` (never one per case, never ``task``: the
open overdue tasks of a case are its ``overdue_tasks`` column):

* ``compute_report``: one aggregate by partnership (which also gives the national totals), one aggregate of
  escalations by purpose, highest stage, timeouts and status, one aggregate by day for the monthly trend, and
  one bounded query per list (late notifications, rapid reviews overdue and awaiting the Panel, escalations
  shown to the national body, local reviews overdue or due soon): 9 statements, plus at most one read of
  arrangements versions for category labels and one for calendars (both cached: versions never change).
* ``table_rows``: the full rows of one table, for its CSV export.

A full report scans ``case`` a few times (about 130 ms in all at 30,000 cases on SQLite, 95 ms on PostgreSQL;
the SQL is CPU-bound: covering indexes save about a quarter), so pages use ``cached_report``: one computation
per database and day, reused for ``CACHE_SECONDS`` (the page says when the figures were computed); while one
request refreshes it the others get the previous figures. See ``benchmarks/national_bench.py``.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from safeguarding.calendar import WorkingCalendar
from safeguarding.national import category_labels, notification_judged, notification_late
from safeguarding.tables import ArrangementsVersion, Case, Partnership

__all__ = [
    "CACHE_SECONDS",
    "LIST_LIMIT",
    "PURPOSES",
    "TABLES",
    "Report",
    "cached_report",
    "clear_cache",
    "compute_report",
    "csv_text",
    "fresh_report",
    "month_starts",
    "table_rows",
]

CACHE_SECONDS = 30.0
LIST_LIMIT = 20  # rows of each list on the page; the CSV export has them all
DUE_SOON_DAYS = 28  # a local review's report is "due" when its due date is within four weeks
TREND_MONTHS = 12
PURPOSES = {"professional_disagreement": "Professional disagreements", "overdue_work": "Overdue statutory work"}
OUTCOMES = {"resolved": "Resolved", "withdrawn": "Withdrawn", "work done": "Work done"}
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# --- conditions ----------------------------------------------------------------------------------------------


def _count_if(condition: ColumnElement[bool]) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


INCIDENT = and_(Case.process == "incident", Case.panel_sees.is_not(False))  # the Panel's (issue 16)
ESCALATION = Case.process == "escalation"
LCSPR = Case.process == "lcspr"


def _rr_judged(today: date) -> ColumnElement[bool]:
    """A rapid review that can be judged on time or late: submitted, or past its due date."""
    return and_(INCIDENT, Case.rapid_review_required.is_(True),
                or_(Case.rapid_review_submitted_on.is_not(None), Case.rapid_review_due < today))


def _rr_on_time() -> ColumnElement[bool]:
    return and_(INCIDENT, Case.rapid_review_submitted_on.is_not(None),
                func.coalesce(Case.rapid_review_days_late, 0) == 0)


def _rr_in_progress(today: date) -> ColumnElement[bool]:
    """Due and not yet submitted, due date not passed, case open."""
    return and_(INCIDENT, Case.status == "open", Case.rapid_review_required.is_(True),
                Case.rapid_review_submitted_on.is_(None), Case.rapid_review_due >= today)


def _rr_overdue(today: date) -> ColumnElement[bool]:
    return and_(INCIDENT, Case.status == "open", Case.rapid_review_required.is_(True),
                Case.rapid_review_submitted_on.is_(None), Case.rapid_review_due < today)


def _awaiting_panel() -> ColumnElement[bool]:
    return and_(INCIDENT, Case.status == "open", Case.rapid_review_submitted_on.is_not(None),
                Case.panel_response.is_(None))


def _notif_window(today: date) -> ColumnElement[bool]:
    """Due in the trend's months (the last ``TREND_MONTHS``, this one included) and by today: every notification
    figure (the headline, by partnership, the late list, the trend and their CSVs) counts the same ones, so they
    agree (issue 17, point 12)."""
    return and_(Case.notification_due >= month_starts(today)[0], Case.notification_due <= today)


def _notif_judged(today: date) -> ColumnElement[bool]:
    return and_(INCIDENT, notification_judged(today), _notif_window(today))


def _notif_late(today: date) -> ColumnElement[bool]:
    return and_(INCIDENT, notification_late(today), _notif_window(today))


def _lcspr_overdue(today: date) -> ColumnElement[bool]:
    """The report's due date has passed and the review is neither closed nor past its publication decision."""
    return and_(LCSPR, Case.status == "open", Case.report_due < today, Case.published.is_(None))


def _lcspr_due_soon(today: date) -> ColumnElement[bool]:
    return and_(LCSPR, Case.status == "open", Case.published.is_(None), Case.report_due >= today,
                Case.report_due <= today + timedelta(days=DUE_SOON_DAYS))


# --- the report ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartnershipTimeliness:
    partnership_id: str
    name: str
    notifications_judged: int
    notifications_on_time: int
    rapid_reviews_judged: int
    rapid_reviews_on_time: int
    open_overdue_tasks: int
    escalations_open: int

    @property
    def notifications_on_time_percent(self) -> int | None:
        return _percent(self.notifications_on_time, self.notifications_judged)

    @property
    def rapid_reviews_on_time_percent(self) -> int | None:
        return _percent(self.rapid_reviews_on_time, self.rapid_reviews_judged)


def _percent(part: int, whole: int) -> int | None:
    return round(100 * part / whole) if whole else None


@dataclass(frozen=True)
class Totals:
    # notifications: those due in the last TREND_MONTHS months (_notif_window), as the trend counts them; the rest
    # count every case (escalations raised: all of them; the trend has those of the last months)
    notifications_judged: int = 0
    notifications_late: int = 0
    rapid_reviews_in_progress: int = 0
    rapid_reviews_overdue: int = 0
    rapid_reviews_submitted: int = 0
    rapid_reviews_judged: int = 0
    rapid_reviews_on_time: int = 0
    awaiting_panel: int = 0
    escalations: int = 0
    escalations_open: int = 0
    escalations_national: int = 0
    lcsprs_in_progress: int = 0
    lcsprs_suspended: int = 0
    lcsprs_due_soon: int = 0
    lcsprs_overdue: int = 0
    lcsprs_published: int = 0
    lcsprs_not_published: int = 0
    open_overdue_tasks: int = 0

    @property
    def notifications_on_time_percent(self) -> int | None:
        return _percent(self.notifications_judged - self.notifications_late, self.notifications_judged)

    @property
    def rapid_reviews_on_time_percent(self) -> int | None:
        return _percent(self.rapid_reviews_on_time, self.rapid_reviews_judged)


@dataclass(frozen=True)
class CaseLine:
    """One case in a list: pseudonymised (no local reference, no people, no free text)."""

    national_ref: str
    partnership_name: str
    process: str
    category_label: str
    aware_date: date | None
    due: date | None
    done_on: date | None  # sent / submitted / closed
    working_days_late: int | None
    status: str
    # escalations
    purpose: str = ""
    urgent: bool = False
    current_stage: int | None = None
    highest_stage: int | None = None
    timeouts: int = 0
    outcome: str | None = None
    # local reviews
    publication_date: date | None = None
    published: bool | None = None


@dataclass(frozen=True)
class StageCount:
    stage: int
    by_purpose: dict[str, tuple[int, int]]  # purpose -> (open, closed)

    @property
    def total(self) -> int:
        return sum(o + c for o, c in self.by_purpose.values())

    @property
    def open(self) -> int:
        return sum(o for o, _ in self.by_purpose.values())


@dataclass(frozen=True)
class TimeoutCount:
    label: str
    timeouts: int
    by_purpose: dict[str, int]
    reached_national: int

    @property
    def total(self) -> int:
        return sum(self.by_purpose.values())


@dataclass(frozen=True)
class MonthCount:
    year: int
    month: int
    notifications: int
    late_notifications: int
    escalations: int

    @property
    def label(self) -> str:
        return f"{MONTHS[self.month - 1]} {self.year}"

    @property
    def short(self) -> str:
        return MONTHS[self.month - 1]


@dataclass(frozen=True)
class Report:
    today: date
    computed_at: datetime
    totals: Totals
    timeliness: list[PartnershipTimeliness]
    late_notifications: list[CaseLine]
    rapid_reviews_overdue: list[CaseLine]
    awaiting_panel: list[CaseLine]
    stages: list[StageCount]
    timeouts: list[TimeoutCount]
    purposes: list[str]
    escalations_national: list[CaseLine]
    trend: list[MonthCount]
    lcsprs_overdue: list[CaseLine]
    lcsprs_due_soon: list[CaseLine]
    statements: int = 0
    compute_ms: float = 0.0


def month_starts(today: date, months: int = TREND_MONTHS) -> list[date]:
    """The first day of each of the last ``months`` months, oldest first, ending with this month."""
    year, month = today.year, today.month
    out = []
    for _ in range(months):
        out.append(date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return out[::-1]


class _Counter:
    """Counts the statements a computation runs (the page shows the number; tests assert it stays fixed)."""

    def __init__(self, session: Session):
        self.session, self.n = session, 0

    def execute(self, statement: Any) -> Any:
        self.n += 1
        return self.session.execute(statement)


def _timeliness(db: _Counter, today: date) -> tuple[list[PartnershipTimeliness], Totals]:
    not_closed = Case.status != "closed"
    columns = [
        _count_if(_notif_judged(today)), _count_if(_notif_late(today)),
        _count_if(_rr_judged(today)), _count_if(and_(_rr_judged(today), _rr_on_time())),
        _count_if(_rr_in_progress(today)), _count_if(_rr_overdue(today)),
        _count_if(and_(INCIDENT, Case.rapid_review_submitted_on.is_not(None))), _count_if(_awaiting_panel()),
        _count_if(ESCALATION), _count_if(and_(ESCALATION, Case.status == "open")),
        _count_if(and_(ESCALATION, Case.reached_national.is_(True))),
        _count_if(and_(LCSPR, Case.status == "open")), _count_if(and_(LCSPR, Case.status == "suspended")),
        _count_if(_lcspr_due_soon(today)), _count_if(_lcspr_overdue(today)),
        _count_if(and_(LCSPR, Case.published.is_(True))), _count_if(and_(LCSPR, Case.published.is_(False))),
        func.coalesce(func.sum(case((not_closed, Case.overdue_tasks), else_=0)), 0),
    ]
    # Aggregate the cases by partnership first (one pass over ``case``), then name the partnerships: every
    # partnership is listed, also one without cases.
    sums_by = (select(Case.partnership_id.label("pid"), *[c.label(f"c{i}") for i, c in enumerate(columns)])
               .group_by(Case.partnership_id).subquery())
    query = (select(Partnership.id, Partnership.name, *[sums_by.c[f"c{i}"] for i in range(len(columns))])
             .select_from(Partnership).join(sums_by, sums_by.c.pid == Partnership.id, isouter=True)
             .order_by(Partnership.name, Partnership.id))
    rows, sums = [], [0] * len(columns)
    for pid, name, *values in db.execute(query):
        values = [int(v or 0) for v in values]
        sums = [a + b for a, b in zip(sums, values, strict=True)]
        (n_judged, n_late, rr_judged, rr_on_time, _rr_prog, _rr_over, _rr_sub, _await, _esc,
         esc_open, _esc_nat, *_lcspr, overdue_tasks) = values
        rows.append(PartnershipTimeliness(pid, name, n_judged, n_judged - n_late, rr_judged, rr_on_time,
                                          overdue_tasks, esc_open))
    (n_judged, n_late, rr_judged, rr_on_time, rr_prog, rr_over, rr_sub, waiting, esc, esc_open, esc_nat,
     l_prog, l_susp, l_soon, l_over, l_pub, l_not, overdue_tasks) = sums
    totals = Totals(notifications_judged=n_judged, notifications_late=n_late, rapid_reviews_in_progress=rr_prog,
                    rapid_reviews_overdue=rr_over, rapid_reviews_submitted=rr_sub, rapid_reviews_judged=rr_judged,
                    rapid_reviews_on_time=rr_on_time, awaiting_panel=waiting, escalations=esc,
                    escalations_open=esc_open, escalations_national=esc_nat, lcsprs_in_progress=l_prog,
                    lcsprs_suspended=l_susp, lcsprs_due_soon=l_soon, lcsprs_overdue=l_over, lcsprs_published=l_pub,
                    lcsprs_not_published=l_not, open_overdue_tasks=overdue_tasks)
    return rows, totals


def _escalation_counts(db: _Counter) -> tuple[list[StageCount], list[TimeoutCount], list[str]]:
    query = (select(Case.ladder_purpose, Case.highest_stage, Case.timeouts, Case.status, Case.reached_national,
                    func.count())
             .where(ESCALATION).group_by(Case.ladder_purpose, Case.highest_stage, Case.timeouts, Case.status,
                                         Case.reached_national))
    stages: dict[int, dict[str, list[int]]] = {}
    timeouts: dict[int, dict[str, int]] = {}
    national: dict[int, int] = {}
    purposes: set[str] = set()
    for purpose, highest, n_timeouts, status, reached, count in db.execute(query):
        is_open = status == "open"
        purpose = purpose or "other"
        purposes.add(purpose)
        cell = stages.setdefault(int(highest or 0), {}).setdefault(purpose, [0, 0])
        cell[0 if is_open else 1] += int(count)
        bucket = min(int(n_timeouts or 0), 4)
        timeouts.setdefault(bucket, {}).setdefault(purpose, 0)
        timeouts[bucket][purpose] += int(count)
        if reached:
            national[bucket] = national.get(bucket, 0) + int(count)
    order = [p for p in PURPOSES if p in purposes] + sorted(purposes - set(PURPOSES))
    if not order:
        order = list(PURPOSES)
    top = max(stages, default=0)
    stage_rows = [StageCount(n, {p: tuple(stages.get(n, {}).get(p, [0, 0])) for p in order})
                  for n in range(1, max(top, 1) + 1) if n in stages or n <= top]
    timeout_rows = [TimeoutCount("4 or more" if n == 4 else str(n), n, {p: timeouts.get(n, {}).get(p, 0)
                                                                         for p in order}, national.get(n, 0))
                    for n in range(5)]
    return stage_rows, timeout_rows, order


def _trend(db: _Counter, today: date) -> list[MonthCount]:
    starts = month_starts(today)
    first = starts[0]
    # Grouped by the day (at most about 2 x 366 groups), then by month here: no per-row date functions in SQL,
    # and one query that reads the same on SQLite and PostgreSQL. The day expression is over a subquery's
    # columns, so the SELECT and the GROUP BY render the same text (PostgreSQL matches them by text).
    inner = (select(Case.process.label("process"),
                    case((INCIDENT, Case.notification_due), else_=Case.aware_date).label("day"),
                    case((notification_late(today), 1), else_=0).label("late"))
             .where(or_(_notif_judged(today),
                        and_(ESCALATION, Case.aware_date >= first, Case.aware_date <= today))).subquery())
    query = (select(inner.c.process, inner.c.day, func.count(), func.coalesce(func.sum(inner.c.late), 0))
             .group_by(inner.c.process, inner.c.day))
    counts: dict[tuple[int, int], list[int]] = {(s.year, s.month): [0, 0, 0] for s in starts}
    for process, day, count, late in db.execute(query):
        day = _as_date(day)
        cell = counts.get((day.year, day.month)) if day is not None else None
        if cell is None:
            continue
        if process == "incident":
            cell[0] += int(count)
            cell[1] += int(late or 0)
        else:
            cell[2] += int(count)
    return [MonthCount(s.year, s.month, *counts[(s.year, s.month)]) for s in starts]


# --- lists -----------------------------------------------------------------------------------------------------

_LINE_COLUMNS = (Case.national_ref, Partnership.name, Case.process, Case.category, Case.arrangements_version,
                 Case.partnership_id, Case.aware_date, Case.notification_due, Case.notification_sent_on,
                 Case.notification_days_late, Case.rapid_review_due, Case.rapid_review_submitted_on,
                 Case.rapid_review_days_late, Case.status, Case.ladder_purpose, Case.urgent, Case.current_stage,
                 Case.highest_stage, Case.timeouts, Case.outcome, Case.closed_at, Case.report_due,
                 Case.publication_date, Case.published)

LISTS: dict[str, Any] = {
    "late_notifications": (lambda today: _notif_late(today),
                           lambda: (func.coalesce(Case.notification_sent_on, Case.notification_due).desc(),
                                    Case.national_ref)),
    "rapid_reviews_overdue": (lambda today: _rr_overdue(today), lambda: (Case.rapid_review_due, Case.national_ref)),
    "awaiting_panel": (lambda today: _awaiting_panel(), lambda: (Case.rapid_review_submitted_on, Case.national_ref)),
    "escalations_national": (lambda today: and_(ESCALATION, Case.reached_national.is_(True)),
                             lambda: (Case.aware_date.desc(), Case.national_ref)),
    "lcsprs_overdue": (lambda today: _lcspr_overdue(today), lambda: (Case.report_due, Case.national_ref)),
    "lcsprs_due_soon": (lambda today: _lcspr_due_soon(today), lambda: (Case.report_due, Case.national_ref)),
    "lcsprs_all": (lambda today: LCSPR, lambda: (Case.aware_date.desc(), Case.national_ref)),
}


def _fetch(db: _Counter, name: str, today: date, limit: int | None) -> list[Any]:
    condition, order = LISTS[name]
    query = (select(*_LINE_COLUMNS).join(Partnership, Partnership.id == Case.partnership_id)
             .where(condition(today)).order_by(*order()))
    if limit is not None:
        query = query.limit(limit)
    return list(db.execute(query))


def _as_date(value: Any) -> date | None:
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).date()
    return date.fromisoformat(str(value)[:10])


def _lines(session: Session, rows: list[Any], today: date, kind: str) -> list[CaseLine]:
    versions = {(r.partnership_id, r.arrangements_version) for r in rows}
    labels = category_labels(session, versions) if kind in ("notification", "rapid_review") else {}
    calendars = _calendars(session, versions) if kind in ("notification", "rapid_review", "lcspr") else {}
    out = []
    for r in rows:
        calendar = calendars.get((r.partnership_id, r.arrangements_version))
        late: int | None = None
        due = done = None
        if kind == "notification":
            due, done = r.notification_due, r.notification_sent_on
            late = r.notification_days_late if done is not None else _working_days(calendar, due, today)
        elif kind == "rapid_review":
            due, done = r.rapid_review_due, r.rapid_review_submitted_on
            late = r.rapid_review_days_late if done is not None else _working_days(calendar, due, today)
        elif kind == "lcspr":
            due, done = r.report_due, _as_date(r.closed_at)
            late = _working_days(calendar, due, today) if due is not None and due < today else None
        elif kind == "escalation":
            done = _as_date(r.closed_at)
        label = labels.get((r.partnership_id, r.arrangements_version), {}).get(r.category) if labels else None
        out.append(CaseLine(
            national_ref=r.national_ref, partnership_name=r.name, process=r.process,
            category_label=label or (r.category.replace("_", " ").capitalize() if kind != "escalation" else ""),
            aware_date=r.aware_date, due=due, done_on=done, working_days_late=late, status=r.status,
            purpose=r.ladder_purpose or "", urgent=bool(r.urgent), current_stage=r.current_stage,
            highest_stage=r.highest_stage, timeouts=int(r.timeouts or 0),
            outcome=r.outcome if r.outcome in OUTCOMES else (None if r.outcome is None else "other"),
            publication_date=r.publication_date, published=r.published))
    return out


def _working_days(calendar: WorkingCalendar | None, due: date | None, today: date) -> int | None:
    if calendar is None or due is None:
        return None
    try:
        return max(calendar.working_days_between(due, today), 0)
    except ValueError:  # outside the calendar's years
        return None


# --- calendars (from the pinned arrangements version; versions never change, so they are cached) ------------

_CALENDARS: dict[tuple[str, str, int], WorkingCalendar | None] = {}
_BY_SECTION: dict[tuple[str, int], WorkingCalendar] = {}
_CAL_LOCK = threading.Lock()
_CAL_MAX = 5000


def _calendars(session: Session, versions: set[tuple[str, int]]) -> dict[tuple[str, int], WorkingCalendar | None]:
    """A calendar for each (partnership, version): at most one query, for the uncached ones. Partnerships with the
    same calendar section share one calendar object (150 identical sections build once)."""
    db = str(session.get_bind().url)
    with _CAL_LOCK:
        missing = [v for v in versions if (db, *v) not in _CALENDARS]
    if missing:
        condition = or_(*[and_(ArrangementsVersion.partnership_id == pid, ArrangementsVersion.number == number)
                          for pid, number in missing])
        found: dict[tuple[str, str, int], WorkingCalendar | None] = {(db, *v): None for v in missing}
        this_year = date.today().year
        for pid, number, document in session.execute(select(
                ArrangementsVersion.partnership_id, ArrangementsVersion.number, ArrangementsVersion.document)
                .where(condition)):
            section = json.loads(document).get("calendar") or {}
            key = (json.dumps(section, sort_keys=True), this_year)
            with _CAL_LOCK:
                calendar = _BY_SECTION.get(key)
            if calendar is None:
                try:
                    calendar = WorkingCalendar.for_config(section, 2018, this_year + 2)
                except (ValueError, TypeError):
                    calendar = None
                if calendar is not None:
                    with _CAL_LOCK:
                        _BY_SECTION[key] = calendar
            found[(db, pid, number)] = calendar
        with _CAL_LOCK:
            if len(_CALENDARS) + len(found) > _CAL_MAX:
                _CALENDARS.clear()
            _CALENDARS.update(found)
    with _CAL_LOCK:
        return {v: _CALENDARS.get((db, *v)) for v in versions}


# --- putting it together ----------------------------------------------------------------------------------------

_KINDS = {"late_notifications": "notification", "rapid_reviews_overdue": "rapid_review",
          "awaiting_panel": "rapid_review", "escalations_national": "escalation", "lcsprs_overdue": "lcspr",
          "lcsprs_due_soon": "lcspr", "lcsprs_all": "lcspr"}


def compute_report(session: Session, today: date, *, limit: int | None = LIST_LIMIT) -> Report:
    """Every figure and list of the monitoring page, as of ``today``. A fixed number of statements."""
    started = time.perf_counter()
    db = _Counter(session)
    timeliness, totals = _timeliness(db, today)
    stages, timeouts, purposes = _escalation_counts(db)
    trend = _trend(db, today)
    lists = {name: _lines(session, _fetch(db, name, today, limit), today, _KINDS[name])
             for name in ("late_notifications", "rapid_reviews_overdue", "awaiting_panel", "escalations_national",
                          "lcsprs_overdue", "lcsprs_due_soon")}
    return Report(today=today, computed_at=datetime.now(UTC), totals=totals, timeliness=timeliness,
                  stages=stages, timeouts=timeouts, purposes=purposes, trend=trend, statements=db.n,
                  compute_ms=(time.perf_counter() - started) * 1000, **lists)


_CACHE: dict[tuple[str, date], tuple[float, Report]] = {}
_CACHE_LOCKS: dict[tuple[str, date], threading.Lock] = {}
_CACHE_LOCK = threading.Lock()


def cached_report(engine: Engine, today: date, *, max_age: float | None = None) -> Report:
    """The report for this database and day, computed at most once every ``max_age`` seconds (default
    ``CACHE_SECONDS``, read at call time). One request computes a stale report; meanwhile the others get the
    previous one (stale while it is refreshed), or wait for it if there is none yet for today."""
    max_age = CACHE_SECONDS if max_age is None else max_age
    key = (str(engine.url), today)
    with _CACHE_LOCK:
        lock = _CACHE_LOCKS.setdefault(key, threading.Lock())
        hit = _CACHE.get(key)
    if hit is not None and time.monotonic() - hit[0] < max_age:
        return hit[1]
    if not lock.acquire(blocking=hit is None):
        return hit[1]  # someone is computing it: today's previous figures, a few seconds older
    try:
        with _CACHE_LOCK:
            hit = _CACHE.get(key)
        if hit is not None and time.monotonic() - hit[0] < max_age:
            return hit[1]
        with Session(engine) as session:
            report = compute_report(session, today)
        with _CACHE_LOCK:
            for old in [k for k in _CACHE if k[1] != today]:  # yesterday's reports go
                _CACHE.pop(old, None)
                _CACHE_LOCKS.pop(old, None)
            _CACHE[key] = (time.monotonic(), report)
        return report
    finally:
        lock.release()


def fresh_report(engine: Engine, today: date, *, max_age: float | None = None) -> Report | None:
    """The cached report if it is fresh, else None; never computes (safe to call from an event loop)."""
    max_age = CACHE_SECONDS if max_age is None else max_age
    with _CACHE_LOCK:
        hit = _CACHE.get((str(engine.url), today))
    return hit[1] if hit is not None and time.monotonic() - hit[0] < max_age else None


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


# --- tables for CSV export ----------------------------------------------------------------------------------------

TABLES: dict[str, str] = {
    "timeliness": "Timeliness by partnership",
    "late-notifications": "Late notifications",
    "rapid-reviews-overdue": "Rapid reviews overdue",
    "rapid-reviews-awaiting-panel": "Rapid reviews awaiting the Panel's response",
    "escalations-by-stage": "Escalations by the highest stage reached",
    "escalations-by-timeouts": "Escalations by timeouts",
    "escalations-national": "Escalations shown to the national body",
    "trend": "Monthly trend",
    "local-reviews": "Local child safeguarding practice reviews",
}


def _purpose_label(purpose: str) -> str:
    return PURPOSES.get(purpose, purpose.replace("_", " ").capitalize())


def _lcspr_state(line: CaseLine, today: date) -> str:
    if line.status == "suspended":
        return "Suspended: national review"
    if line.status == "closed":
        return "Closed: published" if line.published else (
            "Closed: not published" if line.published is False else "Closed")
    if line.published is True:
        return "Published: actions open"
    if line.published is False:
        return "Not published: actions open"
    if line.due is not None and line.due < today:
        return "Overdue"
    return "In progress"


def table_rows(session: Session, table: str, today: date) -> tuple[list[str], list[list[Any]]]:
    """(header, rows) of one table, every row (no page limit): what its CSV export holds."""
    if table == "timeliness":
        rows, _totals = _timeliness(_Counter(session), today)
        header = ["Partnership", f"Notifications due in the last {TREND_MONTHS} months", "Notifications on time",
                  "Notifications on time %",
                  "Rapid reviews due so far", "Rapid reviews on time", "Rapid reviews on time %",
                  "Open overdue tasks", "Escalations open"]
        return header, [[r.name, r.notifications_judged, r.notifications_on_time,
                         _blank(r.notifications_on_time_percent), r.rapid_reviews_judged, r.rapid_reviews_on_time,
                         _blank(r.rapid_reviews_on_time_percent), r.open_overdue_tasks, r.escalations_open]
                        for r in rows]
    if table in ("escalations-by-stage", "escalations-by-timeouts"):
        stages, timeouts, purposes = _escalation_counts(_Counter(session))
        if table == "escalations-by-stage":
            header = ["Highest stage reached"] + [f"{_purpose_label(p)}: {s}" for p in purposes
                                                  for s in ("open", "closed")] + ["Total"]
            return header, [[s.stage] + [n for p in purposes for n in s.by_purpose[p]] + [s.total] for s in stages]
        header = ["Stages timed out"] + [_purpose_label(p) for p in purposes] + ["Shown to the national body", "Total"]
        return header, [[t.label] + [t.by_purpose[p] for p in purposes] + [t.reached_national, t.total]
                        for t in timeouts]
    if table == "trend":
        header = ["Month", "Notifications due", "Late notifications", "Escalations raised"]
        return header, [[m.label, m.notifications, m.late_notifications, m.escalations]
                        for m in _trend(_Counter(session), today)]
    name = {"late-notifications": "late_notifications", "rapid-reviews-overdue": "rapid_reviews_overdue",
            "rapid-reviews-awaiting-panel": "awaiting_panel", "escalations-national": "escalations_national",
            "local-reviews": "lcsprs_all"}[table]
    db = _Counter(session)
    lines = _lines(session, _fetch(db, name, today, None), today, _KINDS[name])
    if table == "late-notifications":
        header = ["National reference", "Partnership", "Category", "Local authority aware", "Notification due",
                  "Sent", "Working days late"]
        return header, [[x.national_ref, x.partnership_name, x.category_label, x.aware_date, x.due,
                         x.done_on or "Not sent", _blank(x.working_days_late)] for x in lines]
    if table == "rapid-reviews-overdue":
        header = ["National reference", "Partnership", "Category", "Rapid review due", "Working days overdue"]
        return header, [[x.national_ref, x.partnership_name, x.category_label, x.due, _blank(x.working_days_late)]
                        for x in lines]
    if table == "rapid-reviews-awaiting-panel":
        header = ["National reference", "Partnership", "Category", "Rapid review due", "Submitted",
                  "Working days late"]
        return header, [[x.national_ref, x.partnership_name, x.category_label, x.due, x.done_on,
                         _blank(x.working_days_late)] for x in lines]
    if table == "escalations-national":
        header = ["National reference", "Partnership", "Ladder", "Urgent", "Raised", "Highest stage",
                  "Current stage", "Stages timed out", "Status", "Closed"]
        return header, [[x.national_ref, x.partnership_name, _purpose_label(x.purpose), "Yes" if x.urgent else "No",
                         x.aware_date, x.highest_stage, x.current_stage if x.status == "open" else "", x.timeouts,
                         "Open" if x.status == "open" else OUTCOMES.get(x.outcome or "", "Closed"), x.done_on or ""]
                        for x in lines]
    header = ["National reference", "Partnership", "Decision to review", "Report due", "Planned publication",
              "State", "Working days overdue"]
    return header, [[x.national_ref, x.partnership_name, x.aware_date, x.due or "", x.publication_date or "",
                     _lcspr_state(x, today), _blank(x.working_days_late)] for x in lines]


def _blank(value: Any) -> Any:
    return "" if value is None else value


def lcspr_state(line: CaseLine, today: date) -> str:
    return _lcspr_state(line, today)


def purpose_label(purpose: str) -> str:
    return _purpose_label(purpose)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    if isinstance(value, str) and text.startswith(_FORMULA_START):
        return "'" + text  # a spreadsheet must never run a cell as a formula
    return text


def csv_text(header: list[str], rows: Iterable[list[Any]]) -> str:
    """CSV (RFC 4180, CRLF) with a byte-order mark so spreadsheet programs read UTF-8."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return "\ufeff" + buffer.getvalue()
