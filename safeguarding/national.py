"""Pseudonymised read queries for the national body: cases across every partnership, from the read model.

What comes out of here is safe to show the national Child Safeguarding Practice Review Panel: the pseudonymous
``national_ref``, the partnership, the category, dates, lateness, status and stage, the Panel's response, task
titles and statuses, how many children a notification names and, for a cross-boundary case, the area where the
child lives (``child_lives_in``). Only incidents of categories the Panel sees (``case.panel_sees``, from the
category's ``panel_sees``): a care leaver's death, notified to the Secretary of State and Ofsted, is not on
the Panel's overview, its list, its case pages or its figures. Never the children's pseudonyms, the summary,
the agencies' people, user references, form data, or the local ``case_ref`` (which can be re-identified
without the key). A local review's notices the law requires (the pre-publication copy, the notice of not
publishing) show as received when the arrangements name the Panel among their recipients: which notice and the
day it was sent, nothing else.
``NationalCase.case_id`` (the workflow id, which embeds the local case reference) is carried for look-ups
only and never shown: pages link to a Panel task by the pseudonymous reference
(``/national/cases/{national_ref}/tasks/panel-response``).

Every figure and list is a fixed number of SQL statements over ``case``/``task`` (never one per case):

* ``figures``: one aggregate over the incidents in ``case`` and one count of open Panel tasks over ``task``;
* ``list_cases``: one count, one page of rows (joined to ``partnership``), one primary-key lookup of the
  Panel-response tasks of the cases on the page, and at most one lookup of category labels (cached: versions
  are immutable);
* ``cases_by_ref``: one query for the case(s), one for their tasks, one for the notices the Panel received.

Indexes: ``figures`` counts open Panel tasks through ``ix_task_status`` (every open task) and the list sorts
all matching cases by ``aware_date``; ``task (candidate_role, status)`` and ``case (aware_date, id)`` would
serve both from an index (see ``benchmarks/pages_bench.py --with-proposed-indexes``).
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from cachetools import LRUCache
from sqlalchemy import and_, case, false, func, or_, select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from safeguarding.case_records import NATIONAL_PANEL
from safeguarding.tables import ArrangementsVersion, Case, CaseEvent, Partnership, Task

__all__ = [
    "CASE_STATUSES",
    "SHOW_FILTERS",
    "Figures",
    "NationalCase",
    "NationalTask",
    "NoticeReceived",
    "case_out",
    "cases_by_ref",
    "category_labels",
    "figures",
    "list_cases",
    "panel_task_case_id",
    "panel_tasks",
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
# the overview and its figures: notifications and rapid reviews of the categories the Panel sees (a care leaver's
# death, notified to the Secretary of State and Ofsted, is not the Panel's: issue 16)
PANEL_SEES = Case.panel_sees.is_not(False)
INCIDENT = and_(Case.process == "incident", PANEL_SEES)
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
                   _count_if(rapid_review_overdue(today)), _count_if(awaiting_panel())
                   ).select_from(Case).where(INCIDENT)
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
class NoticeReceived:
    """A notice the law requires that a local review sent to the Panel (among others): what, and when."""

    notice: str  # pre_publication_copy | not_published
    title: str
    received_on: date


NOTICE_TITLES = {"pre_publication_copy": "Pre-publication copy of the final report",
                 "not_published": "Notice that the report will not be published"}


@dataclass(frozen=True)
class NationalCase:
    """One case as the national body sees it: no people, no free text, no local reference.

    ``stage`` is the workflow's own words for incidents and local reviews, and "" for escalations (whose stage
    becomes a person's withdrawal reason); ``category_label`` is the arrangements' label of an incident
    category, and "" for anything else (an escalation's category is its issue type, typed by a person).
    """

    case_id: str  # for look-ups only: it embeds the local case reference, so pages never show it
    national_ref: str
    process: str  # incident | escalation | lcspr
    partnership_id: str
    partnership_name: str
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
    children_count: int = 0  # how many children the notification names (never who)
    child_lives_in: str = ""  # a cross-boundary case: the area where the child lives ("" when it is this area)
    # escalations: controlled vocabulary and numbers only
    ladder_purpose: str | None = None
    current_stage: int | None = None
    highest_stage: int | None = None
    timeouts: int = 0
    urgent: bool = False
    reached_national: bool = False
    outcome: str | None = None
    # local reviews
    report_due: date | None = None
    publication_date: date | None = None
    published: bool | None = None
    notices_received: tuple[NoticeReceived, ...] = ()  # local reviews: notices sent to the Panel
    # an incident and the local review opened from it point at each other (their national references); the
    # incident's own status stays "awaiting the local review" once its workflow hands over, so the page says where
    # the local review stands (``local_review_status``) instead of showing the incident as closed
    incident_ref: str = ""  # a local review: its incident's national reference
    local_review_ref: str = ""  # an incident: its local review's national reference, once opened
    local_review_status: str = ""  # ... and that review's status


_COLUMNS = (Case.id, Case.national_ref, Case.process, Case.partnership_id, Partnership.name, Case.category,
            Case.arrangements_version, Case.aware_date, Case.notification_due, Case.notification_sent_on,
            Case.notification_days_late, Case.rapid_review_required, Case.rapid_review_due,
            Case.rapid_review_submitted_on, Case.rapid_review_days_late, Case.lcspr_decision, Case.panel_response,
            Case.status, Case.stage, Case.opened_at, Case.closed_at, Case.ladder_purpose, Case.current_stage,
            Case.highest_stage, Case.timeouts, Case.urgent, Case.reached_national, Case.outcome, Case.report_due,
            Case.publication_date, Case.published, Case.children_count, Case.resident_area_name)
# What the national case page may show (the monitoring page links to all three); learning events stay local, and so
# do incidents of categories the Panel does not see.
NATIONAL_PROCESSES = and_(Case.process.in_(("incident", "lcspr", "escalation")), PANEL_SEES)
SYSTEM_STAGES = ("incident", "lcspr")  # processes whose ``stage`` is always the workflow's own words
# Task types whose titles are the workflow's words and the arrangements' names; any other (an action, whose
# title carries what a person typed) is shown by its kind and number only.
SAFE_TITLES = frozenset({
    "notification_sent", "agency_summary", "rr_meeting", "lcspr_decision", "partner_signoff", "panel_submission",
    "panel_response", "ladder_stage", "lcspr_national_info", "lcspr_immediate_actions", "national_review_outcome",
    "lcspr_terms", "lcspr_reviewer", "lcspr_family", "lcspr_progress", "lcspr_draft", "lcspr_final_report",
    "lcspr_recommendations", "lcspr_publication_plan", "lcspr_prepublication", "lcspr_published",
    "lcspr_not_published", "panel_chase"})


def _where(query: Any, today: date, partnership_id: str | None, status: str | None, show: str | None) -> Any:
    query = query.where(INCIDENT)
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
    # By primary key (<case id>/panel-response), status checked here: with "status = 'open'" in the WHERE clause
    # SQLite's planner may walk ix_task_status (every open task) instead (measured: 5 ms vs 0.2 ms at 20,000).
    rows = session.execute(select(Task.case_id, Task.status).where(
        Task.id.in_([f"{case_id}/{PANEL_RESPONSE_TASK}" for case_id in case_ids])))
    return {case_id for case_id, status in rows if status == "open"}


def _national_case(r: Any, today: date, labels: dict[tuple[str, int], dict[str, str]],
                   open_tasks: set[str]) -> NationalCase:
    n_sent, n_due, rr_sent, rr_due = r.notification_sent_on, r.notification_due, r.rapid_review_submitted_on, \
        r.rapid_review_due
    label = labels.get((r.partnership_id, r.arrangements_version), {}).get(r.category, "") \
        if r.process != "escalation" else ""
    return NationalCase(
        case_id=r.id, national_ref=r.national_ref, process=r.process, partnership_id=r.partnership_id,
        partnership_name=r.name, category_label=label, arrangements_version=r.arrangements_version,
        aware_date=r.aware_date, notification_due=n_due, notification_sent_on=n_sent,
        notification_days_late=r.notification_days_late,
        notification_overdue=n_sent is None and n_due is not None and n_due < today,
        rapid_review_required=bool(r.rapid_review_required), rapid_review_due=rr_due,
        rapid_review_submitted_on=rr_sent, rapid_review_days_late=r.rapid_review_days_late,
        rapid_review_overdue=(r.status == "open" and bool(r.rapid_review_required) and rr_sent is None
                              and rr_due is not None and rr_due < today),
        lcspr_decision=r.lcspr_decision, panel_response=r.panel_response, status=r.status,
        stage=r.stage if r.process in SYSTEM_STAGES else "", opened_at=_utc(r.opened_at),
        closed_at=_utc(r.closed_at), panel_task_open=r.id in open_tasks, ladder_purpose=r.ladder_purpose,
        current_stage=r.current_stage, highest_stage=r.highest_stage, timeouts=int(r.timeouts or 0),
        urgent=bool(r.urgent), reached_national=bool(r.reached_national), outcome=r.outcome,
        report_due=r.report_due, publication_date=r.publication_date, published=r.published,
        children_count=int(r.children_count or 0), child_lives_in=r.resident_area_name or "")


def list_cases(session: Session, today: date, *, partnership_id: str | None = None, status: str | None = None,
               show: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list[NationalCase], int]:
    """One page of incidents (most recent awareness first) and how many match in all."""
    total = session.execute(_where(select(func.count()).select_from(Case), today, partnership_id, status,
                                   show)).scalar_one()
    query = _where(select(*_COLUMNS).join(Partnership, Partnership.id == Case.partnership_id), today,
                   partnership_id, status, show)
    rows = session.execute(query.order_by(Case.aware_date.desc(), Case.id).offset(offset).limit(limit)).all()
    labels = category_labels(session, {(r.partnership_id, r.arrangements_version) for r in rows})
    open_tasks = _open_panel_tasks(session, [r.id for r in rows])
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
    title: str  # the workflow's title, or for steps whose title carries free text, their kind and number
    type: str
    status: str  # open | done | cancelled
    due_date: date | None
    follow_up_date: date | None
    overdue: bool
    completed_on: date | None
    days_late: int | None
    opened_at: datetime


def _task_title(task_type: str, key: str, title: str) -> str:
    if task_type in SAFE_TITLES:
        return title
    number = key.rsplit("-", 1)[-1]
    if key.startswith("action-") and number.isdecimal():
        return f"Action {number}"
    return task_type.replace("_", " ").capitalize()


def cases_by_ref(session: Session, today: date, national_ref: str) -> list[tuple[NationalCase, list[NationalTask]]]:
    """The case(s) with this national reference (normally one) and their tasks. Two queries in all."""
    rows = session.execute(select(*_COLUMNS).join(Partnership, Partnership.id == Case.partnership_id)
                           .where(Case.national_ref == national_ref, NATIONAL_PROCESSES).order_by(Case.id)).all()
    if not rows:
        return []
    ids = [r.id for r in rows]
    tasks: dict[str, list[NationalTask]] = {i: [] for i in ids}
    for t in session.execute(select(Task.case_id, Task.key, Task.title, Task.type, Task.status, Task.due_date,
                                    Task.follow_up_date, Task.overdue, Task.completed_at, Task.days_late,
                                    Task.opened_at)
                             .where(Task.case_id.in_(ids)).order_by(Task.opened_at, Task.key)):
        completed = _utc(t.completed_at).astimezone(LONDON).date() if t.completed_at is not None else None
        tasks[t.case_id].append(NationalTask(key=t.key, title=_task_title(t.type, t.key, t.title), type=t.type,
                                             status=t.status, due_date=t.due_date, follow_up_date=t.follow_up_date,
                                             overdue=bool(t.overdue), completed_on=completed, days_late=t.days_late,
                                             opened_at=_utc(t.opened_at)))
    labels = category_labels(session, {(r.partnership_id, r.arrangements_version) for r in rows})
    open_tasks = {i for i in ids if any(t.key == PANEL_RESPONSE_TASK and t.status == "open" for t in tasks[i])}
    notices = _notices_received(session, [r.id for r in rows if r.process == "lcspr"])
    related = _related(session, ids)
    return [(replace(_national_case(r, today, labels, open_tasks), notices_received=notices.get(r.id, ()),
                     **related.get(r.id, {})), tasks[r.id]) for r in rows]


def _related(session: Session, case_ids: list[str]) -> dict[str, dict[str, str]]:
    """For each of these cases: its incident's national reference (a local review), or its local review's
    national reference and status (an incident), as ``NationalCase`` fields."""
    found: dict[str, dict[str, str]] = {}
    parent = Case.__table__.alias("parent_case")
    for case_id, ref in session.execute(select(Case.id, parent.c.national_ref)
                                        .join(parent, parent.c.id == Case.parent_case_id)
                                        .where(Case.id.in_(case_ids), Case.process == "lcspr",
                                               parent.c.panel_sees.is_not(False))):
        found[case_id] = {"incident_ref": ref}
    for parent_id, ref, status in session.execute(select(Case.parent_case_id, Case.national_ref, Case.status)
                                                  .where(Case.parent_case_id.in_(case_ids),
                                                         Case.process == "lcspr").order_by(Case.opened_at)):
        found[parent_id] = {"local_review_ref": ref, "local_review_status": status}
    return found


def _notices_received(session: Session, case_ids: list[str]) -> dict[str, tuple[NoticeReceived, ...]]:
    """The ``notice_sent`` events of these local reviews whose recipients include the Panel: only the notice's kind
    and date are read from each event's data (never its message, actor or anything a person typed)."""
    if not case_ids:
        return {}
    found: dict[str, list[NoticeReceived]] = {}
    for case_id, data in session.execute(select(CaseEvent.case_id, CaseEvent.data).where(
            CaseEvent.case_id.in_(case_ids), CaseEvent.kind == "notice_sent").order_by(CaseEvent.case_id,
                                                                                      CaseEvent.seq)):
        facts = json.loads(data or "{}")
        notice = facts.get("notice")
        if NATIONAL_PANEL not in (facts.get("recipients") or []) or notice not in NOTICE_TITLES:
            continue
        found.setdefault(case_id, []).append(NoticeReceived(notice=notice, title=NOTICE_TITLES[notice],
                                                            received_on=date.fromisoformat(facts["sent_on"])))
    return {case_id: tuple(items) for case_id, items in found.items()}


# --- the Panel's own tasks (the JSON API's /api/tasks and /api/national/...) -------------------------------


def panel_tasks(session: Session, user_ref: str, *, status: str = "open", overdue: bool | None = None,
                limit: int = 200, offset: int = 0) -> list[dict[str, Any]]:
    """The Panel's tasks, soonest due first, named by the case's national reference: no local case id or
    reference, no people but whether the signed-in Panel member claimed it, no form data. One query."""
    query = (select(Case.national_ref, Case.partnership_id, Case.process, Task.key, Task.type, Task.title,
                    Task.status, Task.due_date, Task.follow_up_date, Task.overdue, Task.days_late, Task.completed_at,
                    Task.claimed_by)
             .join(Case, Case.id == Task.case_id)
             .where(Task.candidate_role == NATIONAL_PANEL, Task.status == status, NATIONAL_PROCESSES))
    if overdue is not None:
        query = query.where(Task.overdue == overdue)
    rows = session.execute(query.order_by(Task.due_date.is_(None), Task.due_date, Task.opened_at, Task.id)
                           .offset(offset).limit(limit)).all()
    return [{"national_ref": r.national_ref, "partnership_id": r.partnership_id, "process": r.process, "key": r.key,
             "type": r.type, "title": _task_title(r.type, r.key, r.title), "status": r.status, "due_date": r.due_date,
             "follow_up_date": r.follow_up_date, "overdue": bool(r.overdue), "days_late": r.days_late,
             "completed_on": _utc(r.completed_at).astimezone(LONDON).date() if r.completed_at is not None else None,
             "claimed_by_you": r.claimed_by == user_ref,
             "url": f"/api/national/cases/{r.national_ref}/tasks/{r.key}"} for r in rows]


def panel_task_case_id(session: Session, national_ref: str, key: str) -> str | None:
    """The case id behind a Panel task named by its national reference (for look-ups only: never shown), or None
    when there is no such Panel task, or more than one case has the reference."""
    if len(national_ref) > 20 or len(key) > 100:
        return None
    ids = session.execute(select(Task.case_id).join(Case, Case.id == Task.case_id).where(
        Case.national_ref == national_ref, Task.key == key, Task.candidate_role == NATIONAL_PANEL)).scalars().all()
    return ids[0] if len(ids) == 1 else None


def case_out(found: NationalCase, tasks: list[NationalTask]) -> dict[str, Any]:
    """A national case for the JSON API: everything ``NationalCase`` holds except the look-up ``case_id``."""
    out = {k: v for k, v in asdict(found).items() if k != "case_id"}
    out["tasks"] = [asdict(t) for t in tasks]
    return out


# --- category labels (from the pinned arrangements version; versions never change, so they are cached) -------

# (database, partnership, version) -> labels: the least recently used go first when it is full (as pinned.py's
# cache); cachetools' caches are not thread-safe by themselves, so every use holds the lock
CACHED_LABELS = 5000
_LABELS: LRUCache = LRUCache(maxsize=CACHED_LABELS)
_LABELS_LOCK = threading.Lock()


def category_labels(session: Session, versions: set[tuple[str, int]]) -> dict[tuple[str, int], dict[str, str]]:
    """category id -> label for each (partnership, version number): at most one query, for the uncached ones."""
    db = str(session.get_bind().url)
    with _LABELS_LOCK:
        known = {v: _LABELS[(db, *v)] for v in versions if (db, *v) in _LABELS}
    missing = [v for v in versions if v not in known]
    if missing:
        condition = or_(*[and_(ArrangementsVersion.partnership_id == pid, ArrangementsVersion.number == number)
                          for pid, number in missing])
        found: dict[tuple[str, int], dict[str, str]] = {}
        for pid, number, document in session.execute(select(
                ArrangementsVersion.partnership_id, ArrangementsVersion.number, ArrangementsVersion.document)
                .where(condition)):
            doc = json.loads(document)
            found[(pid, number)] = {c["id"]: c.get("label", c["id"]) for c in
                                    doc.get("serious_incident_notification", {}).get("categories", [])}
        with _LABELS_LOCK:
            for version, labels in found.items():
                _LABELS[(db, *version)] = labels
        known.update(found)
    return {v: known.get(v, {}) for v in versions}
