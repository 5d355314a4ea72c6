"""Issue 15, point 7 (least privilege inside a partnership) and point 6 (case views and downloads audited).

``case_access.may_read_case`` is the one rule: leads, the scrutineer, the agencies involved, the people the case's
work is given to, and an escalation's raiser and ladder roles read a case; the rest of the partnership gets 404 on
its detail (API and pages), its tasks and its files, and does not see it in lists.
"""

from __future__ import annotations

from sqlmodel import Session, select

from safeguarding.clock import london_today
from safeguarding.tables import AuditEntry
from tests.support.pages import PASSWORD

LEAD = "rv-business-manager@demo.test"  # partnership lead
COUNCIL = "rv-la-dcs@demo.test"  # Riverford Borough Council: an agency involved in the incident
PROBATION = "rv-probation-lead@demo.test"  # Probation: an agency NOT involved
SCRUTINEER = "rv-scrutineer@demo.test"  # the independent scrutineer
TEACHER = "rv-teacher-dsl@demo.test"  # a practitioner with no agency on record: reads only what is given to them
SOCIAL_WORKER = "rv-social-worker@demo.test"
POLICE = "rv-police-dcs@demo.test"  # Vale Constabulary
SUMMARY = "The toddler was left with an unassessed relative for nine days."
SUBJECT = "Social care closed the case despite the police referral."
PDF = b"%PDF-1.7\n" + b"x" * 500


def audits(engine, action: str, case_id: str) -> list[AuditEntry]:
    with Session(engine) as session:
        return list(session.exec(select(AuditEntry).where(AuditEntry.action == action,
                                                          AuditEntry.case_id == case_id).order_by(AuditEntry.id)))


async def test_only_the_people_involved_read_a_case_on_the_api_and_the_pages(site):
    browser, driver = site
    engine = driver.engine
    api = browser()
    opened = await api.client.post("/api/partnerships/riverford-and-vale/incidents", auth=(LEAD, PASSWORD), json={
        "case_ref": "LP-7", "aware_date": london_today().isoformat(), "category": "serious_harm_abuse_neglect",
        "children": [{"pseudonym": "Child Ptolemy"}], "summary": SUMMARY,
        "agencies": ["riverford-council", "vale-icb", "riverford-schools"]})
    assert opened.status_code == 201, opened.text
    case_id = opened.json()["case_id"]
    uploaded = await api.client.post(f"/api/cases/{case_id}/files", auth=(LEAD, PASSWORD),
                                     files={"file": ("r.pdf", PDF, "application/pdf")})
    assert uploaded.status_code == 201
    file_url = f"/api/cases/{case_id}/files/{uploaded.json()['file_id']}"

    readers, others = (LEAD, COUNCIL, SCRUTINEER), (PROBATION, TEACHER)
    for email in (*readers, *others):
        may = email in readers
        detail = await api.client.get(f"/api/cases/{case_id}", auth=(email, PASSWORD))
        assert detail.status_code == (200 if may else 404), email
        assert (SUMMARY in detail.text) == may and ("Child Ptolemy" in detail.text) == may
        listed = (await api.client.get("/api/cases", auth=(email, PASSWORD))).json()
        assert (case_id in [c["id"] for c in listed]) == may, email
        download = await api.client.get(file_url, auth=(email, PASSWORD))
        assert download.status_code == (200 if may else 404), email
        assert (await api.client.post(f"/api/cases/{case_id}/files", auth=(email, PASSWORD), files={
            "file": ("r.pdf", PDF, "application/pdf")})).status_code == (201 if may else 404)
        claim = await api.client.post(f"/api/cases/{case_id}/tasks/notification/claim", auth=(email, PASSWORD))
        assert (claim.status_code == 404) == (not may), (email, claim.status_code)
        page = browser()
        await page.sign_in(email)
        case_page = await page.get(f"/cases/{case_id}")
        assert case_page.status_code == (200 if may else 404), email
        assert (SUMMARY in case_page.text) == may and ("Child Ptolemy" in case_page.text) == may
        task_page = await page.get(f"/cases/{case_id}/tasks/notification")
        assert task_page.status_code == (200 if may else 404), email
        cases_page = await page.get("/cases?status=all")
        assert cases_page.status_code == 200 and ("LP-7" in cases_page.text) == may, email
        assert SUMMARY not in cases_page.text and "Child Ptolemy" not in cases_page.text

    # the learning themes page counts the rapid review's themes for everyone, its summary only for those who may read
    driver.case_id = case_id
    await driver.complete("notification", {"sent_on": london_today().isoformat(), "local_partners_notified": True})
    await driver.through_rapid_review(today=london_today(), decision="no")
    for email, may in ((LEAD, True), (PROBATION, False)):
        themes = browser()
        await themes.sign_in(email)
        shown = await themes.get("/learning/themes?theme=information-sharing&source=rapid_review")
        assert shown.status_code == 200 and "LP-7" in shown.text, email
        assert (SUMMARY[:40] in shown.text) == may and (f'href="/cases/{case_id}"' in shown.text) == may, email

    # someone given the case's work reads it from then on: the teacher, once a task is theirs by role
    from safeguarding.tables import TaskCandidate

    with Session(engine) as session:
        session.add(TaskCandidate(task_id=f"{case_id}/notification", user_ref="u-rv-teacher-dsl"))
        session.commit()
    assert (await api.client.get(f"/api/cases/{case_id}", auth=(TEACHER, PASSWORD))).status_code == 200

    # point 6: a view of the case (API or page, not the page's polls) and a download are in the audit log
    views = audits(engine, "case.view", case_id)
    assert [v.actor for v in views].count("u-rv-business-manager") == 2  # the API detail and the page
    assert {v.actor for v in views} >= {"u-rv-la-dcs", "u-rv-scrutineer", "u-rv-teacher-dsl"}
    lead = browser()
    await lead.sign_in(LEAD)
    revision = driver.case().revision
    polled = await lead.get(f"/cases/{case_id}?poll=1&rev={revision}")
    assert polled.status_code == 204
    await lead.get(f"/cases/{case_id}?poll=1&rev=0")
    assert len(audits(engine, "case.view", case_id)) == len(views)
    downloads = audits(engine, "file.download", case_id)
    assert {d.actor for d in downloads} == {"u-rv-business-manager", "u-rv-la-dcs", "u-rv-scrutineer"}
    assert all(uploaded.json()["file_id"] in d.detail for d in downloads)


async def test_an_escalation_is_read_by_its_raiser_the_agencies_named_and_its_handlers_only(site):
    browser, driver = site
    api = browser()
    raised = await api.client.post("/api/partnerships/riverford-and-vale/escalations", auth=(SOCIAL_WORKER, PASSWORD),
                                   json={"subject": SUBJECT, "agencies": ["vale-police"],
                                         "issue_type": "case_closure", "child_pseudonym": "Child Ione"})
    assert raised.status_code == 201, raised.text
    case_id = raised.json()["case_id"]
    # raiser; the agency named; the stage-1 handlers (practitioners: the teacher); the lead; not probation
    for email, may in ((SOCIAL_WORKER, True), (POLICE, True), (TEACHER, True), (LEAD, True), (PROBATION, False)):
        detail = await api.client.get(f"/api/cases/{case_id}", auth=(email, PASSWORD))
        assert detail.status_code == (200 if may else 404), email
        page = browser()
        await page.sign_in(email)
        listing = await page.get("/escalations")
        assert listing.status_code == 200 and (SUBJECT in listing.text) == may, email
        exported = await page.get("/escalations.csv")
        assert (SUBJECT in exported.text) == may and ("Child Ione" in exported.text) == may
        withdraw = await page.get(f"/escalations/{case_id}/withdraw")
        assert (withdraw.status_code == 404) == (not may), email
    refused = await api.client.post(f"/api/cases/{case_id}/withdraw", auth=(PROBATION, PASSWORD),
                                    json={"reason": "not mine"})
    assert refused.status_code == 404 and driver.engine is not None
