"""The everyday-learning pages over HTTP (httpx + the ASGI app), against a time-skipping Temporal server, an
in-process worker and a seeded SQLite database: recording through the form (and every way it can be refused,
nothing recorded), the learning lead's list and actions, the themes counts and the events behind them, the
national aggregation and its CSV; and no blame by construction: recognisable names of reporters appear on no
page, export or API answer a non-lead can reach, and only the learning lead sees who reported a named event.

The counting queries themselves (``safeguarding.learning_stats``) are tested on both SQLite and PostgreSQL.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import insert, update
from sqlmodel import Session, select

from safeguarding import learning_stats as stats
from safeguarding.case_commands import act_on_task, actor_of
from safeguarding.case_records import TaskCommand
from safeguarding.clock import london_today
from safeguarding.tables import AuditEntry, Case, LearningReporter, LearningTag, Partnership, Task, User
from tests.support.pages import Pages, visible
from tests.support.workflow_driver import principal, running_worker
from web.app import create_app

RV, NE = "riverford-and-vale", "northmoor-and-eastholme"
PRACTITIONER = "rv-police-officer@demo.test"  # any practitioner of Riverford and Vale: not a lead
REPORTER_A = ("u-rv-social-worker", "rv-social-worker@demo.test", "Zephyrine Quillfeather")
REPORTER_B = ("u-rv-teacher-dsl", "rv-teacher-dsl@demo.test", "Barnaby Thistlewood")
LEARNING_LEAD = ("u-rv-learning-lead", "rv-learning-lead@demo.test")
PARTNERSHIP_LEAD = "rv-business-manager@demo.test"  # a partnership lead, not the learning lead
NE_LEAD = "ne-business-manager@demo.test"
NE_LEARNING_LEAD = "ne-learning-lead@demo.test"
PANEL = "panel@demo.test"
ADMIN = "admin@demo.test"


def form(**overrides) -> dict:
    day = london_today() - timedelta(days=3)
    data = {"occurred_on-day": str(day.day), "occurred_on-month": str(day.month), "occurred_on-year": str(day.year),
            "kind": "near_miss",
            "what_happened": "A referral sent on Friday evening sat in a shared inbox until Tuesday.",
            "what_was_expected": "Referrals are triaged within one working day.",
            "agencies": ["riverford-council", "riverford-hospitals"],
            "factors": ["tools-and-information-systems", "inter-agency-working"],
            "themes": ["information-sharing", "rural-isolation"]}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def words(html: str) -> str:
    """The text a person reads, with runs of white space as one space."""
    return " ".join(visible(html).split())


def rows_of(html: str, table_id: str) -> list[list[str]]:
    """The cells' text of a table (by id), row by row, header row included."""
    match = re.search(rf'<table[^>]*id="{table_id}".*?</table>', html, re.S)
    assert match, f"no table #{table_id}"
    rows = []
    for row in re.findall(r"<tr.*?</tr>", match.group(0), re.S):
        cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        rows.append([" ".join(visible(c).split()) for c in cells])
    return rows


def learning_cases(engine) -> list[Case]:
    with Session(engine) as session:
        return list(session.exec(select(Case).where(Case.process == "learning")))


@pytest.fixture
async def site(time_env, seeded_engine, settings):
    async with running_worker(time_env, seeded_engine, settings):
        app = create_app(settings, engine=seeded_engine, temporal_client=time_env.client, connect_temporal=False)
        browsers: list[Pages] = []

        async def browser(email: str | None = None) -> Pages:
            browsers.append(Pages(app))
            if email:
                response = await browsers[-1].sign_in(email)
                assert response.status_code == 303, email
            return browsers[-1]

        yield browser, time_env, seeded_engine
        for b in browsers:
            await b.close()


async def record(b: Pages, **overrides) -> str:
    """Record through the form; returns the case id."""
    await b.get("/learning/new")
    response = await b.post("/learning/new", form(**overrides))
    assert response.status_code == 303, visible(response.text)[:2000]
    match = re.fullmatch(r"/learning/recorded/(learning-[\w-]+)", response.headers["location"])
    assert match
    return match.group(1)


def rename_reporters(engine) -> None:
    """Recognisable names for the two reporters, so that a leak cannot hide among the demo names."""
    with Session(engine) as session:
        for ref, _email, name in (REPORTER_A, REPORTER_B):
            session.execute(update(User).where(User.user_ref == ref).values(display_name=name))
        session.commit()


async def triage(env, engine, case_id: str, response: str = "after_action_review", by: str = LEARNING_LEAD[0]):
    await act_on_task(env.client, case_id, "complete", TaskCommand(
        "triage", actor_of(principal(engine, by)), {"response": response, "rationale": "Proportionate."}))


# --- recording -----------------------------------------------------------------------------------------------------


async def test_the_form_asks_about_systems_and_offers_the_partnerships_choices(site):
    browser, _env, _engine = site
    page = await (await browser(PRACTITIONER)).get("/learning/new")
    assert page.status_code == 200
    text = words(page.text)
    assert "not about who is to blame" in text and "Describe what happened, not who did it" in text
    for label in ("Something nearly went wrong", "Good practice others can learn from", "A risk for the future",
                  "Tools and information systems", "Working between agencies", "Rural isolation",
                  "Information sharing", "Riverford Borough Council"):
        assert label in text, label
    assert 'name="anonymous"' in page.text and "not even the learning and improvement lead" in text
    ne = await (await browser(NE_LEAD)).get("/learning/new")
    assert 'name="anonymous"' not in ne.text and "does not take anonymous reports" in ne.text
    assert "Rural isolation" not in ne.text  # Riverford's own theme


async def test_recording_an_event_through_the_form(site):
    browser, _env, engine = site
    b = await browser(REPORTER_A[1])
    case_id = await record(b)
    page = await b.get(f"/learning/recorded/{case_id}")
    text = words(page.text)
    assert "Learning event recorded" in text and "will choose a proportionate learning response" in text
    assert "they will tell you what was learned" in text
    with Session(engine) as session:
        case = session.get(Case, case_id)
        reporter = session.get(LearningReporter, case_id)
        tags = session.exec(select(LearningTag).where(LearningTag.case_id == case_id)).all()
        audits = session.exec(select(AuditEntry).where(AuditEntry.action == "learning.record")).all()
    assert (case.process, case.category, case.opened_by, case.status) == ("learning", "near_miss", "reporter", "open")
    assert case.summary.startswith("A referral sent on Friday")
    assert reporter.user_ref == REPORTER_A[0]
    assert {(t.tag_type, t.tag) for t in tags} == {("theme", "information-sharing"), ("theme", "rural-isolation"),
                                                  ("factor", "tools-and-information-systems"),
                                                  ("factor", "inter-agency-working")}
    assert [(a.actor, a.outcome) for a in audits] == [("anonymous", "ok")]  # recorded, never by whom
    # another person of the partnership opening the confirmation is not told they will hear
    other = await (await browser(PRACTITIONER)).get(f"/learning/recorded/{case_id}")
    assert "they will tell you" not in other.text
    # another partnership's people cannot open it at all
    assert (await (await browser(NE_LEAD)).get(f"/learning/recorded/{case_id}")).status_code == 404


async def test_an_anonymous_report_stores_no_name(site):
    browser, _env, engine = site
    b = await browser(REPORTER_B[1])
    case_id = await record(b, anonymous="yes")
    page = words((await b.get(f"/learning/recorded/{case_id}")).text)
    assert "You reported this anonymously: your name was not stored" in page
    with Session(engine) as session:
        assert session.get(LearningReporter, case_id) is None
        assert session.get(Case, case_id).opened_by == "anonymous"


@pytest.mark.parametrize(("who", "overrides", "field", "message"), [
    (PRACTITIONER, {"factors": None}, "factors", "Select at least one contributory factor"),
    (PRACTITIONER, {"themes": ["information-sharing", "astrology"]}, "themes",
     "not one of this partnership’s themes"),
    (PRACTITIONER, {"what_happened": "   "}, "what_happened", "Describe what happened"),
    (PRACTITIONER, {"kind": None}, "kind", "Select what kind of event this was"),
    (PRACTITIONER, {"occurred_on-year": str(london_today().year + 1)}, "occurred_on", "today or in the past"),
    (PRACTITIONER, {"agencies": ["eastholme-police"]}, "agencies", "not a partner or agency of this partnership"),
    (NE_LEAD, {"anonymous": "yes", "agencies": ["northmoor-council"], "themes": ["neglect"]}, "anonymous",
     "does not take anonymous reports"),
])
async def test_bad_forms_are_refused_inline_and_record_nothing(site, who, overrides, field, message):
    browser, _env, engine = site
    b = await browser(who)
    await b.get("/learning/new")
    response = await b.post("/learning/new", form(**overrides))
    assert response.status_code == 422
    html = response.text
    summary = re.search(r'<div class="govuk-error-summary".*?</ul>', html, re.S)
    assert summary and message in summary.group(0)
    anchor = {"occurred_on": "#occurred_on-day"}.get(field, f"#{field}")
    assert f'href="{anchor}"' in summary.group(0)
    assert re.search(rf'id="{field}-error"[^>]*>.*?{re.escape(message)}', html, re.S), "no inline error"
    assert "<title>Error: " in html
    assert "Referrals are triaged within one working day." in html  # what was typed is kept
    assert learning_cases(engine) == []
    with Session(engine) as session:
        assert session.exec(select(LearningReporter)).all() == []
        assert [a.actor for a in session.exec(select(AuditEntry).where(AuditEntry.action == "learning.record"))] \
            == ["anonymous"]


async def test_a_field_the_form_does_not_have_is_refused_by_name_and_every_problem_shown(site):
    """Issue 18: the form is read into a model; a field it does not have (a forged ``reporter_name``) is refused by
    name, as the API refuses one, and nothing is recorded; otherwise every problem is reported in one round."""
    browser, _env, engine = site
    b = await browser(PRACTITIONER)
    await b.get("/learning/new")
    forged = await b.post("/learning/new", form(reporter_name="Somebody Else"))
    assert forged.status_code == 422
    summary = re.search(r'<div class="govuk-error-summary".*?</ul>', forged.text, re.S).group(0)
    assert "This form does not take ‘reporter_name’" in words(summary) and 'href="#learning-form"' in summary
    assert learning_cases(engine) == []
    every = await b.post("/learning/new", form(kind=None, what_happened="", factors=None,
                                               themes=["astrology"], **{"occurred_on-month": "13"}))
    summary = words(re.search(r'<div class="govuk-error-summary".*?</ul>', every.text, re.S).group(0))
    for message in ("The date it happened must be a real date", "Select what kind of event this was",
                    "Describe what happened", "Select at least one contributory factor",
                    "not one of this partnership’s themes"):
        assert message in summary, message
    too_long = await b.post("/learning/new", form(what_was_expected="x" * 5001))
    assert too_long.status_code == 422
    assert "What was expected to happen must be 5000 characters or fewer" in words(too_long.text)
    assert learning_cases(engine) == []


async def test_people_without_a_partnership_are_sent_elsewhere(site):
    browser, _env, _engine = site
    panel = await browser(PANEL)
    response = await panel.get("/learning/new")
    assert response.status_code == 404 and "/national/learning" in response.text
    assert (await panel.get("/learning/themes")).status_code == 404


# --- the learning lead's list and actions ---------------------------------------------------------------------------


async def test_the_learning_lead_sees_events_by_status_and_who_reported_named_ones(site):
    browser, env, engine = site
    rename_reporters(engine)
    named = await record(await browser(REPORTER_A[1]), what_happened="Named: the inbox was not watched.")
    anonymous = await record(await browser(REPORTER_B[1]), anonymous="yes",
                             what_happened="Anonymous: the handover letter went missing.")
    await triage(env, engine, named)
    lead = await browser(LEARNING_LEAD[1])
    page = await lead.get("/learning")
    assert page.status_code == 200
    in_response = rows_of(page.text, "response-table")
    awaiting = rows_of(page.text, "triage-table")
    assert len(in_response) == 2 and "Named: the inbox" in in_response[1][1]
    assert in_response[1][3] == REPORTER_A[2]  # shown to the learning lead only
    assert len(awaiting) == 2 and "Anonymous: the handover" in awaiting[1][1]
    assert awaiting[1][3] == "Reported anonymously"
    assert REPORTER_B[2] not in page.text
    assert f'href="/learning/events/{named}/actions/new"' in page.text  # past triage
    assert f'href="/learning/events/{anonymous}/actions/new"' not in page.text
    # the partnership lead sees the list, never the reporters
    as_lead = await (await browser(PARTNERSHIP_LEAD)).get("/learning")
    assert as_lead.status_code == 200 and "Named: the inbox" in as_lead.text
    assert REPORTER_A[2] not in as_lead.text and "Reported by" not in as_lead.text
    assert "/actions/new" not in as_lead.text
    # a practitioner may not see it; another partnership's learning lead sees only their own
    refused = await (await browser(PRACTITIONER)).get("/learning")
    assert refused.status_code == 403 and "/learning/new" in refused.text
    other = await (await browser(NE_LEARNING_LEAD)).get("/learning")
    assert other.status_code == 200 and "Named: the inbox" not in other.text


async def test_the_learning_lead_adds_an_action(site):
    browser, env, engine = site
    case_id = await record(await browser(REPORTER_A[1]))
    lead = await browser(LEARNING_LEAD[1])
    url = f"/learning/events/{case_id}/actions/new"
    before = await lead.get(url)
    assert "Choose the learning response first" in before.text and 'id="action-form"' not in before.text
    forced = await lead.post(url, {"owner": "riverford-council", "description": "Rota",
                                   "due_date-day": "1", "due_date-month": "1", "due_date-year": "2099"})
    assert forced.status_code == 409 and "choose the learning response first" in forced.text.lower()

    await triage(env, engine, case_id)
    await lead.get(url)
    bad = await lead.post(url, {"owner": "", "description": " ", "due_date-day": "1", "due_date-month": "1",
                                "due_date-year": "2020"})
    assert bad.status_code == 422
    summary = re.search(r'<div class="govuk-error-summary".*?</ul>', bad.text, re.S).group(0)
    for text in ("Choose the agency that owns the action", "Enter what must be done",
                 "The due date must be in the future"):
        assert text in summary
    due = london_today() + timedelta(days=30)
    dated = {"due_date-day": str(due.day), "due_date-month": str(due.month), "due_date-year": str(due.year)}
    forged = await lead.post(url, {"owner": "riverford-housing", "description": "Rota", **dated, "actor": "someone"})
    assert forged.status_code == 422 and "This form does not take ‘actor’" in words(forged.text)
    unlisted = await lead.post(url, {"owner": "eastholme-police", "description": "Rota", **dated})
    assert unlisted.status_code == 422 and "Choose the agency that owns the action from the list" in unlisted.text
    ok = await lead.post(url, {"owner": "riverford-housing", "description": "A weekend rota for the shared inbox",
                               "due_date-day": str(due.day), "due_date-month": str(due.month),
                               "due_date-year": str(due.year)})
    assert ok.status_code == 303 and ok.headers["location"].startswith("/learning?added=")
    listing = await lead.get(ok.headers["location"])
    assert "Action added to" in listing.text
    with Session(engine) as session:
        action = session.get(Task, f"{case_id}/action-1")
    assert action.type == "learning_action" and action.due_date == due and action.status == "open"
    # only the learning lead adds actions
    practitioner = await browser(PRACTITIONER)
    assert (await practitioner.get(url)).status_code == 403
    partnership_lead = await browser(PARTNERSHIP_LEAD)
    await partnership_lead.get("/learning")
    refused = await partnership_lead.post(url, {"owner": "riverford-housing", "description": "x",
                                                "due_date-day": str(due.day), "due_date-month": str(due.month),
                                                "due_date-year": str(due.year)})
    assert refused.status_code == 403
    assert (await (await browser(NE_LEARNING_LEAD)).get(url)).status_code == 404


# --- counting -------------------------------------------------------------------------------------------------------

TODAY = date(2026, 6, 15)


def _spread(engine) -> dict[str, str]:
    """Cases and tags for a known spread: Riverford (in and just out of the window, an escalation) and Northmoor."""
    now = datetime(2026, 6, 15, 12, tzinfo=UTC)
    events = [  # (id, partnership, process, kind, occurred, themes, factors, source)
        ("L1", RV, "learning", "near_miss", date(2026, 6, 2), ["information-sharing", "neglect"], ["task"], "learning"),
        ("L2", RV, "learning", "harm", date(2026, 5, 20), ["neglect"], ["task", "person"], "learning"),
        ("L3", RV, "learning", "good_practice", date(2025, 7, 1), ["neglect"], [], "learning"),
        ("L4", RV, "learning", "harm", date(2025, 6, 30), ["neglect"], ["task"], "learning"),  # before the window
        ("E1", RV, "escalation", "escalation", date(2026, 5, 10), ["neglect"], [], "escalation"),
        ("N1", NE, "learning", "near_miss", date(2026, 6, 1), ["neglect", "domestic-abuse"], ["environment"],
         "learning"),
    ]
    cases, tags, ids = [], [], {}
    for ref, pid, process, kind, day, themes, factors, source in events:
        case_id = f"{process}-{pid}-{ref}"
        ids[ref] = case_id
        cases.append(dict(id=case_id, partnership_id=pid, case_ref=ref, process=process, national_ref=f"N-{ref}",
                          category=kind, status="open", stage="", arrangements_version=1, aware_date=day,
                          summary=f"What happened in {ref}", opened_by="reporter",
                          opened_at=datetime.combine(day, datetime.min.time(), tzinfo=UTC), updated_at=now,
                          children="[]", agencies="[]", revision=1))
        for tag_type, values in (("theme", themes), ("factor", factors)):
            tags += [dict(case_id=case_id, tag_type=tag_type, tag=t, partnership_id=pid, source=source, kind=kind,
                          month=day.isoformat()[:7]) for t in values]
    with engine.begin() as conn:
        for pid, name in ((RV, "Riverford and Vale"), (NE, "Northmoor and Eastholme")):
            if conn.execute(select(Partnership.id).where(Partnership.id == pid)).first() is None:
                conn.execute(insert(Partnership.__table__), [dict(id=pid, name=name, created_at=now)])
        conn.execute(insert(Case.__table__), cases)
        conn.execute(insert(LearningTag.__table__), tags)
    return ids


def test_the_counting_queries(engine):
    ids = _spread(engine)
    assert stats.months_window(TODAY)[0] == "2025-07" and stats.months_window(TODAY)[-1] == "2026-06"
    with Session(engine) as session:
        counts = stats.partnership_counts(session, RV, TODAY)
        assert counts.themes == {"information-sharing": {"learning": 1}, "neglect": {"learning": 3, "escalation": 1}}
        assert counts.factors == {"task": 2, "person": 1}
        assert counts.kinds == {"near_miss": 1, "harm": 1, "good_practice": 1}
        assert counts.by_month == {"2026-06": {"learning": 1}, "2026-05": {"learning": 1, "escalation": 1},
                                   "2025-07": {"learning": 1}}
        assert counts.events == {"learning": 3, "escalation": 1} and counts.sources == ["learning", "escalation"]

        def refs(**kw) -> tuple[list[str], int]:
            rows, total = stats.events_behind(session, RV, TODAY, **kw)
            return [r.case_ref for r in rows], total

        assert refs(theme="neglect") == (["L1", "L2", "E1", "L3"], 4)  # newest first; L4 is too old; not N1
        assert refs(theme="neglect", source="escalation") == (["E1"], 1)
        assert refs(theme="neglect", limit=2) == (["L1", "L2"], 4)
        assert refs(factor="task") == (["L1", "L2"], 2)
        assert refs(kind="harm") == (["L2"], 1)
        assert refs(month="2026-05") == (["L2", "E1"], 2)
        assert refs(month="2020-01") == ([], 0)
        assert refs(theme="domestic-abuse") == ([], 0)  # Northmoor's

        national = stats.national_counts(session, TODAY)
    assert [name for _pid, name in national.partnerships] == ["Northmoor and Eastholme", "Riverford and Vale"]
    assert national.total.themes["neglect"] == {"learning": 4, "escalation": 1}
    assert national.total.kinds == {"near_miss": 2, "harm": 1, "good_practice": 1}
    assert national.total.events == {"learning": 4, "escalation": 1}
    flat = national.rows()
    assert {"partnership": "Riverford and Vale", "partnership_id": RV, "measure": "theme", "id": "neglect",
            "source": "escalation", "count": 1} in flat
    dump = repr(flat)
    assert not any(case_id in dump for case_id in ids.values()) and "What happened" not in dump


async def test_the_themes_page_counts_and_lists_the_events_behind_a_count(site):
    browser, _env, engine = site
    ids = _spread_now(engine, london_today())
    b = await browser(PRACTITIONER)
    page = await b.get("/learning/themes")
    assert page.status_code == 200
    themes = rows_of(page.text, "themes-table")
    assert themes[0] == ["Theme", "Learning events", "Escalations"]
    assert ["Neglect", "3", "1"] in themes and ["Information sharing", "1", "0"] in themes
    assert not any(r[0] == "Domestic abuse" for r in themes)  # another partnership's
    assert ["Task: how complex, clear or time-pressured the work was", "2"] in rows_of(page.text, "factors-table")
    kinds = rows_of(page.text, "kinds-table")
    assert kinds[1][0] == "Harm" and kinds[1][2] == "1" and kinds[2][0] == "Near miss" and kinds[2][2] == "1"
    assert sum(int(r[1]) for r in rows_of(page.text, "months-table")[1:]) == 3  # L4 is older than 12 months
    assert re.search(r'id="figure-learning"[^>]*>3<', page.text) and re.search(r'id="figure-escalation"[^>]*>1<',
                                                                                page.text)
    assert '<svg' in page.text and 'aria-label="Neglect 4: 3 learning events and 1 escalation"' in page.text

    behind = await b.get("/learning/themes?theme=neglect")
    events = rows_of(behind.text, "events-table")
    assert [r[1] for r in events[1:]] == ["L1", "L2", "E1", "L3"]  # newest first
    for ref in ("L1", "L2", "L3"):
        assert f'href="/cases/{ids[ref]}"' in behind.text
    # the escalation is counted and listed, but its subject and link are for the people involved in it only
    # (safeguarding.case_access.may_read_case): this practitioner is not
    assert f'href="/cases/{ids["E1"]}"' not in behind.text and events[3][3] == "Shown to the people involved in it"
    assert "What happened in N1" not in behind.text and "What happened in L4" not in behind.text
    assert events[3][2] == "Escalation" and events[1][2] == "Near miss"
    factor = rows_of((await b.get("/learning/themes?factor=person")).text, "events-table")
    assert [r[1] for r in factor[1:]] == ["L2"]
    # an unknown selector shows no list (and no error)
    unknown = await b.get("/learning/themes?theme=<script>")
    assert unknown.status_code == 200 and 'id="events"' not in unknown.text


async def test_rapid_review_themes_are_counted_beside_learning_events(site):
    browser, _env, engine = site
    _spread_now(engine, london_today())
    today, now = london_today(), datetime.now(UTC)
    case_id = f"incident-{RV}-R1"
    with engine.begin() as conn:  # what the read model writes when a rapid review's decision names its themes
        conn.execute(insert(Case.__table__), [dict(
            id=case_id, partnership_id=RV, case_ref="R1", process="incident", national_ref="N-R1",
            category="serious_harm_abuse_neglect", status="open", stage="", arrangements_version=1, aware_date=today,
            summary="A rapid review", opened_by="u-rv-business-manager", opened_at=now, updated_at=now,
            children="[]", agencies="[]", revision=1)])
        conn.execute(insert(LearningTag.__table__), [dict(
            case_id=case_id, tag_type="theme", tag="neglect", partnership_id=RV, source="rapid_review",
            kind="rapid_review", month=today.isoformat()[:7])])
    b = await browser(PRACTITIONER)
    page = await b.get("/learning/themes")
    themes = rows_of(page.text, "themes-table")
    assert themes[0] == ["Theme", "Learning events", "Escalations", "Rapid reviews"]
    assert ["Neglect", "3", "1", "1"] in themes
    behind = rows_of((await b.get("/learning/themes?theme=neglect&source=rapid_review")).text, "events-table")
    assert [(r[1], r[2]) for r in behind[1:]] == [("R1", "Rapid review")]
    panel = await browser(PANEL)
    partnerships = rows_of((await panel.get("/national/learning")).text, "partnerships-table")
    assert partnerships[0][3] == "Rapid reviews with a theme"
    assert [r[3] for r in partnerships[1:] if r[0].startswith("Riverford")] == ["1"]


def _spread_now(engine, today: date) -> dict[str, str]:
    """The spread, moved so that "today" is the real today (the pages count from it)."""
    shift = today - TODAY
    ids = _spread(engine)
    with engine.begin() as conn:
        for case_id in ids.values():
            row = conn.execute(select(Case.aware_date).where(Case.id == case_id)).one()
            day = row[0] + shift
            if case_id.endswith("L4"):
                day = date.fromisoformat(stats.months_window(today)[0] + "-01") - timedelta(days=1)
            elif case_id.endswith("L3"):
                day = date.fromisoformat(stats.months_window(today)[0] + "-01")
            elif day > today:
                day = today
            conn.execute(update(Case).where(Case.id == case_id).values(aware_date=day))
            conn.execute(update(LearningTag).where(LearningTag.case_id == case_id).values(month=day.isoformat()[:7]))
    return ids


# --- the national view ----------------------------------------------------------------------------------------------


async def test_the_national_view_is_counts_only_and_for_the_national_body_only(site):
    browser, _env, engine = site
    _spread_now(engine, london_today())
    with engine.begin() as conn:  # a partnership name that looks like a spreadsheet formula
        conn.execute(update(Partnership).where(Partnership.id == NE).values(name="=HYPERLINK(\"x\")"))
    for email in (PRACTITIONER, PARTNERSHIP_LEAD, REPORTER_A[1], ADMIN):
        b = await browser(email)
        assert (await b.get("/national/learning")).status_code == 404, email
        assert (await b.get("/national/learning.csv")).status_code == 404, email
    panel = await browser(PANEL)
    page = await panel.get("/national/learning")
    assert page.status_code == 200
    assert ["Neglect", "4", "1"] in rows_of(page.text, "themes-table")
    partnerships = rows_of(page.text, "partnerships-table")
    assert any(r[0] == "Riverford and Vale" or r[0].startswith("Riverford") for r in partnerships[1:])
    assert "What happened in" not in page.text and "/cases/" not in page.text
    for ref in ("L1", "L2", "E1", "N1"):
        assert f">{ref}<" not in page.text
    exported = await panel.get("/national/learning.csv")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(exported.text.lstrip("\ufeff"))))
    assert rows[0] == ["Partnership", "From month", "To month", "Measure", "Id", "Label", "Counted from", "Count"]
    assert any(r[0].startswith("Riverford") and r[3:5] == ["Learning theme", "neglect"] and r[6] == "Escalations"
               and r[7] == "1" for r in rows)
    assert all(r[0] == "'=HYPERLINK(\"x\")" for r in rows[1:] if "HYPERLINK" in r[0])
    assert "What happened" not in exported.text and "learning-riverford" not in exported.text


# --- no blame, by construction: scanning everything a non-lead can reach --------------------------------------------


async def test_no_page_export_or_api_answer_a_non_lead_can_reach_names_a_reporter(site):
    browser, env, engine = site
    rename_reporters(engine)
    named = await record(await browser(REPORTER_A[1]), themes=["neglect"], kind="harm",
                         what_happened="The health visit was moved twice because of the rota.")
    anonymous = await record(await browser(REPORTER_B[1]), themes=["neglect"], anonymous="yes",
                             what_happened="The school was not told about the police call.")
    await triage(env, engine, named)
    await act_on_task(env.client, named, "complete", TaskCommand(
        "response", actor_of(principal(engine, LEARNING_LEAD[0])), {"findings": "The rota left gaps."}))
    month = london_today().isoformat()[:7]
    secrets = [part for ref, email, name in (REPORTER_A, REPORTER_B) for part in (ref, email, name)]
    secrets += [email.split("@")[0] for _ref, email, _name in (REPORTER_A, REPORTER_B)]

    def assert_clean(where: str, text: str) -> None:
        found = [s for s in secrets if s.lower() in text.lower()]
        assert not found, f"{where} names a reporter: {found}"

    pages = ["/learning/themes", "/learning/themes?theme=neglect", "/learning/themes?kind=harm",
             "/learning/themes?factor=inter-agency-working", f"/learning/themes?month={month}",
             f"/cases/{named}", f"/cases/{anonymous}", f"/cases/{named}/tasks/triage", "/cases", "/tasks"]
    api = ["/api/cases", f"/api/cases/{named}", f"/api/cases/{anonymous}", "/api/tasks", "/api/tasks?status=done"]
    for email in (PRACTITIONER, PARTNERSHIP_LEAD):
        b = await browser(email)
        for path in [*pages, "/learning", *api]:
            response = await b.get(path)
            if path == "/learning" and email != PARTNERSHIP_LEAD:
                assert response.status_code == 403
            elif email == PRACTITIONER and (named in path or anonymous in path):
                # least privilege (safeguarding.case_access.may_read_case): not their agency's event, not their task
                assert response.status_code == 404, (email, path)
            else:
                assert response.status_code == 200, (email, path)
            assert_clean(f"{path} as {email}", response.text)
        if email == PARTNERSHIP_LEAD:  # issue 17.8: the event's kind in words, not its id
            shown = await b.get(f"/cases/{named}")
            assert re.search(r"Kind of event\s*</dt>\s*<dd[^>]*>\s*Something went wrong", shown.text)
        themed = await b.get("/learning/themes?theme=neglect")
        assert "The health visit was moved twice" in themed.text  # the events are there, their reporters are not
    # the JSON API with HTTP Basic (no session), too
    basic = await browser()
    for path in api:
        response = await basic.client.get(path, auth=(PRACTITIONER, "demo-password"))
        assert response.status_code == (404 if named in path or anonymous in path else 200)
        assert_clean(f"{path} (Basic)", response.text)
    panel = await browser(PANEL)
    for path in ("/national/learning", "/national/learning.csv"):
        response = await panel.get(path)
        assert response.status_code == 200
        assert_clean(path, response.text)
        assert "The health visit was moved twice" not in response.text  # no event text nationally

    # the learning lead alone sees who reported the named event, and nobody for the anonymous one
    lead = await (await browser(LEARNING_LEAD[1])).get("/learning")
    rows = rows_of(lead.text, "feedback-table") + rows_of(lead.text, "triage-table")
    named_row = next(r for r in rows if "The health visit was moved twice" in r[1])
    anonymous_row = next(r for r in rows if "The school was not told" in r[1])
    assert named_row[3] == REPORTER_A[2] and anonymous_row[3] == "Reported anonymously"
    assert REPORTER_B[2] not in lead.text and REPORTER_B[0] not in lead.text


async def test_the_outbox_does_not_name_the_reporter_of_a_learning_event(site):
    browser, env, engine = site
    named = await record(await browser(REPORTER_A[1]))
    lead = actor_of(principal(engine, LEARNING_LEAD[0]))
    await triage(env, engine, named, response="no_further_action")
    await act_on_task(env.client, named, "complete", TaskCommand("feedback", lead, {"feedback": "Thank you."}))
    outbox = await (await browser(PARTNERSHIP_LEAD)).get("/outbox")
    assert outbox.status_code == 200 and "What we learned from what you reported" in outbox.text
    assert REPORTER_A[1] not in outbox.text and "the person who reported the learning event" in outbox.text


async def test_the_learning_lead_chooses_a_response(site):
    browser, _env, engine = site
    case_id = await record(await browser(REPORTER_A[1]))
    lead = await browser(LEARNING_LEAD[1])
    listing = await lead.get("/learning")
    assert f'href="/learning/events/{case_id}/triage"' in listing.text
    url = f"/learning/events/{case_id}/triage"
    page = words((await lead.get(url)).text)
    for label in ("After action review (within 10 working days)", "Round-table review", "No further action"):
        assert label in page
    # a choice the arrangements do not offer (a forged form), and no rationale: refused, nothing changed
    bad = await lead.post(url, {"response": "seance", "rationale": " "})
    assert bad.status_code == 422
    assert "Choose one of the learning responses listed" in bad.text and "Say why this response" in bad.text
    forged = await lead.post(url, {"response": "round_table_review", "rationale": "Why.", "task_key": "feedback"})
    assert forged.status_code == 422 and "This form does not take ‘task_key’" in words(forged.text)
    assert task_row(engine, case_id, "triage").status == "open"
    ok = await lead.post(url, {"response": "round_table_review", "rationale": "Two agencies, one gap."})
    assert ok.status_code == 303 and "triaged=" in ok.headers["location"]
    assert "Learning response chosen for" in (await lead.get(ok.headers["location"])).text
    assert task_row(engine, case_id, "triage").status == "done"
    assert task_row(engine, case_id, "response").title == "Round-table review"
    again = await lead.post(url, {"response": "round_table_review", "rationale": "Again."})
    assert again.status_code == 409 and "already completed" in again.text
    # only the learning lead
    other = await browser(PARTNERSHIP_LEAD)
    assert (await other.get(url)).status_code == 403
    assert (await (await browser(NE_LEARNING_LEAD)).get(url)).status_code == 404


def task_row(engine, case_id: str, key: str) -> Task | None:
    with Session(engine) as session:
        return session.get(Task, f"{case_id}/{key}")
