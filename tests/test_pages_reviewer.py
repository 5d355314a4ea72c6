"""The reviewer pages over HTTP (httpx + the ASGI app), against a time-skipping Temporal server, an in-process
worker and a seeded SQLite database: sign-in, sessions, CSRF, errors, the inbox, cases, tasks and intake."""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import timedelta

from sqlmodel import Session, select

from safeguarding.clock import london_today
from safeguarding.tables import Case, Task, User
from tests.support.pages import (
    DCS,
    HX,
    LEAD,
    NE_LEAD,
    PANEL,
    PASSWORD,
    SCRIPT,
    audit_actions,
    task_row,
    user,
    visible,
)
from web.auth import EMAIL_LIMIT
from web.session import COOKIE_NAME, IDLE, new_signed_in_cookie

# --- sign-in, sessions, CSRF ----------------------------------------------------------------------------------


async def test_sign_in_and_one_message_for_any_wrong_credentials(site):
    browser, driver = site
    b = browser()
    page = await b.get("/sign-in")
    assert page.status_code == 200 and "Sign in" in page.text
    cookie = page.headers["set-cookie"]
    assert COOKIE_NAME in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http here; Secure is added for https requests

    wrong_password = await b.post("/sign-in", {"email": LEAD, "password": "nope"})
    unknown_email = await b.post("/sign-in", {"email": "nobody@demo.test", "password": PASSWORD})
    assert wrong_password.status_code == unknown_email.status_code == 422
    assert "Enter a correct email address and password" in wrong_password.text

    def without_email(html: str) -> str:
        return re.sub(r' value="[^"]*@demo.test"', "", html)

    assert without_email(wrong_password.text) == without_email(unknown_email.text)  # no hint which part was wrong
    assert "password is wrong" not in wrong_password.text.lower()

    ok = await b.post("/sign-in", {"email": LEAD, "password": PASSWORD, "next": "/"})
    assert ok.status_code == 303 and ok.headers["location"] == "/cases"  # a lead's home
    assert (await b.get("/cases")).status_code == 200
    outcomes = [(a.outcome, a.actor) for a in audit_actions(driver.engine, "sign_in")]
    assert outcomes == [("rejected", "anonymous"), ("rejected", "anonymous"), ("ok", "u-rv-business-manager")]


async def test_home_redirects_by_kind(site):
    browser, _ = site
    for email, home in ((LEAD, "/cases"), (DCS, "/tasks"), (PANEL, "/national")):
        b = browser()
        await b.sign_in(email)
        response = await b.get("/")
        assert response.status_code == 303 and response.headers["location"] == home, email


async def test_repeated_failures_are_throttled(site):
    browser, driver = site
    b = browser()
    await b.get("/sign-in")
    for _ in range(EMAIL_LIMIT.amount):
        assert (await b.post("/sign-in", {"email": DCS, "password": "guess"})).status_code == 422
    locked = await b.post("/sign-in", {"email": DCS, "password": PASSWORD})  # even the right password waits
    assert locked.status_code == 429 and "too many times" in locked.text
    assert int(locked.headers["retry-after"]) > 0
    assert (await b.get("/tasks")).status_code == 303  # not signed in
    other = browser()
    assert (await other.sign_in(LEAD)).status_code == 303  # other addresses are not affected
    assert any("throttled" in a.detail for a in audit_actions(driver.engine, "sign_in"))


async def test_no_session_redirects_to_sign_in_and_back(site):
    browser, driver = site
    case_id = await driver.open(london_today())
    b = browser()
    response = await b.get(f"/cases/{case_id}")
    assert response.status_code == 303
    assert response.headers["location"] == f"/sign-in?next=/cases/{case_id}"
    page = await b.get(response.headers["location"])
    assert f'name="next" value="/cases/{case_id}"' in page.text
    back = await b.post("/sign-in", {"email": LEAD, "password": PASSWORD, "next": f"/cases/{case_id}"})
    assert back.status_code == 303 and back.headers["location"] == f"/cases/{case_id}"
    # never to another site
    evil = await browser().sign_in(LEAD, next_path="//evil.example/x")
    assert evil.headers["location"] == "/cases"
    # htmx requests are told to load the sign-in page, not to swap it into a fragment
    polled = await browser().get("/tasks?poll=1", headers=HX)
    assert polled.headers["hx-redirect"].startswith("/sign-in")


async def test_an_expired_session_goes_to_sign_in_then_back(site, settings):
    browser, driver = site
    lead = user(driver.engine, LEAD)
    b = browser()
    stale = new_signed_in_cookie(b.app, lead.id, lead.password_hash, now=int(time.time()) - IDLE - 60)
    b.client.cookies.set(COOKIE_NAME, stale)
    response = await b.get("/tasks?status=done")
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in?next=/tasks%3Fstatus%3Ddone&expired=1"
    page = await b.get(response.headers["location"])
    assert "signed out because you had not done anything" in page.text
    back = await b.post("/sign-in", {"email": LEAD, "password": PASSWORD, "next": "/tasks?status=done"})
    assert back.headers["location"] == "/tasks?status=done"
    # a form posted after the session ran out: to sign in (then back to the page it was on), nothing done
    b3 = browser()
    stale = new_signed_in_cookie(b.app, lead.id, lead.password_hash, now=int(time.time()) - IDLE - 60)
    b3.client.cookies.set(COOKIE_NAME, stale)
    posted = await b3.client.post("/cases/x/tasks/notification/claim", data={"csrf_token": "t"},
                                  headers={"Referer": "http://testserver/tasks"})
    assert posted.status_code == 303 and posted.headers["location"] == "/sign-in?next=/tasks&expired=1"
    # a tampered cookie is no session at all
    b2 = browser()
    b2.client.cookies.set(COOKIE_NAME, stale[:-3] + "abc")
    assert (await b2.get("/tasks")).status_code == 303


async def test_sign_out_ends_the_session(site):
    browser, driver = site
    b = browser()
    await b.sign_in(DCS)
    assert (await b.post("/sign-out", token=False)).status_code == 403  # a form without its token
    out = await b.post("/sign-out")
    assert out.status_code == 303 and out.headers["location"] == "/sign-in?signed_out=1"
    assert "Max-Age=0" in out.headers["set-cookie"]
    assert (await b.get("/tasks")).status_code == 303
    assert audit_actions(driver.engine, "sign_out")


async def test_a_deactivated_account_or_a_new_password_ends_the_session_at_its_next_click(site):
    """Every request asks the database about the session's account: the inbox and the case page too."""
    from safeguarding.accounts import hash_password

    browser, driver = site
    case_id = await driver.open(london_today())

    def change(**values) -> None:
        with Session(driver.engine) as session:
            account = session.exec(select(User).where(User.email == DCS)).one()
            for name, value in values.items():
                setattr(account, name, value)
            session.add(account)
            session.commit()

    b = browser()
    await b.sign_in(DCS)
    assert (await b.get("/tasks")).status_code == 200 and (await b.get(f"/cases/{case_id}")).status_code == 200
    change(active=False)
    out = await b.get(f"/cases/{case_id}")
    assert out.status_code == 303 and out.headers["location"].startswith("/sign-in?next=/cases/")
    assert "Max-Age=0" in out.headers["set-cookie"]
    assert (await b.get("/tasks")).status_code == 303
    assert (await b.sign_in(DCS)).status_code == 422  # and no way back in

    change(active=True)
    b2 = browser()
    await b2.sign_in(DCS)
    assert (await b2.get("/tasks")).status_code == 200
    change(password_hash=hash_password("a-new-password"))
    out = await b2.get("/tasks")
    assert out.status_code == 303 and out.headers["location"].startswith("/sign-in?next=/tasks")
    assert (await b2.get(f"/cases/{case_id}")).status_code == 303


async def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(site):
    browser, driver = site
    case_id = await driver.open(london_today())
    b = browser()
    await b.sign_in(DCS)
    refused = await b.post(f"/cases/{case_id}/tasks/notification/claim", token=False)
    assert refused.status_code == 403 and "could not accept that form" in refused.text
    assert "<html" in refused.text.lower()  # the GOV.UK error page, not JSON
    wrong = await b.post(f"/cases/{case_id}/tasks/notification/claim", {"csrf_token": "forged"}, token=False)
    assert wrong.status_code == 403
    assert task_row(driver.engine, case_id, "notification").claimed_by is None
    lead = browser()
    await lead.sign_in(LEAD)
    before = len(driver.events())
    intake = await lead.post("/incidents/new", {"case_ref": "RV-CSRF-1"}, token=False)
    assert intake.status_code == 403
    with Session(driver.engine) as session:
        assert session.exec(select(Case).where(Case.case_ref == "RV-CSRF-1")).first() is None
    assert len(driver.events()) == before
    assert len(audit_actions(driver.engine, "csrf.rejected")) == 3
    # htmx sends the token as a header instead of a form field
    ok = await b.client.post(f"/cases/{case_id}/tasks/notification/claim", headers={**HX, "X-CSRF-Token": b.token},
                             data={"back": f"/cases/{case_id}/tasks/notification"})
    assert ok.status_code == 200
    assert task_row(driver.engine, case_id, "notification").claimed_by == "u-rv-la-dcs"


async def test_api_basic_auth_needs_no_csrf_token_but_a_session_does(site):
    browser, driver = site
    case_id = await driver.open(london_today())
    b = browser()
    basic = await b.client.post(f"/api/cases/{case_id}/tasks/notification/claim", auth=(DCS, PASSWORD))
    assert basic.status_code == 200, basic.text
    await b.sign_in(DCS)
    with_cookie = await b.client.post(f"/api/cases/{case_id}/tasks/notification/release")
    assert with_cookie.status_code == 403 and with_cookie.json()["error"]["code"] == "csrf_failed"
    with_header = await b.client.post(f"/api/cases/{case_id}/tasks/notification/release",
                                      headers={"X-CSRF-Token": b.token})
    assert with_header.status_code == 200  # the API accepts the session too
    assert (await b.client.get("/api/tasks")).status_code == 200


# --- errors --------------------------------------------------------------------------------------------------


async def test_pages_get_the_error_page_and_the_api_keeps_json(site):
    browser, _ = site
    app = browser().app

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    b = browser()
    await b.sign_in(DCS)
    missing = await b.get("/no-such-page")
    assert missing.status_code == 404 and "Page not found" in missing.text and "govuk-template" in missing.text
    api = await b.get("/api/no-such-thing")
    assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"
    crash = await b.get("/boom")
    assert crash.status_code == 500 and "Sorry, there is a problem with the service" in crash.text
    assert "secret internals" not in crash.text and "Traceback" not in crash.text
    big = await b.post("/incidents/new", {"summary": "x" * 2_100_000})
    assert big.status_code == 413 and "too large" in big.text
    forbidden = await b.get("/incidents/new")  # a reviewer who is not in the notifying role
    assert forbidden.status_code == 200  # the DCS is in the notifying role
    reviewer = browser()
    await reviewer.sign_in("rv-education-lead@demo.test")
    refused = await reviewer.get("/incidents/new")
    assert refused.status_code == 403 and "You cannot do this" in refused.text


# --- partnership boundaries ------------------------------------------------------------------------------------------


async def test_another_partnerships_case_and_task_are_not_found(site):
    browser, driver = site
    case_id = await driver.open(london_today())
    ne = browser()
    await ne.sign_in(NE_LEAD)
    assert (await ne.get(f"/cases/{case_id}")).status_code == 404
    assert (await ne.get(f"/cases/{case_id}/tasks/notification")).status_code == 404
    claim = await ne.post(f"/cases/{case_id}/tasks/notification/claim")
    assert claim.status_code == 404
    done = await ne.post(f"/cases/{case_id}/tasks/notification", {"local_partners_notified": "true"})
    assert done.status_code == 404
    listed = await ne.get("/cases?status=all")
    assert case_id not in listed.text
    assert task_row(driver.engine, case_id, "notification").status == "open"


# --- pages ------------------------------------------------------------------------------------------------------


async def test_intake_form_errors_then_a_case_with_script_shown_escaped(site):
    browser, _ = site
    lead = browser()
    await lead.sign_in(LEAD)
    form = await lead.get("/incidents/new")
    assert (form.status_code == 200 and "Serious harm" in form.text) or "serious" in form.text.lower()
    bad = await lead.post("/incidents/new", {"case_ref": "RV 1!", "aware_date-day": "31", "aware_date-month": "2",
                                             "aware_date-year": "2026", "summary": ""})
    assert bad.status_code == 422
    assert "There is a problem" in bad.text and 'href="#aware_date-day"' in bad.text
    assert "must be a real date" in bad.text and "Select the incident category" in bad.text
    assert 'value="31"' in bad.text  # what was typed is kept
    today = london_today()
    ref = f"RV-{uuid.uuid4().hex[:6]}"
    opened = await lead.post("/incidents/new", {
        "case_ref": ref, "aware_date-day": str(today.day), "aware_date-month": str(today.month),
        "aware_date-year": str(today.year), "category": "serious_harm_abuse_neglect",
        "child-1-pseudonym": SCRIPT, "agencies": ["vale-icb"], "summary": f"Found {SCRIPT} injured."})
    assert opened.status_code == 303, opened.text
    case_id = opened.headers["location"].removeprefix("/cases/").removesuffix("?recorded=1")
    page = await lead.get(opened.headers["location"])
    assert page.status_code == 200
    # the confirmation (issue 17.5): what was recorded and what happens next, with a link to the tasks
    confirmed = " ".join(visible(page.text).split())
    assert opened.headers["location"].endswith("?recorded=1")
    assert f"Incident recorded: {ref}" in confirmed and "What happens next:" in confirmed
    assert "Notify the national Panel: for" in confirmed and 'href="/tasks"' in page.text
    plain = await lead.get(f"/cases/{case_id}")
    assert "Incident recorded" not in plain.text  # only right after recording it
    assert SCRIPT not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "govuk-task-list" in page.text and "Notify the national Panel" in page.text
    assert "Cannot start yet" in page.text and "Version 1" in page.text
    assert "Audit log" in page.text and "incident.open" in page.text  # leads see the case's audit entries
    again = await lead.post("/incidents/new", {
        "case_ref": ref, "aware_date-day": str(today.day), "aware_date-month": str(today.month),
        "aware_date-year": str(today.year), "category": "serious_harm_abuse_neglect",
        "child-1-pseudonym": "Child A", "summary": "Twice."})
    assert again.status_code == 409 and "already exists" in again.text
    task = await lead.get(f"/cases/{case_id}/tasks/notification")
    assert task.status_code == 200 and SCRIPT not in task.text and "&lt;script&gt;" in task.text


async def test_intake_form_refuses_unknown_fields_and_names_fields_in_plain_english(site):
    """Issue 16.6: a posted field the form does not have is refused, by name, and nothing is opened; a missing
    date or child is asked for in plain English (the same words as the JSON API)."""
    browser, driver = site
    lead = browser()
    await lead.sign_in(LEAD)
    today = london_today()
    ref = f"RV-{uuid.uuid4().hex[:6]}"
    good = {"case_ref": ref, "aware_date-day": str(today.day), "aware_date-month": str(today.month),
            "aware_date-year": str(today.year), "category": "serious_harm_abuse_neglect",
            "child-1-pseudonym": "Child A", "summary": "Injuries."}
    refused = await lead.post("/incidents/new", {**good, "colour": "red", "child-9-pseudonym": "Child Z"})
    assert refused.status_code == 422 and "There is a problem" in refused.text
    assert "‘colour’" in refused.text and "‘child-9-pseudonym’" in refused.text
    assert 'href="#case_ref"' in refused.text
    with Session(driver.engine) as session:
        assert session.exec(select(Case).where(Case.case_ref == ref)).first() is None
    assert audit_actions(driver.engine, "incident.open")[-1].outcome == "rejected"
    missing = await lead.post("/incidents/new", {"case_ref": ref, "category": "serious_harm_abuse_neglect",
                                                 "child-1-local_ref": "LA-7", "summary": "Injuries."})
    assert missing.status_code == 422
    assert "Enter the date the local authority became aware of the incident" in missing.text
    assert "Enter a pseudonym for child 1, or clear their local reference" in missing.text
    assert "Field required" not in missing.text and "Input should" not in missing.text
    future = today + timedelta(days=2)
    later = await lead.post("/incidents/new", {**good, "aware_date-day": str(future.day),
                                               "aware_date-month": str(future.month),
                                               "aware_date-year": str(future.year)})
    assert later.status_code == 422 and "must be today or in the past" in later.text
    assert 'href="#aware_date-day"' in later.text


async def test_task_form_errors_from_the_validator_success_and_double_post(site):
    browser, driver = site
    today = london_today()
    case_id = await driver.open(today)
    b = browser()
    await b.sign_in(DCS)
    url = f"/cases/{case_id}/tasks/notification"
    page = await b.get(url)
    assert page.status_code == 200
    assert 'name="sent_on-day"' in page.text and 'name="local_partners_notified"' in page.text
    assert 'name="notes"' in page.text and "<textarea" in page.text
    impossible = await b.post(url, {"sent_on-day": "30", "sent_on-month": "2", "sent_on-year": "2026"})
    assert impossible.status_code == 422 and "must be a real date" in impossible.text
    assert 'href="#local_partners_notified"' in impossible.text  # the schema's other problem, at the same time
    future = today + timedelta(days=3)
    rejected = await b.post(url, {"sent_on-day": str(future.day), "sent_on-month": str(future.month),
                                  "sent_on-year": str(future.year), "local_partners_notified": "false",
                                  "notes": SCRIPT})
    assert rejected.status_code == 422
    assert "There is a problem" in rejected.text
    assert 'href="#sent_on-day"' in rejected.text and "cannot be in the future" in rejected.text  # the validator's
    assert f'value="{future.day}"' in rejected.text and "&lt;script&gt;" in rejected.text  # kept, escaped
    assert re.search(r'value="false" checked', rejected.text)
    assert SCRIPT not in rejected.text
    assert task_row(driver.engine, case_id, "notification").status == "open"
    data = {"sent_on-day": str(today.day), "sent_on-month": str(today.month), "sent_on-year": str(today.year),
            "local_partners_notified": "true", "notes": SCRIPT}
    claimed = await b.client.post(f"{url}/claim", data={"csrf_token": b.token, "back": url}, headers=HX)
    assert claimed.status_code == 200 and claimed.text.lstrip().startswith('<div id="task-page"')
    assert "Release it" in claimed.text and "<html" not in claimed.text
    done = await b.post(url, data)
    assert done.status_code == 303 and done.headers["location"] == f"{url}?done=1"
    confirmation = await b.get(done.headers["location"])
    assert "govuk-panel" in confirmation.text and "Task complete" in confirmation.text
    assert "What was recorded" in confirmation.text and SCRIPT not in confirmation.text
    twice = await b.post(url, data)
    assert twice.status_code == 409 and "already been done" in twice.text
    assert task_row(driver.engine, case_id, "notification").completed_by == "u-rv-la-dcs"
    completes = [a for a in audit_actions(driver.engine, "task.complete") if a.case_id == case_id]
    assert [a.outcome for a in completes] == ["rejected", "rejected", "ok", "rejected"]
    case_page = await b.get(f"/cases/{case_id}")
    assert "Completed" in case_page.text and "Sent " in case_page.text
    assert "Audit log" not in case_page.text  # only leads see the audit entries


async def test_the_decision_form_asks_for_learning_themes_as_checkboxes(site):
    browser, driver = site
    today = london_today()
    case_id = await driver.open(today)
    await driver.complete("meeting", {"held_on": today.isoformat(), "summary": "Facts gathered."})
    chair = driver.candidates("decision")[0]
    b = browser()
    with Session(driver.engine) as session:
        await b.sign_in(session.exec(select(User.email).where(User.user_ref == chair)).one())
    url = f"/cases/{case_id}/tasks/decision"
    page = await b.get(url)
    assert page.status_code == 200 and 'type="checkbox"' in page.text
    assert 'name="learning_themes" type="checkbox" value="neglect"' in page.text
    answers = {"hold_lcspr": "no", "national_importance": "false", "rationale": "Single agency.",
               "learning": "Handover notes.", "decided_on-day": str(today.day),
               "decided_on-month": str(today.month), "decided_on-year": str(today.year)}
    missing = await b.post(url, answers)
    assert missing.status_code == 422 and "Select learning themes" in missing.text
    assert 'href="#learning_themes"' in missing.text and 'id="learning_themes"' in missing.text
    assert task_row(driver.engine, case_id, "decision").status == "open"
    done = await b.post(url, {**answers, "learning_themes": ["neglect", "whole-family"]})
    assert done.status_code == 303
    confirmation = await b.get(done.headers["location"])
    assert "Neglect, Working with the whole family" in confirmation.text
    assert json.loads(task_row(driver.engine, case_id, "decision").data)["learning_themes"] == [
        "neglect", "whole-family"]


async def test_inbox_claim_release_and_fragments(site):
    browser, driver = site
    today = london_today()
    overdue_case = await driver.open(today - timedelta(days=12))
    b = browser()
    await b.sign_in(DCS)
    inbox = await b.get("/tasks")
    assert inbox.status_code == 200 and "My tasks" in inbox.text
    # the notifying role records an incident from where its work starts (issue 17.11); polls do not carry it
    assert 'href="/incidents/new"' in inbox.text
    assert 'href="/incidents/new"' not in (await b.get("/tasks", headers=HX)).text
    teacher = browser()
    await teacher.sign_in("rv-teacher-dsl@demo.test")
    assert 'href="/incidents/new"' not in (await teacher.get("/tasks")).text
    assert "Notify the national Panel" in inbox.text and "Overdue" in inbox.text and "working days late" in inbox.text
    fragment = await b.get("/tasks", headers=HX)
    assert fragment.text.lstrip().startswith('<div id="inbox"') and "<html" not in fragment.text
    rev = re.search(r"rev=([0-9a-f]+)", fragment.text).group(1)
    assert (await b.get(f"/tasks?poll=1&rev={rev}", headers=HX)).status_code == 204
    # claim without JavaScript: a form post and a redirect back to the same filters
    claimed = await b.post(f"/cases/{overdue_case}/tasks/notification/claim", {"back": "/tasks?overdue=1"})
    assert claimed.status_code == 303 and claimed.headers["location"] == "/tasks?overdue=1"
    assert task_row(driver.engine, overdue_case, "notification").claimed_by == "u-rv-la-dcs"
    changed = await b.get(f"/tasks?poll=1&rev={rev}", headers=HX)
    assert changed.status_code == 200 and "Claimed by you" in changed.text and "<html" not in changed.text
    # release with htmx: only the inbox fragment comes back
    released = await b.client.post(f"/cases/{overdue_case}/tasks/notification/release",
                                   data={"csrf_token": b.token, "back": "/tasks"}, headers=HX)
    assert released.status_code == 200 and released.text.lstrip().startswith('<div id="inbox"')
    assert "Claim<span" in released.text
    assert task_row(driver.engine, overdue_case, "notification").claimed_by is None
    overdue_only = await b.get("/tasks?overdue=1")
    assert "Notify the national Panel" in overdue_only.text
    done = await b.get("/tasks?status=done")
    assert "You have not completed any tasks yet" in done.text


async def test_the_inbox_shows_25_tasks_a_page_soonest_due_first(site):
    from datetime import UTC, datetime

    from safeguarding.tables import TaskCandidate
    from tests.support.read_model_rows import add_case, add_task

    browser, driver = site
    today = london_today()
    case = add_case(driver.engine, "PAGED-1")
    for n in range(30):  # 30 open meeting-like tasks for the review officer, due one day apart
        add_task(driver.engine, case, f"step-{n:02d}", title=f"Step {n:02d}", due_date=today + timedelta(days=n),
                 opened_at=datetime.now(UTC))
    with Session(driver.engine) as session:
        session.add_all([TaskCandidate(task_id=f"{case.id}/step-{n:02d}", user_ref="u-rv-review-officer")
                         for n in range(30)])
        session.commit()
    b = browser()
    await b.sign_in("rv-review-officer@demo.test")
    first = await b.get("/tasks")
    assert first.status_code == 200 and "30 tasks, showing 1 to 25" in first.text
    steps = re.findall(r">Step (\d\d)<", first.text)
    assert steps == [f"{n:02d}" for n in range(25)]
    assert 'href="/tasks?status=open&amp;page=2"' in first.text and "Page 1 of 2" in first.text
    second = await b.get("/tasks?page=2")
    assert re.findall(r">Step (\d\d)<", second.text) == ["25", "26", "27", "28", "29"]
    assert "showing 26 to 30" in second.text and 'href="/tasks?status=open&amp;page=1"' in second.text
    assert 'hx-get="/tasks?status=open&amp;page=2&amp;poll=1' in second.text  # polling keeps the page
    fragment = await b.get("/tasks?page=2", headers=HX)  # the live block alone, with its page links
    assert fragment.text.lstrip().startswith('<div id="inbox"') and "Page 2 of 2" in fragment.text
    beyond = await b.get("/tasks?page=999")  # past the end: the last page; nonsense: the first
    assert beyond.status_code == 200 and "Page 2 of 2" in beyond.text
    assert "Page 1 of 2" in (await b.get("/tasks?page=abc")).text


async def test_a_changed_name_title_or_claim_shows_at_once_on_the_inbox_and_the_case_page(site):
    """The pages remember rendered parts by everything they show (the inbox by its rows, the components by their
    parameters) and read the database on every request: a change in the read model is on the next page."""
    browser, driver = site
    case_id = await driver.open(london_today())
    officer = user(driver.engine, "rv-review-officer@demo.test")

    def change(model, key, **values) -> None:
        with Session(driver.engine) as session:
            row = session.get(model, key)
            for name, value in values.items():
                setattr(row, name, value)
            session.add(row)
            session.commit()

    change(Task, f"{case_id}/notification", claimed_by=officer.user_ref)  # claimed by someone else
    dcs, lead = browser(), browser()
    await dcs.sign_in(DCS)
    await lead.sign_in(LEAD)
    inbox = await dcs.get("/tasks")
    assert f"Claimed by {officer.display_name}" in inbox.text and "Notify the national Panel" in inbox.text
    assert (await dcs.get("/tasks")).text == inbox.text  # shown again unchanged: the same page
    assert f"claimed by {officer.display_name}" in (await lead.get(f"/cases/{case_id}")).text
    change(User, officer.id, display_name="Renamed Officer")
    inbox = await dcs.get("/tasks")
    assert "Claimed by Renamed Officer" in inbox.text and officer.display_name not in inbox.text
    assert "claimed by Renamed Officer" in (await lead.get(f"/cases/{case_id}")).text
    change(Task, f"{case_id}/notification", title="Tell the national Panel", claimed_by=None)
    inbox = await dcs.get("/tasks")
    assert "Tell the national Panel" in inbox.text and "Renamed Officer" not in inbox.text
    assert "Claimed by" not in inbox.text


async def test_case_page_polling_swaps_only_when_the_case_changed(site):
    browser, driver = site
    today = london_today()
    case_id = await driver.open(today)
    b = browser()
    await b.sign_in(LEAD)
    page = await b.get(f"/cases/{case_id}")
    rev = re.search(r"poll=1&(?:amp;)?rev=(\d+)", page.text).group(1)
    unchanged = await b.get(f"/cases/{case_id}?poll=1&rev={rev}", headers=HX)
    assert unchanged.status_code == 204
    await driver.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True})
    changed = await b.get(f"/cases/{case_id}?poll=1&rev={rev}", headers=HX)
    assert changed.status_code == 200
    html = changed.text.lstrip()
    assert html.startswith('<div id="case-live"') and "<html" not in html and "About the incident" not in html
    assert "Completed" in html and "Notification sent to the Panel" in html


async def test_cases_list_and_filters(site):
    browser, driver = site
    today = london_today()
    late = await driver.open(today - timedelta(days=12))
    fresh = await driver.open(today)
    b = browser()
    await b.sign_in(LEAD)
    listed = await b.get("/cases")
    assert late in listed.text and fresh in listed.text and "Record a serious incident" in listed.text
    assert 'data-label="Process">Incident<' in listed.text  # which process each case is (issue 17.11)
    overdue = await b.get("/cases?overdue=1")
    assert late in overdue.text and fresh not in overdue.text
    closed = await b.get("/cases?status=closed")
    assert "There are no cases that match" in closed.text


async def test_the_national_panel_sees_only_pseudonymised_context(site):
    browser, driver = site
    today = london_today()
    case_id = await driver.open(today)
    await driver.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True})
    await driver.through_rapid_review(today=today, decision="no")
    with Session(driver.engine) as session:
        case = session.get(Case, case_id)
    panel = browser()
    await panel.sign_in(PANEL)
    inbox = await panel.get("/tasks")
    assert "Panel tasks" in inbox.text and case.national_ref in inbox.text
    assert case.case_ref not in inbox.text and case_id not in inbox.text  # not even in a link
    url = f"/national/cases/{case.national_ref}/tasks/panel-response"
    assert f'href="{url}"' in inbox.text
    page = await panel.get(url)
    assert page.status_code == 200
    assert case.national_ref in page.text and "Child A" not in page.text and case.summary not in page.text
    # issue 17.1: the response's expected date reads the same on the Panel's task list and the task page
    from web.templating import date_uk

    expected = f"Expected by {date_uk(task_row(driver.engine, case_id, 'panel-response').follow_up_date)}"
    assert expected in inbox.text and expected in page.text
    # and the rapid review it responds to, pseudonymised: dates and controlled answers, nobody's words
    shown = " ".join(visible(page.text).split())
    assert "The rapid review you are responding to" in shown and "Agency summaries 3 received" in shown
    assert "Decision on a local review No local review" in shown and "May be of national importance No" in shown
    assert "Information sharing" in shown and "Agencies did not share information." not in page.text
    assert case.case_ref not in page.text and case_id not in page.text and "Agrees with the decision" in page.text
    assert (await panel.get(f"/cases/{case_id}")).status_code == 404
    assert (await panel.get(f"/cases/{case_id}/tasks/notification")).status_code == 404
    assert (await panel.get(f"/national/cases/{case.national_ref}/tasks/notification")).status_code == 404
    lead = browser()
    await lead.sign_in(LEAD)  # the national route is the national body's only
    assert (await lead.get(url)).status_code == 404
    claimed = await panel.client.post(f"{url}/claim", data={"csrf_token": panel.token, "back": url}, headers=HX)
    assert claimed.status_code == 200 and "Release it" in claimed.text and case_id not in claimed.text
    done = await panel.post(url, {"response": "disagrees"})
    assert done.status_code == 422 and 'href="#reasons"' in done.text and case_id not in done.text
    done = await panel.post(url, {"response": "agrees"})
    assert done.status_code == 303 and done.headers["location"] == f"{url}?done=1"
    assert driver.case().status == "closed"


# --- the session and throttling machinery, on their own ---------------------------------------------------------


def test_password_throttle_counts_failures_per_address_and_client_and_forgets_on_success():
    from web.auth import IP_LIMIT, PasswordThrottle

    throttle = PasswordThrottle("memory://")
    for _ in range(EMAIL_LIMIT.amount - 1):
        throttle.failed("A@Example.test ", "10.0.0.1")
    assert throttle.wait_seconds("a@example.test", "10.0.0.1") == 0
    throttle.failed("a@example.test", "10.0.0.1")
    wait = throttle.wait_seconds("a@example.test", "10.0.0.9")  # the address is locked from any client
    assert 0 < wait <= EMAIL_LIMIT.get_expiry()
    assert throttle.wait_seconds("b@example.test", "10.0.0.1") == 0  # the client is not (yet)
    throttle.succeeded("a@example.test")  # clears the address, not the IP
    assert throttle.wait_seconds("a@example.test", None) == 0
    for n in range(IP_LIMIT.amount - EMAIL_LIMIT.amount):
        throttle.failed(f"x{n}@example.test", "10.0.0.1")
    assert throttle.wait_seconds("c@example.test", "10.0.0.1") > 0
    assert throttle.wait_seconds("c@example.test", "10.0.0.2") == 0


async def test_the_cookie_is_secure_over_https(site):
    browser, _ = site
    b = browser()
    b.client.base_url = "https://testserver"
    page = await b.get("/sign-in")
    assert "; Secure" in page.headers["set-cookie"]
    ok = await b.post("/sign-in", {"email": DCS, "password": PASSWORD})
    assert ok.status_code == 303 and "; Secure" in ok.headers["set-cookie"]


def test_the_intake_forms_refusals_land_on_its_fields():
    """The service layer's refusals of an incident (JSON pointers) shown by the intake form's fields, through the one
    mapper (``web.form_errors.named_in``): a field the form has by its name, anything else on the form as a whole."""
    from safeguarding.refusals import FieldError
    from web.form_errors import field_errors
    from web.pages.incidents import intake_field

    refused = [FieldError(path=path, message=message) for path, message in (
        ("/children/0/pseudonym", "enter a pseudonym"), ("/category", "not listed"),
        ("/resident_area_name", "too long"), ("/partnership", "not yours"), ("", "the arrangements say no"))]
    assert field_errors(refused, name_of=intake_field) == {
        "children": "Enter a pseudonym", "category": "Not listed", "resident_area_name": "Too long",
        "form": "Not yours"}
