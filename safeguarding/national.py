"""Pseudonymised read queries for the national body: cases across every partnership, from the read model.

What comes out of here is safe to show the national Child Safeguarding Practice Review Panel: the
pseudonymous ``national_ref``, the partnership, the category, dates, lateness, status and stage, the Panel's
response, and task titles and statuses. Never the children's pseudonyms, the summary, the agencies' people,
user references, form data, or the local ``case_ref`` (which can be re-identified without the key).
``NationalCase.case_id`` is carried only so the page can link to the Panel-response task (see the module
notes in the report: the case id embeds the local case reference).

Every figure and list is a fixed number of SQL statements over ``case``/``task`` (never one per case):

* ``figures``: one aggregate over ``case`` and one count over ``task``;
* ``list_cases``: one count, one page of rows (joined to ``partnership``), one lookup of open Panel tasks
  for the cases on the page, and at most one lookup of category labels (cached: versions are immutable);
* ``cases_by_ref``: one query for the case(s), one for their tasks.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, false, func, or_, select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from safeguarding.case_records import NATIONAL_PANEL
from safeguarding.tables import ArrangementsVersion, Case, Partnership, Task

__all__ = [
    "CASE_STATUSES",
    "SHOW_FILTERS",
    "Figures",
    "NationalCase",
    "NationalTask",
    "cases_by_ref",
    "category_labels",
    "figures",
    "list_cases",
    "partnerships",
]

CASE_STATUSES: dict[str, str] = {
    "open": "Open",
    "awaiting_lcspr": "Awaiting the local review",
    "national_review": "National review",
    "closed": "Closed",
}
SHOW_FILTERS: dict[str, str] = {
    "late_notification": "Notification late",
    "rr_overdue": "Rapid review overdue",
    "awaiting_panel": "Awaiting the Panel's response",
}
PANEL_RESPONSE_TASK = "panel-response"
LONDON = ZoneInfo("Europe/London")


def _utc(value: datetime | None) -> datetime | None:
    """SQLite gives back naive datetimes (stored as UTC); make them aware."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


# --- conditions shared by the figures and the filters ------------------------------------------------------


def notification_judged(today: date) -> ColumnElement[bool]:
    """A notification that can be judged on time or late: sent, or its due date has passed."""
    return or_(Case.notification_sent_on.is_not(None), Case.notification_due < today)


def notification_late(today: date) -> ColumnElement[bool]:
    """Sent late (working days late > 0), or not sent and the due date has passed."""
    return or_(Case.notification_days_late > 0,
               and_(Case.notification_sent_on.is_(None), Case.notification_due < today))


def rapid_review_overdue(today: date) -> ColumnElement[bool]:
    """Due date passed and not submitted, on a case still open."""
    return and_(Case.status == "open", Case.rapid_review_required.is_(True), Case.rapid_review_due < today,
                Case.rapid_review_submitted_on.is_(None))


def awaiting_panel() -> ColumnElement[bool]:
    """Submitted to the Panel, no response yet, case open."""
    return and_(Case.status == "open", Case.rapid_review_submitted_on.is_not(None), Case.panel_response.is_(None))


def _show_condition(show: str | None, today: date) -> ColumnElement[bool] | None:
    if show == "late_notification":
        return notification_late(today)
    if show == "rr_overdue":
        return rapid_review_overdue(today)
    if show == "awaiting_panel":
        return awaiting_panel()
    return None


# --- figures -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    cases: int
    notifications_judged: int  # sent, or past their due date
    notifications_late: int
    rapid_reviews_overdue: int
    awaiting_panel: int
    open_panel_tasks: int

    @property
    def notifications_late_percent(self) -> int | None:
        if not self.notifications_judged:
            return None
        return round(100 * self.notifications_late / self.notifications_judged)


def _count_if(condition: ColumnElement[bool]) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def figures(session: Session, today: date, partnership_id: str | None = None) -> Figures:
    """The headline figures, for every partnership or one: one aggregate over cases, one count of tasks."""
    query = select(func.count(), _count_if(notification_judged(today)), _count_if(notification_late(today)),
                   _count_if(rapid_review_overdue(today)), _count_if(awaiting_panel())).select_from(Case)
    tasks = select(func.count()).select_from(Task).where(Task.candidate_role == NATIONAL_PANEL, Task.status == "open")
    if partnership_id:
        query = query.where(Case.partnership_id == partnership_id)
        tasks = tasks.where(Task.partnership_id == partnership_id)
    total, judged, late, overdue, waiting = session.execute(query).one()
    open_tasks = session.execute(tasks).scalar_one()
    return Figures(cases=int(total), notifications_judged=int(judged), notifications_late=int(late),
                   rapid_reviews_overdue=int(overdue), awaiting_panel=int(waiting), open_panel_tasks=int(open_tasks))


# --- the list ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NationalCase:
    """One case as the national body sees it: no people, no free text, no local reference."""

    case_id: str  # only for the link to the Panel-response task
    national_ref: str
    partnership_id: str
    partnership_name: str
    category: str
    category_label: str
    arrangements_version: int
    aware_date: date
    notification_due: date | None
    notification_sent_on: date | None
    notification_days_late: int | None
    notification_overdue: bool  # not sent and past its due date
    rapid_review_required: bool
    rapid_review_due: date | None
    rapid_review_submitted_on: date | None
    rapid_review_days_late: int | None
    rapid_review_overdue: bool  # not submitted and past its due date, case open
    lcspr_decision: str | None
    panel_response: str | None
    status: str
    stage: str
    opened_at: datetime
    closed_at: datetime | None
    panel_task_open: bool


_COLUMNS = (Case.id, Case.national_ref, Case.partnership_id, Partnership.name, Case.category,
            Case.arrangements_version, Case.aware_date, Case.notification_due, Case.notification_sent_on,
            Case.notification_days_late, Case.rapid_review_required, Case.rapid_review_due,
            Case.rapid_review_submitted_on, Case.rapid_review_days_late, Case.lcspr_decision, Case.panel_response,
            Case.status, Case.stage, Case.opened_at, Case.closed_at)


def _where(query: Any, today: date, partnership_id: str | None, status: str | None, show: str | None) -> Any:
    if partnership_id:
        query = query.where(Case.partnership_id == partnership_id)
    if status:
        query = query.where(Case.status == status if status in CASE_STATUSES else false())
    condition = _show_condition(show, today)
    if condition is not None:
        query = query.where(condition)
    return query


def _open_panel_tasks(session: Session, case_ids: list[str]) -> set[str]:
    if not case_ids:
        return set()
    rows = session.execute(select(Task.case_id).where(
        Task.case_id.in_(case_ids), Task.key == PANEL_RESPONSE_TASK, Task.status == "open"))
    return set(rows.scalars())


def _national_case(row: Any, today: date, labels: dict[tuple[str, int], dict[str, str]],
                   open_tasks: set[str]) -> NationalCase:
    (case_id, national_ref, pid, name, category, version, aware, n_due, n_sent, n_late, rr_required, rr_due,
     rr_sent, rr_late, decision, response, status, stage, opened_at, closed_at) = row
    return NationalCase(
        case_id=case_id, national_ref=national_ref, partnership_id=pid, partnership_name=name, category=category,
        category_label=labels.get((pid, version), {}).get(category, category.replace("_", " ")),
        arrangements_version=version, aware_date=aware, notification_due=n_due, notification_sent_on=n_sent,
        notification_days_late=n_late, notification_overdue=n_sent is None and n_due is not None and n_due < today,
        rapid_review_required=bool(rr_required), rapid_review_due=rr_due, rapid_review_submitted_on=rr_sent,
        rapid_review_days_late=rr_late,
        rapid_review_overdue=(status == "open" and bool(rr_required) and rr_sent is None and rr_due is not None
                              and rr_due < today),
        lcspr_decision=decision, panel_response=response, status=status, stage=stage, opened_at=_utc(opened_at),
        closed_at=_utc(closed_at), panel_task_open=case_id in open_tasks)


def list_cases(session: Session, today: date, *, partnership_id: str | None = None, status: str | None = None,
               show: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list[NationalCase], int]:
    """One page of cases (most recent awareness first) and how many match in all."""
    total = session.execute(_where(select(func.count()).select_from(Case), today, partnership_id, status,
                                   show)).scalar_one()
    query = _where(select(*_COLUMNS).join(Partnership, Partnership.id == Case.partnership_id), today,
                   partnership_id, status, show)
    rows = session.execute(query.order_by(Case.aware_date.desc(), Case.id).offset(offset).limit(limit)).all()
    labels = category_labels(session, {(r[2], r[5]) for r in rows})
    open_tasks = _open_panel_tasks(session, [r[0] for r in rows])
    return [_national_case(r, today, labels, open_tasks) for r in rows], int(total)


def partnerships(session: Session) -> list[tuple[str, str]]:
    """(id, name) of every partnership, by name: for the filter."""
    return [(pid, name) for pid, name in session.execute(
        select(Partnership.id, Partnership.name).order_by(Partnership.name, Partnership.id))]


# --- one case ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NationalTask:
    """A step of a case without who may do it, who did it, or what they recorded."""

    key: str
    title: str
    type: str
    status: str  # open | done | cancelled
    due_date: date | None
    follow_up_date: date | None
    overdue: bool
    completed_on: date | None
    days_late: int | None
    opened_at: datetime


def cases_by_ref(session: Session, today: date, national_ref: str) -> list[tuple[NationalCase, list[NationalTask]]]:
    """The case(s) with this national reference (normally one) and their tasks. Two queries in all."""
    rows = session.execute(select(*_COLUMNS).join(Partnership, Partnership.id == Case.partnership_id)
                           .where(Case.national_ref == national_ref).order_by(Case.id)).all()
    if not rows:
        return []
    ids = [r[0] for r in rows]
    tasks: dict[str, list[NationalTask]] = {i: [] for i in ids}
    for t in session.execute(select(Task.case_id, Task.key, Task.title, Task.type, Task.status, Task.due_date,
                                    Task.follow_up_date, Task.overdue, Task.completed_at, Task.days_late,
                                    Task.opened_at)
                             .where(Task.case_id.in_(ids)).order_by(Task.opened_at, Task.key)):
        completed = _utc(t.completed_at).astimezone(LONDON).date() if t.completed_at is not None else None
        tasks[t.case_id].append(NationalTask(key=t.key, title=t.title, type=t.type, status=t.status,
                                             due_date=t.due_date, follow_up_date=t.follow_up_date,
                                             overdue=bool(t.overdue), completed_on=completed, days_late=t.days_late,
                                             opened_at=_utc(t.opened_at)))
    labels = category_labels(session, {(r[2], r[5]) for r in rows})
    open_tasks = {i for i in ids if any(t.key == PANEL_RESPONSE_TASK and t.status == "open" for t in tasks[i])}
    return [(_national_case(r, today, labels, open_tasks), tasks[r[0]]) for r in rows]


# --- category labels (from the pinned arrangements version; versions never change, so they are cached) -------

_LABELS: dict[tuple[str, str, int], dict[str, str]] = {}  # (database, partnership, version) -> labels
_LABELS_LOCK = threading.Lock()
_LABELS_MAX = 5000


def category_labels(session: Session, versions: set[tuple[str, int]]) -> dict[tuple[str, int], dict[str, str]]:
    """category id -> label for each (partnership, version number): at most one query, for the uncached ones."""
    db = str(session.get_bind().url)
    with _LABELS_LOCK:
        missing = [v for v in versions if (db, *v) not in _LABELS]
    if missing:
        condition = or_(*[and_(ArrangementsVersion.partnership_id == pid, ArrangementsVersion.number == number)
                          for pid, number in missing])
        found: dict[tuple[str, str, int], dict[str, str]] = {}
        for pid, number, document in session.execute(select(
                ArrangementsVersion.partnership_id, ArrangementsVersion.number, ArrangementsVersion.document)
                .where(condition)):
            doc = json.loads(document)
            found[(db, pid, number)] = {c["id"]: c.get("label", c["id"]) for c in
                                    doc.get("serious_incident_notification", {}).get("categories", [])}
        with _LABELS_LOCK:
            if len(_LABELS) + len(found) > _LABELS_MAX:
                _LABELS.clear()
            _LABELS.update(found)
    with _LABELS_LOCK:
        return {v: _LABELS.get((db, *v), {}) for v in versions}
