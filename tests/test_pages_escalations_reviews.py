"""The escalation and local review pages over HTTP (httpx + the ASGI app), against a time-skipping Temporal server,
an in-process worker and a seeded SQLite database: raising a disagreement, the partnership's view, withdrawing, the
challenge log and its CSV; a review's actions and report upload; partnership boundaries; escaping."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import httpx
import pytest
from sqlmodel import Session, select

from safeguarding.case_commands import act_on_task, actor_of
from safeguarding.case_records import TaskCommand
from safeguarding.clock import london_today
from safeguarding.intake import EscalationIn, raise_escalation
from safeguarding.tables import AuditEntry, Case, Task
from safeguarding.versions import document_of, get_version
from tests.support.lcspr_review import Review
from tests.support.workflow_driver import RV, principal, running_worker
from web.app import create_app

PASSWORD = "demo-password"
SOCIAL_WORKER = "rv-social-worker@demo.test"  # a practitioner: raises disagreements
TEACHER = "rv-teacher-dsl@demo.test"  # another practitioner: neither raiser, business unit nor lead
LEAD = "rv-business-manager@demo.test"  # partnership lead, business unit, commissions reviews
NE_LEAD = "ne-business-manager@demo.test"
PANEL = "panel@demo.test"
HX = {"HX-Request": "true"}
SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


class Browser:
    """One person's browser: an httpx client with its own cookies, the page's CSRF token kept for its forms."""

    def __init__(self, app):
        self.app = app
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                        base_url="http://testserver", follow_redirects=False)
        self.token = ""

    async def get(self, url: str, **kw) -> httpx.Response:
        response = await self.client.get(url, **kw)
        match = re.search(r'name="csrf_token" value="([^"]+)"', response.text)
        if match:
            self.token = match.group(1)
        return response

    async def post(self, url: str, data: dict | None = None, **kw) -> httpx.Response:
        return await self.client.post(url, data={**(data or {}), "csrf_token": self.token}, **kw)

    async def sign_in(self, email: str) -> None:
        await self.get("/sign-in")
        response = await self.post("/sign-in", {"email": email, "password": PASSWORD})
        assert response.status_code == 303, response.text[:300]
        await self.get(response.headers["location"])


@pytest.fixture
async def site(time_env, seeded_engine, settings):
    async with running_worker(time_env, seeded_engine, settings):
        app = create_app(settings, engine=seeded_engine, temporal_client=time_env.client, connect_temporal=False)
        browsers: list[Browser] = []

        async def browser(email: str | None = None) -> Browser:
            browsers.append(Browser(app))
            if email:
                await browsers[-1].sign_in(email)
            return browsers[-1]

        yield browser, time_env, seeded_engine, settings
        for b in browsers:
            await b.client.aclose()


def escalations(engine) -> list[Case]:
    with Session(engine) as session:
        return list(session.exec(select(Case).where(Case.process == "escalation").order_by(Case.opened_at)))


def audit_outcomes(engine, action: str) -> list[str]:
    with Session(engine) as session:
        return [a.outcome for a in session.exec(select(AuditEntry).where(AuditEntry.action == action)
                                                .order_by(AuditEntry.id))]


GOOD = {"agencies": ["riverford-council", "vale-police"], "issue_type": "threshold", "urgent": "no",
        "child_pseudonym": "Child C", "subject": f"Strategy discussion refused {SCRIPT}"}


async def raise_one(b: Browser, **changes) -> tuple[str, Case]:
    await b.get("/escalations/new")
    response = await b.post("/escalations/new", {**GOOD, **changes})
    assert response.status_code == 303, response.text[:1000]
    case_id = response.headers["location"].removeprefix("/cases/").removesuffix("?recorded=1")
    with Session(b.app.state.engine) as session:
        return case_id, session.get(Case, case_id)


# --- raising -----------------------------------------------------------------------------------------------------


async def test_raising_a_disagreement_errors_inline_then_its_case_page(site):
    browser, _env, engine, _settings = site
    b = await browser(SOCIAL_WORKER)
    form = await b.get("/escalations/new")
    assert form.status_code == 200
    assert "Riverford Borough Council" in form.text and "Vale Voluntary Action" in form.text  # partners and agencies
    assert "starts at stage 3 (Designated and senior safeguarding leads)" in form.text  # the urgent stage, explained
    assert 'name="issue_type" type="radio" value="information_sharing"' in form.text
    bad = await b.post("/escalations/new", {"subject": "   ", "issue_type": "other", "issue_other": ""})
    assert bad.status_code == 422
    assert "There is a problem" in bad.text and 'href="#agencies"' in bad.text and 'href="#subject"' in bad.text
    assert "Select the agencies involved in the disagreement" in bad.text and "Enter what was disagreed" in bad.text
    assert "Enter the type of issue" in bad.text and "Select yes if the child may be at risk now" in bad.text
    assert "govuk-error-message" in bad.text and "<title>Error: " in bad.text
    no_text = await b.post("/escalations/new", {**GOOD, "subject": ""})
    assert no_text.status_code == 422 and 'value="riverford-council" checked' in no_text.text  # choices kept
    outsider = await b.post("/escalations/new", {**GOOD, "agencies": ["eastholme-police"]})
    assert outsider.status_code == 422  # the service's check, shown on the field
    assert "Not a partner or relevant agency of this partnership" in outsider.text
    assert escalations(engine) == []  # nothing started
    assert audit_outcomes(engine, "escalation.raise") == ["rejected"] * 3

    case_id, case = await raise_one(b)
    assert (case.process, case.status, case.current_stage, case.urgent, case.category) == (
        "escalation", "open", 1, False, "threshold")
    page = await b.get(f"/cases/{case_id}?recorded=1")  # the case page renders any process
    assert page.status_code == 200 and SCRIPT not in page.text and ESCAPED in page.text
    assert f"Escalation raised: {case.case_ref}" in page.text and "What happens next:" in page.text  # 17.5
    assert re.search(r"Issue\s*</dt>\s*<dd[^>]*>\s*Threshold\s*<", page.text)  # 17.8: a label, not the id
    assert "Stage 1: Practitioner to practitioner" in page.text
    _, urgent = await raise_one(b, urgent="yes", issue_type="other", issue_other="Missed medical appointments",
                                subject="Urgent: no strategy meeting")
    assert (urgent.current_stage, urgent.urgent, urgent.category) == (3, True, "Missed medical appointments")
    assert audit_outcomes(engine, "escalation.raise")[-2:] == ["ok", "ok"]


async def test_the_forms_name_every_problem_at_once_in_plain_english_and_refuse_fields_they_do_not_have(site):
    browser, _env, engine, _settings = site
    b = await browser(SOCIAL_WORKER)
    await b.get("/escalations/new")
    many = await b.post("/escalations/new", {**GOOD, "issue_type": "", "child_pseudonym": "C" * 41,
                                             "subject": "x" * 5001})
    assert many.status_code == 422
    assert "Select the type of issue" in many.text  # and, in the same round, the lengths, named in plain English
    assert "The child&#39;s pseudonym must be 40 characters or fewer" in many.text
    assert "What was disagreed must be 5000 characters or fewer" in many.text and "String should" not in many.text
    assert 'href="#child_pseudonym"' in many.text and 'href="#subject"' in many.text
    extra = await b.post("/escalations/new", {**GOOD, "ladder": "some-other-ladder"})  # the API's field, not the form's
    assert extra.status_code == 422 and "This form does not take ‘ladder’" in extra.text
    assert escalations(engine) == []  # nothing started
    case_id, _case = await raise_one(b)
    await b.get(f"/escalations/{case_id}/withdraw")
    sneaky = await b.post(f"/escalations/{case_id}/withdraw", {"reason": "Agreed", "outcome": "resolved"})
    assert sneaky.status_code == 422 and "This form does not take ‘outcome’" in sneaky.text
    long = await b.post(f"/escalations/{case_id}/withdraw", {"reason": "r" * 2001})
    assert long.status_code == 422 and "The reason must be 2000 characters or fewer" in long.text
    with Session(engine) as session:
        assert session.get(Case, case_id).status == "open"  # nothing withdrawn
    assert audit_outcomes(engine, "escalation.raise") == ["rejected", "rejected", "ok"]
    assert audit_outcomes(engine, "escalation.withdraw") == ["rejected", "rejected"]


# --- the partnership's view, withdrawing, the challenge log -------------------------------------------------------


async def test_the_view_withdrawal_resolution_challenge_log_and_csv(site):
    browser, env, engine, _settings = site
    raiser = await browser(SOCIAL_WORKER)
    first_id, first = await raise_one(raiser)
    second_id, second = await raise_one(raiser, urgent="yes", subject="Discharged without a plan",
                                        issue_type="case_closure")
    third_id, third = await raise_one(raiser, subject="=HYPERLINK(\"http://evil.example\")",
                                      issue_type="information_sharing")

    view = await raiser.get("/escalations")
    assert view.status_code == 200
    assert first.case_ref in view.text and second.case_ref in view.text
    assert "Stage 1: Practitioner to practitioner" in view.text and "Stage 3: Designated" in view.text
    assert "0 working days" in view.text and "Urgent" in view.text
    assert SCRIPT not in view.text and ESCAPED in view.text
    assert view.text.index(second.case_ref) < view.text.index(first.case_ref)  # highest stage first
    assert f'href="/escalations/{first_id}/withdraw"' in view.text  # the raiser may withdraw

    stranger = await browser(TEACHER)
    theirs = await stranger.get("/escalations")
    assert first.case_ref in theirs.text and "/withdraw" not in theirs.text  # seen, not withdrawable by them
    assert (await stranger.get(f"/escalations/{first_id}/withdraw")).status_code == 403
    refused = await stranger.post(f"/escalations/{first_id}/withdraw", {"reason": "Not mine to withdraw"})
    assert refused.status_code == 403

    form = await raiser.get(f"/escalations/{first_id}/withdraw")
    assert form.status_code == 200 and first.case_ref in form.text and ESCAPED in form.text
    empty = await raiser.post(f"/escalations/{first_id}/withdraw", {"reason": "  "})
    assert empty.status_code == 422 and "Enter why the escalation is withdrawn" in empty.text
    assert 'href="#reason"' in empty.text
    with Session(engine) as session:
        assert session.get(Case, first_id).status == "open"
    done = await raiser.post(f"/escalations/{first_id}/withdraw", {"reason": "Agreed at a meeting."})
    assert done.status_code == 303 and done.headers["location"] == f"/escalations?withdrawn={first.case_ref}"
    after = await raiser.get(done.headers["location"])
    assert f"Escalation {first.case_ref} was withdrawn." in after.text and "Agreed at a meeting." in after.text
    again = await raiser.post(f"/escalations/{first_id}/withdraw", {"reason": "Twice"})
    assert again.status_code == 409 and (await raiser.get(f"/escalations/{first_id}/withdraw")).status_code == 409
    assert audit_outcomes(engine, "escalation.withdraw") == ["rejected", "rejected", "ok", "rejected"]

    # a lead may withdraw anyone's; the urgent one is resolved at stage 3 with actions and a learning theme
    await act_on_task(env.client, second_id, "complete", TaskCommand("stage-3", actor_of(principal(
        engine, "u-rv-police-di")), {"outcome": "resolved", "agreed_actions": "Discharge planning meeting on Friday.",
                                     "learning_theme": "information-sharing"}))
    lead = await browser(LEAD)
    view = await lead.get("/escalations")
    assert f'href="/escalations/{third_id}/withdraw"' in view.text
    closed = view.text.split('id="closed"', 1)[1].split('id="challenge-log-heading"', 1)[0]
    assert "Discharge planning meeting on Friday." in closed and "Information sharing" in closed
    assert "Resolved" in closed and "at stage 3" in closed and "Withdrawn" in closed

    only_withdrawn = await lead.get("/escalations?outcome=withdrawn")
    log = only_withdrawn.text.split('<div id="challenge-log">', 1)[1]
    assert first.case_ref in log and second.case_ref not in log and third.case_ref not in log
    fragment = await lead.get("/escalations?theme=information-sharing", headers=HX)
    assert fragment.text.lstrip().startswith('<div id="challenge-log">') and "<html" not in fragment.text
    assert second.case_ref in fragment.text and first.case_ref not in fragment.text
    assert 'href="/escalations.csv?theme=information-sharing"' in fragment.text

    export = await lead.get("/escalations.csv")
    assert export.status_code == 200 and export.headers["content-type"] == "text/csv; charset=utf-8"
    assert export.headers["content-disposition"].startswith('attachment; filename="challenge-log-riverford-and-vale-')
    rows = list(csv.reader(io.StringIO(export.text.lstrip("\ufeff"))))
    assert rows[0][:4] == ["Reference", "Raised", "Ladder", "Issue type"] and len(rows) == 4
    by_ref = {r[0]: r for r in rows[1:]}
    assert by_ref[first.case_ref][12:14] == ["Withdrawn", "Agreed at a meeting."]
    assert by_ref[second.case_ref][12:15] == ["Resolved", "Discharge planning meeting on Friday.",
                                              "Information sharing"]
    assert by_ref[third.case_ref][4].startswith("'=HYPERLINK")  # never a formula in a spreadsheet
    assert by_ref[first.case_ref][4] == f"Strategy discussion refused {SCRIPT}"  # text, as typed
    filtered = list(csv.reader(io.StringIO((await lead.get("/escalations.csv?outcome=open")).text.lstrip("\ufeff"))))
    assert [r[0] for r in filtered[1:]] == [third.case_ref]


# --- local reviews ---------------------------------------------------------------------------------------------------


async def test_a_reviews_actions_and_report_upload(site):
    browser, env, engine, settings = site
    today = london_today()
    review = Review(env, engine, settings)
    case_id = await review.start(today)
    await review.do("terms", {"agreed_on": today.isoformat(), "scope": "Agency involvement since birth."})
    await review.do("reviewer", {"reviewer": "Independent reviewer Ltd", "commissioned_on": today.isoformat(),
                                 "independence_confirmed": True})
    lead = await browser(LEAD)
    listing = await lead.get("/reviews")
    assert listing.status_code == 200 and f'href="/reviews/{case_id}"' in listing.text
    in_progress = listing.text.split("Suspended for a national review")[0]
    assert review.case().case_ref in in_progress and "Accept the final report" not in in_progress
    assert "Record the draft report received" in in_progress or "Record family engagement" in in_progress
    from web.templating import date_uk

    assert date_uk(review.case().report_due) in in_progress and "Not decided yet" in in_progress
    assert (await lead.get("/reviews", headers=HX)).text.lstrip().startswith('<div id="reviews">')

    page = await lead.get(f"/reviews/{case_id}")
    assert page.status_code == 200 and "Accept the final report" in page.text
    assert "once the final report is accepted" in page.text  # no action form before the recommendations
    assert 'enctype="multipart/form-data"' in page.text and 'hx-encoding="multipart/form-data"' in page.text

    # the report: a file that is not a PDF or Word document is refused inline; a PDF is stored
    bad = await lead.client.post(f"/reviews/{case_id}/report", data={"csrf_token": lead.token},
                                 files={"file": ("report.exe", b"MZ\x90\x00", "application/octet-stream")})
    assert bad.status_code == 422 and "is not a PDF or Word file" in bad.text and 'href="#file"' in bad.text
    missing = await lead.client.post(f"/reviews/{case_id}/report", data={"csrf_token": lead.token},
                                     files={"file": ("", b"", "application/octet-stream")}, headers=HX)
    assert missing.status_code == 422 and missing.text.lstrip().startswith('<div id="upload">')
    assert "Select the report file" in missing.text
    ok = await lead.client.post(f"/reviews/{case_id}/report", data={"csrf_token": lead.token},
                                files={"file": ("final report.pdf", PDF, "application/pdf")})
    assert ok.status_code == 303
    file_id = re.search(r"uploaded=([a-f0-9]{64}\.pdf)", ok.headers["location"]).group(1)
    shown = await lead.get(ok.headers["location"])
    assert file_id in shown.text and f'href="/reviews/{case_id}/final-report?file={file_id}"' in shown.text
    with_htmx = await lead.client.post(f"/reviews/{case_id}/report", files={"file": ("r.pdf", PDF, "application/pdf")},
                                       headers={**HX, "X-CSRF-Token": lead.token})
    assert with_htmx.status_code == 200 and with_htmx.headers["hx-redirect"].startswith(f"/reviews/{case_id}?uploaded=")

    # the final-report task, with the file already filled in; its form posts to the task page
    task_page = await lead.get(f"/reviews/{case_id}/final-report?file={file_id}")
    assert task_page.status_code == 200 and f'value="{file_id}"' in task_page.text
    assert f'action="/cases/{case_id}/tasks/final-report"' in task_page.text
    assert (await lead.get(f"/reviews/{case_id}/final-report?file={'b' * 64}.pdf")).status_code == 404
    accepted = await lead.post(f"/cases/{case_id}/tasks/final-report", {
        "accepted_on-day": str(today.day), "accepted_on-month": str(today.month),
        "accepted_on-year": str(today.year), "report_file": file_id, "findings": "Weekend information sharing."})
    assert accepted.status_code == 303, accepted.text[:2000]
    assert review.task("final-report").status == "done"

    # actions: refused inline by field, nothing added; then added
    page = await lead.get(f"/reviews/{case_id}")
    assert 'name="owner"' in page.text and 'name="due_date-day"' in page.text
    past = today - timedelta(days=3)
    refused = await lead.post(f"/reviews/{case_id}/actions", {
        "owner": "no-such-agency", "description": "", "due_date-day": str(past.day),
        "due_date-month": str(past.month), "due_date-year": str(past.year)})
    assert refused.status_code == 422
    assert "There is a problem" in refused.text and 'href="#owner"' in refused.text
    assert 'href="#description"' in refused.text and 'href="#due_date-day"' in refused.text
    assert "Choose the agency that owns the action" in refused.text and "The due date must be in the future" in (
        refused.text)
    assert f'value="{past.day}"' in refused.text  # what was typed is kept
    impossible = await lead.post(f"/reviews/{case_id}/actions", {
        "owner": "vale-icb", "description": "Protocol", "due_date-day": "31", "due_date-month": "2",
        "due_date-year": str(today.year + 1)})
    assert impossible.status_code == 422 and "The due date must be a real date" in impossible.text
    assert review.task("action-1") is None
    due = today + timedelta(days=60)
    dated = {"due_date-day": str(due.day), "due_date-month": str(due.month), "due_date-year": str(due.year)}
    # issue 18: the form is read into a model: a description over 2,000 characters is refused naming the field
    # (it was cut short and added), and a field the form does not have is refused by name
    too_long = await lead.post(f"/reviews/{case_id}/actions", {"owner": "vale-icb", "description": "x" * 2001,
                                                               **dated})
    assert too_long.status_code == 422
    assert "The description of the action must be 2000 characters or fewer" in too_long.text
    forged = await lead.post(f"/reviews/{case_id}/actions", {"owner": "vale-icb", "description": "Protocol",
                                                             "actor": "u-someone-else", **dated})
    assert forged.status_code == 422 and "This form does not take ‘actor’" in forged.text
    assert 'href="#add-action"' in forged.text
    assert review.task("action-1") is None
    added = await lead.post(f"/reviews/{case_id}/actions", {
        "owner": "vale-icb", "description": f"Weekend protocol {SCRIPT}", "due_date-day": str(due.day),
        "due_date-month": str(due.month), "due_date-year": str(due.year)})
    assert added.status_code == 303 and added.headers["location"] == f"/reviews/{case_id}?added=action-1#actions"
    action = review.task("action-1")
    assert (action.status, action.due_date, action.candidate_role) == ("open", due, "partner:vale-icb")
    shown = await lead.get(added.headers["location"])
    assert "added. Its owner has a new task." in shown.text and ESCAPED in shown.text and SCRIPT not in shown.text
    # someone who may read it (the independent scrutineer) but is outside the commissioning role sees why they
    # cannot, and is refused if they try; someone uninvolved does not see it at all (case_access.may_read_case)
    assert (await (await browser(TEACHER)).get(f"/reviews/{case_id}")).status_code == 404
    teacher = await browser("rv-scrutineer@demo.test")
    theirs = await teacher.get(f"/reviews/{case_id}")
    assert "Only the business manager adds actions" in theirs.text and 'name="owner"' not in theirs.text
    forbidden = await teacher.post(f"/reviews/{case_id}/actions", {
        "owner": "vale-icb", "description": "Another", "due_date-day": str(due.day),
        "due_date-month": str(due.month), "due_date-year": str(due.year)})
    assert forbidden.status_code == 403 and "adds actions" in forbidden.text
    assert review.task("action-2") is None
    with Session(engine) as session:
        outcomes = [a.outcome for a in session.exec(select(AuditEntry).where(AuditEntry.action == "action.add"))]
    assert outcomes == ["rejected", "rejected", "rejected", "rejected", "ok", "rejected"]


# --- boundaries ---------------------------------------------------------------------------------------------------


async def test_another_partnerships_escalations_and_reviews_are_not_found(site):
    browser, env, engine, settings = site
    today = london_today()
    raiser = await browser(SOCIAL_WORKER)
    case_id, case = await raise_one(raiser)
    review = Review(env, engine, settings)
    review_id = await review.start(today)
    ne = await browser(NE_LEAD)
    listed = await ne.get("/escalations")
    assert listed.status_code == 200 and case.case_ref not in listed.text
    assert case.case_ref not in (await ne.get("/escalations.csv")).text
    assert (await ne.get(f"/escalations/{case_id}/withdraw")).status_code == 404
    assert (await ne.post(f"/escalations/{case_id}/withdraw", {"reason": "Not ours"})).status_code == 404
    assert review_id not in (await ne.get("/reviews")).text
    assert (await ne.get(f"/reviews/{review_id}")).status_code == 404
    assert (await ne.post(f"/reviews/{review_id}/actions", {"owner": "vale-icb"})).status_code == 404
    upload = await ne.client.post(f"/reviews/{review_id}/report", data={"csrf_token": ne.token},
                                  files={"file": ("r.pdf", PDF, "application/pdf")})
    assert upload.status_code == 404
    assert (await ne.get(f"/reviews/{review_id}/final-report?file={'a' * 64}.pdf")).status_code == 404
    # a case of another partnership cannot be named as the related case
    with Session(engine) as session:
        ne_partner = document_of(get_version(session, "northmoor-and-eastholme"))["safeguarding_partners"][0]["id"]
    await ne.get("/escalations/new")
    other = await ne.post("/escalations/new", {**GOOD, "agencies": [ne_partner], "case_id": case_id})
    assert other.status_code == 422 and "No such case in this partnership" in other.text
    with Session(engine) as session:
        assert session.get(Case, case_id).status == "open"
        assert session.exec(select(Task).where(Task.case_id == review_id, Task.type == "lcspr_action")).all() == []
    # the national body has no partnership: these pages are not there for it
    panel = await browser(PANEL)
    for path in ("/escalations", "/escalations/new", "/escalations.csv", "/reviews", f"/reviews/{review_id}"):
        assert (await panel.get(path)).status_code == 404, path
    # through the service too: a disagreement is raised only in one's own partnership
    with pytest.raises(Exception) as err:
        await raise_escalation(engine, env.client, settings.task_queue, principal(engine, "u-ne-social-worker"), RV,
                               EscalationIn(subject="x", agencies=["riverford-council"], issue_type="threshold"))
    assert getattr(err.value, "status", None) == 404
