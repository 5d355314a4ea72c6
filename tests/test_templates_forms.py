"""Forms share one error summary (issue 18) and pages are told apart by their titles and one <h1> (issue 17,
point 5): the macro itself, every template that shows errors using it, and the forms' error pages over HTTP
(the real app over a seeded SQLite database; these forms check their answers before any workflow starts)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from sgflow.seed import DEMO_PASSWORD
from web.templating import TEMPLATES_DIR, env

LEAD = "rv-business-manager@demo.test"
MACRO = "_error_summary.html"


def render_macro(errors, *args) -> str:
    template = env.from_string('{% from "_error_summary.html" import form_error_summary %}'
                               "{{ form_error_summary(errors, *args) }}")
    return template.render(errors=errors, args=args)


def test_the_macro_links_each_error_to_its_field_and_shows_nothing_without_errors():
    html = render_macro([{"text": "Enter a date", "href": "#aware_date-day"}, {"text": "Choose one", "href": "#kind"}])
    assert html.count("govuk-error-summary__list") == 1
    assert '<a href="#aware_date-day">Enter a date</a>' in html and '<a href="#kind">Choose one</a>' in html
    assert "There is a problem" in html and 'data-module="govuk-error-summary"' in html
    flash = render_macro("Someone else has claimed this task", "That did not work")
    assert "That did not work" in flash and "Someone else has claimed this task" in flash and "<a href" not in flash
    described = render_macro([{"text": "bad", "href": "#issue-1"}], "2 problems", "Nothing was stored.")
    assert "2 problems" in described and "Nothing was stored." in described
    assert render_macro([]).strip() == "" and render_macro(None).strip() == ""
    assert "&lt;script&gt;" in render_macro([{"text": "<script>", "href": "#x"}])  # text, never markup


def test_every_template_shows_errors_through_the_one_macro():
    offenders, users = [], []
    for path in sorted(Path(TEMPLATES_DIR).rglob("*.html")):
        name = path.relative_to(TEMPLATES_DIR).as_posix()
        source = path.read_text()
        if name in (MACRO, "demo_components.html"):
            continue
        if "govukErrorSummary(" in source:
            offenders.append(name)
        if "form_error_summary(" in source:
            users.append(name)
    assert offenders == [], f"call form_error_summary ({MACRO}) instead of govukErrorSummary in: {offenders}"
    for form in ("auth/sign_in.html", "reviewer/incident_new.html", "reviewer/task.html", "escalations/new.html",
                 "escalations/withdraw.html", "learning/new.html", "learning/action_new.html", "learning/triage.html",
                 "reviews/review.html", "yearly_report/index.html", "lead/arrangements_edit.html"):
        assert form in users, form


@pytest.fixture
async def lead_client(seeded_engine, settings):
    from web.app import create_app

    app = create_app(settings, engine=seeded_engine, temporal_client=None, connect_temporal=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                 base_url="http://testserver", follow_redirects=False) as client:
        yield client


def token_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def check_error_page(html: str, what: str) -> None:
    title = re.search(r"<title[^>]*>(.*?)</title>", html, re.S).group(1).strip()
    assert title.startswith("Error: "), f"{what}: title {title!r}"
    assert len(re.findall(r"<h1[\s>]", html)) == 1, f"{what}: not exactly one <h1>"
    assert html.count('class="govuk-error-summary"') == 1, f"{what}: not exactly one error summary"
    summary = html[html.index('class="govuk-error-summary"'):]
    summary = summary[:summary.index("</ul>")]
    targets = re.findall(r'<a href="#([^"]+)"', summary)
    assert targets, f"{what}: no error links to a field"
    missing = [t for t in targets if f'id="{t}"' not in html]
    assert missing == [], f"{what}: error links to no field: {missing}"


async def test_forms_with_errors_say_error_in_the_title_and_link_each_error_to_its_field(lead_client):
    client = lead_client
    page = await client.get("/sign-in")
    wrong = await client.post("/sign-in", data={"email": LEAD, "password": "wrong", "next": "/",
                                                "csrf_token": token_of(page.text)})
    check_error_page(wrong.text, "sign-in")
    page = await client.get("/sign-in")
    signed = await client.post("/sign-in", data={"email": LEAD, "password": DEMO_PASSWORD, "next": "/",
                                                 "csrf_token": token_of(page.text)})
    assert signed.status_code == 303
    titles = set()
    for path in ("/incidents/new", "/escalations/new", "/learning/new"):
        form = await client.get(path)
        assert form.status_code == 200, path
        title = re.search(r"<title[^>]*>(.*?)</title>", form.text, re.S).group(1).strip()
        assert not title.startswith("Error"), title
        titles.add(title)
        bad = await client.post(path, data={"csrf_token": token_of(form.text)})
        assert bad.status_code == 422, (path, bad.status_code)
        check_error_page(bad.text, path)
    assert len(titles) == 3  # each page its own title
