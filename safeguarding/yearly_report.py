"""The yearly report: its reporting period, its due date, the warning when no publication date is set, the
workflow input, and the figures assembled from the read model (as JSON, CSV and an editable Word document).

The partners publish a report at least once in every 12-month period (Working Together; ``yearly_report`` in
the arrangements). Rules, all from the pinned arrangements:

* **Period.** ``period.start``/``period.end`` (MM-DD) give 12 months; the report for a period is referred to as
  ``YR-2025-26`` (``YR-2025`` when the period is a calendar year). By default a report covers the latest period
  that has ended.
* **Due date.** The earliest of: the first ``publish_by.month_day`` after the period ends, and the previous
  report's publication plus ``max_interval_months`` calendar months (counted with the calendar's month rules:
  overflow and a non-working day as the calendar section says). With neither (``publish_by`` empty and no
  previous publication known) there is no due date, and the pages and the editor warn (``publish_by_warning``).
* **Who.** ``author_role`` drafts, revises, publishes and sends the copies (default: the business unit,
  ``data_protection.reidentification_key_role``); the independent scrutineer (``independent_scrutiny.
  scrutineer_role``) scrutinises each draft when ``independent_scrutiny.reviews_yearly_report`` is true; each
  safeguarding partner signs off: its lead safeguarding partner (``signoff: all_lead_safeguarding_partners``) or
  its delegated safeguarding partner (``partnership_executive``).

The figures are aggregate counts only (no case references, children, people or free text), over the cases of
one partnership whose date falls in the period: incidents by the date the local authority became aware, local
reviews by the decision date, escalations by the day they were raised, learning by the month it happened.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Engine

from safeguarding.calendar import WorkingCalendar
from safeguarding.case_records import ENGINE, Actor, YearlyReportInput
from safeguarding.tables import Case, LearningTag, Partnership, Task

PROCESS = "yearly_report"
STEP_DEFAULTS = {"draft_working_days_before_due": 30, "scrutiny_working_days": 10, "signoff_working_days": 10,
                 "copies_within_working_days": 7, "reminder_working_days": 5}
RECIPIENTS = {"national_panel": "the national Child Safeguarding Practice Review Panel",
              "foundations": "Foundations (formerly What Works for Children's Social Care)"}
SIGNERS = {"all_lead_safeguarding_partners": "lead", "partnership_executive": "delegate"}
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")


def workflow_id(partnership_id: str, reference: str) -> str:
    return f"{PROCESS}-{partnership_id}-{reference}"


def day_text(day: date) -> str:
    """1 April 2025 (GOV.UK style)."""
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


# --- the period -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    start: date
    end: date

    @property
    def label(self) -> str:
        """2025-26, or 2025 for a calendar year."""
        if self.start.year == self.end.year:
            return str(self.start.year)
        return f"{self.start.year}-{self.end.year % 100:02d}"

    @property
    def reference(self) -> str:
        return f"YR-{self.label}"

    @property
    def words(self) -> str:
        return f"{day_text(self.start)} to {day_text(self.end)}"

    def following(self) -> Period:
        return period_starting(self.end + timedelta(days=1))

    @property
    def opens_next(self) -> date:
        """The day the next period's report opens by itself: the day after the next period ends."""
        return self.following().end + timedelta(days=1)


def _month_day(text: str) -> tuple[int, int]:
    return int(text[:2]), int(text[3:])


def period_starting(start: date) -> Period:
    """The 12 months from ``start`` (the arrangements' validator makes the configured end the day before it)."""
    try:
        next_start = start.replace(year=start.year + 1)
    except ValueError:  # 29 February: the validator refuses 02-29, so only a hand-made date gets here
        next_start = date(start.year + 1, 3, 1)
    return Period(start, next_start - timedelta(days=1))


class PeriodError(ValueError):
    """A period that does not fit the arrangements (the message names what is expected)."""


def check_period_start(config: dict[str, Any], start: date, today: date) -> Period:
    """The period beginning ``start``: it must begin on the configured first day and must have begun."""
    month, day = _month_day(config["period"]["start"])
    if (start.month, start.day) != (month, day):
        raise PeriodError(f"the reporting year starts on {day} {MONTHS[month - 1]} in these arrangements: enter "
                          f"{day} {MONTHS[month - 1]} of the year the report covers")
    if start > today:
        raise PeriodError(f"that reporting year has not begun yet (today is {day_text(today)})")
    return period_starting(start)


def latest_ended_period(config: dict[str, Any], today: date) -> Period:
    """The last reporting period that ended before ``today``: the one a report started today covers."""
    month, day = _month_day(config["period"]["start"])
    start = date(today.year, month, day)
    while period_starting(start).end >= today:
        start = start.replace(year=start.year - 1)
    return period_starting(start)


# --- the due date -----------------------------------------------------------------------------------------------


def publish_by_missing(doc: dict[str, Any]) -> bool:
    return not ((doc.get("yearly_report") or {}).get("publish_by") or {}).get("month_day")


def publish_by_warning(doc: dict[str, Any]) -> str | None:
    """What the editor and the lead's pages say when the arrangements set no publication date, else None."""
    if not publish_by_missing(doc):
        return None
    months = (doc.get("yearly_report") or {}).get("max_interval_months", 12)
    return ("These arrangements set no date by which the yearly report must be published (yearly_report.publish_by "
            f"is empty). Each report is then due {months} months after the previous one was published, and the first "
            "one has no due date at all unless you give the date the previous report was published. Set "
            "publish_by.month_day (for example 09-30) once the date is confirmed.")


@dataclass(frozen=True)
class Due:
    day: date | None
    reason: str


def due_date(doc: dict[str, Any], calendar: WorkingCalendar, period: Period, previous: date | None) -> Due:
    """When the report for ``period`` must be published, and why (see the module's docstring)."""
    config = doc["yearly_report"]
    options: list[tuple[date, str]] = []
    month_day = (config.get("publish_by") or {}).get("month_day")
    if month_day:
        month, day = _month_day(month_day)
        fixed = date(period.end.year, month, day)
        if fixed <= period.end:
            fixed = fixed.replace(year=fixed.year + 1)
        options.append((fixed, f"the arrangements' publication date ({day} {MONTHS[month - 1]}) after the "
                               "reporting year"))
    if previous is not None:
        months = int(config["max_interval_months"])
        options.append((calendar.add_months(previous, months),
                        f"{months} months after the previous report was published on {day_text(previous)}"))
    if not options:
        return Due(None, "no due date: the arrangements set no publication date (publish_by) and the previous "
                         "report's publication date is not known")
    day, reason = min(options)
    return Due(day, reason)


def steps(config: dict[str, Any]) -> dict[str, int]:
    return {**STEP_DEFAULTS, **(config.get("steps") or {})}


def author_role(doc: dict[str, Any]) -> str:
    return doc["yearly_report"].get("author_role") or doc["data_protection"]["reidentification_key_role"]


def may_start(doc: dict[str, Any], user_ref: str, kind: str) -> bool:
    """Who may start a yearly report: the partnership's leads and the members of the author role."""
    members = next((r.get("members", []) for r in doc.get("roles", []) if r["id"] == author_role(doc)), [])
    return kind == "partnership_lead" or user_ref in members


def report_input(doc: dict[str, Any], version: int, period: Period, previous: date | None, opened_by: Actor,
                 now: datetime) -> YearlyReportInput:
    """The workflow input: the pinned arrangements, a calendar wide enough for every date the report meets (the
    previous publication, the due date, the day the next report opens), the period and its due date."""
    first = min(period.start, previous or period.start)
    calendar = WorkingCalendar.for_config(doc["calendar"], first.year - 1, period.end.year + 3)
    due = due_date(doc, calendar, period, previous)
    return YearlyReportInput(
        partnership_id=doc["partnership"]["id"], reference=period.reference, arrangements_version=version,
        arrangements=doc, calendar=calendar.to_payload(), period_start=period.start.isoformat(),
        period_end=period.end.isoformat(), due_date=due.day.isoformat() if due.day else "", due_reason=due.reason,
        previous_published_on=previous.isoformat() if previous else "", opened_by=opened_by,
        opened_at=now.astimezone(UTC).isoformat(), engine=ENGINE)


def latest_publication(engine: Engine, partnership_id: str, before: date | None = None) -> date | None:
    """The last date a yearly report of the partnership was published (from the read model), if any."""
    query = select(func.max(Case.publication_date)).where(
        Case.partnership_id == partnership_id, Case.process == PROCESS, Case.published.is_(True))
    if before is not None:
        query = query.where(Case.aware_date < before)
    with engine.connect() as conn:
        return conn.execute(query).scalar()


# --- the figures --------------------------------------------------------------------------------------------------


@dataclass
class Section:
    title: str
    rows: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class Figures:
    partnership_id: str
    partnership_name: str
    period: Period
    computed_on: date
    sections: list[Section]

    def as_json(self) -> dict[str, Any]:
        return {"partnership_id": self.partnership_id, "partnership_name": self.partnership_name,
                "period": {"start": self.period.start.isoformat(), "end": self.period.end.isoformat(),
                           "label": self.period.label},
                "computed_on": self.computed_on.isoformat(),
                "sections": [{"title": s.title, "rows": [{"measure": m, "value": v} for m, v in s.rows]}
                             for s in self.sections]}


def _in(column: Any, period: Period) -> Any:
    return and_(column >= period.start, column <= period.end)


def _cases(conn: Any, partnership_id: str, process: str, period: Period) -> list[Any]:
    return list(conn.execute(select(Case.__table__).where(
        Case.partnership_id == partnership_id, Case.process == process, _in(Case.aware_date, period))))


def _incidents(rows: list[Any], doc: dict[str, Any], today: date) -> tuple[Section, Section]:
    labels = {c["id"]: c.get("label", c["id"]) for c in doc["serious_incident_notification"]["categories"]}
    sent = [r for r in rows if r.notification_sent_on is not None]
    late = [r for r in sent if r.notification_due is not None and r.notification_sent_on > r.notification_due]
    unsent = [r for r in rows if r.notification_sent_on is None]
    notifications = Section("Serious incident notifications", [
        ("Serious incidents recorded (the local authority became aware in the year)", len(rows)),
        *[(f"Of which: {labels.get(cat, cat)}", n) for cat, n in sorted(Counter(r.category for r in rows).items())],
        ("Notified to the Panel within the deadline", len(sent) - len(late)),
        ("Notified late", len(late)),
        ("Working days late, the longest", max((r.notification_days_late or 0 for r in late), default=0)),
        ("Not yet notified, still within the deadline",
         sum(1 for r in unsent if r.notification_due is not None and r.notification_due >= today)),
        ("Not yet notified, past the deadline",
         sum(1 for r in unsent if r.notification_due is not None and r.notification_due < today))])
    reviews = [r for r in rows if r.rapid_review_required]
    submitted = [r for r in reviews if r.rapid_review_submitted_on is not None]
    rr_late = [r for r in submitted
               if r.rapid_review_due is not None and r.rapid_review_submitted_on > r.rapid_review_due]
    responses = Counter(r.panel_response for r in reviews if r.panel_response)
    rapid = Section("Rapid reviews", [
        ("Rapid reviews required", len(reviews)),
        ("Sent to the Panel within the deadline", len(submitted) - len(rr_late)),
        ("Sent to the Panel late", len(rr_late)),
        ("Not yet sent to the Panel", len(reviews) - len(submitted)),
        ("Decided to hold a local child safeguarding practice review",
         sum(1 for r in reviews if r.lcspr_decision == "yes")),
        ("Decided not to hold one", sum(1 for r in reviews if r.lcspr_decision == "no")),
        ("The Panel agreed with the decision", responses.get("agrees", 0)),
        ("The Panel disagreed", responses.get("disagrees", 0)),
        ("The Panel held a national review", responses.get("national_review", 0))])
    return notifications, rapid


def _reviews(conn: Any, partnership_id: str, period: Period, today: date) -> Section:
    started = _cases(conn, partnership_id, "lcspr", period)
    published = conn.execute(select(func.count()).select_from(Case).where(
        Case.partnership_id == partnership_id, Case.process == "lcspr", Case.published.is_(True),
        _in(Case.publication_date, period))).scalar_one()
    tasks = Task.__table__
    actions = list(conn.execute(select(tasks.c.status, tasks.c.due_date, tasks.c.data).join(
        Case, Case.id == tasks.c.case_id).where(
        Case.partnership_id == partnership_id, Case.process == "lcspr", tasks.c.type == "lcspr_action",
        tasks.c.opened_at >= datetime.combine(period.start, datetime.min.time(), UTC),
        tasks.c.opened_at < datetime.combine(period.end + timedelta(days=1), datetime.min.time(), UTC))))
    outcomes = Counter(json.loads(a.data or "{}").get("outcome") for a in actions if a.status == "done")
    still_open = [a for a in actions if a.status == "open"]
    return Section("Local child safeguarding practice reviews", [
        ("Reviews started in the year (decided or handed back by the Panel)",
         sum(1 for r in started if r.status != "suspended")),
        ("Held as national reviews (the local review suspended)", sum(1 for r in started if r.status == "suspended")),
        ("Of the reviews started in the year: still open", sum(1 for r in started if r.status == "open")),
        ("Of the reviews started in the year: final report overdue",
         sum(1 for r in started if r.status == "open" and r.report_due is not None and r.report_due < today
             and r.published is None)),
        ("Reports published in the year", published),
        ("Of the reviews started in the year: decided not to publish", sum(1 for r in started if r.published is False)),
        ("Actions from reviews' recommendations, recorded in the year", len(actions)),
        ("Actions done", outcomes.get("done", 0)),
        ("Actions closed without being done (with a reason)", outcomes.get("closed", 0)),
        ("Actions still open", len(still_open)),
        ("Actions still open and past their due date",
         sum(1 for a in still_open if a.due_date is not None and a.due_date < today))])


def _escalations(rows: list[Any]) -> Section:
    disagreements = [r for r in rows if r.ladder_purpose != "overdue_work"]
    overdue = [r for r in rows if r.ladder_purpose == "overdue_work"]
    by_stage = Counter(r.highest_stage for r in disagreements if r.highest_stage)
    outcomes = Counter(r.outcome for r in disagreements if r.outcome)
    return Section("Escalations", [
        ("Professional disagreements raised", len(disagreements)),
        *[(f"Of which the highest stage reached was stage {stage}", n) for stage, n in sorted(by_stage.items())],
        ("Resolved", outcomes.get("resolved", 0)),
        ("Withdrawn", outcomes.get("withdrawn", 0)),
        ("Still open", sum(1 for r in disagreements if r.status == "open")),
        ("Stage time limits missed", sum(r.timeouts or 0 for r in disagreements)),
        ("Shown to the national view", sum(1 for r in disagreements if r.reached_national)),
        ("Overdue statutory work escalated", len(overdue)),
        *[(f"Overdue work that reached stage {stage}", n)
          for stage, n in sorted(Counter(r.highest_stage for r in overdue if r.highest_stage).items())]])


def _learning(conn: Any, doc: dict[str, Any], partnership_id: str, period: Period) -> Section:
    from safeguarding.themes import LEARNING_KINDS, themes_for

    events = _cases(conn, partnership_id, "learning", period)
    labels = themes_for(doc)
    tags = LearningTag.__table__.c
    themes = conn.execute(select(tags.tag, func.count()).where(
        tags.partnership_id == partnership_id, tags.tag_type == "theme",
        tags.month >= period.start.isoformat()[:7], tags.month <= period.end.isoformat()[:7])
        .group_by(tags.tag).order_by(func.count().desc(), tags.tag)).all()
    kinds = Counter(r.category for r in events)
    return Section("Learning", [
        ("Learning events recorded by practitioners", len(events)),
        *[(f"Of which: {label}", kinds[kind]) for kind, label in LEARNING_KINDS if kinds.get(kind)],
        *[(f"Theme: {labels.get(tag, tag)} (learning events, rapid reviews and escalations)", n)
          for tag, n in themes]])


def figures(engine: Engine, doc: dict[str, Any], period: Period, today: date) -> Figures:
    """The report's figures for one partnership and period, from the read model (a fixed handful of queries)."""
    pid = doc["partnership"]["id"]
    with engine.connect() as conn:
        name = conn.execute(select(Partnership.name).where(Partnership.id == pid)).scalar() or \
            doc["partnership"].get("name", pid)
        notifications, rapid = _incidents(_cases(conn, pid, "incident", period), doc, today)
        sections = [notifications, rapid, _reviews(conn, pid, period, today),
                    _escalations(_cases(conn, pid, "escalation", period)), _learning(conn, doc, pid, period)]
    return Figures(pid, name, period, today, sections)


def figures_csv(found: Figures) -> str:
    from safeguarding.monitoring import csv_text

    return csv_text(["Period", "Section", "Measure", "Value"],
                    ([found.period.label, s.title, measure, value]
                     for s in found.sections for measure, value in s.rows))


NARRATIVE = [  # what the report must say (Working Together 2018 and 2023), for the partnership to write
    ("What the partners have done", "What the safeguarding partners and relevant agencies have done under the "
     "arrangements this year, including on child safeguarding practice reviews."),
    ("How effective the arrangements have been", "The evidence of impact (training included), and the areas where "
     "there has been little or no progress."),
    ("Learning from reviews", "Decisions and actions taken on the recommendations of local and national reviews, and "
     "the learning applied."),
    ("The voices of children and families", "How feedback from children and families has informed the work."),
    ("Independent scrutiny", "The independent scrutineer's view of the arrangements and of this report."),
    ("Priorities for next year", "The multi-agency priorities, and how progress will be measured."),
]


def figures_docx(found: Figures) -> bytes:
    """A Word document the partnership edits: headings for what the report must say, then the figures as tables."""
    from docx import Document

    document = Document()
    document.core_properties.title = f"Yearly report {found.period.label}: {found.partnership_name}"
    document.add_heading(f"{found.partnership_name}: yearly report {found.period.label}", level=0)
    document.add_paragraph(f"Reporting period: {found.period.words}.")
    for heading, prompt in NARRATIVE:
        document.add_heading(heading, level=1)
        document.add_paragraph().add_run(f"[Write here: {prompt}]").italic = True
    document.add_heading("Figures", level=1)
    document.add_paragraph(f"From the partnership's case records on {day_text(found.computed_on)}. Counts of "
                           "cases whose date falls in the reporting period: incidents by the date the local "
                           "authority became aware, local reviews by the decision to hold them, escalations by the "
                           "day they were raised, learning by the month it happened.")
    for section in found.sections:
        document.add_heading(section.title, level=2)
        table = document.add_table(rows=1, cols=2)
        table.style = "Table Grid"
        table.rows[0].cells[0].text, table.rows[0].cells[1].text = "Measure", "Number"
        for measure, value in section.rows:
            cells = table.add_row().cells
            cells[0].text, cells[1].text = measure, str(value)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()
