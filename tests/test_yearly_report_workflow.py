"""The yearly report as a process, on the time-skipping server: started through the same call the API and the
lead's page use, tasks done through the same Updates, every assertion on the read model (what the pages show).

The reporting period and the previous publication are written out, so every due date below is a fixed date."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlmodel import Session, select

from safeguarding.clock import london_today
from safeguarding.tables import Case, TaskCandidate
from tests.support.workflow_driver import NE, calendar_for, eventually, running_worker
from tests.support.yearly_report import URL, Report
from web.errors import ApiError


@pytest.fixture
async def report(time_env, seeded_engine, settings):
    async with running_worker(time_env, seeded_engine, settings):
        yield Report(time_env, seeded_engine, settings)


async def test_draft_scrutiny_signoff_publication_copies_and_the_next_report_starts_itself(report):
    today = london_today()
    cal = calendar_for(report.engine)
    out = await report.start(period_start=date(2025, 4, 1), previous_published_on=date(2026, 6, 30))
    # Riverford & Vale set no publish_by: due 12 months after the previous publication, and the API says so
    assert (out["reference"], out["due_date"]) == ("YR-2025-26", "2027-06-30")
    assert "no date by which the yearly report must be published" in out["warnings"][0]
    case = report.case()
    assert (case.process, case.status, case.aware_date, case.report_due) == (
        "yearly_report", "open", date(2025, 4, 1), date(2027, 6, 30))
    draft = report.task("draft")
    assert draft.due_date == date(2027, 5, 18)  # 30 working days before Wed 30 June 2027
    assert draft.candidate_role == "business_manager"
    assert "reporting period 1 April 2025 to 31 March 2026" in report.messages("yearly_report_started")[0]
    assert "12 months after the previous report was published on 30 June 2026" in report.messages()[0]

    await report.do("draft", {"drafted_on": today.isoformat()})
    scrutiny = report.task("scrutiny")  # Riverford & Vale's scrutineer reviews the yearly report
    assert (scrutiny.candidate_role, scrutiny.due_date) == ("independent_scrutineer", cal.add_working_days(today, 10))
    assert report.open_keys() == ["scrutiny"]
    await report.do("scrutiny", {"reviewed_on": today.isoformat(), "changes_needed": False,
                                 "statement": "The arrangements are effective; priorities are evidenced."},
                    by="u-rv-scrutineer")
    # each partner's LEAD safeguarding partner signs off (signoff: all_lead_safeguarding_partners), not its delegate
    assert report.open_keys() == ["signoff-riverford-council", "signoff-vale-icb", "signoff-vale-police"]
    with pytest.raises(ApiError) as err:
        await report.do("signoff-riverford-council", {"agree": True}, by="u-rv-la-dcs")
    assert err.value.status == 403
    with pytest.raises(ApiError) as err:  # publishing before the partners signed off
        await report.do("publish", {"published_on": today.isoformat(), "url": URL})
    assert err.value.status == 409 and "sign off" in err.value.message
    await report.sign_all()

    publish = report.task("publish")
    assert publish.due_date == date(2027, 6, 30)
    with pytest.raises(ApiError) as err:  # a date in the future changes nothing
        await report.do("publish", {"published_on": (today + timedelta(days=3)).isoformat(), "url": URL})
    assert err.value.status == 422 and err.value.fields[0].path == "/published_on"
    await report.do("publish", {"published_on": today.isoformat(), "url": URL})
    case = report.case()
    assert (case.published, case.publication_date) == (True, today)
    assert report.open_keys() == ["copy-foundations", "copy-national_panel"]
    copy = report.task("copy-national_panel")
    assert copy.title == "Send a copy to the national Child Safeguarding Practice Review Panel"
    assert copy.due_date == cal.add_working_days(today, 7)
    await report.do("copy-national_panel", {"sent_on": today.isoformat(), "reference": "CSPRP-2026-114"})
    assert report.case().status == "open"
    await report.do("copy-foundations", {"sent_on": today.isoformat()})
    case = report.case()
    assert case.status == "closed"
    assert case.stage == "Published; the 2026-27 report opens on 1 April 2027"

    # The next reporting year (1 April 2026 to 31 March 2027) ends; its report opens by itself on 1 April 2027,
    # due 12 months after this one was published.
    first = report.case_id
    await report.env.sleep(date(2027, 4, 2) - london_today())
    next_id = "yearly_report-riverford-and-vale-YR-2026-27"
    await eventually(lambda: report.case(next_id) is not None)
    nxt = report.case(next_id)
    assert (nxt.aware_date, nxt.report_due, nxt.opened_by) == (date(2026, 4, 1), cal.add_months(today, 12), "system")
    await eventually(lambda: any("YR-2026-27" in m for m in report.messages("next_report")))
    assert report.messages("next_report") == [f"The yearly report 2026-27 was started: case {next_id}"]
    assert first != next_id


async def test_changes_asked_and_a_partner_who_does_not_sign_send_the_draft_back(report):
    today = london_today()
    await report.start(period_start=date(2025, 4, 1), previous_published_on=date(2026, 6, 30))
    await report.do("draft", {"drafted_on": today.isoformat()})
    with pytest.raises(ApiError) as err:  # a statement of only spaces is refused, naming the field
        await report.do("scrutiny", {"reviewed_on": today.isoformat(), "changes_needed": True, "statement": "   "},
                        by="u-rv-scrutineer")
    assert err.value.status == 422 and err.value.fields[0].path == "/statement"
    await report.do("scrutiny", {"reviewed_on": today.isoformat(), "changes_needed": True,
                                 "statement": "Say what changed after the Child A review."}, by="u-rv-scrutineer")
    assert report.open_keys() == ["draft-2"]
    assert report.task("draft-2").title == "Revise the draft yearly report"
    assert any("asked for changes: Say what changed" in m for m in report.messages("task_completed"))
    await report.do("draft-2", {"drafted_on": today.isoformat(), "changes": "Added the Child A learning."})
    await report.do("scrutiny-2", {"reviewed_on": today.isoformat(), "changes_needed": False,
                                   "statement": "Now complete."}, by="u-rv-scrutineer")
    await report.do("signoff-riverford-council-2", {"agree": True}, by="u-rv-la-ceo")
    with pytest.raises(ApiError) as err:  # not signing off needs comments
        await report.do("signoff-vale-police-2", {"agree": False}, by="u-rv-police-cc")
    assert err.value.status == 422 and err.value.fields[0].path == "/comments"
    await report.do("signoff-vale-police-2", {"agree": False, "comments": "The police figures are incomplete."},
                    by="u-rv-police-cc")
    assert report.open_keys() == ["draft-3"]  # the other sign-off was cancelled; asked again for the new draft
    assert report.task("signoff-vale-icb-2").status == "cancelled"
    await report.do("draft-3", {"drafted_on": today.isoformat(), "changes": "Police figures added."})
    await report.do("scrutiny-3", {"reviewed_on": today.isoformat(), "changes_needed": False,
                                   "statement": "Agreed."}, by="u-rv-scrutineer")
    await report.sign_all("-3")
    assert report.open_keys() == ["publish"]
    with pytest.raises(ApiError) as err:  # one report per reporting year
        await report.start(period_start=date(2025, 4, 1))
    assert err.value.status == 409


async def test_no_publication_date_and_no_previous_report_means_no_due_date_and_a_warning(report):
    out = await report.start(period_start=date(2025, 4, 1))
    assert out["due_date"] is None
    assert out["warnings"]
    case = report.case()
    assert case.report_due is None and report.task("draft").due_date is None
    assert "NO DUE DATE" in report.messages("yearly_report_started")[0]
    assert "set yearly_report.publish_by in the arrangements" in report.messages("yearly_report_started")[0]


async def test_the_earlier_of_publish_by_and_twelve_months_and_an_overdue_draft(report):
    # Northmoor & Eastholme: publish by 30 September; the previous report was published on Sat 20 September 2025,
    # and 12 months on is Sun 20 September 2026, which this partnership rolls forward to Mon 21 September 2026:
    # earlier than 30 September, so that is the due date. The draft (40 working days before) is long overdue.
    await report.start(partnership=NE, by="u-ne-business-manager", period_start=date(2025, 4, 1),
                       previous_published_on=date(2025, 9, 20))
    case = report.case()
    assert case.report_due == date(2026, 9, 21)
    draft = report.task("draft")
    assert (draft.due_date, draft.overdue) == (date(2026, 7, 23), True)
    assert case.overdue_tasks == 1
    assert any("Overdue: Draft the yearly report was due 23 July 2026" in m for m in report.messages("task_overdue"))
    # partnership_executive: each partner's delegated safeguarding partner signs off
    today = london_today()
    await report.do("draft", {"drafted_on": today.isoformat()}, by="u-ne-business-manager")
    await report.do("scrutiny", {"reviewed_on": today.isoformat(), "changes_needed": False, "statement": "Fine."},
                    by="u-ne-scrutineer-1")
    signoff = report.task("signoff-moors-icb")
    assert signoff.candidate_label == ("Director of Nursing and Quality, "
                                       "NHS Northmoor and Eastholme Integrated Care Board")
    with Session(report.engine) as session:
        assert session.exec(select(TaskCandidate.user_ref).where(
            TaskCandidate.task_id == f"{report.case_id}/signoff-moors-icb")).all() == ["u-ne-icb-nursing"]


async def test_bad_starts_change_nothing(report):
    with pytest.raises(ApiError) as err:
        await report.start(period_start=date(2025, 5, 1), previous_published_on=london_today() + timedelta(days=2))
    assert err.value.status == 422
    assert [f.path for f in err.value.fields] == ["/period_start", "/previous_published_on"]
    assert "starts on 1 April" in err.value.fields[0].message
    with pytest.raises(ApiError) as err:  # a practitioner may not start it
        await report.start(by="u-rv-social-worker")
    assert err.value.status == 403
    with Session(report.engine) as session:
        assert session.exec(select(Case).where(Case.process == "yearly_report")).all() == []
