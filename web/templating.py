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
import threading
from collections import ChainMap
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from types import BuiltinMethodType
from typing import Any
from zoneinfo import ZoneInfo

from cachetools import LRUCache
from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    PrefixLoader,
    Undefined,
    select_autoescape,
)
from jinja2.filters import do_indent
from jinja2.runtime import Context, Macro
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


def indent(s: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> Any:
    """Jinja's ``indent`` filter, quicker on ``Markup`` and with the same result.

    The GOV.UK components indent HTML they were given or made (``item.hint.html | safe | trim | indent(8)``, a
    tag inside a task list): Jinja then splits and joins ``Markup`` pieces, each step escaping what it adds through
    Python, ~10 us a call. Only whitespace (or the ``width`` string, taken as safe either way) is added, so doing
    the same on the plain text and marking the result safe gives the same ``Markup``, in ~1 us.
    """
    if type(s) is Markup:
        return Markup(do_indent(str(s), width, first, blank))  # noqa: S704 (was Markup; only whitespace added)
    return do_indent(s, width, first, blank)


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
# Scalars whose key carries their type: Markup and str escape differently; True, 1 and 1.0 are equal but print
# differently; a date never equals a datetime, but they are kept apart anyway.
_TAGGED = _SCALARS - {str, type(None)}
_LEFT_OUT = ("undefined",)


def _freeze(value: Any) -> Any:
    """A hashable key for macro parameters; ``_UNFREEZABLE`` when something in them is not plain data.

    Types are part of the key where equal values print differently (``_TAGGED``). A plain ``str`` (most option
    values) and ``None`` stand for themselves: nothing else in a key equals them (the other scalars, containers and
    left-out options are tuples). Exact types first (this runs for every component a page renders), then the general
    cases; the scalars inside a dict or a list are frozen in the loop, without a call each.
    """
    kind = type(value)
    if kind is str or value is None:
        return value
    if kind in _TAGGED:
        return (kind, value)
    if kind is Undefined:  # an option the caller left out (the environment's undefined type, exactly)
        return _LEFT_OUT
    if kind is dict or (kind is not list and kind is not tuple and isinstance(value, Mapping)):
        items = []
        append = items.append
        for k, v in value.items():
            item_kind = type(v)
            if item_kind is str or v is None:
                append((k, v))
            elif item_kind in _TAGGED:
                append((k, (item_kind, v)))
            else:
                frozen = _freeze(v)
                if frozen is _UNFREEZABLE:
                    return _UNFREEZABLE
                append((k, frozen))
        return ("{", tuple(items))  # in insertion order: the same template call builds the same order
    if kind is list or kind is tuple:
        out = []
        append = out.append
        for v in value:
            item_kind = type(v)
            if item_kind is str or v is None:
                append(v)
            elif item_kind in _TAGGED:
                append((item_kind, v))
            else:
                frozen = _freeze(v)
                if frozen is _UNFREEZABLE:
                    return _UNFREEZABLE
                append(frozen)
        return ("[", tuple(out))
    if isinstance(value, Undefined):
        return _LEFT_OUT
    return _UNFREEZABLE


class RememberedMacro:
    """A GOV.UK component macro whose output is remembered by its parameters (a bounded LRU, ``cachetools``).

    The components are pure functions of their parameters, and pages call the same ones with the same
    parameters over and over (the header, a status tag, a task's claim button, the inbox's table): rendering one
    again costs a look-up instead of the macro's hundreds of attribute look-ups (measured: benchmarks/RESULTS.md).
    Calls with a ``caller`` block, or with parameters that are not plain data, are passed straight through. The
    cache is shared by the page threads behind a lock; two threads that miss at once both render the same output.
    """

    def __init__(self, macro: Macro, size: int = 512) -> None:
        self.macro = macro
        self._memo: LRUCache[Any, Markup] = LRUCache(maxsize=size)
        self._lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> Markup:
        if kwargs or len(args) != 1:
            return self.macro(*args, **kwargs)
        key = _freeze(args[0])
        if key is _UNFREEZABLE:
            return self.macro(*args)
        with self._lock:
            html = self._memo.get(key)
        if html is None:
            html = self.macro(*args)
            with self._lock:
                self._memo[key] = html
        return html


# ---------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------


_DICT_ATTRIBUTES = frozenset(dir(dict))


# Jinja internals overridden for speed (issue 18.4 asked to remove them if the pages' CPU stayed within 10%; it did
# not: without them a page costs about a third more instructions, benchmarks/RESULTS.md). Each gives Jinja's own
# answers (tests/test_templating.py); check them when Jinja moves past 3.1 (pyproject pins jinja2 <3.2).


class PageContext(Context):
    """Jinja's template context with a quicker ``call`` for macros, giving the same answers.

    Every ``{{ govukTag(...) }}`` (and every helper call inside a component, e.g. ``govukAttributes`` for each table
    cell) goes through ``Context.call``, which asks the callable, and its ``__call__``, whether it wants the
    context, the eval context or the environment passed first (``hasattr`` look-ups that fail, so raise inside),
    on every call. The kinds of callable templates call most are known: a ``RememberedMacro`` wants none of
    them, nor does a built-in method (``rows.append``, ``names.get``: it cannot carry the marker), and a template
    ``Macro`` wants the eval context (``Macro.__call__`` is ``pass_eval_context``). Everything else goes the general
    way.
    """

    def call(__self, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        kind = type(__obj)
        if kind is RememberedMacro or kind is Macro or kind is BuiltinMethodType:
            kwargs.pop("_block_vars", None)
            kwargs.pop("_loop_vars", None)
            try:
                if kind is Macro:
                    return __obj(__self.eval_ctx, *args, **kwargs)
                return __obj(*args, **kwargs)
            except StopIteration:
                return __self.environment.undefined(
                    "value was undefined because a callable raised a StopIteration exception")
        return super().call(__obj, *args, **kwargs)


class PageEnvironment(Environment):
    """Jinja's environment with a quicker ``getattr`` for plain dicts, giving the same answers.

    ``{{ cell.text }}`` on a dict first asks for an attribute (``getattr`` raising ``AttributeError``), then for
    the item (raising ``KeyError`` when missing): two exceptions for every option a GOV.UK component looks at and
    the caller left out, hundreds on a page with a table. A plain dict has no attributes but those of its type,
    so for any other name the item (or undefined) is the answer, found without raising.

    The undefined answer for a name is made once and shared: an ``Undefined`` cannot be changed, and what it
    says when misused ("'dict object' has no attribute 'classes'") depends only on the name and on the object
    being a dict, so any dict stands in for the one asked.
    """

    context_class = PageContext

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._left_out: dict[str, Any] = {}
        self._loaded: dict[str, tuple[Any, Any]] = {}  # name -> (loader, Template), see _load_template

    def _load_template(self, name: str, globals: Any) -> Any:
        """Jinja's, with templates read once kept in a plain dict: every ``{% extends %}`` and ``{% from ... import
        %}`` asks for its template on every render (the GOV.UK page template alone imports five), and Jinja's
        cache is an LRU behind a lock. Only without ``auto_reload`` (a template is then never read again anyway)
        and without extra globals for the template (which Jinja adds to it)."""
        if not globals and not self.auto_reload:
            loaded = self._loaded.get(name)
            if loaded is not None and loaded[0] is self.loader:
                return loaded[1]
            template = super()._load_template(name, globals)
            self._loaded[name] = (self.loader, template)
            return template
        return super()._load_template(name, globals)

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            value = obj.get(attribute, _MISSING)
            if value is not _MISSING:
                return value
            if self.undefined is not Undefined:  # another kind may say more: as Jinja does
                return self.undefined(obj=obj, name=attribute)
            undefined = self._left_out.get(attribute)
            if undefined is None:
                undefined = self._left_out[attribute] = Undefined(obj=_ANY_DICT, name=attribute)
            return undefined
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

    def __getitem__(self, key: str) -> Any:
        """ChainMap's answer without its ``KeyError`` from every map before the one that has the key: each page
        render copies all ~50 globals (``dict(globals, **vars)``), and the template's own map is usually empty."""
        for mapping in self.maps:
            if type(mapping) is dict:
                if key in mapping:
                    return mapping[key]
            else:
                try:
                    return mapping[key]
                except KeyError:
                    pass
        return self.__missing__(key)


_MISSING = object()
_ANY_DICT: dict[str, Any] = {}  # stands for the dict an option was missing from

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
