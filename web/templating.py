"""The one Jinja environment for the web UI, and the page-or-fragment `render` helper.

- Templates: ours in ``web/templates`` first, then the GOV.UK Frontend Jinja macros
  (PyPI ``govuk-frontend-jinja`` 4.x) under the ``govuk_frontend_jinja/`` prefix.
- Every GOV.UK component macro is an environment global (``govukTag``, ``govukButton``...),
  so templates call them without ``{% from ... import %}``. This matters with
  jinja2-fragments: a block rendered on its own does not see macros imported at the top
  of its template, but it does see globals.
- Static assets (vendored by ``scripts/vendor_assets.sh``) live in ``STATIC_DIR`` and are
  served at ``/static``; the GOV.UK assets path is ``/static/govuk/assets``.
"""

from __future__ import annotations

import json
from collections import ChainMap
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    PrefixLoader,
    Undefined,
    select_autoescape,
)
from jinja2.runtime import Macro
from jinja2_fragments.fastapi import Jinja2Blocks
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response

__all__ = [
    "ASSET_PATH",
    "GOVUK_MACROS",
    "LONDON",
    "SERVICE_NAME",
    "STATIC_DIR",
    "STATIC_URL",
    "TEMPLATES_DIR",
    "date_uk",
    "datetime_uk",
    "env",
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

LONDON = ZoneInfo("Europe/London")
# Not strftime("%B"): that follows the process locale.
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip

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


# ---------------------------------------------------------------------------
# Filters
# ---------------------------------------------------------------------------


def _require_aware(value: datetime, filter_name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{filter_name}: naive datetime {value!r}; pass a timezone-aware datetime")
    return value


def date_uk(value: date | datetime | None) -> str:
    """``date(2026, 6, 1)`` -> ``"1 June 2026"`` (GOV.UK style). ``None`` -> ``""``.

    An aware datetime is first converted to Europe/London (so 23:30 UTC on 31 May in
    summer is ``"1 June 2026"``); a naive datetime is an error.
    """
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = _require_aware(value, "date_uk").astimezone(LONDON).date()
    return f"{value.day} {_MONTHS[value.month - 1]} {value.year}"


def _time_uk(value: datetime) -> str:
    """GOV.UK style: ``9am``, ``5:30pm``, ``11:59pm``, ``midday``, ``midnight``."""
    if value.hour == 0 and value.minute == 0:
        return "midnight"
    if value.hour == 12 and value.minute == 0:
        return "midday"
    hour = value.hour % 12 or 12
    suffix = "am" if value.hour < 12 else "pm"
    if value.minute == 0:
        return f"{hour}{suffix}"
    return f"{hour}:{value.minute:02d}{suffix}"


def datetime_uk(value: datetime | None) -> str:
    """Aware datetime -> ``"1 June 2026 at 11:59pm"`` in Europe/London (GMT or BST).

    ``None`` -> ``""``; a naive datetime raises ``ValueError`` (we never guess its zone).
    """
    if value is None:
        return ""
    local = _require_aware(value, "datetime_uk").astimezone(LONDON)
    return f"{date_uk(local.date())} at {_time_uk(local)}"


def json_text(value: Any) -> str:
    """JSON as a plain ``str`` (unlike ``tojson``, not ``Markup``), so autoescaping applies.

    For JSON inside an HTML attribute, e.g. ``hx-headers``/``hx-vals`` via
    ``govukAttributes`` or ``{{ ... }}`` in a double-quoted attribute.
    """
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# ---------------------------------------------------------------------------
# Remembered component output
# ---------------------------------------------------------------------------

_UNFREEZABLE = object()


_SCALARS = frozenset({str, Markup, int, float, bool, type(None), date, datetime})


def _freeze(value: Any) -> Any:
    """A hashable key for macro parameters; ``_UNFREEZABLE`` when something in them is not plain data.

    Types are part of the key: ``Markup`` and ``str`` escape differently, and ``True`` and ``1`` print differently.
    Exact types first (this runs for every component a page renders), then the general cases.
    """
    kind = type(value)
    if kind in _SCALARS:
        return (kind, value)
    if kind is dict or (kind is not list and kind is not tuple and isinstance(value, Mapping)):
        items = []
        for k, v in value.items():
            frozen = _freeze(v)
            if frozen is _UNFREEZABLE:
                return _UNFREEZABLE
            items.append((k, frozen))
        return ("{", tuple(items))  # in insertion order: the same template call builds the same order
    if kind is list or kind is tuple:
        out = []
        for v in value:
            frozen = _freeze(v)
            if frozen is _UNFREEZABLE:
                return _UNFREEZABLE
            out.append(frozen)
        return ("[", tuple(out))
    if isinstance(value, Undefined):
        return ("undefined",)
    return _UNFREEZABLE


class RememberedMacro:
    """A GOV.UK component macro whose output is remembered by its parameters (oldest first out).

    The components are pure functions of their parameters, and pages call the same ones with the same
    parameters over and over (the header, a status tag, a task's claim button, the inbox's table): rendering one
    again costs a dictionary look-up instead of the macro's hundreds of attribute look-ups. Calls with a
    ``caller`` block, or with parameters that are not plain data, are passed straight through. No lock: page
    threads share the memory through single dictionary operations, which the interpreter makes atomic, and two
    threads that miss at once both render the same output.
    """

    def __init__(self, macro: Macro, size: int = 512) -> None:
        self.macro, self.size = macro, size
        self._memo: dict[Any, Markup] = {}

    def __call__(self, *args: Any, **kwargs: Any) -> Markup:
        if kwargs or len(args) != 1:
            return self.macro(*args, **kwargs)
        key = _freeze(args[0])
        if key is _UNFREEZABLE:
            return self.macro(*args)
        html = self._memo.get(key)
        if html is None:
            html = self._memo[key] = self.macro(*args)
            while len(self._memo) > self.size:
                try:
                    self._memo.pop(next(iter(self._memo)), None)
                except (RuntimeError, StopIteration):  # another thread changed it meanwhile: try again
                    continue
        return html


# ---------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------


_DICT_ATTRIBUTES = frozenset(dir(dict))


class PageEnvironment(Environment):
    """Jinja's environment with a quicker ``getattr`` for plain dicts, giving the same answers.

    ``{{ cell.text }}`` on a dict first asks for an attribute (``getattr`` raising ``AttributeError``), then for
    the item (raising ``KeyError`` when missing): two exceptions for every option a GOV.UK component looks at and
    the caller left out, hundreds on a page with a table. A plain dict has no attributes but those of its type,
    so for any other name the item (or undefined) is the answer, found without raising.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            value = obj.get(attribute, _MISSING)
            return self.undefined(obj=obj, name=attribute) if value is _MISSING else value
        return super().getattr(obj, attribute)

    def make_globals(self, d: Any) -> ChainMap:
        return TemplateGlobals({} if d is None else d, self.globals)


class TemplateGlobals(ChainMap):
    """A template's globals over the environment's, as Jinja makes them, whose ``keys()`` is a set.

    Every ``{% from ... import ... %}`` (five in the GOV.UK page template alone, one in each component that
    renders) subtracts the imported template's global names from the importer's: from a set that is done in C;
    from a ChainMap's keys view it is one Python-level look-up through both maps per name (~50 of them)."""

    def keys(self) -> set[str]:  # type: ignore[override]
        return set().union(*self.maps)


_MISSING = object()

# Helper macros the components import (``{% from "govuk_frontend_jinja/macros/attributes.html" import ... %}``):
# remembered as the components are, e.g. the table's ``govukAttributes(cell.attributes)`` for every cell.
GOVUK_HELPER_MACROS: dict[str, str] = {"attributes": "govukAttributes"}


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
