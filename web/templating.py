"""The one Jinja environment for the web UI, and the page-or-fragment `render` helper.

- Templates: ours in ``web/templates`` first, then the GOV.UK Frontend Jinja macros
  (PyPI ``govuk-frontend-jinja`` 4.x) under the ``govuk_frontend_jinja/`` prefix.
- Every GOV.UK component macro is an environment global (``govukTag``, ``govukButton``...),
  so templates call them without ``{% from ... import %}``. This matters with
  jinja2-fragments: a block rendered on its own does not see macros imported at the top
  of its template, but it does see globals.
- Static assets (vendored by ``scripts/vendor_assets.sh``) live in ``STATIC_DIR`` and are
  served at ``/static``; the GOV.UK assets path is ``/static/govuk/assets``.
- The filters are ``web.template_filters``; the components' remembered output and the Jinja overrides kept for
  speed are ``web.template_speed`` (both re-exported here, where the pages have always found them).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    PrefixLoader,
    select_autoescape,
)
from jinja2_fragments.fastapi import Jinja2Blocks
from starlette.requests import Request
from starlette.responses import Response

from web.template_filters import LONDON, date_uk, datetime_uk, indent, json_text
from web.template_speed import PageContext, PageEnvironment, RememberedMacro, TemplateGlobals

__all__ = [
    "ASSET_PATH",
    "GOVUK_MACROS",
    "LONDON",
    "SERVICE_NAME",
    "STATIC_DIR",
    "STATIC_URL",
    "TEMPLATES_DIR",
    "PageContext",
    "PageEnvironment",
    "RememberedMacro",
    "TemplateGlobals",
    "date_uk",
    "datetime_uk",
    "env",
    "indent",
    "is_fragment_request",
    "json_text",
    "render",
    "templates",
]

WEB_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR: Path = WEB_DIR / "templates"
STATIC_DIR: Path = WEB_DIR / "static"

STATIC_URL = "/static"
ASSET_PATH = f"{STATIC_URL}/govuk/assets"
SERVICE_NAME = "Safeguarding partnership workflows"
PRODUCT_NAME = "sgflow"

# Component folder in govuk_frontend_jinja/templates/components -> macro name.
# All components shipped by govuk-frontend-jinja 4.1.0 (GOV.UK Frontend 6.3.0).
GOVUK_MACROS: dict[str, str] = {
    "accordion": "govukAccordion",
    "back-link": "govukBackLink",
    "breadcrumbs": "govukBreadcrumbs",
    "button": "govukButton",
    "character-count": "govukCharacterCount",
    "checkboxes": "govukCheckboxes",
    "cookie-banner": "govukCookieBanner",
    "date-input": "govukDateInput",
    "details": "govukDetails",
    "error-message": "govukErrorMessage",
    "error-summary": "govukErrorSummary",
    "exit-this-page": "govukExitThisPage",
    "fieldset": "govukFieldset",
    "file-upload": "govukFileUpload",
    "footer": "govukFooter",
    "generic-header": "govukGenericHeader",
    "header": "govukHeader",
    "hint": "govukHint",
    "input": "govukInput",
    "inset-text": "govukInsetText",
    "label": "govukLabel",
    "notification-banner": "govukNotificationBanner",
    "pagination": "govukPagination",
    "panel": "govukPanel",
    "password-input": "govukPasswordInput",
    "phase-banner": "govukPhaseBanner",
    "radios": "govukRadios",
    "select": "govukSelect",
    "service-navigation": "govukServiceNavigation",
    "skip-link": "govukSkipLink",
    "summary-list": "govukSummaryList",
    "table": "govukTable",
    "tabs": "govukTabs",
    "tag": "govukTag",
    "task-list": "govukTaskList",
    "textarea": "govukTextarea",
    "warning-text": "govukWarningText",
}


# Helper macros the components import (``{% from "govuk_frontend_jinja/macros/attributes.html" import ... %}``):
# remembered as the components are, e.g. the table's ``govukAttributes(cell.attributes)`` for every cell.
GOVUK_HELPER_MACROS: dict[str, str] = {"attributes": "govukAttributes"}
# Our own macros that are, like the components, functions of their one parameter (defined in a template of their
# own, so they see nothing of a page's context): (template, macro, how many outputs to remember). Each is a global.
# The inbox's output is a page's worth (~40 kB), so fewer of them are kept.
PAGE_MACROS: list[tuple[str, str, int]] = [("reviewer/_inbox.html", "reviewer_inbox", 64)]


def build_env() -> Environment:
    """Build the Jinja environment (module-level ``env`` is the one the app uses)."""
    environment = PageEnvironment(
        loader=ChoiceLoader(
            [
                FileSystemLoader(TEMPLATES_DIR),
                PrefixLoader({"govuk_frontend_jinja": PackageLoader("govuk_frontend_jinja")}),
            ]
        ),
        autoescape=select_autoescape(["html", "htm", "xml"], default_for_string=True),
        auto_reload=False,  # templates are read once per process: no stat() of every template on every render
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # Before any template module is made: a module looks its filters up when it is made (the components' are
    # made just below).
    environment.filters["indent"] = indent
    # Keep the default Undefined: the GOV.UK macros rely on missing options rendering "".
    # Each component's remembered macro is both a global and what its template module exports, so the GOV.UK
    # page template's own ``{% from ... import govukHeader %}`` (and one component importing another) get it too:
    # a template's default module is made once and shared by every import without context.
    for component, macro_name in GOVUK_MACROS.items():
        module = environment.get_template(f"govuk_frontend_jinja/components/{component}/macro.html").module
        remembered = RememberedMacro(getattr(module, macro_name))
        setattr(module, macro_name, remembered)
        environment.globals[macro_name] = remembered
    for helper, macro_name in GOVUK_HELPER_MACROS.items():
        module = environment.get_template(f"govuk_frontend_jinja/macros/{helper}.html").module
        setattr(module, macro_name, RememberedMacro(getattr(module, macro_name)))
    environment.globals.update(
        serviceName=SERVICE_NAME,
        productName=PRODUCT_NAME,
        assetPath=ASSET_PATH,
        static_url=STATIC_URL,
    )
    environment.filters["date_uk"] = date_uk
    environment.filters["datetime_uk"] = datetime_uk
    environment.filters["json_text"] = json_text
    # After the filters: a template's module looks its filters up when it is made.
    for template_name, macro_name, size in PAGE_MACROS:
        module = environment.get_template(template_name).module
        remembered = RememberedMacro(getattr(module, macro_name), size=size)
        setattr(module, macro_name, remembered)
        environment.globals[macro_name] = remembered
    return environment


env: Environment = build_env()
templates = Jinja2Blocks(env=env)


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------


def is_fragment_request(request: Request) -> bool:
    """True for an htmx request that should get a fragment, not a whole page.

    Boosted links/forms (``HX-Boosted``) and history restores
    (``HX-History-Restore-Request``) need the whole page, so they are not fragments.
    """
    headers = request.headers
    return (
        headers.get("hx-request") == "true"
        and headers.get("hx-boosted") != "true"
        and headers.get("hx-history-restore-request") != "true"
    )


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    block: str | None = None,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Render template ``name``: the whole page, or only ``block`` for an htmx request.

    The caller's ``context`` is copied (``request`` is added). The response carries
    ``Vary: HX-Request`` whenever a block is given, so caches never mix page and fragment.
    """
    ctx = dict(context or {})
    ctx["request"] = request
    out_headers = dict(headers or {})
    if block is not None:
        vary = out_headers.get("Vary")
        out_headers["Vary"] = f"{vary}, HX-Request" if vary else "HX-Request"
        if is_fragment_request(request):
            return templates.TemplateResponse(
                request, name, ctx, status_code=status_code, headers=out_headers, block_name=block
            )
    return templates.TemplateResponse(request, name, ctx, status_code=status_code, headers=out_headers)
