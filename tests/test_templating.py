"""web/templating.py (with web/template_filters.py and web/template_speed.py), base.html, errors/error.html and the
vendored static assets."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, date, datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles

from web.templating import (
    GOVUK_MACROS,
    STATIC_DIR,
    TEMPLATES_DIR,
    date_uk,
    datetime_uk,
    env,
    render,
    templates,
)

CSS = STATIC_DIR / "govuk" / "govuk-frontend.min.css"
HX = {"HX-Request": "true"}
EN_DASH = "\u2013"

REQUIRED_GLOBALS = [
    "govukButton",
    "govukInput",
    "govukTextarea",
    "govukSelect",
    "govukRadios",
    "govukCheckboxes",
    "govukDateInput",
    "govukErrorSummary",
    "govukSummaryList",
    "govukTable",
    "govukTag",
    "govukTaskList",
    "govukBackLink",
    "govukBreadcrumbs",
    "govukNotificationBanner",
    "govukPanel",
    "govukInsetText",
    "govukWarningText",
    "govukFieldset",
    "govukDetails",
    "govukFileUpload",
    "govukPagination",
    "govukHeader",
    "govukGenericHeader",
    "govukServiceNavigation",
    "govukFooter",
    "govukSkipLink",
    "govukPhaseBanner",
]


class _Tags(HTMLParser):
    """Collects (tag, attrs) for every start tag."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def make_app() -> FastAPI:
    app = FastAPI()
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/page")
    def page(request: Request, signed_in: bool = True):
        ctx = {
            "page_title": "Your tasks",
            "status_text": "In progress",
            "note": request.query_params.get("note", "plain"),
            "nav_items": [
                {"text": "Tasks", "href": "/tasks", "active": True},
                {"text": "Cases", "href": "/cases", "active": False},
            ],
            "due": datetime(2026, 6, 1, 22, 59, tzinfo=UTC),
        }
        if signed_in:
            ctx["current_user"] = {"display_name": "Sam <b>Smith</b>"}
            ctx["csrf_token"] = "tok-123"
        return render(request, "demo_components.html", ctx, block="status")

    @app.get("/missing")
    def missing(request: Request):
        return render(
            request,
            "errors/error.html",
            {"heading": "Page not found", "message": "If you typed the web address, check it is correct."},
            status_code=404,
        )

    @app.get("/conflict")
    def conflict(request: Request):
        return render(
            request,
            "errors/error.html",
            {"heading": "This task has changed", "message": "Someone else <b>updated</b> it."},
            block="content",
            status_code=409,
        )

    return app


SUPPORT_TEMPLATES = Path(__file__).parent / "support" / "templates"  # the demo page the tests render


@pytest.fixture(scope="module")
async def client():
    """The demo app over httpx's ASGI transport (as the other tests: no TestClient), with the demo template found
    in tests/support/templates (it is not shipped in the package)."""
    from jinja2 import FileSystemLoader

    extra = FileSystemLoader(SUPPORT_TEMPLATES)
    env.loader.loaders.append(extra)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=make_app()), base_url="http://test") as c:
            yield c
    finally:
        env.loader.loaders.remove(extra)


# ---------------------------------------------------------------------------
# Whole page
# ---------------------------------------------------------------------------


async def test_page_has_govuk_chrome(client):
    r = (await client.get("/page"))
    assert r.status_code == 200
    html = r.text
    assert html.startswith("<!DOCTYPE html>")
    assert f"<title>Your tasks {EN_DASH} Safeguarding partnership workflows</title>" in html
    assert 'class="govuk-skip-link"' in html and 'href="#main-content"' in html
    assert 'id="main-content"' in html
    assert '<header class="govuk-template__header">' in html
    assert "govuk-generic-header" in html
    assert "govuk-service-navigation" in html
    assert "Safeguarding partnership workflows" in html
    assert "govuk-phase-banner" in html and "Beta" in html
    assert 'class="govuk-back-link"' in html  # beforeContent block
    assert "govuk-footer" in html
    # Nav items from context, the active one marked.
    assert 'href="/tasks" aria-current="true"' in html
    assert 'href="/cases"' in html


async def test_page_links_vendored_assets_and_they_are_served(client):
    html = (await client.get("/page")).text
    found = tags(html)
    stylesheets = [a["href"] for t, a in found if t == "link" and a.get("rel") == "stylesheet"]
    scripts = [(a["src"], a.get("type")) for t, a in found if t == "script" and a.get("src")]
    icon_rels = {"icon", "manifest", "apple-touch-icon", "mask-icon"}
    icons = [a["href"] for t, a in found if t == "link" and a.get("rel") in icon_rels]

    assert stylesheets == ["/static/govuk/govuk-frontend.min.css", "/static/app.css"]
    assert ("/static/htmx/htmx.min.js", None) in scripts
    assert ("/static/govuk/govuk-frontend.min.js", "module") in scripts
    assert ("/static/app.js", "module") in scripts
    assert icons == ["/static/favicon.svg"]  # our own favicon; no GOV.UK crown icons or manifest

    for url in stylesheets + [src for src, _ in scripts] + icons:
        r = (await client.get(url))
        assert r.status_code == 200, url
        assert r.content, url

    # app.js starts GOV.UK Frontend from the vendored module.
    assert 'from "./govuk/govuk-frontend.min.js"' in (await client.get("/static/app.js")).text


async def test_no_cdn_or_external_urls_in_page(client):
    html = (await client.get("/page")).text
    for _tag, attrs in tags(html):
        for name in ("href", "src", "action"):
            value = attrs.get(name)
            if value:
                assert not re.match(r"^(https?:)?//", value), f"external {name}={value}"


async def test_signed_in_user_and_sign_out_form(client):
    html = (await client.get("/page")).text
    assert "Sam &lt;b&gt;Smith&lt;/b&gt;" in html  # escaped
    found = tags(html)
    forms = [a for t, a in found if t == "form" and a.get("action") == "/sign-out"]
    assert forms and forms[0]["method"] == "post"
    hidden = [a for t, a in found if t == "input" and a.get("name") == "csrf_token"]
    assert hidden and hidden[0]["value"] == "tok-123" and hidden[0]["type"] == "hidden"
    assert re.search(r"<button[^>]*app-link-button[^>]*>Sign out</button>", html)
    body = next(a for t, a in found if t == "body")
    assert json.loads(body["hx-headers"]) == {"X-CSRF-Token": "tok-123"}


async def test_signed_out_page_has_no_user_or_csrf_header(client):
    html = (await client.get("/page", params={"signed_in": "false"})).text
    assert "Sign out" not in html
    assert "hx-headers" not in html
    assert 'name="csrf_token"' not in html


async def test_autoescape_in_page(client):
    html = (await client.get("/page", params={"note": "<script>alert(1)</script>"})).text
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# ---------------------------------------------------------------------------
# htmx fragments (the jinja2-fragments macro trap)
# ---------------------------------------------------------------------------


async def test_hx_request_renders_only_the_block_with_govuk_macros(client):
    r = (await client.get("/page", headers=HX))
    assert r.status_code == 200
    assert "HX-Request" in r.headers["vary"]
    html = r.text.strip()
    assert html.startswith('<div id="case-status">')
    assert "<html" not in html and "govuk-header" not in html and "Note:" not in html
    # govukTag / govukButton output, called with no import inside a block rendered alone.
    assert '<strong class="govuk-tag govuk-tag--yellow">' in html and "In progress" in html
    assert 'class="govuk-button"' in html
    assert "Due 1 June 2026 at 11:59pm" in html


async def test_boosted_and_history_restore_requests_get_the_whole_page(client):
    for extra in ({"HX-Boosted": "true"}, {"HX-History-Restore-Request": "true"}):
        html = (await client.get("/page", headers=HX | extra)).text
        assert html.startswith("<!DOCTYPE html>"), extra


async def test_autoescape_in_fragment(client):
    html = (await client.get("/page", params={"note": "x"}, headers=HX)).text
    assert "<script>" not in html
    r = (await client.get("/conflict", headers=HX))
    assert r.status_code == 409
    assert "Someone else &lt;b&gt;updated&lt;/b&gt; it." in r.text
    assert "<html" not in r.text


def test_every_govuk_macro_is_a_global_usable_in_a_lone_block():
    for name in REQUIRED_GLOBALS:
        assert name in env.globals, name
        assert callable(env.globals[name]), name
    assert set(GOVUK_MACROS.values()) <= set(env.globals)
    # A block rendered alone, no imports anywhere: every required macro resolves.
    from jinja2_fragments import render_block

    checks = "".join(f"[{n} {{{{ {n} is defined }}}}]" for n in REQUIRED_GLOBALS)
    source = "{% block b %}" + checks + "{% endblock %}"
    tmpl = env.from_string(source)
    out = render_block(env, tmpl, "b", {})
    assert "False" not in out and out.count("True") == len(REQUIRED_GLOBALS)


def test_top_level_import_trap_is_real_and_globals_avoid_it():
    """Control: without the globals, a macro imported at the top is undefined in a lone block."""
    from jinja2 import Environment, UndefinedError
    from jinja2_fragments import render_block

    source = (
        '{% from "govuk_frontend_jinja/components/tag/macro.html" import govukTag %}'
        '{% block b %}{{ govukTag({"text": "Open"}) }}{% endblock %}'
    )
    bare = Environment(loader=env.loader, autoescape=True)
    with pytest.raises(UndefinedError):
        render_block(bare, bare.from_string(source), "b", {})
    assert "govuk-tag" in render_block(env, env.from_string(source), "b", {})


def test_templates_object_uses_the_one_env():
    assert templates.env is env
    assert Path(env.loader.loaders[0].searchpath[0]) == TEMPLATES_DIR


# ---------------------------------------------------------------------------
# Error page
# ---------------------------------------------------------------------------


async def test_error_page(client):
    r = (await client.get("/missing"))
    assert r.status_code == 404
    assert f"<title>Page not found {EN_DASH} Safeguarding partnership workflows</title>" in r.text
    assert '<h1 class="govuk-heading-l">Page not found</h1>' in r.text
    assert "If you typed the web address, check it is correct." in r.text
    assert "govuk-generic-header" in r.text


@pytest.mark.parametrize("status", [403, 404, 409, 422, 500])
def test_error_template_renders_for_each_status(status):
    html = env.get_template("errors/error.html").render(
        heading=f"Heading {status}", message="Message", status_code=status
    )
    assert f"Heading {status}" in html and "Message" in html


# ---------------------------------------------------------------------------
# Vendored assets
# ---------------------------------------------------------------------------


async def test_every_css_url_resolves_to_a_vendored_file(client):
    css = CSS.read_text(encoding="utf-8")
    refs = [r.strip().strip("'\"") for r in re.findall(r"url\(([^)]*)\)", css)]
    refs = [r for r in refs if not r.startswith(("data:", "#"))]
    css_url = "/static/govuk/govuk-frontend.min.css"
    for ref in refs:
        assert "://" not in ref and not ref.startswith("/"), ref
        assert (CSS.parent / ref).is_file(), ref
        url = css_url.rsplit("/", 1)[0] + "/" + ref
        assert (await client.get(url)).status_code == 200, url
    assert "sourceMappingURL" not in css


def test_versions_json_matches_files_on_disk():
    versions = json.loads((STATIC_DIR / "versions.json").read_text())["packages"]
    assert versions["govuk-frontend"]["version"].startswith("6.")
    assert versions["htmx.org"]["version"].startswith("2.0.")
    for pkg in versions.values():
        for rel, info in pkg["files"].items():
            data = (STATIC_DIR / rel).read_bytes()
            assert hashlib.sha256(data).hexdigest() == info["sha256"], rel
    for required in (
        "govuk/govuk-frontend.min.css",
        "govuk/govuk-frontend.min.js",
    ):
        assert required in versions["govuk-frontend"]["files"]
    assert "htmx/htmx.min.js" in versions["htmx.org"]["files"]
    assert not list(STATIC_DIR.rglob("*.map"))
    assert not any(rel.startswith("govuk/assets/") for rel in versions["govuk-frontend"]["files"])
    assert not list(STATIC_DIR.rglob("*.scss"))


# ---------------------------------------------------------------------------
# Filters
# ---------------------------------------------------------------------------


def test_date_uk():
    assert date_uk(date(2026, 6, 1)) == "1 June 2026"
    assert date_uk(date(2026, 12, 25)) == "25 December 2026"
    assert date_uk(None) == ""
    # Aware datetimes are converted to London first: 23:30 UTC on 31 May is 1 June in BST.
    assert date_uk(datetime(2026, 5, 31, 23, 30, tzinfo=UTC)) == "1 June 2026"
    assert date_uk(datetime(2026, 1, 31, 23, 30, tzinfo=UTC)) == "31 January 2026"
    with pytest.raises(ValueError, match="naive"):
        date_uk(datetime(2026, 6, 1, 12, 0))
    assert env.from_string("{{ d | date_uk }}").render(d=date(2026, 6, 1)) == "1 June 2026"


def test_datetime_uk_bst_and_gmt():
    # BST (UTC+1): 22:59 UTC is 11:59pm in London.
    assert datetime_uk(datetime(2026, 6, 1, 22, 59, tzinfo=UTC)) == "1 June 2026 at 11:59pm"
    # GMT (UTC+0) in winter.
    assert datetime_uk(datetime(2026, 1, 15, 23, 59, tzinfo=UTC)) == "15 January 2026 at 11:59pm"
    # Crossing midnight in BST changes the date.
    assert datetime_uk(datetime(2026, 5, 31, 23, 30, tzinfo=UTC)) == "1 June 2026 at 12:30am"
    # Other offsets are converted too.
    ist = timezone(timedelta(hours=5, minutes=30))
    assert datetime_uk(datetime(2026, 6, 1, 14, 0, tzinfo=ist)) == "1 June 2026 at 9:30am"
    # Clock change days: 29 March 2026 01:00 UTC is 2am BST; 25 October 2026 01:00 UTC is 1am GMT.
    assert datetime_uk(datetime(2026, 3, 29, 1, 0, tzinfo=UTC)) == "29 March 2026 at 2am"
    assert datetime_uk(datetime(2026, 10, 25, 1, 0, tzinfo=UTC)) == "25 October 2026 at 1am"


def test_datetime_uk_style_and_edges():
    assert datetime_uk(datetime(2026, 1, 5, 9, 0, tzinfo=UTC)) == "5 January 2026 at 9am"
    assert datetime_uk(datetime(2026, 1, 5, 17, 30, tzinfo=UTC)) == "5 January 2026 at 5:30pm"
    assert datetime_uk(datetime(2026, 1, 5, 12, 0, tzinfo=UTC)) == "5 January 2026 at midday"
    assert datetime_uk(datetime(2026, 1, 5, 0, 0, tzinfo=UTC)) == "5 January 2026 at midnight"
    assert datetime_uk(datetime(2026, 1, 5, 12, 5, tzinfo=UTC)) == "5 January 2026 at 12:05pm"
    assert datetime_uk(datetime(2026, 1, 5, 0, 5, tzinfo=UTC)) == "5 January 2026 at 12:05am"
    assert datetime_uk(None) == ""
    with pytest.raises(ValueError, match="naive"):
        datetime_uk(datetime(2026, 6, 1, 12, 0))


async def test_no_gov_uk_only_assets_are_served(client):
    """GDS Transport is licensed for GOV.UK only; the crown/crest images are GOV.UK's. None are shipped or used."""
    css = CSS.read_text(encoding="utf-8")
    assert not re.search(r"@font-face\{[^}]*GDS Transport", css)
    assert "assets/fonts" not in css and "govuk-crest" not in css
    assert not (STATIC_DIR / "govuk" / "assets").exists()
    assert not list(STATIC_DIR.rglob("*.woff*"))
    assert "arial" in css.lower()  # the fallback the font stacks fall back to
    favicon = (await client.get("/static/favicon.svg"))
    assert favicon.status_code == 200 and favicon.content.startswith(b"<svg")
    for rel in ("govuk/assets/images/favicon.ico", "govuk/assets/images/govuk-crest.svg", "govuk/assets/manifest.json"):
        assert (await client.get(f"/static/{rel}")).status_code == 404


def test_remembered_components_render_as_the_macro_does_and_keep_escaping():
    from markupsafe import Markup

    from web.template_speed import RememberedMacro

    tag = env.globals["govukTag"]
    assert isinstance(tag, RememberedMacro)
    plain = tag.macro({"text": "<b>Open</b>"})
    assert tag({"text": "<b>Open</b>"}) == plain == tag({"text": "<b>Open</b>"})  # computed, then remembered
    assert "&lt;b&gt;" in plain
    # the same characters as Markup are HTML, as str they are text: never confused by the memory
    assert "<i>Shut</i>" in tag({"text": Markup("<i>Shut</i>")}) and "&lt;i&gt;" in tag({"text": "<i>Shut</i>"})
    assert "<i>Shut</i>" in tag({"text": Markup("<i>Shut</i>")})
    assert "True" in env.from_string('{{ govukTag({"text": flag}) }}').render(flag=True)
    assert "True" not in env.from_string('{{ govukTag({"text": flag}) }}').render(flag=1)
    # a {% call %} block is passed straight through, and the memory stays bounded
    out = env.from_string('{% call govukFieldset({"legend": {"text": "Who"}}) %}inside {{ n }}{% endcall %}')
    assert "inside 1" in out.render(n=1) and "inside 2" in out.render(n=2)
    small = RememberedMacro(tag.macro, size=3)
    for n in range(10):
        assert f"  {n}\n" in small({"text": str(n)})
    assert len(small._memo) == 3


def test_the_govuk_page_template_and_components_use_the_remembered_macros():
    """The page template imports govukServiceNavigation itself: it gets the remembered one, not a fresh macro."""
    from web.template_speed import RememberedMacro

    module = env.get_template("govuk_frontend_jinja/components/service-navigation/macro.html").module
    assert isinstance(module.govukServiceNavigation, RememberedMacro)
    assert module.govukServiceNavigation is env.globals["govukServiceNavigation"]
    page = env.from_string('{% from "govuk_frontend_jinja/components/tag/macro.html" import govukTag %}'
                           '{{ govukTag({"text": "Imported"}) }}')
    assert "Imported" in page.render() and env.globals["govukTag"]._memo


def test_the_shared_date_field_keeps_what_was_typed_and_marks_the_error():
    field = env.from_string('{% from "_date_field.html" import date_field %}'
                            '{{ date_field("due_date", "When is it due?", "For example, 27 3 2027", values, error) }}')
    wrong = field.render(values={"due_date-day": "31", "due_date-month": "2", "due_date-year": "2027"},
                         error="The due date must be a real date")
    assert 'name="due_date-day"' in wrong and 'value="31"' in wrong and 'name="due_date-year"' in wrong
    assert wrong.count("govuk-input--error") == 3 and "The due date must be a real date" in wrong
    empty = field.render(values={}, error=None)
    assert "govuk-input--error" not in empty and 'id="due_date-day"' in empty and "When is it due?" in empty


def test_quick_dict_look_ups_answer_as_jinja_does():
    """``PageEnvironment.getattr`` skips the exceptions for plain dicts, with Jinja's own answers."""
    from collections import defaultdict

    from jinja2 import Environment

    plain = Environment(autoescape=True)
    source = ("{{ d.text }}|{{ d.missing }}|{{ d.missing is defined }}|{{ d['items'] }}|{{ d.items is callable }}|"
              "{{ d.get('text') }}|{{ d.keys() | list | length }}|{{ d.__class__.__name__ }}")
    for d in ({"text": "<b>bold</b>", "items": "mine"}, {}, defaultdict(str, text="x"), {"text": None, "n": 0}):
        assert env.from_string(source).render(d=d) == plain.from_string(source).render(d=d), d
    assert env.from_string("{{ d.text.upper() }}").render(d={"text": "a"}) == "A"


def test_the_components_helper_macros_are_remembered_too():
    from web.template_speed import RememberedMacro

    module = env.get_template("govuk_frontend_jinja/macros/attributes.html").module
    attributes = module.govukAttributes
    assert isinstance(attributes, RememberedMacro)
    for value in ({"data-module": "x", "hidden": {"value": True, "optional": True}}, "data-raw", {"a": "<b>"}):
        assert attributes(value) == attributes.macro(value) == attributes(value)
    button = env.from_string('{{ govukButton({"text": "Go", "attributes": {"data-x": "1"}}) }}').render()
    assert 'data-x="1"' in button


def test_a_templates_globals_see_the_environments_and_their_own():
    from web.template_speed import TemplateGlobals

    template = env.from_string("{{ serviceName }} {{ mine }}", globals={"mine": "own"})
    assert isinstance(template.globals, TemplateGlobals)
    assert template.render() == "Safeguarding partnership workflows own"
    assert {"mine", "serviceName", "govukTable"} <= template.globals.keys()
    assert "mine" not in env.globals


def test_the_quicker_indent_filter_answers_as_jinjas():
    from itertools import product

    from jinja2.filters import do_indent
    from markupsafe import Markup

    from web.template_filters import indent

    assert env.filters["indent"] is indent
    texts = ["", "\n", "one", "one\ntwo", "a\n\nb\n", "\n\nc\n", "x\r\ny", "<b>\n  c &amp; d\n</b>\n", "line\n  \nend"]
    for text, width, first, blank in product(texts, [0, 2, 6, "--", "<i>"], [False, True], [False, True]):
        for value in (Markup(text), text):
            ours, jinjas = indent(value, width, first, blank), do_indent(value, width, first, blank)
            assert ours == jinjas and type(ours) is type(jinjas), (value, width, first, blank)


def test_calls_from_templates_answer_as_jinjas():
    """``PageContext.call`` takes a short way for macros, remembered macros and built-in methods; every kind of
    callable still gets what Jinja would pass it."""
    from jinja2 import Environment, pass_context, pass_environment, pass_eval_context

    @pass_context
    def who(context):
        return context.get("name")

    @pass_eval_context
    def escaping(eval_ctx):
        return eval_ctx.autoescape

    @pass_environment
    def undefined_type(environment):
        return environment.undefined.__name__

    class Greeter:
        @pass_context
        def __call__(self, context, greeting):
            return f"{greeting} {context.get('name')}"

    source = ("{% macro m(x) %}[{{ x }}{{ caller() if caller is defined else '' }}]{% endmacro %}"
              "{% set seen = [] %}{% set _ = seen.append(name) %}{{ seen }}|{{ {'a': '<b>'}.get('a') }}|"
              "{{ who() }}|{{ escaping() }}|{{ undefined_type() }}|{{ greet('Hello') }}|{{ m(name) }}|"
              "{% call m(1) %}in{% endcall %}|{{ len(seen) }}|{{ govukTag({'text': name}) | trim }}|"
              "{% for n in [1, 2] %}{{ m(n) }}{{ seen.append(n) }}{% endfor %}{{ seen }}")
    plain = Environment(autoescape=True)
    values = {"name": "<Ann>", "who": who, "escaping": escaping, "undefined_type": undefined_type, "greet": Greeter(),
              "len": len, "govukTag": env.globals["govukTag"].macro}
    assert env.from_string(source).render(values) == plain.from_string(source).render(values)


def test_a_left_out_option_is_undefined_as_jinja_says():
    from jinja2 import Environment

    plain = Environment(autoescape=True)

    def outcome(environment, source):
        try:
            return environment.from_string(source).render(d={"x": None})
        except Exception as exc:  # the message a template author sees
            return f"{type(exc).__name__}: {exc}"

    for source in ("{{ d.y.z }}", "{{ d.y() }}", "{{ d.y + 1 }}", "{{ d.y | length }}", "{{ d.y is defined }}",
                   "{{ d.y | default('z') }}", "[{{ d.y }}]", "{{ d.x.y }}", "{{ d.y == d.w }}", "{{ d.y.__class__ }}"):
        assert outcome(env, source) == outcome(plain, source), source


def test_template_globals_and_loaded_templates_answer_as_jinjas():
    template = env.from_string("{{ serviceName }} {{ mine }}", globals={"mine": "own"})
    assert template.globals["mine"] == "own" and template.globals["serviceName"] == env.globals["serviceName"]
    assert dict(template.globals) == {**env.globals, "mine": "own"}
    with pytest.raises(KeyError):
        template.globals["nothing-by-this-name"]
    assert template.globals.get("nothing-by-this-name", 7) == 7
    # a template is read once and then kept: the same object every time, as Jinja's own cache gives it
    assert env.get_template("base.html") is env.get_template("base.html") is env.cache.get(
        next(key for key in env.cache._mapping if key[1] == "base.html"))


def test_remembered_parameters_never_confuse_values_that_print_differently():
    from markupsafe import Markup

    from web.template_speed import _UNFREEZABLE, _freeze

    values = ["1", Markup("1"), 1, 1.0, True, None, "None", date(2026, 6, 1), datetime(2026, 6, 1), [], {}, ["1"],
              [Markup("1")], [1], [True], {"a": "1"}, {"a": Markup("1")}, {"a": 1}, {"a": True}, {"a": None},
              {"a": "None"}, {"a": ["1"]}, {"a": {"b": "1"}}, [["1"]], ["1", "2"], ["12"]]
    keys = [_freeze(v) for v in values]
    for i, key in enumerate(keys):
        hash(key)
        assert keys.index(key) == i, (values[i], values[keys.index(key)])
    assert _freeze({"a": object()}) is _UNFREEZABLE and _freeze([object()]) is _UNFREEZABLE


def test_the_inbox_is_a_remembered_function_of_its_rows():
    """``reviewer/_inbox.html`` renders from its one parameter only; the page remembers its output by it, so any
    change in a row (a name, a claim, a title) is a different parameter and a fresh rendering."""
    from web.template_speed import RememberedMacro

    inbox = env.globals["reviewer_inbox"]
    assert isinstance(inbox, RememberedMacro)
    row = {"case_id": "c-1", "key": "meeting", "title": "Record the meeting", "for": "Review officer",
           "status": "open", "due_date": date(2026, 6, 1), "overdue": False, "claimed_by": "u-2", "case_label": "R-1",
           "days_left": 3, "days_left_text": "3 working days left", "claimed_by_name": "Bea Smith", "mine": False,
           "href": "/cases/c-1/tasks/meeting"}
    params = {"rows": [row], "total": 1, "page": 1, "pages": 1, "first": 1, "last": 1, "previous_href": None,
              "next_href": None, "filters": {"status": "open", "overdue": False, "page": 1}, "rev": "abc",
              "flash": None, "poll_seconds": 5, "back": "/tasks", "query": "", "csrf_token": "token-1"}
    html = inbox(params)
    assert html == inbox.macro(params) == inbox(params)
    assert "Claimed by Bea Smith" in html and "Record the meeting" in html and "csrf_token" not in html
    renamed = inbox({**params, "rows": [{**row, "claimed_by_name": "Bea Jones"}]})
    assert "Claimed by Bea Jones" in renamed and "Bea Smith" not in renamed
    mine = inbox({**params, "rows": [{**row, "claimed_by": "u-1", "mine": True}]})
    assert "Claimed by you" in mine and "Release" in mine and 'value="token-1"' in mine
    # it sees nothing of a page's context: a page variable of the same name changes nothing
    page = env.from_string("{{ reviewer_inbox(p) }}")
    assert page.render(p=params, rows=[], csrf_token="other") == html
