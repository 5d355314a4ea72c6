"""The yearly report's rules as pure functions (period, due date, the publish_by warning), the arrangements'
yearly_report section, and the figures from the read model (SQLite and PostgreSQL) as CSV and a Word document."""

from __future__ import annotations

import copy
import csv
import io
import json
import re
from datetime import UTC, date, datetime

import pytest
from docx import Document
from sqlmodel import Session

from safeguarding import yearly_report as yr
from safeguarding.arrangements import validate
from safeguarding.calendar import WorkingCalendar
from safeguarding.tables import Case, LearningTag, Task
from safeguarding.versions import store_version

RV = "riverford-and-vale"
PERIOD = yr.Period(date(2025, 4, 1), date(2026, 3, 31))


def cal(doc) -> WorkingCalendar:
    return WorkingCalendar.for_config(doc["calendar"], 2024, 2029)


def test_the_period_a_report_covers(riverford):
    config = riverford["yearly_report"]
    assert yr.latest_ended_period(config, date(2026, 12, 5)) == PERIOD
    assert yr.latest_ended_period(config, date(2026, 3, 31)) == yr.Period(date(2024, 4, 1), date(2025, 3, 31))
    assert yr.latest_ended_period(config, date(2026, 4, 1)) == PERIOD
    assert (PERIOD.label, PERIOD.reference, PERIOD.words) == ("2025-26", "YR-2025-26",
                                                              "1 April 2025 to 31 March 2026")
    assert PERIOD.opens_next == date(2027, 4, 1)
    calendar_year = {**config, "period": {"start": "01-01", "end": "12-31"}}
    assert yr.latest_ended_period(calendar_year, date(2026, 12, 5)) == yr.Period(date(2025, 1, 1), date(2025, 12, 31))
    assert yr.period_starting(date(2025, 1, 1)).reference == "YR-2025"
    with pytest.raises(yr.PeriodError, match="starts on 1 April"):
        yr.check_period_start(config, date(2025, 5, 1), date(2026, 12, 5))
    with pytest.raises(yr.PeriodError, match="has not begun yet"):
        yr.check_period_start(config, date(2027, 4, 1), date(2026, 12, 5))


def test_the_due_date_is_the_earlier_of_publish_by_and_the_interval(riverford):
    doc = copy.deepcopy(riverford)
    # no publish_by (Riverford & Vale): 12 months after the previous publication, or none at all
    assert yr.due_date(doc, cal(doc), PERIOD, date(2026, 1, 15)).day == date(2027, 1, 15)
    assert yr.due_date(doc, cal(doc), PERIOD, None).day is None
    doc["yearly_report"]["publish_by"]["month_day"] = "09-30"
    due = yr.due_date(doc, cal(doc), PERIOD, None)
    assert due.day == date(2026, 9, 30) and "30 September" in due.reason
    assert yr.due_date(doc, cal(doc), PERIOD, date(2025, 8, 29)).day == date(2026, 8, 29)  # the interval first
    assert yr.due_date(doc, cal(doc), PERIOD, date(2025, 12, 1)).day == date(2026, 9, 30)  # the fixed date first
    doc["yearly_report"]["publish_by"]["month_day"] = "03-31"  # the first 31 March after the period ends
    assert yr.due_date(doc, cal(doc), PERIOD, None).day == date(2027, 3, 31)
    doc["yearly_report"]["max_interval_months"] = 6
    assert yr.due_date(doc, cal(doc), PERIOD, date(2026, 8, 31)).day == date(2027, 2, 28)  # clamped to month end


def test_the_warning_when_publish_by_is_empty(riverford):
    assert "publish_by" in yr.publish_by_warning(riverford)  # the example leaves it empty (to verify)
    doc = copy.deepcopy(riverford)
    doc["yearly_report"]["publish_by"]["month_day"] = "09-30"
    assert yr.publish_by_warning(doc) is None


def test_the_yearly_report_section_of_the_arrangements(riverford):
    doc = copy.deepcopy(riverford)
    doc["yearly_report"]["author_role"] = "business_manger"
    doc["yearly_report"]["steps"] = {"draft_working_days_before_due": -1, "copies_after": 7}
    found = {(i.path, i.message) for i in validate(doc)}
    paths = {p for p, _ in found}
    assert "/yearly_report/author_role" in paths
    assert any("business_manager" in m for p, m in found if p == "/yearly_report/author_role")
    assert "/yearly_report/steps/draft_working_days_before_due" in paths
    assert any(p.startswith("/yearly_report/steps") and "copies_after" in m for p, m in found)
    del doc["yearly_report"]["author_role"], doc["yearly_report"]["steps"]
    assert validate(doc) == []
    assert yr.author_role(doc) == "business_manager"  # default: the business unit (reidentification_key_role)
    assert yr.steps(doc["yearly_report"])["copies_within_working_days"] == 7


def _case(pid, n, process, aware, **values) -> Case:
    base = {"id": f"{process}-{pid}-{n}", "partnership_id": pid, "case_ref": f"C{n}", "process": process,
            "national_ref": f"N-{n:08d}", "category": values.pop("category", process), "status": "closed",
            "arrangements_version": 1, "aware_date": aware, "opened_by": "u-x",
            "opened_at": datetime(2025, 4, 1, tzinfo=UTC)}
    return Case(**{**base, **values})


@pytest.fixture
def read_model(engine, riverford):
    """A year of Riverford & Vale's cases (and two outside the period, and one of another partnership)."""
    with Session(engine) as session:
        store_version(session, RV, riverford, author="test")
        other = copy.deepcopy(riverford)
        other["partnership"]["id"] = "elsewhere"
        store_version(session, "elsewhere", other, author="test")
        rows = [
            _case(RV, 1, "incident", date(2025, 5, 2), category="death_abuse_neglect",
                  notification_due=date(2025, 5, 9),
                  notification_sent_on=date(2025, 5, 8), rapid_review_required=True, rapid_review_due=date(2025, 5, 23),
                  rapid_review_submitted_on=date(2025, 5, 30), lcspr_decision="yes", panel_response="agrees"),
            _case(RV, 2, "incident", date(2025, 11, 3), category="serious_harm_abuse_neglect",
                  notification_due=date(2025, 11, 10), notification_sent_on=date(2025, 11, 12),
                  notification_days_late=2, rapid_review_required=True, rapid_review_due=date(2025, 11, 24),
                  rapid_review_submitted_on=date(2025, 11, 21), lcspr_decision="no", panel_response="disagrees"),
            _case(RV, 3, "incident", date(2026, 3, 30), category="lac_death_any_cause",
                  notification_due=date(2026, 4, 7), status="open"),
            _case(RV, 4, "incident", date(2026, 4, 1), category="death_abuse_neglect"),  # the next period
            _case(RV, 5, "incident", date(2025, 3, 31), category="death_abuse_neglect"),  # the previous period
            _case(RV, 6, "lcspr", date(2025, 6, 1), status="open", report_due=date(2025, 12, 1)),
            _case(RV, 7, "lcspr", date(2024, 10, 1), published=True, publication_date=date(2025, 9, 1)),
            _case(RV, 8, "escalation", date(2025, 7, 1), ladder_purpose="professional_disagreement",
                  highest_stage=2, outcome="resolved", timeouts=1),
            _case(RV, 9, "escalation", date(2025, 8, 1), ladder_purpose="professional_disagreement",
                  highest_stage=4, status="open", reached_national=True, timeouts=3),
            _case(RV, 10, "escalation", date(2025, 9, 1), ladder_purpose="overdue_work", highest_stage=1,
                  outcome="work done"),
            _case(RV, 11, "learning", date(2025, 10, 1), category="near_miss"),
            _case("elsewhere", 12, "incident", date(2025, 6, 1), category="death_abuse_neglect"),
        ]
        session.add_all(rows)
        session.flush()
        for n, status, outcome, due in ((1, "done", "done", date(2025, 9, 1)), (2, "done", "closed", date(2025, 9, 1)),
                                        (3, "open", None, date(2025, 10, 1)), (4, "open", None, date(2027, 1, 1))):
            session.add(Task(id=f"lcspr-{RV}-7/action-{n}", case_id=f"lcspr-{RV}-7", partnership_id=RV,
                             key=f"action-{n}", type="lcspr_action", title="Action", form="lcspr_action.v1",
                             candidate_role="x", status=status, due_date=due,
                             data=json.dumps({"outcome": outcome} if outcome else {}),
                             opened_at=datetime(2025, 9, 2, tzinfo=UTC)))
        for case_id, tag, month, source in ((f"learning-{RV}-11", "information-sharing", "2025-10", "learning"),
                                            (f"incident-{RV}-1", "information-sharing", "2025-05", "rapid_review"),
                                            (f"escalation-{RV}-8", "neglect", "2025-07", "escalation"),
                                            (f"incident-{RV}-4", "neglect", "2026-04", "rapid_review")):
            session.add(LearningTag(case_id=case_id, tag_type="theme", tag=tag, partnership_id=RV, source=source,
                                    kind=source, month=month))
        session.commit()
    return engine


def _rows(found: yr.Figures) -> dict[str, int]:
    return {f"{s.title} / {m}": v for s in found.sections for m, v in s.rows}


def test_the_figures_for_a_year_from_the_read_model(read_model, riverford):
    found = yr.figures(read_model, riverford, PERIOD, date(2026, 12, 5))
    rows = _rows(found)
    sin, rr = "Serious incident notifications", "Rapid reviews"
    assert rows[f"{sin} / Serious incidents recorded (the local authority became aware in the year)"] == 3
    assert rows[f"{sin} / Notified to the Panel within the deadline"] == 1
    assert rows[f"{sin} / Notified late"] == 1
    assert rows[f"{sin} / Working days late, the longest"] == 2
    assert rows[f"{sin} / Not yet notified, past the deadline"] == 1
    assert rows[f"{rr} / Rapid reviews required"] == 2
    assert (rows[f"{rr} / Sent to the Panel within the deadline"], rows[f"{rr} / Sent to the Panel late"]) == (1, 1)
    assert rows[f"{rr} / Decided to hold a local child safeguarding practice review"] == 1
    assert rows[f"{rr} / The Panel disagreed"] == 1
    lcspr = "Local child safeguarding practice reviews"
    assert rows[f"{lcspr} / Reviews started in the year (decided or handed back by the Panel)"] == 1
    assert rows[f"{lcspr} / Of the reviews started in the year: final report overdue"] == 1
    assert rows[f"{lcspr} / Reports published in the year"] == 1
    assert rows[f"{lcspr} / Actions from reviews' recommendations, recorded in the year"] == 4
    assert (rows[f"{lcspr} / Actions done"], rows[f"{lcspr} / Actions closed without being done (with a reason)"],
            rows[f"{lcspr} / Actions still open"],
            rows[f"{lcspr} / Actions still open and past their due date"]) == (1, 1, 2, 1)
    esc = "Escalations"
    assert rows[f"{esc} / Professional disagreements raised"] == 2
    assert rows[f"{esc} / Of which the highest stage reached was stage 2"] == 1
    assert rows[f"{esc} / Of which the highest stage reached was stage 4"] == 1
    assert rows[f"{esc} / Stage time limits missed"] == 4
    assert rows[f"{esc} / Overdue statutory work escalated"] == 1
    themes = [m for m in rows if m.startswith("Learning / Theme:")]
    assert rows["Learning / Learning events recorded by practitioners"] == 1
    assert len(themes) == 2 and rows[themes[0]] == 2 and "neglect" not in themes[0].lower()  # neglect: 1 in period
    assert not any(re.search(r"\bC\d+\b|N-0", m) for m in rows)  # aggregate only: no case references

    text = yr.figures_csv(found)
    table = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert table[0] == ["Period", "Section", "Measure", "Value"]
    assert ["2025-26", "Rapid reviews", "Rapid reviews required", "2"] in table

    document = Document(io.BytesIO(yr.figures_docx(found)))
    headings = [p.text for p in document.paragraphs if p.style.name.startswith(("Heading", "Title"))]
    assert headings[0] == "Riverford and Vale Safeguarding Children Partnership: yearly report 2025-26" or \
        headings[0].endswith(": yearly report 2025-26")
    assert "How effective the arrangements have been" in headings and "Escalations" in headings
    cells = [[c.text for c in row.cells] for t in document.tables for row in t.rows]
    assert ["Rapid reviews required", "2"] in cells
    assert any(p.text == "Reporting period: 1 April 2025 to 31 March 2026." for p in document.paragraphs)
