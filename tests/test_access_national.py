"""Issue 15, point 1: the national body sees and uses only the national reference, in the API as on the pages.

Signed in as the Panel, every page reachable by links from the landing page and the national pages, every CSV they
link to, and every API list and detail answer is walked, with a case at the Panel's task and again after the Panel
has answered; none may hold the local case reference, the local case id, the child's pseudonym, the incident
summary, or any local person's name or email. The Panel acts through /api/national/cases/<national ref>/...,
and gets 404 on every /api/cases/<case id>/... route.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

from sqlmodel import Session, select

from safeguarding.clock import london_today
from safeguarding.tables import Case, User
from tests.support.pages import PANEL, PASSWORD

LEAD = "rv-business-manager@demo.test"
CASE_REF = "QZ-LOCAL-4417"
CHILD = "Child Quillon"
SUMMARY = "Marmaduke fell from the third-floor window while the carer slept."
MAX_PAGES = 400


def forbidden(engine, case: Case) -> list[str]:
    with Session(engine) as session:
        people = session.exec(select(User.display_name, User.email).where(User.partnership_id.is_not(None))).all()
    return [case.case_ref, case.id, CHILD, SUMMARY, *(name for name, _ in people), *(email for _, email in people)]


def leaks(text: str, secrets: list[str]) -> list[str]:
    lowered = text.lower()
    return [s for s in secrets if s.lower() in lowered]


async def crawl(panel, secrets: list[str], starts: list[str]) -> dict[str, int]:
    """Every GET page and CSV reachable by links from ``starts`` (same site, not static files, not signing out),
    each checked for leaks. Returns path -> status."""
    seen: dict[str, int] = {}
    queue = list(starts)
    while queue and len(seen) < MAX_PAGES:
        path = queue.pop(0)
        if path in seen:
            continue
        response = await panel.get(path)
        seen[path] = response.status_code
        if response.status_code in (301, 302, 303, 307):
            queue.append(response.headers["location"])
            continue
        assert response.status_code < 500, (path, response.status_code)
        found = leaks(response.text, secrets)
        assert not found, f"{path} shows the national body {found}"
        if "html" not in response.headers.get("content-type", ""):
            continue
        for href in re.findall(r'href="([^"#]*)', response.text):
            href = urljoin(path, href.replace("&amp;", "&"))
            parts = urlsplit(href)
            if parts.netloc or not parts.path.startswith("/") or parts.path.startswith(("/static", "/sign-")):
                continue
            if href not in seen:
                queue.append(href)
    return seen


async def api_answers(basic, ref: str, secrets: list[str]) -> None:
    paths = ["/api/tasks", "/api/tasks?status=done", "/api/tasks?status=cancelled", "/api/tasks?overdue=true",
             "/api/cases", "/api/national/cases", f"/api/national/cases/{ref}",
             "/api/national/cases?status=closed", "/api/national/cases?partnership=riverford-and-vale"]
    for path in paths:
        response = await basic.client.get(path, auth=(PANEL, PASSWORD))
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
        found = leaks(response.text, secrets)
        assert not found, f"{path} gives the national body {found}"


async def test_the_national_body_never_sees_or_uses_a_local_reference(site):
    browser, driver = site
    today = london_today()
    lead = browser()
    opened = await lead.client.post("/api/partnerships/riverford-and-vale/incidents", auth=(LEAD, PASSWORD), json={
        "case_ref": CASE_REF, "aware_date": today.isoformat(), "category": "serious_harm_abuse_neglect",
        "children": [{"pseudonym": CHILD, "local_ref": "LA-99120"}], "summary": SUMMARY,
        "agencies": ["riverford-council", "vale-icb", "riverford-schools"]})
    assert opened.status_code == 201, opened.text
    driver.case_id = opened.json()["case_id"]
    await driver.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True})
    await driver.through_rapid_review(today=today, decision="no")
    case = driver.case()
    assert driver.task("panel-response").status == "open"
    secrets = forbidden(driver.engine, case)
    ref = case.national_ref

    panel = browser()
    await panel.sign_in(PANEL)
    basic = browser()
    # the Panel's task is open: its pages, CSVs and API answers
    walked = await crawl(panel, secrets, ["/", "/national", "/national/monitoring", "/national/learning", "/tasks",
                                          f"/national/cases/{ref}", "/tasks?status=done"])
    assert f"/national/cases/{ref}/tasks/panel-response" in walked and "/national/monitoring" in walked
    assert any(p.endswith(".csv") or ".csv?" in p for p in walked), "no CSV was linked"
    await api_answers(basic, ref, secrets)
    listed = (await basic.client.get("/api/tasks", auth=(PANEL, PASSWORD))).json()
    mine = [t for t in listed if t["national_ref"] == ref]
    assert len(mine) == 1 and mine[0]["key"] == "panel-response"
    assert mine[0]["url"] == f"/api/national/cases/{ref}/tasks/panel-response"
    assert not {"case_id", "case_ref", "claimed_by", "completed_by", "data"} & set(mine[0])

    # local routes: 404 for the national body, whatever the case id
    for method, path in (("GET", f"/api/cases/{case.id}"), ("POST", f"/api/cases/{case.id}/tasks/panel-response/claim"),
                         ("POST", f"/api/cases/{case.id}/tasks/panel-response/complete"),
                         ("GET", f"/api/cases/{case.id}/files/{'a' * 64}.pdf"),
                         ("POST", f"/api/cases/{case.id}/actions"), ("POST", f"/api/cases/{case.id}/withdraw")):
        answer = await basic.client.request(method, path, auth=(PANEL, PASSWORD),
                                            json={} if method == "POST" else None)
        assert answer.status_code == 404, (method, path, answer.status_code)
        assert not leaks(answer.text.replace(case.id, ""), secrets)
    assert driver.task("panel-response").claimed_by is None  # nothing happened

    # acting by the national reference
    claimed = await basic.client.post(f"{mine[0]['url']}/claim", auth=(PANEL, PASSWORD))
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["national_ref"] == ref and not leaks(claimed.text, secrets)
    assert driver.task("panel-response").claimed_by == "u-panel-analyst"
    mine = (await basic.client.get("/api/tasks", auth=(PANEL, PASSWORD))).json()
    assert [t["claimed_by_you"] for t in mine if t["national_ref"] == ref] == [True]
    done = await basic.client.post(f"/api/national/cases/{ref}/tasks/panel-response/complete",
                                   auth=(PANEL, PASSWORD), json={"response": "agrees"})
    assert done.status_code == 200, done.text
    assert done.json()["case_status"] == "closed" and not leaks(done.text, secrets)
    assert driver.case().status == "closed"
    # a local user cannot use the national route
    assert (await basic.client.post(f"/api/national/cases/{ref}/tasks/panel-response/claim",
                                    auth=(LEAD, PASSWORD))).status_code == 404

    # after the Panel's answer: everything again, done tasks included
    walked = await crawl(panel, secrets, ["/", "/national", "/national/monitoring", "/national/learning",
                                          "/tasks?status=done", f"/national/cases/{ref}",
                                          f"/national/cases/{ref}/tasks/panel-response"])
    assert walked[f"/national/cases/{ref}/tasks/panel-response"] == 200
    await api_answers(basic, ref, secrets)
    finished = (await basic.client.get("/api/tasks?status=done", auth=(PANEL, PASSWORD))).json()
    assert [t["status"] for t in finished if t["national_ref"] == ref] == ["done"]
