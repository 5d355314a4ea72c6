"""Partnership lead pages (outbox, arrangements, editor) and national body pages (pseudonymised), over HTTP.

The app runs without Temporal: these pages read the read model, so cases, tasks and outbox messages are
written straight into the database. People sign in through the real /sign-in page.
"""

from __future__ import annotations

import copy
import html
import json
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import yaml
from sqlalchemy import event
from sqlmodel import Session, select

from safeguarding import national
from safeguarding.arrangements import MAX_DOCUMENT_BYTES
from safeguarding.clock import london_today
from safeguarding.tables import (
    AuditEntry,
    Case,
    CaseEvent,
    TaskCandidate,
    User,
)
from sgflow.seed import DEMO_PASSWORD
from tests.support.read_model_rows import NAMES, NE, RV, add_case, add_message, add_task, versions
from web.app import create_app

LEAD = "rv-business-manager@demo.test"
OTHER_LEAD = "ne-business-manager@demo.test"
REVIEWER = "rv-teacher-dsl@demo.test"
NATIONAL = "panel@demo.test"
ADMIN = "admin@demo.test"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


# --- fixtures and helpers ---------------------------------------------------------------------------------------


@pytest.fixture
def app(seeded_engine, settings):
    return create_app(settings, engine=seeded_engine, temporal_client=None, connect_temporal=False)


@pytest.fixture
async def signed_in(app):
    """signed_in(email) -> an AsyncClient with that person's session (through the real sign-in page)."""
    clients: list[httpx.AsyncClient] = []

    async def sign_in(email: str) -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
        clients.append(client)
        page = await client.get("/sign-in")
        token = TOKEN.search(page.text).group(1)
        response = await client.post("/sign-in", data={"email": email, "password": DEMO_PASSWORD,
                                                       "csrf_token": token})
        assert response.status_code == 303, response.text[:500]
        return client

    yield sign_in
    for client in clients:
        await client.aclose()


def audits(engine) -> list[tuple[str, str]]:
    with Session(engine) as session:
        rows = session.exec(select(AuditEntry).where(AuditEntry.action == "arrangements.store")
                            .order_by(AuditEntry.id)).all()
    return [(r.outcome, r.detail) for r in rows]


def text_of(page: str) -> str:
    """The page's visible text, roughly: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


async def editor_token(client: httpx.AsyncClient, path: str = "/arrangements/edit") -> str:
    page = await client.get(path)
    assert page.status_code == 200, page.text[:500]
    return TOKEN.search(page.text).group(1)


async def submit(client: httpx.AsyncClient, *, text: str = "", file: tuple[str, bytes, str] | None = None,
                 note: str = "", htmx: bool = False, path: str = "/arrangements/edit") -> httpx.Response:
    """Post the editor form: as a browser without JavaScript (token in the form) or as htmx (token in a header)."""
    token = await editor_token(client, path)
    data = {"document": text, "note": note, "csrf_token": token}
    files = {"file": file} if file else {"file": ("", b"", "application/octet-stream")}
    headers = {"HX-Request": "true", "X-CSRF-Token": token} if htmx else {}
    return await client.post(path, data=data, files=files, headers=headers)




# --- outbox -------------------------------------------------------------------------------------------------------


async def test_a_lead_sees_only_their_partnerships_outbox_newest_first(app, seeded_engine, signed_in):
    now = datetime.now(UTC)
    add_message(seeded_engine, "rv#1", RV, "Overdue: RV older", to=["bm@rv.example"], status="held",
                created_at=now - timedelta(hours=2))
    add_message(seeded_engine, "rv#2", RV, "Overdue: RV newer", to=["dsl@rv.example"], status="failed",
                last_error="SMTPRecipientsRefused: 550 no such user", attempts=3, created_at=now - timedelta(hours=1))
    add_message(seeded_engine, "rv#3", RV, "Reminder: RV sent", status="sent", created_at=now - timedelta(hours=3),
                sent_at=now - timedelta(hours=3))
    add_message(seeded_engine, "ne#1", NE, "Overdue: NE secret", to=["someone@ne.example"])
    lead = await signed_in(LEAD)
    page = await lead.get("/outbox")
    assert page.status_code == 200
    body = page.text
    assert "Overdue: RV older" in body and "Overdue: RV newer" in body and "Reminder: RV sent" in body
    assert "NE secret" not in body and "someone@ne.example" not in body
    assert body.index("RV newer") < body.index("RV older") < body.index("RV sent")  # newest first
    assert "SMTPRecipientsRefused: 550 no such user" in body and "dsl@rv.example" in body
    assert "nothing leaves this machine" in body  # no SMTP server in these settings
    tags = re.findall(r'<strong class="govuk-tag (govuk-tag--\w+)">\s*(\w+)\s*</strong>', body)
    assert tags == [("govuk-tag--red", "Failed"), ("govuk-tag--yellow", "Held"), ("govuk-tag--green", "Sent")]
    # another partnership's outbox is not there to find
    assert (await lead.get(f"/outbox?partnership={NE}")).status_code == 404
    other = await signed_in(OTHER_LEAD)
    theirs = await other.get("/outbox")
    assert "NE secret" in theirs.text and "RV newer" not in theirs.text
    reviewer = await signed_in(REVIEWER)
    assert (await reviewer.get("/outbox")).status_code == 403


async def test_the_outbox_pages_through_messages(app, seeded_engine, signed_in):
    now = datetime.now(UTC)
    for n in range(30):
        add_message(seeded_engine, f"rv#{n}", RV, f"Message number {n:02d}", created_at=now - timedelta(minutes=n))
    lead = await signed_in(LEAD)
    first = await lead.get("/outbox")
    assert "Message number 00" in first.text and "Message number 24" in first.text
    assert "Message number 25" not in first.text and 'href="/outbox?page=2"' in first.text
    second = await lead.get("/outbox?page=2")
    assert "Message number 25" in second.text and "Message number 29" in second.text
    assert "Message number 00" not in second.text
    fragment = await lead.get("/outbox?page=2", headers={"HX-Request": "true"})
    assert fragment.text.lstrip().startswith('<div id="outbox-messages">')


async def test_an_administrator_sees_every_outbox(app, seeded_engine, signed_in):
    add_message(seeded_engine, "rv#1", RV, "From riverford")
    add_message(seeded_engine, "ne#1", NE, "From northmoor")
    admin = await signed_in(ADMIN)
    page = await admin.get("/outbox")
    assert "From riverford" in page.text and "From northmoor" in page.text
    only = await admin.get(f"/outbox?partnership={NE}")
    assert "From northmoor" in only.text and "From riverford" not in only.text


# --- arrangements: reading --------------------------------------------------------------------------------------


async def test_the_arrangements_page_summarises_the_current_version(app, signed_in):
    lead = await signed_in(LEAD)
    page = await lead.get("/arrangements")
    assert page.status_code == 200
    words = text_of(page.text)
    for expected in ("Riverford Borough Council", "Vale Constabulary", "NHS Vale and Riverford Integrated Care Board",
                     "15 working days, counted from the local authority becoming aware of the incident",
                     "5 working days", "Resolving professional disagreements", "Chasing overdue work",
                     "Version history", "demo seed", "Change the arrangements"):
        assert expected in words, expected
    reviewer = await signed_in(REVIEWER)
    read_only = await reviewer.get("/arrangements")
    assert read_only.status_code == 200 and 'href="/arrangements/edit"' not in read_only.text


async def test_a_version_page_shows_the_document_escaped(app, seeded_engine, signed_in, riverford):
    lead = await signed_in(LEAD)
    changed = copy.deepcopy(riverford)
    changed["roles"][0]["description"] = "Runs the <script>alert('x')</script> business unit & more."
    response = await submit(lead, text=json.dumps(changed), note="<b>bold</b> note")
    assert response.status_code == 303
    page = await lead.get("/arrangements/2")
    assert page.status_code == 200
    assert "<script>alert" not in page.text and "&lt;script&gt;alert" in page.text
    assert "<b>bold</b>" not in page.text and "&lt;b&gt;bold&lt;/b&gt; note" in page.text
    assert "<pre" in page.text
    assert "&#34;partnership&#34;" in page.text or "&quot;partnership&quot;" in page.text  # JSON, escaped
    assert (await lead.get("/arrangements/9")).status_code == 404


async def test_another_partnerships_lead_gets_404_for_its_pages(app, signed_in):
    other = await signed_in(OTHER_LEAD)
    for path in (f"/arrangements?partnership={RV}", f"/arrangements/1?partnership={RV}",
                 f"/arrangements/diff?from=1&to=1&partnership={RV}", f"/arrangements/edit?partnership={RV}",
                 "/arrangements?partnership=no-such-partnership"):
        response = await other.get(path)
        assert response.status_code == 404, path
        assert "Riverford" not in response.text
    own = await other.get("/arrangements/1")
    assert own.status_code == 200 and "northmoor-and-eastholme" in own.text


async def test_an_administrator_chooses_a_partnership(app, signed_in):
    admin = await signed_in(ADMIN)
    page = await admin.get("/arrangements")
    assert page.status_code == 200
    assert f'href="/arrangements?partnership={RV}"' in page.text
    theirs = await admin.get(f"/arrangements?partnership={NE}")
    assert theirs.status_code == 200 and "Northmoor Metropolitan Borough Council" in theirs.text


# --- the editor ---------------------------------------------------------------------------------------------------


async def test_a_broken_document_lists_its_problems_by_path_and_stores_nothing(app, seeded_engine, signed_in,
                                                                               riverford):
    lead = await signed_in(LEAD)
    before = versions(seeded_engine)
    bad = copy.deepcopy(riverford)
    bad["escalation"]["ladders"][0]["stages"][1]["handler_role"] = "no-such-role"
    bad["calendar"]["extra_closure_days"] = [{"date": "2026-02-30", "reason": "typo"}]
    response = await submit(lead, file=("arrangements.json", json.dumps(bad).encode(), "application/json"),
                            note="broken")
    assert response.status_code == 422
    page = response.text
    assert "govuk-error-summary" in page and "Nothing was stored" in page
    assert "/escalation/ladders/0/stages/1/handler_role" in page and "/calendar/extra_closure_days/0/date" in page
    assert 'id="issue-1"' in page and 'href="#issue-1"' in page
    assert "no-such-role" in page  # the offending value is shown
    assert "<title>Error:" in page.replace("\n", "")
    assert versions(seeded_engine) == before
    assert audits(seeded_engine)[-1][0] == "rejected"


async def test_a_yaml_syntax_error_gives_line_and_column(app, seeded_engine, signed_in):
    lead = await signed_in(LEAD)
    before = versions(seeded_engine)
    response = await submit(lead, file=("arrangements.yaml", b"partnership:\n  id: [unclosed\nroles: x\n",
                                        "application/yaml"))
    assert response.status_code == 422
    assert re.search(r"line \d+, column \d+", response.text)
    pasted = await submit(lead, text="schema_version: '1.0'\npartnership: {id: [\n")
    assert pasted.status_code == 422 and re.search(r"line \d+, column \d+", pasted.text)
    assert versions(seeded_engine) == before


async def test_a_huge_upload_is_refused_clearly_and_nothing_is_stored(app, seeded_engine, signed_in):
    lead = await signed_in(LEAD)
    before = versions(seeded_engine)
    huge = b'{"x": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    # with JavaScript (htmx sends the token in a header): the page reads the upload itself, with its limit
    response = await submit(lead, file=("big.json", huge, "application/json"), htmx=True)
    assert response.status_code == 422  # htmx swaps 422 (not 413) into the page
    words = text_of(response.text)
    assert "The upload is too large" in words and "1,000,000 bytes" in words and "Nothing was stored" in words
    # without JavaScript (the token in the form): the page's own message too (the session middleware reads forms
    # with files up to settings.max_upload_mb to find the token, no longer only 2 MB)
    plain = await submit(lead, file=("big.json", huge, "application/json"))
    assert plain.status_code == 413 and "The upload is too large" in text_of(plain.text)
    # a file over the document limit but under the form limit: the page's own message
    big = b'{"x": "' + b"a" * (MAX_DOCUMENT_BYTES + 10) + b'"}'
    response = await submit(lead, file=("big.json", big, "application/json"))
    assert response.status_code == 413 and "The upload is too large" in text_of(response.text)
    assert versions(seeded_engine) == before
    assert [outcome for outcome, _ in audits(seeded_engine)] == ["rejected", "rejected", "rejected"]


async def test_an_identical_document_stores_nothing(app, seeded_engine, signed_in, riverford):
    lead = await signed_in(LEAD)
    before = versions(seeded_engine)
    response = await submit(lead, text=yaml.safe_dump(riverford, sort_keys=False), note="same again")
    assert response.status_code == 200
    assert "No changes: the document is identical to version 1, so nothing was stored." in text_of(response.text)
    assert versions(seeded_engine) == before
    assert audits(seeded_engine) == [("ok", "unchanged (v1)")]


async def test_a_good_change_stores_the_next_version_and_the_diff_shows_it(app, seeded_engine, signed_in, riverford):
    lead = await signed_in(LEAD)
    changed = copy.deepcopy(riverford)
    changed["rapid_review"]["reminders"]["working_days_before_due"] = 3
    response = await submit(lead, file=("arrangements.json", json.dumps(changed).encode(), "application/json"),
                            note="Earlier reminders")
    assert response.status_code == 303
    assert response.headers["location"] == "/arrangements/2?stored=1"
    assert versions(seeded_engine) == 2
    shown = await lead.get(response.headers["location"])
    assert "Version 2 stored" in shown.text and "Earlier reminders" in shown.text
    assert LEAD in shown.text  # the author
    diff = await lead.get("/arrangements/diff?from=1&to=2")
    assert diff.status_code == 200
    words = text_of(diff.text)
    assert "/rapid_review/reminders/working_days_before_due" in words
    assert "1 change." in words
    cells = re.findall(r'<code class="app-diff-value"[^>]*>([^<]*)</code>', diff.text)
    assert cells == ["2", "3"]  # before → after
    history = await lead.get("/arrangements")
    assert "Earlier reminders" in history.text and 'href="/arrangements/diff?from=1&to=2"' in history.text
    assert audits(seeded_engine) == [("ok", "v2")]
    # with htmx the page is told where to go instead of being redirected
    changed["rapid_review"]["reminders"]["working_days_before_due"] = 4
    again = await submit(lead, text=json.dumps(changed), htmx=True)
    assert again.status_code == 204 and again.headers["HX-Redirect"] == "/arrangements/3?stored=1"


async def test_a_document_for_another_partnership_is_refused(app, seeded_engine, signed_in):
    lead = await signed_in(LEAD)
    from sgflow.seed import EXAMPLES

    response = await submit(lead, file=("ne.yaml", (EXAMPLES / "northmoor-and-eastholme.yaml").read_bytes(),
                                        "application/yaml"))
    assert response.status_code == 422 and "/partnership/id" in response.text
    assert versions(seeded_engine) == 1 and versions(seeded_engine, NE) == 1


async def test_an_empty_form_asks_for_a_document(app, seeded_engine, signed_in):
    lead = await signed_in(LEAD)
    response = await submit(lead)
    assert response.status_code == 422 and "Choose a file or paste the arrangements" in text_of(response.text)


async def test_only_the_partnerships_leads_may_store(app, seeded_engine, signed_in, riverford):
    reviewer = await signed_in(REVIEWER)
    assert (await reviewer.get("/arrangements/edit")).status_code == 403
    page = await reviewer.get("/arrangements")
    token = TOKEN.search(page.text).group(1)
    changed = copy.deepcopy(riverford)
    changed["rapid_review"]["reminders"]["working_days_before_due"] = 3
    response = await reviewer.post("/arrangements/edit", data={"document": json.dumps(changed), "csrf_token": token},
                                   files={"file": ("", b"", "application/octet-stream")})
    assert response.status_code == 403
    assert "You cannot change these arrangements" in text_of(response.text)
    assert versions(seeded_engine) == 1
    assert audits(seeded_engine)[-1][0] == "rejected"
    # the other partnership's lead cannot even see it exists
    other = await signed_in(OTHER_LEAD)
    token = TOKEN.search((await other.get("/arrangements")).text).group(1)
    response = await other.post(f"/arrangements/edit?partnership={RV}",
                                data={"document": json.dumps(changed), "csrf_token": token})
    assert response.status_code == 404 and versions(seeded_engine) == 1


async def test_the_editor_needs_the_forms_token(app, seeded_engine, signed_in, riverford):
    lead = await signed_in(LEAD)
    response = await lead.post("/arrangements/edit", data={"document": json.dumps(riverford)})
    assert response.status_code == 403 and versions(seeded_engine) == 1


async def test_pages_need_a_signed_in_person(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as anonymous:
        for path in ("/outbox", "/arrangements", "/arrangements/edit", "/national", "/national/cases/N-1"):
            response = await anonymous.get(path)
            assert response.status_code == 303 and response.headers["location"].startswith("/sign-in"), path


# --- national ---------------------------------------------------------------------------------------------------

XSS = "<script>alert('x')</script>"


@pytest.fixture
def mixed_cases(seeded_engine):
    """A seeded mix relative to today: on time, late, overdue, not yet due; with names where names must not leak."""
    today = london_today()
    d = lambda days: today + timedelta(days=days)  # noqa: E731
    children = json.dumps([{"pseudonym": "Jayden Smith-Okoro", "local_ref": "LA-778812"}])
    summary = "Practitioner Mary Wilkins found Jayden Smith-Okoro injured; Kayleigh Brennan (mother) was present."
    a = add_case(seeded_engine, "rv-ontime", notification_due=d(-20), notification_sent_on=d(-21),
                 notification_days_late=0, rapid_review_due=d(-5), rapid_review_submitted_on=d(-6),
                 rapid_review_days_late=0, stage="Awaiting the Panel's response", children=children, summary=summary,
                 opened_by="u-rv-la-head-qa")
    b = add_case(seeded_engine, "rv-late", notification_due=d(-20), notification_sent_on=d(-18),
                 notification_days_late=2, rapid_review_due=d(-2), children=children, summary=summary)
    c = add_case(seeded_engine, "rv-unsent", notification_due=d(-1), rapid_review_due=d(10))
    dd = add_case(seeded_engine, "rv-notdue", aware_date=d(-1), notification_due=d(4), rapid_review_due=d(14))
    e = add_case(seeded_engine, "rv-closed", status="closed", stage="Rapid review complete",
                 notification_due=d(-60), notification_sent_on=d(-61), notification_days_late=0,
                 rapid_review_due=d(-45), rapid_review_submitted_on=d(-40), rapid_review_days_late=3,
                 panel_response="agrees", lcspr_decision="no", closed_at=datetime.now(UTC) - timedelta(days=30))
    f = add_case(seeded_engine, "ne-late", pid=NE, notification_due=d(-10), notification_sent_on=d(-8),
                 notification_days_late=1, rapid_review_due=d(5), opened_by="u-ne-head-qa")
    add_task(seeded_engine, a, "notification", type="notification_sent", title="Notify the national Panel",
             status="done", completed_by="u-rv-la-head-qa",
             completed_at=datetime.now(UTC) - timedelta(days=21), data=json.dumps({"note": "Told by Mary Wilkins"}))
    add_task(seeded_engine, a, "panel-response", type="panel_response", candidate_role="national_panel",
             title="Respond to the rapid review", candidate_label="the national Panel", follow_up_date=d(5))
    add_task(seeded_engine, b, "meeting", type="rr_meeting", claimed_by="u-rv-review-officer", overdue=True,
             due_date=d(-3), candidate_label="Practitioner Mary Wilkins")
    add_task(seeded_engine, e, "panel-response", type="panel_response", status="done", candidate_role="national_panel",
             title="Respond to the rapid review", completed_by="u-panel-analyst",
             completed_at=datetime.now(UTC) - timedelta(days=30), data=json.dumps({"response": "agrees"}))
    with Session(seeded_engine) as session:
        session.add(TaskCandidate(task_id=f"{b.id}/meeting", user_ref="u-rv-review-officer"))
        session.add(CaseEvent(id=f"{a.id}#1", case_id=a.id, partnership_id=RV, seq=1, at=datetime.now(UTC),
                              actor="u-rv-la-head-qa", kind="case_opened", message="Opened by DS Tom Hartley"))
        session.add(User(email="mary@rv.example", display_name="Practitioner Mary Wilkins", user_ref="u-rv-mary",
                         kind="reviewer", partnership_id=RV, password_hash="x"))
        session.commit()
    add_message(seeded_engine, "rv#1", RV, "Overdue: meeting for Jayden Smith-Okoro", case_id=b.id)
    return {"a": a, "b": b, "c": c, "d": dd, "e": e, "f": f}


async def test_the_national_figures_are_right_for_a_seeded_mix(app, seeded_engine, signed_in, mixed_cases):
    today = london_today()
    with Session(seeded_engine) as session:
        everyone = national.figures(session, today)
        riverford = national.figures(session, today, partnership_id=RV)
    # due so far: a, b, c (unsent, past due), e, f; late: b (2 days), c (not sent), f (1 day)
    assert everyone == national.Figures(cases=6, notifications_judged=5, notifications_late=3,
                                        rapid_reviews_overdue=1, awaiting_panel=1, open_panel_tasks=1)
    assert everyone.notifications_late_percent == 60
    assert riverford == national.Figures(cases=5, notifications_judged=4, notifications_late=2,
                                         rapid_reviews_overdue=1, awaiting_panel=1, open_panel_tasks=1)
    client = await signed_in(NATIONAL)
    page = await client.get("/national")
    assert page.status_code == 200
    figure = lambda name: re.search(rf'id="figure-{name}">(\d+)<', page.text).group(1)  # noqa: E731
    assert (figure("late"), figure("overdue"), figure("awaiting"), figure("tasks")) == ("3", "1", "1", "1")
    assert "of 5 due so far (60%)" in text_of(page.text)
    # the period the figures count is said (the monitoring page's figures count its trend's months only)
    period = re.search(r'<p class="govuk-body" id="figures-period">(.*?)</p>', page.text, re.S)
    assert period and "whatever its date" in text_of(period.group(1)) and "last 12 months" in text_of(period.group(1))
    assert 'id="figures-period"' in (await client.get("/national?status=open", headers={"HX-Request": "true"})).text


async def test_the_national_filters(app, seeded_engine, signed_in, mixed_cases):
    client = await signed_in(NATIONAL)
    refs = lambda page: re.findall(r'href="/national/cases/([^"/]+)"', page.text)  # noqa: E731
    m = mixed_cases
    assert sorted(refs(await client.get("/national?show=late_notification"))) == sorted(
        [m["b"].national_ref, m["c"].national_ref, m["f"].national_ref])
    assert refs(await client.get("/national?show=rr_overdue")) == [m["b"].national_ref]
    assert refs(await client.get("/national?show=awaiting_panel")) == [m["a"].national_ref]
    assert refs(await client.get("/national?status=closed")) == [m["e"].national_ref]
    assert refs(await client.get(f"/national?partnership={NE}")) == [m["f"].national_ref]
    assert len(refs(await client.get("/national?status=bogus&show=bogus&page=x"))) == 6  # unknown filters: ignored
    fragment = await client.get(f"/national?partnership={NE}", headers={"HX-Request": "true"})
    assert fragment.text.lstrip().startswith('<div id="results">') and "<html" not in fragment.text
    page = await client.get("/national")
    # the Panel's open task, saying where it comes from (the task page's back link needs no Referer)
    assert f'href="/national/cases/{m["a"].national_ref}/tasks/panel-response?from=overview"' in page.text
    assert m["a"].id not in page.text and m["a"].case_ref not in page.text
    assert page.text.count("/tasks/panel-response") == 1  # only open Panel tasks get a link
    one = await client.get(f"/national/cases/{m['a'].national_ref}")
    assert f'href="/national/cases/{m["a"].national_ref}/tasks/panel-response?from=case"' in one.text


async def test_national_pages_paginate(app, seeded_engine, signed_in):
    today = london_today()
    for n in range(60):
        add_case(seeded_engine, f"rv-{n:03d}", aware_date=today - timedelta(days=n + 1))
    client = await signed_in(NATIONAL)
    first = await client.get("/national")
    assert "Showing 1 to 50 of 60 cases" in text_of(first.text) and 'href="/national?page=2"' in first.text
    second = await client.get("/national?page=2")
    assert "Showing 51 to 60 of 60 cases" in text_of(second.text)
    beyond = await client.get("/national?page=99")
    assert "Showing 51 to 60 of 60 cases" in text_of(beyond.text)


async def test_national_pages_name_no_one(app, seeded_engine, signed_in, mixed_cases):
    with Session(seeded_engine) as session:
        people = session.exec(select(User).where(User.partnership_id.is_not(None))).all()
    forbidden = set(NAMES) | {"LA-778812", "Child A", "Injuries."}
    for person in people:
        forbidden |= {person.display_name, person.display_name.split(" (")[0], person.user_ref, person.email}
    client = await signed_in(NATIONAL)
    pages = [await client.get(path) for path in (
        "/national", f"/national?partnership={RV}", "/national?show=late_notification", "/national?status=closed")]
    pages += [await client.get(f"/national/cases/{c.national_ref}") for c in mixed_cases.values()]
    for page in pages:
        assert page.status_code == 200, page.url
        for secret in forbidden:
            assert secret not in page.text, (secret, str(page.url))
            assert html.escape(secret) not in page.text, (secret, str(page.url))
    one = await client.get(f"/national/cases/{mixed_cases['a'].national_ref}")
    words = text_of(one.text)
    assert "Respond to the rapid review" in words and "Notify the national Panel" in words  # steps, not people
    assert "Serious harm" in words or "seriously harmed" in words  # the category label from the arrangements


async def test_national_pages_escape_what_they_show(app, seeded_engine, signed_in):
    case = add_case(seeded_engine, "rv-xss", category=XSS, stage=XSS, panel_response=XSS, status="open",
                    rapid_review_submitted_on=london_today())
    add_task(seeded_engine, case, "meeting", type="rr_meeting", title=XSS)
    client = await signed_in(NATIONAL)
    for path in ("/national", f"/national/cases/{case.national_ref}"):
        page = await client.get(path)
        assert page.status_code == 200
        assert XSS not in page.text and "<script>alert" not in page.text
        assert "&lt;script&gt;alert(" in page.text


async def test_escalations_and_actions_show_no_free_text(app, seeded_engine, signed_in, mixed_cases):
    """An escalation's category (its issue type) and withdrawn stage, and an action's title, are typed by people."""
    today = london_today()
    escalation = add_case(seeded_engine, "rv-esc", process="escalation", category="Kayleigh Brennan's housing",
                          stage="withdrawn: DS Tom Hartley spoke to Mary Wilkins", status="withdrawn",
                          outcome="withdrawn", ladder_purpose="professional_disagreement", current_stage=3,
                          highest_stage=3, timeouts=1, reached_national=True, rapid_review_required=False,
                          notification_due=None, aware_date=today - timedelta(days=5))
    add_task(seeded_engine, escalation, "stage-3", type="ladder_stage", title="Stage 3: Designated leads",
             status="cancelled")
    review = add_case(seeded_engine, "rv-lcspr", process="lcspr", category="serious_harm_abuse_neglect",
                      stage="Review: in progress", notification_due=None, rapid_review_required=False,
                      report_due=today + timedelta(days=60))
    add_task(seeded_engine, review, "action-1", type="lcspr_action", title="Action 1: Jayden Smith-Okoro's school")
    client = await signed_in(NATIONAL)
    overview = await client.get("/national")
    assert escalation.national_ref not in overview.text and review.national_ref not in overview.text  # incidents only
    for case in (escalation, review):
        page = await client.get(f"/national/cases/{case.national_ref}")
        assert page.status_code == 200
        for secret in NAMES:
            assert secret not in page.text and html.escape(secret) not in page.text, secret
    words = text_of((await client.get(f"/national/cases/{escalation.national_ref}")).text)
    assert "Resolving a professional disagreement" in words and "Stage 3" in words and "Withdrawn" in words
    words = text_of((await client.get(f"/national/cases/{review.national_ref}")).text)
    assert "Action 1" in words and "Review: in progress" in words
    learning = add_case(seeded_engine, "rv-learning", process="learning", category="near_miss", stage="Triage")
    assert (await client.get(f"/national/cases/{learning.national_ref}")).status_code == 404  # stays local


async def test_a_local_review_shows_the_notices_the_panel_received(app, seeded_engine, signed_in):
    """Only notices whose recipients include the Panel, by kind and date: never the event's words or its actor."""
    review = add_case(seeded_engine, "rv-lcspr-notices", process="lcspr", category="serious_harm_abuse_neglect",
                      stage="Actions", notification_due=None, rapid_review_required=False, published=False)
    with Session(seeded_engine) as session:
        for seq, notice, recipients in ((1, "pre_publication_copy", ["national_panel", "secretary_of_state"]),
                                        (2, "not_published", ["secretary_of_state"])):
            session.add(CaseEvent(id=f"{review.id}#{seq}", case_id=review.id, partnership_id=RV, seq=seq,
                                  at=datetime.now(UTC), actor="u-rv-business-manager", kind="notice_sent",
                                  message="Sent by Practitioner Mary Wilkins",
                                  data=json.dumps({"notice": notice, "recipients": recipients,
                                                   "sent_on": "2026-12-01"})))
        session.commit()
    client = await signed_in(NATIONAL)
    page = await client.get(f"/national/cases/{review.national_ref}")
    words = text_of(page.text)
    assert "Notices received by the Panel" in words
    assert "Pre-publication copy of the final report: received 1 December 2026" in words
    assert "will not be published" not in words  # sent to the Secretary of State only
    assert "Mary Wilkins" not in page.text and "u-rv-business-manager" not in page.text
    api = await client.get(f"/api/national/cases/{review.national_ref}")
    assert api.status_code == 200
    assert api.json()["notices_received"] == [{"notice": "pre_publication_copy",
                                               "title": "Pre-publication copy of the final report",
                                               "received_on": "2026-12-01"}]


async def test_an_incident_and_its_local_review_link_to_each_other_and_never_read_closed_while_awaiting(
        app, seeded_engine, signed_in):
    """Issue 17.12: the incident handed to its local review is not shown as both "Awaiting the local review" and
    "Closed"; each national page links to the other; once the local review closes, so does the incident's status."""
    handed = datetime(2026, 11, 20, 12, tzinfo=UTC)
    incident = add_case(seeded_engine, "rv-handed", status="awaiting_lcspr", closed_at=handed, lcspr_decision="yes",
                        stage="Waiting for the local child safeguarding practice review")
    review = add_case(seeded_engine, "rv-handed-review", process="lcspr", parent_case_id=incident.id,
                      stage="Review: in progress", notification_due=None, rapid_review_required=False)
    client = await signed_in(NATIONAL)
    page = await client.get(f"/national/cases/{incident.national_ref}")
    words = " ".join(text_of(page.text).split())
    assert "Awaiting the local review" in words
    assert "Closed Rapid review finished on 20 November 2026" in words
    assert f'href="/national/cases/{review.national_ref}"' in page.text
    back = await client.get(f"/national/cases/{review.national_ref}")
    assert f'href="/national/cases/{incident.national_ref}"' in back.text
    with Session(seeded_engine) as session:
        row = session.get(Case, review.id)
        row.status, row.closed_at = "closed", datetime(2027, 5, 3, 12, tzinfo=UTC)
        session.add(row)
        session.commit()
    words = " ".join(text_of((await client.get(f"/national/cases/{incident.national_ref}")).text).split())
    assert "Closed: its local review has finished" in words and "Awaiting the local review" not in words


async def test_only_the_national_body_sees_national_pages(app, signed_in, mixed_cases):
    for email in (LEAD, REVIEWER):
        client = await signed_in(email)
        assert (await client.get("/national")).status_code == 403
        assert (await client.get(f"/national/cases/{mixed_cases['a'].national_ref}")).status_code == 403
    national_user = await signed_in(NATIONAL)
    assert (await national_user.get("/national/cases/N-NOSUCHREF")).status_code == 404
    assert (await national_user.get("/outbox")).status_code == 403
    admin = await signed_in(ADMIN)
    assert (await admin.get("/national")).status_code == 200


async def test_the_national_page_runs_a_fixed_number_of_queries(app, seeded_engine, signed_in):
    """Never one query per case: the statement count doesn't grow with the number of cases."""
    client = await signed_in(NATIONAL)
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(seeded_engine, "before_cursor_execute", count)
    try:
        counts = []
        for batch in range(2):
            for n in range(5 if batch == 0 else 40):
                case = add_case(seeded_engine, f"rv-q{batch}-{n}", rapid_review_submitted_on=london_today())
                add_task(seeded_engine, case, "panel-response", candidate_role="national_panel")
            statements.clear()
            assert (await client.get("/national")).status_code == 200
            counts.append(len(statements))
    finally:
        event.remove(seeded_engine, "before_cursor_execute", count)
    assert counts[1] <= counts[0], counts  # (the first also reads the category labels, then cached)
    assert counts[0] <= 10, statements


def test_category_labels_come_from_the_pinned_version(seeded_engine):
    with Session(seeded_engine) as session:
        labels = national.category_labels(session, {(RV, 1), (NE, 1), (RV, 99)})
    assert labels[(RV, 1)]["death_abuse_neglect"].startswith("Child died")
    assert labels[(RV, 99)] == {}


async def test_odd_page_numbers_are_not_errors(app, signed_in):
    """"²".isdigit() is True but int("²") fails: page numbers from the address bar must never be a 500."""
    lead = await signed_in("rv-business-manager@demo.test")
    national = await signed_in("panel@demo.test")
    for client, path in ((lead, "/outbox"), (national, "/national")):
        for page in ("²", "-1", "x", "99999999999"):
            assert (await client.get(path, params={"page": page})).status_code == 200
