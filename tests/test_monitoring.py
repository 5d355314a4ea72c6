"""The national body's monitoring page and its CSV exports, over HTTP, from a read model seeded directly.

Three partnerships; notifications on time and late (sent late, and not sent), rapid reviews in progress, overdue,
submitted and awaiting the Panel; escalations of both kinds at different highest stages and timeouts; local reviews
in each state. Then recognisable names of children, families and practitioners where real cases carry them (the
children, the summary, who opened it, people's display names, the timeline, task form data, a withdrawal reason),
and no national page, CSV export or API answer a national-body user can reach may contain any of them.
"""

from __future__ import annotations

import copy
import csv
import html
import io
import json
import re
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from sqlalchemy import event
from sqlmodel import Session, select

from safeguarding import monitoring
from safeguarding.calendar import WorkingCalendar
from safeguarding.clock import london_today
from safeguarding.tables import Case, CaseEvent, OutboxMessage, Task, User
from safeguarding.versions import store_version
from sgflow.seed import DEMO_PASSWORD
from web.app import create_app
from web.pages.monitoring import trend_chart

RV, NE, TS = "riverford-and-vale", "northmoor-and-eastholme", "thornshire"
LEAD = "rv-business-manager@demo.test"
REVIEWER = "rv-teacher-dsl@demo.test"
NE_LEAD = "ne-business-manager@demo.test"
NATIONAL = "panel@demo.test"
ADMIN = "admin@demo.test"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
NAMES = ["Jayden Smith-Okoro", "Mary Wilkins", "Kayleigh Brennan", "DS Tom Hartley", "Ebony Farrow-Lisle"]


@pytest.fixture(autouse=True)
def fresh_cache():
    monitoring.clear_cache()
    yield
    monitoring.clear_cache()


@pytest.fixture
def app(seeded_engine, settings, riverford):
    doc = copy.deepcopy(riverford)
    doc["partnership"]["id"], doc["partnership"]["name"] = TS, "Thornshire Safeguarding Children Partnership"
    with Session(seeded_engine) as session:
        store_version(session, TS, doc, author="test", change_note="a third partnership")
        session.commit()
    return create_app(settings, engine=seeded_engine, temporal_client=None, connect_temporal=False)


@pytest.fixture
async def signed_in(app):
    clients: list[httpx.AsyncClient] = []

    async def sign_in(email: str) -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
        clients.append(client)
        page = await client.get("/sign-in")
        response = await client.post("/sign-in", data={"email": email, "password": DEMO_PASSWORD,
                                                       "csrf_token": TOKEN.search(page.text).group(1)})
        assert response.status_code == 303, response.text[:300]
        return client

    yield sign_in
    for client in clients:
        await client.aclose()


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def add(engine, key: str, pid: str, process: str = "incident", **fields) -> Case:
    today = london_today()
    case_ref = f"{pid[:2].upper()}-LOCAL-{key}"
    case_id = f"{process}-{pid}-{case_ref}"
    values = dict(id=case_id, partnership_id=pid, case_ref=case_ref, process=process,
                  national_ref=f"N-{key.upper():0>8}"[:10], category="serious_harm_abuse_neglect", status="open",
                  stage="Rapid review", arrangements_version=1, aware_date=today - timedelta(days=30),
                  opened_by="u-rv-la-head-qa", opened_at=datetime.now(UTC) - timedelta(days=30),
                  children=json.dumps([{"pseudonym": "Child A", "local_ref": "LA-778812"}]),
                  summary="A child was harmed.", agencies=json.dumps(["vale-icb"]))
    values.update(fields)
    case = Case(**values)
    with Session(engine) as session:
        session.add(case)
        session.commit()
        session.refresh(case)
    return case


@pytest.fixture
def seeded(app, seeded_engine):
    """The mix described in the module docstring; returns the cases by key."""
    e = seeded_engine
    today = london_today()
    d = lambda days: today + timedelta(days=days)  # noqa: E731
    c: dict[str, Case] = {}
    # incidents
    c["a1"] = add(e, "a1", RV, notification_due=d(-20), notification_sent_on=d(-21), notification_days_late=0,
                  rapid_review_required=True, rapid_review_due=d(-5), rapid_review_submitted_on=d(-6),
                  rapid_review_days_late=0)
    c["a2"] = add(e, "a2", RV, notification_due=d(-20), notification_sent_on=d(-17), notification_days_late=3,
                  rapid_review_required=True, rapid_review_due=d(-2), overdue_tasks=2)
    c["a3"] = add(e, "a3", RV, notification_due=d(-1), rapid_review_required=True, rapid_review_due=d(10))
    c["a4"] = add(e, "a4", RV, aware_date=d(-1), notification_due=d(4), rapid_review_required=True,
                  rapid_review_due=d(14))
    c["b1"] = add(e, "b1", NE, notification_due=d(-10), notification_sent_on=d(-8), notification_days_late=1,
                  rapid_review_required=True, rapid_review_due=d(5), opened_by="u-ne-head-qa")
    c["b2"] = add(e, "b2", NE, status="closed", notification_due=d(-60), notification_sent_on=d(-61),
                  notification_days_late=0, rapid_review_required=True, rapid_review_due=d(-45),
                  rapid_review_submitted_on=d(-40), rapid_review_days_late=3, panel_response="agrees",
                  overdue_tasks=5, closed_at=datetime.now(UTC) - timedelta(days=30))
    c["c1"] = add(e, "c1", TS, category="death_abuse_neglect", notification_due=d(-3), notification_sent_on=d(-4),
                  notification_days_late=0, rapid_review_required=False)
    # escalations (category: the issue type, free text through the API; stage: free text once withdrawn)
    esc = dict(process="escalation", category="threshold", children=json.dumps(["Child B"]))
    c["e1"] = add(e, "e1", RV, **esc, aware_date=d(-3), ladder_id="professional-disagreement",
                  ladder_purpose="professional_disagreement", current_stage=1, highest_stage=1,
                  stage="Stage 1: Practitioner to practitioner")
    c["e2"] = add(e, "e2", RV, **esc, aware_date=d(-40), ladder_id="professional-disagreement",
                  ladder_purpose="professional_disagreement", current_stage=4, highest_stage=4, timeouts=4,
                  reached_national=True, overdue_tasks=1, stage="Stage 4: Business unit")
    c["e3"] = add(e, "e3", RV, **esc, aware_date=d(-50), ladder_id="professional-disagreement",
                  ladder_purpose="professional_disagreement", current_stage=2, highest_stage=2, timeouts=1,
                  status="resolved", outcome="resolved", learning_theme="information-sharing",
                  stage="resolved at stage 2", closed_at=datetime.now(UTC) - timedelta(days=40))
    c["e4"] = add(e, "e4", NE, process="escalation", category="overdue_work", aware_date=d(-12),
                  ladder_id="overdue-work", ladder_purpose="overdue_work", current_stage=2, highest_stage=2,
                  timeouts=1, stage="Stage 2: Delegated safeguarding partners", parent_case_id=c["b1"].id)
    c["e5"] = add(e, "e5", NE, process="escalation", category="Kayleigh Brennan’s housing", aware_date=d(-20),
                  ladder_id="professional-disagreement", ladder_purpose="professional_disagreement",
                  current_stage=3, highest_stage=3, urgent=True, reached_national=True, status="withdrawn",
                  outcome="withdrawn", stage="withdrawn: Mary Wilkins and DS Tom Hartley agreed a plan",
                  closed_at=datetime.now(UTC) - timedelta(days=2))
    c["e6"] = add(e, "e6", TS, process="escalation", category="overdue_work", aware_date=d(-70),
                  ladder_id="overdue-work", ladder_purpose="overdue_work", current_stage=3, highest_stage=3,
                  timeouts=2, status="resolved", outcome="work done", stage="the overdue work was done",
                  closed_at=datetime.now(UTC) - timedelta(days=60))
    # local reviews
    lc = dict(process="lcspr", category="lcspr", children="[]", summary="", opened_by="system")
    c["l1"] = add(e, "l1", RV, **lc, aware_date=d(-200), report_due=d(-10), stage="Review: in progress")
    c["l2"] = add(e, "l2", RV, **lc, aware_date=d(-160), report_due=d(20), stage="Review: in progress")
    c["l3"] = add(e, "l3", RV, **lc, aware_date=d(-80), report_due=d(100), stage="Terms of reference")
    c["l4"] = add(e, "l4", NE, **lc, status="suspended", aware_date=d(-30), stage="Suspended: national review")
    c["l5"] = add(e, "l5", NE, **lc, status="closed", aware_date=d(-400), report_due=d(-220), published=True,
                  publication_date=d(-200), closed_at=datetime.now(UTC) - timedelta(days=100))
    c["l6"] = add(e, "l6", TS, **lc, status="closed", aware_date=d(-300), report_due=d(-120), published=False,
                  closed_at=datetime.now(UTC) - timedelta(days=50))
    c["l7"] = add(e, "l7", TS, **lc, aware_date=d(-250), report_due=d(-70), published=True,
                  publication_date=d(-30), stage="Actions")
    return c


def seed_names(engine, cases: dict[str, Case]) -> None:
    """Recognisable names wherever real cases carry free text or people."""
    children = json.dumps([{"pseudonym": "Jayden Smith-Okoro", "local_ref": "LA-778812"}])
    summary = "Mary Wilkins found Jayden Smith-Okoro injured; Kayleigh Brennan (mother) was present."
    with Session(engine) as session:
        for key in ("a1", "a2", "b1", "e2"):
            case = session.get(Case, cases[key].id)
            case.children, case.summary, case.opened_by = children, summary, "u-rv-mary"
            session.add(case)
        session.add(User(email="mary.wilkins@rv.example", display_name="Mary Wilkins", user_ref="u-rv-mary",
                         kind="reviewer", partnership_id=RV, password_hash="x"))
        session.add(User(email="ebony@ne.example", display_name="Ebony Farrow-Lisle", user_ref="u-ne-ebony",
                         kind="reviewer", partnership_id=NE, password_hash="x"))
        for n, key in enumerate(("a1", "a2", "e2", "l1")):
            session.add(CaseEvent(id=f"{cases[key].id}#{n + 1}", case_id=cases[key].id,
                                  partnership_id=cases[key].partnership_id, seq=n + 1, at=datetime.now(UTC),
                                  actor="u-rv-mary", kind="case_opened",
                                  message="Opened by DS Tom Hartley about Jayden Smith-Okoro"))
        session.add(Task(id=f"{cases['a1'].id}/notification", case_id=cases["a1"].id, partnership_id=RV,
                         key="notification", type="notification_sent", title="Notify the national Panel",
                         form="notification_sent.v1", candidate_role="notification_officers",
                         candidate_label="Notification officers", status="done", completed_by="u-rv-mary",
                         completed_at=datetime.now(UTC), opened_at=datetime.now(UTC) - timedelta(days=25),
                         data=json.dumps({"notes": "Told by Mary Wilkins"})))
        session.add(Task(id=f"{cases['a1'].id}/panel-response", case_id=cases["a1"].id, partnership_id=RV,
                         key="panel-response", type="panel_response", title="Respond to the rapid review",
                         form="panel_response.v1", candidate_role="national_panel",
                         candidate_label="the national Panel", status="open",
                         opened_at=datetime.now(UTC) - timedelta(days=6)))
        session.add(Task(id=f"{cases['e2'].id}/stage-4", case_id=cases["e2"].id, partnership_id=RV, key="stage-4",
                         type="ladder_stage", title="Stage 4: Business unit", form="ladder_stage.v1",
                         candidate_role="business_manager", candidate_label="Business manager", status="open",
                         claimed_by="u-rv-mary", overdue=True, due_date=london_today() - timedelta(days=3),
                         opened_at=datetime.now(UTC) - timedelta(days=10)))
        session.add(OutboxMessage(id=f"{cases['a2'].id}#9", partnership_id=RV, case_id=cases["a2"].id,
                                  to_user_refs=json.dumps(["u-rv-mary"]), to_addresses=json.dumps(["m@rv.example"]),
                                  subject="Overdue: meeting about Jayden Smith-Okoro", body="Mary Wilkins, please act"))
        session.commit()


# --- the figures ------------------------------------------------------------------------------------------------


def calendar(engine) -> WorkingCalendar:
    from safeguarding.versions import document_of, get_version

    with Session(engine) as session:
        doc = document_of(get_version(session, RV))
    return WorkingCalendar.for_config(doc["calendar"], 2018, london_today().year + 2)


def test_the_figures_for_a_seeded_mix(app, seeded_engine, seeded):
    today = london_today()
    with Session(seeded_engine) as session:
        report = monitoring.compute_report(session, today)
    t = report.totals
    assert (t.notifications_judged, t.notifications_late, t.notifications_on_time_percent) == (6, 3, 50)
    assert (t.rapid_reviews_in_progress, t.rapid_reviews_overdue, t.rapid_reviews_submitted, t.awaiting_panel) == (
        3, 1, 2, 1)
    assert (t.rapid_reviews_judged, t.rapid_reviews_on_time, t.rapid_reviews_on_time_percent) == (3, 1, 33)
    assert (t.escalations, t.escalations_open, t.escalations_national) == (6, 3, 2)
    assert (t.lcsprs_in_progress, t.lcsprs_suspended, t.lcsprs_due_soon, t.lcsprs_overdue, t.lcsprs_published,
            t.lcsprs_not_published) == (4, 1, 1, 1, 2, 1)
    assert t.open_overdue_tasks == 3  # a2 (2) and e2 (1); the closed b2's stale count is not open work

    rows = {r.partnership_id: r for r in report.timeliness}
    assert [r.name for r in report.timeliness] == sorted(r.name for r in report.timeliness)
    assert (rows[RV].notifications_judged, rows[RV].notifications_on_time, rows[RV].notifications_on_time_percent,
            rows[RV].rapid_reviews_judged, rows[RV].rapid_reviews_on_time_percent, rows[RV].open_overdue_tasks,
            rows[RV].escalations_open) == (3, 1, 33, 2, 50, 3, 2)
    assert (rows[NE].notifications_on_time_percent, rows[NE].rapid_reviews_on_time_percent,
            rows[NE].open_overdue_tasks, rows[NE].escalations_open) == (50, 0, 0, 1)
    assert (rows[TS].notifications_on_time_percent, rows[TS].rapid_reviews_on_time_percent,
            rows[TS].escalations_open) == (100, None, 0)

    assert report.purposes == ["professional_disagreement", "overdue_work"]
    stages = {s.stage: s.by_purpose for s in report.stages}
    assert stages == {1: {"professional_disagreement": (1, 0), "overdue_work": (0, 0)},
                      2: {"professional_disagreement": (0, 1), "overdue_work": (1, 0)},
                      3: {"professional_disagreement": (0, 1), "overdue_work": (0, 1)},
                      4: {"professional_disagreement": (1, 0), "overdue_work": (0, 0)}}
    timeouts = {t.timeouts: (t.by_purpose["professional_disagreement"], t.by_purpose["overdue_work"],
                             t.reached_national) for t in report.timeouts}
    assert timeouts == {0: (2, 0, 1), 1: (1, 1, 0), 2: (0, 1, 0), 3: (0, 0, 0), 4: (1, 0, 1)}

    refs = lambda lines: [x.national_ref for x in lines]  # noqa: E731
    c = seeded
    assert sorted(refs(report.late_notifications)) == sorted([c["a2"].national_ref, c["a3"].national_ref,
                                                              c["b1"].national_ref])
    late = {x.national_ref: x for x in report.late_notifications}
    assert late[c["a2"].national_ref].working_days_late == 3  # as the workflow recorded it when sent
    cal = calendar(seeded_engine)
    assert late[c["a3"].national_ref].working_days_late == max(cal.working_days_between(today - timedelta(days=1),
                                                                                       today), 0)
    assert late[c["a3"].national_ref].done_on is None
    assert refs(report.rapid_reviews_overdue) == [c["a2"].national_ref]
    assert report.rapid_reviews_overdue[0].working_days_late == cal.working_days_between(today - timedelta(days=2),
                                                                                         today)
    assert refs(report.awaiting_panel) == [c["a1"].national_ref]
    assert refs(report.escalations_national) == [c["e5"].national_ref, c["e2"].national_ref]  # most recent first
    assert refs(report.lcsprs_overdue) == [c["l1"].national_ref]
    assert refs(report.lcsprs_due_soon) == [c["l2"].national_ref]

    # the trend: notifications by the month they were due (so far), late ones, escalations by the month raised
    expected: dict[tuple[int, int], list[int]] = {(m.year, m.month): [0, 0, 0] for m in monitoring.month_starts(today)}
    for key in ("a1", "a2", "a3", "a4", "b1", "b2", "c1"):
        due = c[key].notification_due
        if due <= today and (due.year, due.month) in expected:
            expected[(due.year, due.month)][0] += 1
            expected[(due.year, due.month)][1] += key in ("a2", "a3", "b1")
    for key in ("e1", "e2", "e3", "e4", "e5", "e6"):
        raised = c[key].aware_date
        if (raised.year, raised.month) in expected:
            expected[(raised.year, raised.month)][2] += 1
    assert [[m.notifications, m.late_notifications, m.escalations] for m in report.trend] == list(expected.values())
    assert len(report.trend) == 12 and (report.trend[-1].year, report.trend[-1].month) == (today.year, today.month)
    assert report.statements == 9  # 1 timeliness + 1 escalations + 1 trend + 6 lists


def test_the_statement_count_does_not_grow_with_the_cases(app, seeded_engine, seeded):
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(seeded_engine, "before_cursor_execute", count)
    try:
        counts = []
        for batch, n in enumerate((3, 60)):
            for i in range(n):
                add(seeded_engine, f"x{batch}-{i}", RV, notification_due=london_today() - timedelta(days=2))
            with Session(seeded_engine) as session:
                monitoring.compute_report(session, london_today())  # warm the label and calendar caches
                statements.clear()
                monitoring.compute_report(session, london_today())
            counts.append(len(statements))
    finally:
        event.remove(seeded_engine, "before_cursor_execute", count)
    assert counts[0] == counts[1] == 9, counts


def test_the_cache_reuses_a_report_then_recomputes(app, seeded_engine, seeded):
    today = london_today()
    first = monitoring.cached_report(seeded_engine, today)
    assert monitoring.cached_report(seeded_engine, today) is first
    add(seeded_engine, "late-new", RV, notification_due=today - timedelta(days=3))
    assert monitoring.cached_report(seeded_engine, today).totals == first.totals  # within CACHE_SECONDS
    fresh = monitoring.cached_report(seeded_engine, today, max_age=0)
    assert fresh is not first and fresh.totals.notifications_late == first.totals.notifications_late + 1


# --- the page and the exports ---------------------------------------------------------------------------------------


async def test_the_page_shows_the_figures_and_links_to_pseudonymised_cases(app, seeded_engine, seeded, signed_in):
    client = await signed_in(NATIONAL)
    page = await client.get("/national/monitoring")
    assert page.status_code == 200
    figure = lambda name: re.search(rf'id="figure-{name}">([^<]+)<', page.text).group(1)  # noqa: E731
    assert (figure("notifications-due"), figure("notifications-late"), figure("notifications-on-time")) == (
        "6", "3", "50%")
    assert (figure("rr-due"), figure("rr-overdue"), figure("rr-submitted"), figure("rr-awaiting")) == (
        "3", "1", "2", "1")
    assert (figure("esc-raised"), figure("esc-open"), figure("esc-national")) == ("6", "3", "2")
    assert (figure("lcspr-in-progress"), figure("lcspr-suspended"), figure("lcspr-due"), figure("lcspr-overdue"),
            figure("lcspr-published"), figure("lcspr-not-published")) == ("4", "1", "1", "1", "2", "1")
    for key in ("a2", "a3", "b1", "a1", "e2", "e5", "l1", "l2"):
        assert f'href="/national/cases/{seeded[key].national_ref}"' in page.text, key
    words = text_of(page.text)
    assert "Thornshire Safeguarding Children Partnership" in words
    assert "Child seriously harmed" in words or "Serious harm" in words  # the category's label, not its id
    assert "Not sent" in words  # a3: due and not sent
    # the charts: inline SVGs a person reads, with their figures as a table for screen readers
    assert page.text.count('<svg viewBox="0 0 720 260"') == 2 and page.text.count('role="img"') >= 2
    assert 'aria-labelledby="trend-notifications-title trend-notifications-desc"' in page.text
    assert '<desc id="trend-escalations-desc">Line chart of escalations raised each month: 6 in all' in page.text
    assert page.text.count("<rect ") >= 24 and "<polyline " in page.text
    assert "The charts’ figures as a table" in page.text
    for svg in page.text.split("<svg")[1:]:
        assert "style=" not in svg.split("</svg>", 1)[0]  # presentation attributes only
    fragment = await client.get("/national/monitoring", headers={"HX-Request": "true"})
    assert fragment.text.lstrip().startswith('<div id="report">') and "<html" not in fragment.text
    for table in monitoring.TABLES:
        assert f'href="/national/monitoring/{table}.csv"' in page.text, table


def read_csv(response: httpx.Response) -> list[list[str]]:
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(response.text.lstrip("\ufeff"))))


async def test_each_table_exports_as_csv(app, seeded_engine, seeded, signed_in):
    client = await signed_in(NATIONAL)
    today = london_today().isoformat()
    c = seeded
    late = await client.get("/national/monitoring/late-notifications.csv")
    assert late.headers["content-disposition"] == f'attachment; filename="sgflow-late-notifications-{today}.csv"'
    rows = read_csv(late)
    assert rows[0][0] == "National reference" and sorted(r[0] for r in rows[1:]) == sorted(
        [c["a2"].national_ref, c["a3"].national_ref, c["b1"].national_ref])
    assert [r[5] for r in rows[1:] if r[0] == c["a3"].national_ref] == ["Not sent"]
    timeliness = read_csv(await client.get("/national/monitoring/timeliness.csv"))
    by_name = {r[0]: r for r in timeliness[1:]}
    assert by_name["Thornshire Safeguarding Children Partnership"][1:4] == ["1", "1", "100"]
    assert by_name["Thornshire Safeguarding Children Partnership"][6] == ""  # no rapid review due: no percentage
    stages = read_csv(await client.get("/national/monitoring/escalations-by-stage.csv"))
    assert stages[0] == ["Highest stage reached", "Professional disagreements: open",
                         "Professional disagreements: closed", "Overdue statutory work: open",
                         "Overdue statutory work: closed", "Total"]
    assert stages[4] == ["4", "1", "0", "0", "0", "1"]
    national = read_csv(await client.get("/national/monitoring/escalations-national.csv"))
    assert [r[0] for r in national[1:]] == [c["e5"].national_ref, c["e2"].national_ref]
    assert national[1][8] == "Withdrawn" and national[2][8] == "Open"
    reviews = read_csv(await client.get("/national/monitoring/local-reviews.csv"))
    states = {r[0]: r[5] for r in reviews[1:]}
    assert states[c["l1"].national_ref] == "Overdue" and states[c["l4"].national_ref] == "Suspended: national review"
    assert states[c["l5"].national_ref] == "Closed: published" and states[c["l6"].national_ref] == (
        "Closed: not published")
    assert states[c["l7"].national_ref] == "Published: actions open"
    trend = read_csv(await client.get("/national/monitoring/trend.csv"))
    assert len(trend) == 13 and trend[0] == ["Month", "Notifications due", "Late notifications",
                                             "Escalations raised"]
    for table in ("rapid-reviews-overdue", "rapid-reviews-awaiting-panel", "escalations-by-timeouts"):
        assert len(read_csv(await client.get(f"/national/monitoring/{table}.csv"))) > 1
    assert (await client.get("/national/monitoring/no-such-table.csv")).status_code == 404


def test_csv_cells_never_run_as_formulas():
    text = monitoring.csv_text(["a", "b"], [["=HYPERLINK(\"x\")", "+1"], ["-2", 3], [date(2026, 1, 2), None]])
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[1] == ["'=HYPERLINK(\"x\")", "'+1"] and rows[2] == ["'-2", "3"] and rows[3] == ["2026-01-02", ""]


def test_the_chart_scales_to_its_figures():
    months = [monitoring.MonthCount(2026, m, n, n // 3, 10 - m) for m, n in zip(range(1, 13), range(0, 120, 10),
                                                                                strict=True)]
    bars, line = trend_chart(months)["notifications"], trend_chart(months)["escalations"]
    assert bars["ticks"][0]["value"] == 0 and bars["ticks"][-1]["value"] >= 110
    assert all(bars["top"] <= b["y"] <= bars["plot_bottom"] for m in bars["months"] for b in m["bars"])
    assert bars["months"][0]["bars"][0]["h"] == 0
    assert bars["months"][-1]["bars"][0]["h"] > bars["months"][-1]["bars"][1]["h"] > 0
    assert [m["year"] for m in bars["months"]] == [2026] + [None] * 11
    assert line["ticks"][-1]["value"] == 10 and line["months"][0]["bars"] == []  # its own scale: 9 at most
    assert line["months"][0]["dot"]["y"] < line["months"][-1]["dot"]["y"] and len(line["points"].split()) == 12
    assert "most in Jan 2026 (9)" in line["description"]
    empty = trend_chart([monitoring.MonthCount(2026, m, 0, 0, 0) for m in range(1, 13)])
    assert empty["notifications"]["ticks"][-1]["value"] >= 1 and "0 notifications due" in empty["description"]


# --- who may see it, and what it never shows -----------------------------------------------------------------------


async def test_only_the_national_body_sees_the_monitoring_pages(app, seeded, signed_in):
    for email in (LEAD, REVIEWER, NE_LEAD, ADMIN):
        client = await signed_in(email)
        assert (await client.get("/national/monitoring")).status_code == 404, email
        assert (await client.get("/national/monitoring/timeliness.csv")).status_code == 404, email
        assert (await client.get("/national")).status_code in ((403, 404) if email != ADMIN else (200,)), email
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as anonymous:
        response = await anonymous.get("/national/monitoring/late-notifications.csv")
        assert response.status_code == 303 and response.headers["location"].startswith("/sign-in")


def forbidden_strings(engine, cases: dict[str, Case]) -> tuple[set[str], set[str]]:
    """(names: never anywhere a national-body user reaches, local: never on a national page or export)."""
    with Session(engine) as session:
        people = session.exec(select(User).where(User.partnership_id.is_not(None))).all()
    names = set(NAMES)
    for person in people:
        names |= {person.display_name, person.display_name.split(" (")[0]}
    local = {"LA-778812", "Child A", "Child B", "A child was harmed.", "Kayleigh Brennan’s housing",
             "agreed a plan", "Told by", "Opened by"}
    local |= {c.case_ref for c in cases.values()} | {c.id for c in cases.values()}
    for person in people:
        local |= {person.user_ref, person.email}
    return names, local


def assert_absent(text: str, secrets: set[str], where: str) -> None:
    for secret in secrets:
        assert secret not in text, (secret, where)
        assert html.escape(secret) not in text, (secret, where)


async def test_no_monitoring_page_or_export_names_anyone(app, seeded_engine, seeded, signed_in):
    seed_names(seeded_engine, seeded)
    names, local = forbidden_strings(seeded_engine, seeded)
    client = await signed_in(NATIONAL)
    page = await client.get("/national/monitoring")
    assert page.status_code == 200
    assert_absent(page.text, names | local, "/national/monitoring")
    for table in monitoring.TABLES:
        response = await client.get(f"/national/monitoring/{table}.csv")
        assert response.status_code == 200
        assert_absent(response.text, names | local, table)


async def test_no_api_answer_a_national_user_can_reach_names_anyone(app, seeded_engine, seeded, signed_in):
    seed_names(seeded_engine, seeded)
    names, _local = forbidden_strings(seeded_engine, seeded)
    client = await signed_in(NATIONAL)
    token = TOKEN.search((await client.get("/tasks")).text).group(1)
    answers = [await client.get(path) for path in (
        "/api/tasks", "/api/tasks?status=done", "/api/cases", "/api/cases?status=closed",
        *(f"/api/partnerships/{pid}/arrangements" for pid in (RV, NE, TS)),
        *(f"/api/partnerships/{pid}/arrangements/1" for pid in (RV, NE, TS)))]
    answers += [await client.get(f"/api/cases/{c.id}") for c in seeded.values()]
    answers += [await client.get(f"/api/cases/{c.id}/files/{'0' * 64}.pdf") for c in seeded.values()]
    answers.append(await client.post(f"/api/cases/{seeded['e2'].id}/withdraw", json={"reason": "x"},
                                     headers={"X-CSRF-Token": token}))
    for answer in answers:
        assert answer.status_code in (200, 404), (answer.request.url, answer.status_code)
        assert_absent(answer.text, names, str(answer.request.url))
    panel_tasks = (await client.get("/api/tasks")).json()
    assert [t["key"] for t in panel_tasks] == ["panel-response"]  # the Panel's own task only


# The overview and case pages are web/pages/national.py (another module's). An escalation's ``stage`` is the
# withdrawal reason once withdrawn and its ``category`` the issue type (free text through the API): both typed by
# people, so neither may reach these pages.
async def test_the_national_overview_and_case_pages_name_no_one(app, seeded_engine, seeded, signed_in):
    seed_names(seeded_engine, seeded)
    names, _local = forbidden_strings(seeded_engine, seeded)
    client = await signed_in(NATIONAL)
    pages = [await client.get(path) for path in (
        "/national", f"/national?partnership={RV}", f"/national?partnership={NE}", "/national?status=closed",
        "/tasks", f"/national/cases/{seeded['a1'].national_ref}/tasks/panel-response")]
    # the local route is not the national body's at all (it names the local case reference)
    assert (await client.get(f"/cases/{seeded['a1'].id}/tasks/panel-response")).status_code == 404
    pages += [await client.get(f"/national/cases/{c.national_ref}") for c in seeded.values()]
    leaks = []
    for page in pages:
        # the overview and /tasks must answer; a case page may choose not to show a process (404)
        assert page.status_code == 200 or (page.status_code == 404 and "/national/cases/" in str(page.request.url)), (
            page.request.url, page.status_code)
        leaks += [(str(page.request.url), s) for s in names if s in page.text or html.escape(s) in page.text]
    assert not leaks, sorted(set(leaks))


async def test_each_session_gets_its_own_page_from_the_cache(app, seeded, signed_in):
    """The page is cached per person and session: each page carries its own session's CSRF token."""
    first, second = await signed_in(NATIONAL), await signed_in(NATIONAL)
    pages = [await client.get("/national/monitoring") for client in (first, second, first, second)]
    tokens = [TOKEN.search(page.text).group(1) for page in pages]
    assert tokens[0] == tokens[2] and tokens[1] == tokens[3] and tokens[0] != tokens[1]
    assert pages[0].text == pages[2].text and pages[0].headers["vary"] == pages[2].headers["vary"] == "HX-Request"
    for client, token in ((second, tokens[1]), (first, tokens[0])):
        out = await client.post("/sign-out", data={"csrf_token": token})
        assert out.status_code == 303 and out.headers["location"] == "/sign-in?signed_out=1"


def test_while_one_request_refreshes_the_report_the_others_get_the_previous_one(app, seeded_engine, seeded):
    import threading

    today = london_today()
    first = monitoring.cached_report(seeded_engine, today)
    started, release = threading.Event(), threading.Event()
    real = monitoring.compute_report

    def slow(session, day, **kw):
        started.set()
        release.wait(10)
        return real(session, day, **kw)

    monitoring.compute_report = slow
    try:
        worker = threading.Thread(target=lambda: monitoring.cached_report(seeded_engine, today, max_age=0))
        worker.start()
        assert started.wait(10)
        assert monitoring.cached_report(seeded_engine, today, max_age=0) is first  # not kept waiting
        release.set()
        worker.join(10)
    finally:
        monitoring.compute_report = real
    assert monitoring.cached_report(seeded_engine, today) is not first  # the refreshed one


async def test_the_headline_figures_agree_with_the_trend_and_its_csv(app, seeded_engine, seeded, signed_in):
    """Issue 17, point 12: the notifications' headline figures, the table by partnership, the late list, the trend and
    their CSVs count the same notifications (due in the trend's 12 months, by today), and the page says so; the
    escalations raised in those months are the trend's sum. Older cases, and a notification due today, do not tip
    one figure and not the other."""
    today = london_today()
    old = today - timedelta(days=420)
    add(seeded_engine, "old1", RV, aware_date=old, notification_due=old, notification_sent_on=old + timedelta(days=9),
        notification_days_late=5)
    add(seeded_engine, "old2", NE, aware_date=old, notification_due=old)  # never sent: late, but long ago
    add(seeded_engine, "today1", TS, aware_date=today, notification_due=today)  # due today, not yet sent
    add(seeded_engine, "oldesc", RV, process="escalation", category="threshold", aware_date=old,
        ladder_purpose="professional_disagreement", highest_stage=1, current_stage=1)
    client = await signed_in(NATIONAL)
    page = await client.get("/national/monitoring")
    figure = lambda name: int(re.search(rf'id="figure-{name}">([^<%]+)', page.text).group(1))  # noqa: E731
    words = " ".join(text_of(page.text).split())
    trend = read_csv(await client.get("/national/monitoring/trend.csv"))[1:]
    due, late, raised = (sum(int(row[i]) for row in trend) for i in (1, 2, 3))
    assert (figure("notifications-due"), figure("notifications-late"), figure("esc-raised-12")) == (due, late, raised)
    assert (due, late, raised) == (6, 3, 6)  # the seeded mix; none of the cases added here
    assert figure("esc-raised") == 7  # every escalation, and the page says which is which
    first, last = trend[0][0], trend[-1][0]
    assert f"In the last 12 months ({first} to {last})" in words
    assert "6 notifications due in the last 12 months" in words
    assert f"raised in the last 12 months ({first} to {last})" in words and "escalations raised in all" in words
    timeliness = read_csv(await client.get("/national/monitoring/timeliness.csv"))
    assert timeliness[0][1] == "Notifications due in the last 12 months"
    assert sum(int(r[1]) for r in timeliness[1:]) == due
    assert sum(int(r[1]) - int(r[2]) for r in timeliness[1:]) == late
    late_rows = read_csv(await client.get("/national/monitoring/late-notifications.csv"))[1:]
    assert len(late_rows) == late
    assert f"Late notifications in the last 12 months: {late} late notifications" in words
