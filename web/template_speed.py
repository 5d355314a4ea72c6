"""What makes the pages' templates quicker, measured (``benchmarks/RESULTS.md``, ``benchmarks/pages_cpu.py``): the
GOV.UK components' remembered output (``RememberedMacro``, a bounded ``cachetools`` LRU by parameters) and the Jinja
internals overridden for speed (``PageEnvironment``, ``PageContext``, ``TemplateGlobals``), each giving Jinja's own
answers (``tests/test_templating.py``). ``web.templating`` builds the one environment with them."""

from __future__ import annotations

import threading
from collections import ChainMap
from collections.abc import Mapping
from datetime import date, datetime
from types import BuiltinMethodType
from typing import Any

from cachetools import LRUCache
from jinja2 import Environment, Undefined
from jinja2.runtime import Context, Macro
from markupsafe import Markup

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
# Jinja overrides
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
