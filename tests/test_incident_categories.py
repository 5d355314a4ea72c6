"""Issue 16, point 1: each incident category says who is notified and whether the national Panel sees it; the age
at the date of the incident is asked where the category depends on it.

The workflow tests run on the time-skipping server with the dates written out; the read-model tests (the Panel's
overview, lists and figures) run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import copy
from datetime import date

import pytest
from sqlmodel import Session

from activities.read_model import apply_snapshot
from safeguarding import monitoring, national
from safeguarding.case_records import CaseSnapshot
from safeguarding.incident_categories import (
    category,
    category_problems,
    notification_title,
    panel_sees,
    recipients,
    recipients_text,
)
from safeguarding.tables import ArrangementsVersion, Partnership
from tests.support.incident import RV, RV_NOTIFIER, Incident, running_worker

CARE_LEAVER = "care_leaver_death_to_24"
HARM = "serious_harm_abuse_neglect"


# --- the rules, as pure functions ----------------------------------------------------------------------------


def test_a_care_leavers_death_notifies_the_secretary_of_state_and_ofsted_not_the_panel(riverford):
    care_leaver, harm = category(riverford, CARE_LEAVER), category(riverford, HARM)
    assert recipients(care_leaver) == ["secretary_of_state", "ofsted"] and not panel_sees(care_leaver)
    assert notification_title(care_leaver) == "Notify the Secretary of State and Ofsted"
    assert recipients(harm) == ["national_panel"] and panel_sees(harm)  # the defaults
    assert notification_title(harm) == "Notify the national Panel"
    assert recipients_text(["national_panel", "dfe", "ofsted"]) == \
        "the national Panel, the Department for Education and Ofsted"


def test_the_age_at_the_incident_is_asked_where_the_category_depends_on_it(riverford):
    # a care leaver up to and including age 24 (the example says 16 to 24)
    assert category_problems(riverford, CARE_LEAVER, 19) == []
    assert category_problems(riverford, CARE_LEAVER, 16) == []
    assert category_problems(riverford, CARE_LEAVER, 24) == []
    ((field, message),) = category_problems(riverford, CARE_LEAVER, None)
    assert field == "age_at_incident" and message.startswith("Enter the age at the date of the incident")
    ((field, message),) = category_problems(riverford, CARE_LEAVER, 25)
    assert field == "age_at_incident" and "from 16 to 24" in message and "not 25" in message
    ((field, _),) = category_problems(riverford, CARE_LEAVER, 15)
    assert field == "age_at_incident"
    # a category that covers every age asks none
    assert category_problems(riverford, HARM, None) == []
    ((field, _),) = category_problems(riverford, HARM, 31)
    assert field == "age_at_incident"
    ((field, message),) = category_problems(riverford, "no_such_category", None)
    assert field == "category" and HARM in message


def test_an_open_ended_age_range_is_explained(riverford):
    doc = copy.deepcopy(riverford)
    category(doc, CARE_LEAVER)["age_at_incident"] = {"max": 24}
    ((_, message),) = category_problems(doc, CARE_LEAVER, 25)
    assert "up to and including 24" in message


# --- the workflow, on the time-skipping server ----------------------------------------------------------------


@pytest.fixture
async def incident(time_env, seeded_engine, settings):
    async with running_worker(time_env, seeded_engine, settings):
        yield Incident(time_env, seeded_engine, settings)


async def test_a_care_leavers_death_goes_to_the_secretary_of_state_and_ofsted(incident):
    # aware Mon 16 Nov 2026: the notification is due 5 working days later, Mon 23 Nov 2026
    await incident.open(date(2026, 11, 16), CARE_LEAVER, age=19)
    notify = incident.task("notification")
    assert notify.title == "Notify the Secretary of State and Ofsted"
    assert notify.due_date == date(2026, 11, 23)
    assert sorted(incident.candidates("notification")) == ["u-rv-la-dcs", "u-rv-la-head-qa"]
    case = incident.case()
    assert case.panel_sees is False and case.stage == "Notification to the Secretary of State and Ofsted"
    assert incident.task("meeting") is None and case.rapid_review_due is None
    (opened,) = incident.events("case_opened")
    assert "aged 19 at the date of the incident" in opened.message
    assert '"secretary_of_state", "ofsted"' in opened.data
    await incident.complete("notification", {"sent_on": "2026-11-20", "local_partners_notified": True},
                            RV_NOTIFIER)
    case = incident.case()
    assert case.status == "closed" and case.notification_sent_on == date(2026, 11, 20)
    assert "Notification sent to the Secretary of State and Ofsted on 20 November 2026 (on time)" in [
        e.message for e in incident.events("task_completed")]


async def test_a_panel_category_still_notifies_the_panel(incident):
    # aware Mon 16 Nov 2026: notification due Mon 23 Nov, rapid review (clock from awareness) due Mon 7 Dec 2026
    await incident.open(date(2026, 11, 16), HARM)
    assert incident.task("notification").title == "Notify the national Panel"
    case = incident.case()
    assert case.panel_sees is True and case.stage.startswith("Rapid review")
    assert case.rapid_review_due == date(2026, 12, 7)
    await incident.complete("notification", {"sent_on": "2026-11-18", "local_partners_notified": True},
                            RV_NOTIFIER)
    assert "Notification sent to the Panel on 18 November 2026 (on time)" in [
        e.message for e in incident.events("task_completed")]


async def test_the_panel_does_not_see_a_care_leavers_death(incident, seeded_engine):
    # both opened aware Mon 16 Nov 2026 and not notified: by Tue 1 Dec 2026 both notifications are late
    care_leaver = await incident.open(date(2026, 11, 16), CARE_LEAVER, age=22)
    harm_case = Incident(incident.env, incident.engine, incident.settings)
    harm = await harm_case.open(date(2026, 11, 16), HARM)
    today = date(2026, 12, 1)
    with Session(seeded_engine) as session:
        listed, total = national.list_cases(session, today, partnership_id=RV)
        assert [c.case_id for c in listed] == [harm] and total == 1
        figures = national.figures(session, today, partnership_id=RV)
        assert (figures.cases, figures.notifications_late) == (1, 1)
        ref = incident.case().national_ref
        assert national.cases_by_ref(session, today, ref) == []  # not on the Panel's case page either
        report = monitoring.compute_report(session, today)
        assert [line.national_ref for line in report.late_notifications] == [harm_case.case().national_ref]
        assert report.totals.notifications_late == 1
    assert care_leaver != harm


# --- the read model's figures, on SQLite and PostgreSQL ----------------------------------------------------------


def _snapshot(case_id: str, category_id: str, *, seen: bool | None, sent: str | None) -> CaseSnapshot:
    fields = {"category": category_id, "status": "open", "stage": "Notification", "arrangements_version": 1,
              "aware_date": "2026-11-16", "notification_due": "2026-11-23", "notification_sent_on": sent,
              "notification_days_late": 2 if sent else None, "rapid_review_required": category_id == HARM,
              "rapid_review_due": "2026-12-07" if category_id == HARM else None,
              "children": [{"pseudonym": "Child A"}, {"pseudonym": "Child B"}], "summary": "", "agencies": [],
              "opened_by": "u-a", "opened_at": "2026-11-16T09:00:00+00:00", "overdue_tasks": 0}
    if seen is not None:  # cases from before engine 4 never said: the column's default (seen) stands
        fields["panel_sees"] = seen
    return CaseSnapshot.from_payload({"case_id": case_id, "partnership_id": RV, "case_ref": case_id[-4:],
                                      "process": "incident", "revision": 1, "fields": fields, "tasks": [],
                                      "events": [], "messages": []})


def test_the_panels_figures_leave_out_categories_it_does_not_see(engine, riverford):
    from safeguarding.arrangements import canonical_json, content_hash

    with Session(engine) as session:
        session.add(Partnership(id=RV, name="Riverford & Vale"))
        session.flush()
        session.add(ArrangementsVersion(partnership_id=RV, number=1, content_hash=content_hash(riverford),
                                        document=canonical_json(riverford), author="test"))
        session.commit()
    # notified late on Wed 25 Nov 2026 (due Mon 23 Nov): one care leaver's death, one harm case, one old case
    apply_snapshot(engine, _snapshot("incident-rv-CL-1", CARE_LEAVER, seen=False, sent="2026-11-25"), "s")
    apply_snapshot(engine, _snapshot("incident-rv-HA-1", HARM, seen=True, sent="2026-11-25"), "s")
    apply_snapshot(engine, _snapshot("incident-rv-OLD1", HARM, seen=None, sent="2026-11-25"), "s")
    today = date(2026, 12, 1)
    with Session(engine) as session:
        listed, total = national.list_cases(session, today)
        assert sorted(c.case_id for c in listed) == ["incident-rv-HA-1", "incident-rv-OLD1"] and total == 2
        assert {c.children_count for c in listed} == {2}
        figures = national.figures(session, today)
        assert (figures.cases, figures.notifications_judged, figures.notifications_late) == (2, 2, 2)
        report = monitoring.compute_report(session, today)
        assert report.totals.notifications_judged == 2 and report.totals.notifications_late == 2
        assert len(report.late_notifications) == 2
        (row,) = [t for t in report.timeliness if t.partnership_id == RV]
        assert row.notifications_judged == 2


def test_cases_from_before_keep_the_panel_and_count_their_children(db_url):
    """Migration 0009 on a database with cases: they stay the Panel's (it saw every incident before) and their
    children are counted from the list they hold (SQLite and PostgreSQL)."""
    from sqlalchemy import text

    from safeguarding.db import make_engine, upgrade

    engine = make_engine(db_url)
    try:
        upgrade(engine, "0008")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO partnership (id, name, created_at) VALUES ('rv', 'RV', :at)"),
                         {"at": "2026-11-16 09:00:00"})
            for case_id, children in (("incident-rv-A", '[{"pseudonym": "Child A"}, {"pseudonym": "Child B"}]'),
                                      ("incident-rv-B", "[]")):
                conn.execute(text(
                    "INSERT INTO \"case\" (id, partnership_id, case_ref, process, national_ref, category, status, "
                    "stage, arrangements_version, aware_date, rapid_review_required, overdue_tasks, timeouts, urgent, "
                    "reached_national, children, summary, agencies, opened_by, opened_at, revision, updated_at) "
                    "VALUES (:id, 'rv', 'A', 'incident', 'N-1', 'x', 'open', '', 1, '2026-11-16', false, 0, 0, false, "
                    "false, :children, '', '[]', 'u-a', '2026-11-16 09:00:00', 1, '2026-11-16 09:00:00')"),
                    {"id": case_id, "children": children})
        upgrade(engine)
        with engine.connect() as conn:
            rows = conn.execute(text('SELECT id, panel_sees, children_count FROM "case" ORDER BY id')).all()
        assert [(r[0], bool(r[1]), r[2]) for r in rows] == [("incident-rv-A", True, 2), ("incident-rv-B", True, 0)]
    finally:
        engine.dispose()
