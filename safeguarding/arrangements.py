"""The one validator for a partnership's multi-agency safeguarding arrangements.

Used by the CLI, the API, the web editor and the worker. A document is JSON or YAML; it is checked
against ``schemas/arrangements.schema.json`` (JSON Schema draft 2020-12) and then against the rules a
schema can't express (ids unique, references resolve, ladders numbered 1..n, milestones in order ...).
Every problem comes back together, each with a JSON Pointer, the offending value and a message a
partnership business manager can act on.

Public API::

    parse_document(text, filename=None, content_type=None) -> dict  # JSON or YAML; ArrangementsError
    validate(doc) -> list[ValidationIssue]                           # [] when valid; never raises
    load(text, filename=None, content_type=None) -> dict             # parse + validate; ArrangementsError
    canonical_json(doc) -> str ; content_hash(doc) -> str            # for the stored version's hash
    schema() -> dict                                                 # a copy of the schema
    schema_issues(validator, instance) -> list[ValidationIssue]      # plain English for any schema

Decisions worth knowing:

* YAML is read with a safe loader that keeps dates as strings (``2026-12-24`` stays text, as in JSON),
  refuses aliases (``*name``: they can expand exponentially), duplicate keys and keys that aren't text
  (``yes:`` would be read as ``true``). JSON refuses duplicate keys and NaN/Infinity.
* An extra closure day that falls on a weekend is an error, not a warning: weekends are never working
  days, so such an entry has no effect and is most likely a wrong date (often the year).
* The yearly reporting period must be exactly 12 months (the end is the day before the start), and
  ``MM-DD`` dates must exist in every year (so ``02-29`` is refused).
"""

# Messages quote values with typographic single quotes, as the web editor shows them to people.
from __future__ import annotations

import copy
import datetime as dt
import difflib
import hashlib
import json
import logging
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry
from referencing.exceptions import NoSuchResource
from referencing.jsonschema import DRAFT202012

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "SCHEMA_ID",
    "ArrangementsError",
    "ValidationIssue",
    "canonical_json",
    "content_hash",
    "load",
    "parse_document",
    "schema",
    "schema_issues",
    "validate",
]

log = logging.getLogger(__name__)

MAX_DOCUMENT_BYTES = 1_000_000
MAX_NESTING_DEPTH = 64
SCHEMA_ID = "https://sgflow.example/schemas/arrangements.schema.json"
SCHEMA_FILE = "arrangements.schema.json"

ID_PATTERN = "^[a-z0-9][a-z0-9_-]{0,62}$"
USER_REF_PATTERN = "^u-[a-z0-9-]+$"
ONS_PATTERN = "^E0[6-9][0-9]{6}$"
HHMM_PATTERN = "^([01][0-9]|2[0-3]):[0-5][0-9]$"
MMDD_PATTERN = "^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
URL_PATTERN = "^https?://[^\\s]+$"

_ID_RE = re.compile(ID_PATTERN)
_MMDD_RE = re.compile(MMDD_PATTERN)
_DATE_SHAPE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

_MAX_VALUE_CHARS = 300


# --------------------------------------------------------------------------------------------------
# Issues and the error


def _short(value: Any) -> Any:
    """The value as reported in an issue: scalars as they are, big text or structures shortened."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= _MAX_VALUE_CHARS else value[:_MAX_VALUE_CHARS] + "…"
    if isinstance(value, dict | list):
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError, RecursionError):
            return f"<{type(value).__name__}>"
        return value if len(text) <= _MAX_VALUE_CHARS else text[:_MAX_VALUE_CHARS] + "…"
    text = repr(value)
    return text if len(text) <= _MAX_VALUE_CHARS else text[:_MAX_VALUE_CHARS] + "…"


@dataclass(frozen=True)
class ValidationIssue:
    """One problem: where (JSON Pointer, "" for the whole document), the offending value, what's wrong."""

    path: str
    value: Any
    message: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _short(self.value))

    def __str__(self) -> str:
        return f"{self.path or '/'}: {self.message}"


class ArrangementsError(Exception):
    """Raised for any invalid arrangements input; ``issues`` lists every problem found."""

    def __init__(self, issues: Iterable[ValidationIssue] | ValidationIssue | str):
        if isinstance(issues, str):
            issues = [ValidationIssue("", None, issues)]
        elif isinstance(issues, ValidationIssue):
            issues = [issues]
        self.issues: list[ValidationIssue] = list(issues)
        super().__init__(str(self))

    def __str__(self) -> str:
        n = len(self.issues)
        head = f"{n} problem{'s' if n != 1 else ''} in the arrangements"
        return head + "".join(f"\n  {issue}" for issue in self.issues)


def _ptr(*parts: str | int) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _path_sort_key(path: str) -> tuple[tuple[int, int, str], ...]:
    key = []
    for part in path.split("/")[1:]:
        if part.isdecimal():  # not isdigit(): "²".isdigit() is True but int("²") fails
            key.append((0, int(part), ""))
        else:
            key.append((1, 0, part))
    return tuple(key)


# --------------------------------------------------------------------------------------------------
# Schema and compiled validator (built once)


def _schema_dir() -> Any:
    return resources.files("schemas")


def _no_remote(uri: str) -> Any:
    raise NoSuchResource(ref=uri)


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    return json.loads((_schema_dir() / SCHEMA_FILE).read_text(encoding="utf-8"))


def _project_schemas() -> list[dict[str, Any]]:
    """The project's other schemas with an ``$id`` (best effort: a broken unrelated file is skipped)."""
    found: list[dict[str, Any]] = []
    base = _schema_dir()
    folders = [base] + [p for p in base.iterdir() if p.is_dir() and p.name not in ("examples", "__pycache__")]
    for folder in folders:
        for entry in folder.iterdir():
            if not entry.name.endswith(".json") or entry.name == SCHEMA_FILE:
                continue
            try:
                contents = json.loads(entry.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                log.warning("schema %s skipped: %s", entry.name, exc)
                continue
            if isinstance(contents, dict) and isinstance(contents.get("$id"), str):
                found.append(contents)
    return found


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    main = _schema()
    Draft202012Validator.check_schema(main)
    resources_ = [(s["$id"], DRAFT202012.create_resource(s)) for s in _project_schemas()]
    resources_.append((main["$id"], DRAFT202012.create_resource(main)))
    registry: Registry = Registry(retrieve=_no_remote).with_resources(resources_)  # type: ignore[call-arg]
    return Draft202012Validator(main, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER)


def schema() -> dict[str, Any]:
    """A copy of the arrangements schema (the cached original is never handed out)."""
    return copy.deepcopy(_schema())


# --------------------------------------------------------------------------------------------------
# Parsing


class _Loader(yaml.SafeLoader):
    """Safe YAML loader for arrangements: dates stay text, no aliases, no duplicate or non-text keys."""

    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) aren't supported: write the value out in full", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
            seen: set[str] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, str):
                    shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else "this key"
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key ‘{shown}’ isn't read as text: put it in quotes",
                        key_node.start_mark,
                    )
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key ‘{key}’ appears twice in the same group of settings: keep one",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _yaml_as_text(loader: yaml.SafeLoader, node: Any) -> Any:
    return loader.construct_scalar(node)


def _yaml_float(loader: yaml.SafeLoader, node: Any) -> float:
    value = loader.construct_yaml_float(node)
    if math.isnan(value) or math.isinf(value):
        raise yaml.constructor.ConstructorError(
            None, None, f"‘{node.value}’ isn't a number the arrangements can use", node.start_mark
        )
    return value


def _yaml_refuse(loader: yaml.SafeLoader, node: Any) -> Any:
    raise yaml.constructor.ConstructorError(
        None, None, f"the YAML type {node.tag.replace('tag:yaml.org,2002:', '!!')} isn't supported here",
        node.start_mark,
    )


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _yaml_as_text)
_Loader.add_constructor("tag:yaml.org,2002:float", _yaml_float)
for _tag in ("binary", "set", "omap", "pairs"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _yaml_refuse)


class _DuplicateKeys(dict):
    """A JSON object that repeated a key; found (with its path) by _check_plain_data."""

    duplicates: tuple[str, ...] = ()


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) == len(pairs):
        return result
    marked = _DuplicateKeys(result)
    seen: set[str] = set()
    repeated: list[str] = []
    for key, _ in pairs:
        if key in seen:
            repeated.append(key)
        seen.add(key)
    marked.duplicates = tuple(repeated)
    return marked


def _json_constant(name: str) -> Any:
    raise ValueError(f"‘{name}’ isn't a number the arrangements can use")


def _json_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"‘{text}’ is too large a number")
    return value


_JSON_HINTS = (
    ("Expecting ',' delimiter", "a comma is missing between two entries, or a bracket isn't closed"),
    ("Expecting ':' delimiter", "a colon ‘:’ is missing after a key"),
    ("Expecting property name enclosed in double quotes",
     "expected a key in double quotes (JSON doesn't allow a comma before ‘}’)"),
    ("Expecting value", "a value is missing or isn't valid JSON (text must be in double quotes, and JSON "
     "doesn't allow a comma before ‘]’ or ‘}’)"),
    ("Unterminated string", "a piece of text in quotes isn't closed"),
    ("Extra data", "there is more text after the end of the document"),
    ("Invalid control character", "a line break or tab inside quoted text (write \\n or \\t instead)"),
    ("Invalid \\escape", "a backslash ‘\\’ inside quoted text that isn't a valid escape (write \\\\)"),
)

_YAML_HINTS = (
    ("mapping values are not allowed here",
     "a ‘:’ where it isn't expected (put text containing ‘: ’ in quotes, or check the indentation)"),
    ("cannot start any token",
     "a character that can't start a value here (tabs can't be used for indentation; text starting with "
     "‘@’ or ‘`’ must be in quotes)"),
    ("could not find expected ':'", "a ‘:’ is missing after a key"),
    ("expected <block end>", "the indentation doesn't line up with the lines above"),
    ("found undefined alias", "aliases (*name) aren't supported: write the value out in full"),
    ("found unexpected end of stream",
     "the file ends in the middle of a value (an unclosed quote or bracket?)"),
    ("expected a single document", "the file contains more than one document (‘---’): keep one"),
)


SYNTAX_LINE = re.compile(r"\(line (\d+), column \d+\)")


def line_of(text: str, issue: ValidationIssue) -> int | None:
    """The line of ``text`` (1-based) an issue is about, for the editor to lead to it: a syntax error's own line,
    else the line where the value at the issue's JSON Pointer starts (JSON is read as YAML, which keeps positions);
    None when the text cannot be read or the path is not in it (a missing field: its parent's line)."""
    found = SYNTAX_LINE.search(issue.message)
    if found:
        return int(found.group(1))
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    parts = [p.replace("~1", "/").replace("~0", "~") for p in issue.path.split("/")[1:]] if issue.path else []
    for part in parts:
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and part.isdecimal() and int(part) < len(node.value):
            child = node.value[int(part)]
        else:
            child = None
        if child is None:
            break
        node = child
    return node.start_mark.line + 1 if node is not None else None


def _line_text(text: str, line: int) -> str | None:
    lines = text.splitlines()
    if 1 <= line <= len(lines):
        return lines[line - 1].strip() or None
    return None


def _json_error(text: str, exc: json.JSONDecodeError) -> ArrangementsError:
    hint = next((plain for prefix, plain in _JSON_HINTS if exc.msg.startswith(prefix)), exc.msg)
    return ArrangementsError(ValidationIssue(
        "", _line_text(text, exc.lineno),
        f"This isn't valid JSON (line {exc.lineno}, column {exc.colno}): {hint}.",
    ))


def _yaml_error(text: str, exc: yaml.YAMLError) -> ArrangementsError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "unreadable YAML"
        both = f"{exc.context or ''} {exc.problem or ''}"
        hint = next((plain for needle, plain in _YAML_HINTS if needle in both), problem)
        if mark is not None:
            line, column = mark.line + 1, mark.column + 1
            return ArrangementsError(ValidationIssue(
                "", _line_text(text, line), f"This isn't valid YAML (line {line}, column {column}): {hint}."
            ))
        return ArrangementsError(ValidationIssue("", None, f"This isn't valid YAML: {hint}."))
    if isinstance(exc, yaml.reader.ReaderError):
        return ArrangementsError(ValidationIssue(
            "", None, f"This isn't valid YAML: it contains a character YAML doesn't allow "
            f"(code {exc.character!r}) at position {exc.position}.",
        ))
    return ArrangementsError(ValidationIssue("", None, f"This isn't valid YAML: {exc}."))


def _detect_format(filename: str | None, content_type: str | None) -> str | None:
    if filename:
        name = filename.lower()
        if name.endswith(".json"):
            return "json"
        if name.endswith((".yaml", ".yml")):
            return "yaml"
    if content_type:
        mime = content_type.split(";", 1)[0].strip().lower()
        if mime.endswith(("/json", "+json")):
            return "json"
        if "yaml" in mime:
            return "yaml"
    return None


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ArrangementsError(ValidationIssue(
            "", None, "The file is saved as UTF-16; save it as UTF-8 and try again."
        ))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = data[exc.start]
        raise ArrangementsError(ValidationIssue(
            "", None,
            f"The file isn't UTF-8 text: the byte 0x{bad:02x} at position {exc.start} can't be read. "
            "Save the file as UTF-8 and try again.",
        )) from None


def _too_big(size: int) -> ArrangementsError:
    return ArrangementsError(ValidationIssue(
        "", size,
        f"The file is too large: {size:,} bytes ({size / 1_000_000:.1f} MB). The limit is "
        f"{MAX_DOCUMENT_BYTES:,} bytes (1 MB); arrangements are normally well under 100 KB, so check it is "
        "the right file.",
    ))


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_json_object, parse_constant=_json_constant,
                          parse_float=_json_float)
    except json.JSONDecodeError as exc:
        raise _json_error(text, exc) from None
    except ValueError as exc:
        raise ArrangementsError(ValidationIssue("", None, f"This isn't valid JSON: {exc}.")) from None


def _parse_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise _yaml_error(text, exc) from None


def _check_plain_data(doc: Any) -> None:
    """Depth limit and JSON-only types (a hand-built dict may still hold dates, sets, NaN ...)."""
    stack: list[tuple[Any, int, str]] = [(doc, 1, "")]
    while stack:
        value, depth, path = stack.pop()
        if depth > MAX_NESTING_DEPTH:
            raise ArrangementsError(ValidationIssue(
                path, None, f"The settings are nested too deeply (more than {MAX_NESTING_DEPTH} levels)."
            ))
        if isinstance(value, _DuplicateKeys):
            key = value.duplicates[0]
            raise ArrangementsError(ValidationIssue(
                _ptr_join(path, key), None,
                f"The key ‘{key}’ appears twice in the same group of settings: keep one.",
            ))
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise ArrangementsError(ValidationIssue(path, None, f"The key ‘{key}’ isn't text."))
                stack.append((item, depth + 1, _ptr_join(path, key)))
        elif isinstance(value, list):
            stack.extend((item, depth + 1, _ptr_join(path, i)) for i, item in enumerate(value))
        elif isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
            raise ArrangementsError(ValidationIssue(
                path, None, "This isn't a number the arrangements can use."
            ))
        elif value is not None and not isinstance(value, str | bool | int | float):
            raise ArrangementsError(ValidationIssue(
                path, None, f"This kind of value ({type(value).__name__}) can't be used in arrangements."
            ))


def _ptr_join(base: str, part: str | int) -> str:
    return base + _ptr(part)


def parse_document(text: str | bytes, filename: str | None = None, content_type: str | None = None) -> dict:
    """Read arrangements written as JSON or YAML. Raises ArrangementsError (never anything else)."""
    try:
        return _parse_document(text, filename, content_type)
    except ArrangementsError:
        raise
    except RecursionError:
        raise ArrangementsError(ValidationIssue(
            "", None, f"The settings are nested too deeply (more than {MAX_NESTING_DEPTH} levels)."
        )) from None
    except Exception as exc:
        log.exception("unexpected error while reading arrangements")
        raise ArrangementsError(ValidationIssue(
            "", None, f"The file could not be read because of an internal error ({type(exc).__name__}); "
            "please report this.",
        )) from None


def _parse_document(text: Any, filename: str | None, content_type: str | None) -> dict:
    if isinstance(text, bytearray | memoryview):
        text = bytes(text)
    if isinstance(text, bytes):
        if len(text) > MAX_DOCUMENT_BYTES:
            raise _too_big(len(text))
        text = _decode(text)
    elif isinstance(text, str):
        if len(text) > MAX_DOCUMENT_BYTES:  # every character is at least one byte
            raise _too_big(len(text.encode("utf-8", "surrogatepass")))
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_DOCUMENT_BYTES:
            raise _too_big(size)
        text = text.removeprefix("\ufeff")
    else:
        raise ArrangementsError(ValidationIssue(
            "", None, f"Expected the text of a file, got {type(text).__name__}."
        ))
    if not text.strip():
        raise ArrangementsError(ValidationIssue("", None, "The file is empty."))

    fmt = _detect_format(filename, content_type)
    if fmt == "json":
        doc = _parse_json(text)
    elif fmt == "yaml":
        doc = _parse_yaml(text)
    elif text.lstrip()[:1] in ("{", "["):
        doc = _parse_json(text)  # looks like JSON: YAML would accept some broken JSON in surprising ways
    else:
        try:
            doc = _parse_json(text)
        except ArrangementsError:
            doc = _parse_yaml(text)

    if doc is None:
        raise ArrangementsError(ValidationIssue("", None, "The file is empty."))
    if not isinstance(doc, dict):
        kind = "a list" if isinstance(doc, list) else "a single value"
        raise ArrangementsError(ValidationIssue(
            "", _short(doc),
            f"The arrangements must be a set of named settings at the top level (a JSON object {{…}} or YAML "
            f"‘key: value’ lines); this file contains {kind}.",
        ))
    _check_plain_data(doc)
    return doc


# --------------------------------------------------------------------------------------------------
# Turning jsonschema errors into plain English

_TYPE_WORDS = {
    "integer": "a whole number",
    "number": "a number",
    "string": "text",
    "boolean": "true or false",
    "array": "a list",
    "object": "a group of settings",
    "null": "empty (null)",
}

_PATTERN_HELP = {
    ID_PATTERN: "isn't a valid id: use only lower-case letters, digits, ‘-’ and ‘_’, start with a letter or "
    "digit, and keep it to 63 characters (for example ‘riverford-council’)",
    USER_REF_PATTERN: "isn't a valid user reference: write ‘u-’ followed by lower-case letters, digits "
    "and ‘-’ (for example ‘u-rv-business-manager’)",
    ONS_PATTERN: "isn't an ONS local authority code: write E06, E07, E08 or E09 followed by 6 digits (for "
    "example E06000999)",
    HHMM_PATTERN: "isn't a time written HH:MM on the 24-hour clock (for example 23:59 or 17:00)",
    MMDD_PATTERN: "isn't a month and day written MM-DD (for example 04-01 for 1 April)",
    URL_PATTERN: "isn't a web address: it should start with https:// and contain no spaces",
}

_PARTNER_TYPE_WORDS = {
    "local_authority": "local authority",
    "integrated_care_board": "integrated care board",
    "chief_officer_of_police": "chief officer of police",
}


def _show(value: Any) -> str:
    if isinstance(value, str):
        text = value if len(value) <= 80 else value[:80] + "…"
        return f"‘{text}’"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return "a group of settings"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__} value"


def _describe_kind(value: Any) -> str:
    if isinstance(value, str):
        return f"the text {_show(value)}"
    if isinstance(value, bool):
        return _show(value)
    if isinstance(value, int | float):
        return f"the number {value}"
    return _show(value)


def _allowed_list(values: Iterable[Any], limit: int = 20) -> str:
    shown = [str(v) if not isinstance(v, str) else v for v in values]
    if len(shown) > limit:
        return ", ".join(shown[:limit]) + ", …"
    return ", ".join(shown)


def _closest(word: Any, options: Iterable[str]) -> str | None:
    if not isinstance(word, str):
        return None
    matches = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _err_path(error: ValidationError) -> str:
    return _ptr(*error.absolute_path)


# An issue plus a rank: for enum/const errors the number of allowed values (the narrowest is kept), 0 for a
# type error (dropped when an enum/const error at the same path lists the allowed values), else None.
_Ranked = tuple[ValidationIssue, int | None]


def _translate(error: ValidationError) -> list[_Ranked]:
    path = _err_path(error)
    kw = error.validator
    inst = error.instance
    val = error.validator_value
    sch = error.schema if isinstance(error.schema, dict) else {}

    if kw == "additionalProperties" and isinstance(inst, dict):
        allowed = list(sch.get("properties", {}))
        out: list[_Ranked] = []
        for key in inst:
            if key in allowed:
                continue
            guess = _closest(key, allowed)
            hint = f"did you mean ‘{guess}’? " if guess else "check the spelling. "
            msg = f"unknown key ‘{key}’ — {hint}Allowed here: {_allowed_list(allowed)}"
            out.append((ValidationIssue(_ptr_join(path, key), inst[key], msg), None))
        return out

    if kw == "required" and isinstance(inst, dict) and isinstance(val, list):
        props = sch.get("properties", {})
        out = []
        for name in val:
            if name in inst:
                continue
            title = props.get(name, {}).get("title") if isinstance(props.get(name), dict) else None
            label = f"‘{name}’ ({title})" if title else f"‘{name}’"
            out.append((ValidationIssue(_ptr_join(path, name), None, f"{label} is missing"), None))
        return out

    if kw == "type":
        wanted = val if isinstance(val, list) else [val]
        words = " or ".join(_TYPE_WORDS.get(t, t) for t in wanted)
        return [(ValidationIssue(path, inst, f"should be {words}, not {_describe_kind(inst)}"), 0)]

    if kw == "enum" and isinstance(val, list):
        if len(val) == 1:
            msg = f"{_show(inst)} isn't allowed here: it must be {_show(val[0])}"
            return [(ValidationIssue(path, inst, msg), 1)]
        guess = _closest(inst, [v for v in val if isinstance(v, str)])
        hint = f" — did you mean ‘{guess}’?" if guess else ""
        msg = f"{_show(inst)} isn't one of the allowed values: {_allowed_list(val)}{hint}"
        return [(ValidationIssue(path, inst, msg), len(val))]

    if kw == "const":
        return [(ValidationIssue(path, inst, f"must be {_show(val)}, not {_show(inst)}"), 1)]

    if kw == "format":
        if val == "date":
            if isinstance(inst, str) and _DATE_SHAPE_RE.match(inst):
                msg = f"{_show(inst)} is not a real date"
            else:
                msg = f"{_show(inst)} isn't a date written YYYY-MM-DD (for example 2026-12-24)"
            return [(ValidationIssue(path, inst, msg), None)]
        return [(ValidationIssue(path, inst, f"{_show(inst)} isn't a valid {val}"), None)]

    if kw == "pattern":
        help_ = _PATTERN_HELP.get(val, "doesn't have the expected form")
        return [(ValidationIssue(path, inst, f"{_show(inst)} {help_}"), None)]

    if kw in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        words = {"minimum": "at least", "exclusiveMinimum": "more than", "maximum": "at most",
                 "exclusiveMaximum": "less than"}[kw]
        return [(ValidationIssue(path, inst, f"must be {words} {val}, not {_show(inst)}"), None)]

    if kw == "minItems":
        if val == 1:
            return [(ValidationIssue(path, inst, "must not be empty: add at least one entry"), None)]
        n = len(inst) if isinstance(inst, list) else 0
        return [(ValidationIssue(path, inst, f"needs at least {val} entries; it has {n}"), None)]

    if kw == "maxItems":
        return [(ValidationIssue(path, inst, f"has too many entries: at most {val} are allowed"), None)]

    if kw == "uniqueItems" and isinstance(inst, list):
        seen: list[Any] = []
        for i, item in enumerate(inst):
            if item in seen:
                return [(ValidationIssue(_ptr_join(path, i), item,
                                         f"{_show(item)} is listed more than once: keep one"), None)]
            seen.append(item)
        return [(ValidationIssue(path, inst, "lists the same entry more than once"), None)]

    if kw == "minLength":
        return [(ValidationIssue(path, inst, "must not be empty" if val == 1 else
                                 f"is too short: at least {val} characters"), None)]

    if kw == "maxLength":
        n = len(inst) if isinstance(inst, str) else 0
        return [(ValidationIssue(path, inst, f"is too long: at most {val} characters (it has {n})"), None)]

    if kw == "contains":
        wanted = None
        if isinstance(val, dict):
            wanted = val.get("properties", {}).get("type", {}).get("const")
        if isinstance(wanted, str) and wanted in _PARTNER_TYPE_WORDS:
            msg = (f"there is no {_PARTNER_TYPE_WORDS[wanted]} among the safeguarding partners: the "
                   "arrangements need at least one local authority, one integrated care board and one chief "
                   f"officer of police (add a partner with type ‘{wanted}’)")
            return [(ValidationIssue(path, None, msg), None)]
        return [(ValidationIssue(path, inst, "doesn't contain a required entry"), None)]

    if kw in ("anyOf", "oneOf") and error.context:
        # Prefer an alternative the value's type fits (it got further); then jsonschema's relevance order.
        fitting = [e for e in error.context if e.validator != "type"]
        best = best_match(fitting or error.context)
        return _translate(best) if best is not None else [(ValidationIssue(path, inst, error.message), None)]

    if kw == "not":
        return [(ValidationIssue(path, inst, f"{_show(inst)} isn't allowed here"), None)]

    return [(ValidationIssue(path, inst, error.message), None)]


def _finish(ranked: Iterable[_Ranked]) -> list[ValidationIssue]:
    """Drop duplicates and noise, sort by path.

    Where several enum/const errors hit one path (a shared definition narrowed where it is used) only the
    narrowest is kept, and a "should be text" error is dropped when the allowed values are listed anyway.
    """
    ranked = list(ranked)
    narrowest: dict[str, int] = {}
    for issue, rank in ranked:
        if rank is not None and rank > 0:
            narrowest[issue.path] = min(rank, narrowest.get(issue.path, rank))
    seen: set[tuple[str, str]] = set()
    result: list[ValidationIssue] = []
    for issue, rank in ranked:
        if rank is not None and issue.path in narrowest and rank != narrowest[issue.path]:
            continue
        key = (issue.path, issue.message)
        if key in seen:
            continue
        seen.add(key)
        result.append(issue)
    result.sort(key=lambda i: (_path_sort_key(i.path), i.message))
    return result


# --------------------------------------------------------------------------------------------------
# Checks a schema can't express


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _entries(value: Any) -> list[tuple[int, dict[str, Any]]]:
    if not isinstance(value, list):
        return []
    return [(i, item) for i, item in enumerate(value) if isinstance(item, dict)]


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and _ID_RE.match(value) is not None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _real_month_day(text: str) -> bool:
    try:
        dt.date(2001, int(text[:2]), int(text[3:]))  # 2001: not a leap year, so 02-29 is refused
    except ValueError:
        return False
    return True


class _Semantic:
    def __init__(self, doc: dict[str, Any]):
        self.doc = doc
        self.issues: list[_Ranked] = []
        self.partners: dict[str, dict[str, Any]] = {}
        self.agencies: dict[str, dict[str, Any]] = {}
        self.roles: dict[str, dict[str, Any]] | None = None
        self.ladders: dict[str, dict[str, Any]] = {}

    def add(self, path: str, value: Any, message: str) -> None:
        self.issues.append((ValidationIssue(path, value, message), None))

    def run(self) -> list[_Ranked]:
        self.collect_ids()
        self.check_role_refs()
        self.check_partner_refs()
        self.check_agency_refs()
        self.check_notification()
        self.check_rapid_review()
        self.check_escalation()
        self.check_calendar()
        self.check_yearly_report()
        return self.issues

    # ids -----------------------------------------------------------------------------------------

    def _unique(self, section: str, entries: list[tuple[int, dict[str, Any]]], what: str,
                shared: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
        """Map id -> entry; report repeats. ``shared`` maps id -> pointer across lists sharing a namespace."""
        found: dict[str, dict[str, Any]] = {}
        first_at = shared if shared is not None else {}
        for i, entry in entries:
            ident = entry.get("id")
            if not _is_id(ident):
                continue
            here = _ptr_join(section, i)
            if ident in first_at:
                self.add(_ptr_join(here, "id"), ident,
                         f"the id ‘{ident}’ is already used at {first_at[ident]}: {what} must be unique")
                continue
            first_at[ident] = here
            found[ident] = entry
        return found

    def collect_ids(self) -> None:
        doc = self.doc
        shared: dict[str, str] = {}
        self.partners = self._unique("/safeguarding_partners", _entries(doc.get("safeguarding_partners")),
                                     "ids of safeguarding partners and relevant agencies", shared)
        self.agencies = self._unique("/relevant_agencies", _entries(doc.get("relevant_agencies")),
                                     "ids of safeguarding partners and relevant agencies", shared)
        if isinstance(doc.get("roles"), list):
            self.roles = self._unique("/roles", _entries(doc["roles"]), "role ids")
        esc = _dict(doc.get("escalation"))
        self.ladders = self._unique("/escalation/ladders", _entries(esc.get("ladders")), "ladder ids")
        sin = _dict(doc.get("serious_incident_notification"))
        self._unique("/serious_incident_notification/categories", _entries(sin.get("categories")),
                     "category ids")
        learning = _dict(doc.get("learning"))
        self._unique("/learning/extra_themes", _entries(learning.get("extra_themes")), "theme ids")
        self._unique("/learning/responses", _entries(learning.get("responses")), "learning response ids")

    # references ----------------------------------------------------------------------------------

    def _role_ref_sites(self) -> Iterator[tuple[str, Any]]:
        doc = self.doc
        for i, agency in _entries(doc.get("relevant_agencies")):
            yield _ptr("relevant_agencies", i, "contact_role"), agency.get("contact_role")
        sin = _dict(doc.get("serious_incident_notification"))
        yield "/serious_incident_notification/notifier_role", sin.get("notifier_role")
        rr = _dict(doc.get("rapid_review"))
        yield "/rapid_review/coordinator_role", rr.get("coordinator_role")
        yield "/rapid_review/decision_role", rr.get("decision_role")
        yield "/lcspr/reviewer_commissioning_role", _dict(doc.get("lcspr")).get("reviewer_commissioning_role")
        for i, ladder in _entries(_dict(doc.get("escalation")).get("ladders")):
            base = ("escalation", "ladders", i)
            for j, stage in _entries(ladder.get("stages")):
                yield _ptr(*base, "stages", j, "handler_role"), stage.get("handler_role")
                yield (_ptr(*base, "stages", j, "on_timeout", "notify_role"),
                       _dict(stage.get("on_timeout")).get("notify_role"))
            yield _ptr(*base, "business_unit_role"), ladder.get("business_unit_role")
            yield _ptr(*base, "scrutineer_role"), ladder.get("scrutineer_role")
        yield ("/independent_scrutiny/scrutineer_role",
               _dict(doc.get("independent_scrutiny")).get("scrutineer_role"))
        yield ("/data_protection/reidentification_key_role",
               _dict(doc.get("data_protection")).get("reidentification_key_role"))
        yield "/learning/learning_lead_role", _dict(doc.get("learning")).get("learning_lead_role")
        yield "/yearly_report/author_role", _dict(doc.get("yearly_report")).get("author_role")

    def _missing(self, kind: str, ident: str, known: Iterable[str], where: str) -> str:
        known = list(known)
        guess = _closest(ident, known)
        if guess:
            return f"there is no {kind} with the id ‘{ident}’ — did you mean ‘{guess}’?"
        if known:
            return f"there is no {kind} with the id ‘{ident}’ (add it under ‘{where}’, or use one of: " \
                   f"{_allowed_list(known, 12)})"
        return f"there is no {kind} with the id ‘{ident}’ (add it under ‘{where}’)"

    def check_role_refs(self) -> None:
        if self.roles is None:
            return
        for path, ident in self._role_ref_sites():
            if _is_id(ident) and ident not in self.roles:
                self.add(path, ident, self._missing("role", ident, self.roles, "roles"))

    def _partner_ref(self, path: str, ident: Any) -> dict[str, Any] | None:
        if not _is_id(ident):
            return None
        if ident in self.partners:
            return self.partners[ident]
        if ident in self.agencies:
            self.add(path, ident, f"‘{ident}’ is a relevant agency, not a safeguarding partner")
        else:
            self.add(path, ident, self._missing("safeguarding partner", ident, self.partners,
                                                "safeguarding_partners"))
        return None

    def check_partner_refs(self) -> None:
        doc = self.doc
        chair = _dict(doc.get("chair"))
        holder = chair.get("held_by_partner")
        holder_ok = self._partner_ref("/chair/held_by_partner", holder) is not None
        rotation = _dict(chair.get("rotation"))
        order = rotation.get("order")
        if isinstance(order, list):
            for i, ident in enumerate(order):
                self._partner_ref(_ptr("chair", "rotation", "order", i), ident)
            if rotation.get("enabled") is True and holder_ok and holder not in order:
                self.add("/chair/rotation/order", order,
                         f"the current chair ‘{holder}’ isn't in the rotation order: add it")
        signoff = _dict(doc.get("rapid_review")).get("signoff_required_from")
        if isinstance(signoff, list):
            for i, ident in enumerate(signoff):
                self._partner_ref(_ptr("rapid_review", "signoff_required_from", i), ident)

    def check_agency_refs(self) -> None:
        members = _dict(self.doc.get("education_representation")).get("strategic_members")
        if not isinstance(members, list):
            return
        for i, ident in enumerate(members):
            if not _is_id(ident) or ident in self.agencies:
                continue
            path = _ptr("education_representation", "strategic_members", i)
            if ident in self.partners:
                self.add(path, ident, f"‘{ident}’ is a safeguarding partner, not a relevant agency")
            else:
                self.add(path, ident,
                         self._missing("relevant agency", ident, self.agencies, "relevant_agencies"))

    # sections --------------------------------------------------------------------------------------

    def check_notification(self) -> None:
        sin = _dict(self.doc.get("serious_incident_notification"))
        path = "/serious_incident_notification/notifier_partner"
        partner = self._partner_ref(path, sin.get("notifier_partner"))
        kind = partner.get("type") if partner is not None else None
        if isinstance(kind, str) and kind in _PARTNER_TYPE_WORDS and kind != "local_authority":
            self.add(path, sin.get("notifier_partner"),
                     f"‘{sin.get('notifier_partner')}’ is {_a(_PARTNER_TYPE_WORDS[kind])}; the "
                     "notification is made by a local authority")
        categories = _entries(sin.get("categories"))
        if categories and not any(c.get("requires_rapid_review") is True for _, c in categories):
            self.add("/serious_incident_notification/categories", None,
                     "no category starts a rapid review: set ‘requires_rapid_review’ to true for the abuse "
                     "or neglect categories")
        for i, category in categories:
            base = _ptr("serious_incident_notification", "categories", i)
            notify = category.get("notify", ["national_panel"])
            panel_sees = category.get("panel_sees", True)
            if category.get("requires_rapid_review") is True and panel_sees is False:
                self.add(f"{base}/panel_sees", panel_sees,
                         "a category that starts a rapid review is reviewed by the national Panel: set ‘panel_sees’ "
                         "to true, or ‘requires_rapid_review’ to false")
            if panel_sees is not False and isinstance(notify, list) and "national_panel" not in notify:
                self.add(f"{base}/notify", notify,
                         "the national Panel sees this category, so it must be notified: add national_panel to "
                         "‘notify’, or set ‘panel_sees’ to false")
            ages = _dict(category.get("age_at_incident"))
            low, high = ages.get("min"), ages.get("max")
            if _is_int(low) and _is_int(high) and low > high:
                self.add(f"{base}/age_at_incident/min", low,
                         f"the youngest age ({low}) is above the oldest ({high})")

    def check_rapid_review(self) -> None:
        rr = _dict(self.doc.get("rapid_review"))
        deadline = _dict(rr.get("deadline")).get("value")
        milestones = _dict(rr.get("milestones"))
        names = {"agency_summaries": "the agency summaries", "meeting": "the meeting",
                 "signoff": "the sign-off"}
        previous: tuple[str, int] | None = None
        for key in ("agency_summaries", "meeting", "signoff"):
            offset = _dict(milestones.get(key)).get("offset_working_days")
            if not _is_int(offset):
                continue
            path = _ptr("rapid_review", "milestones", key, "offset_working_days")
            if _is_int(deadline) and offset > deadline:
                self.add(path, offset,
                         f"day {offset} is after the rapid review deadline ({deadline} working days)")
            if previous is not None and offset < previous[1]:
                self.add(path, offset, f"{names[key]} (day {offset}) can't come before {names[previous[0]]} "
                                       f"(day {previous[1]})")
            previous = (key, offset)
        outputs = rr.get("outputs_to_panel")
        if isinstance(outputs, list):
            for needed in ("rapid_review_report", "lcspr_decision"):
                if needed not in outputs:
                    self.add("/rapid_review/outputs_to_panel", outputs,
                             f"‘{needed}’ must be included: the rapid review goes to the Panel with the "
                             "decision on a local review")

    def check_escalation(self) -> None:
        esc = _dict(self.doc.get("escalation"))
        for i, ladder in _entries(esc.get("ladders")):
            self._check_ladder(_ptr("escalation", "ladders", i), ladder)
        ladders = _entries(esc.get("ladders"))
        purposes = {ladder.get("purpose") for _, ladder in ladders if isinstance(ladder.get("purpose"), str)}
        words = {"professional_disagreement": "professional disagreements", "overdue_work": "overdue work"}
        if ladders:
            for purpose, text in words.items():
                if purpose not in purposes:
                    self.add("/escalation/ladders", None,
                             f"there is no ladder for {text} (purpose ‘{purpose}’)")
        for field, purpose in (("disagreement_ladder", "professional_disagreement"),
                               ("overdue_ladder", "overdue_work")):
            ident = esc.get(field)
            if not _is_id(ident) or not isinstance(esc.get("ladders"), list):
                continue
            path = _ptr("escalation", field)
            if ident not in self.ladders:
                self.add(path, ident, self._missing("ladder", ident, self.ladders, "escalation.ladders"))
                continue
            actual = self.ladders[ident].get("purpose")
            if isinstance(actual, str) and actual in words and actual != purpose:
                self.add(path, ident, f"the ladder ‘{ident}’ is for {words[actual]}; choose a ladder whose "
                                      f"purpose is ‘{purpose}’")

    def _check_ladder(self, base: str, ladder: dict[str, Any]) -> None:
        stages = ladder.get("stages")
        if not isinstance(stages, list) or not stages:
            return
        n = len(stages)
        numbers = [s.get("stage") if isinstance(s, dict) else None for s in stages]
        if all(_is_int(x) for x in numbers):
            for j, number in enumerate(numbers):
                if number != j + 1:
                    self.add(_ptr_join(base, "stages") + _ptr(j, "stage"), number,
                             f"expected stage {j + 1} here: stages must be numbered 1, 2, 3 … in order "
                             "with no gaps")
        for field in ("urgent_start_stage", "notify_business_unit_from_stage"):
            value = ladder.get(field)
            if _is_int(value) and value > n:
                self.add(_ptr_join(base, field), value,
                         f"there is no stage {value}: this ladder has {n} stage{'s' if n != 1 else ''}")
        for j, stage in enumerate(stages):
            if not isinstance(stage, dict):
                continue
            timeout = _dict(stage.get("on_timeout"))
            action = timeout.get("action")
            here = _ptr_join(base, "stages") + _ptr(j, "on_timeout")
            if j == n - 1 and action == "escalate":
                self.add(here + "/action", action,
                         "the last stage can't escalate: there is no stage after it. Use ‘notify_role’ "
                         "(usually the independent scrutineer) or ‘national_view’")
            if "notify_role" in timeout and action in ("escalate", "national_view"):
                self.add(here + "/notify_role", timeout["notify_role"],
                         "‘notify_role’ is only used when the action is ‘notify_role’: remove it or change "
                         "the action")
            self._check_clock_from_previous_start(base, stages, j)

    def _check_clock_from_previous_start(self, base: str, stages: list[Any], j: int) -> None:
        """A stage counted from the previous stage's start must have more working days than the previous stage.

        Stage k opens when stage k-1 times out (or is escalated), and stage k-1 can run its full limit from its
        own start (it always does when it is counted from the stage before's deadline, or is the first or urgent
        stage, or was escalated on its first day). Stage k is then due ``limit(k)`` working days after that start,
        so with ``limit(k) <= limit(k-1)`` it would be due on or before the day it opens: overdue at once."""
        stage, previous = stages[j], stages[j - 1] if j else None
        if j == 0 or not isinstance(previous, dict) or stage.get("clock_start") != "previous_stage_start":
            return
        limit, before = stage.get("time_limit_working_days"), previous.get("time_limit_working_days")
        if not (_is_int(limit) and _is_int(before)) or limit > before:
            return
        self.add(_ptr_join(base, "stages") + _ptr(j, "time_limit_working_days"), limit,
                 f"stage {j + 1} counts its {limit} working days from the start of stage {j}, which itself has "
                 f"{before}: stage {j + 1} would be due on or before the day it opens. Give stage {j + 1} more "
                 f"than {before} working days, or count it from the previous stage's deadline "
                 "(clock_start: previous_stage_deadline)")

    def check_calendar(self) -> None:
        days = _dict(self.doc.get("calendar")).get("extra_closure_days")
        seen: dict[str, int] = {}
        for i, entry in _entries(days):
            text = entry.get("date")
            if not isinstance(text, str) or not _DATE_SHAPE_RE.match(text):
                continue
            try:
                day = dt.date.fromisoformat(text)
            except ValueError:
                continue  # the schema's date format check reports it
            path = _ptr("calendar", "extra_closure_days", i, "date")
            if day.weekday() >= 5:
                self.add(path, text, f"{text} is a {day.strftime('%A')}: weekends are never working days, so "
                                     "this closure day has no effect (is the date or year right?)")
            if text in seen:
                self.add(path, text, f"{text} is already listed at /calendar/extra_closure_days/{seen[text]}")
            else:
                seen[text] = i

    def check_yearly_report(self) -> None:
        report = _dict(self.doc.get("yearly_report"))
        period = _dict(report.get("period"))
        real: dict[str, str] = {}
        sites = [("/yearly_report/period/start", period.get("start")),
                 ("/yearly_report/period/end", period.get("end")),
                 ("/yearly_report/publish_by/month_day", _dict(report.get("publish_by")).get("month_day"))]
        for path, value in sites:
            if not isinstance(value, str) or not _MMDD_RE.match(value):
                continue
            if value == "02-29":
                self.add(path, value, "29 February only exists in leap years: use 02-28 or 03-01")
            elif not _real_month_day(value):
                self.add(path, value, f"‘{value}’ is not a real date")
            else:
                real[path] = value
        start, end = real.get("/yearly_report/period/start"), real.get("/yearly_report/period/end")
        if start and end:
            first = dt.date(2001, int(start[:2]), int(start[3:]))
            expected = (first - dt.timedelta(days=1)).strftime("%m-%d")
            if end != expected:
                self.add("/yearly_report/period/end", end,
                         f"the reporting year starting {start} should end {expected}, so that it covers "
                         "exactly 12 months")


def _a(noun: str) -> str:
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


def schema_issues(validator: Any, instance: Any) -> list[ValidationIssue]:
    """Plain-English issues from any compiled jsonschema validator (schema errors only), sorted by path.

    Shared with the task forms so every form and the arrangements speak the same language.
    """
    ranked: list[_Ranked] = []
    for error in validator.iter_errors(instance):
        ranked.extend(_translate(error))
    return _finish(ranked)


def validate(doc: Any) -> list[ValidationIssue]:
    """Every schema and semantic problem in ``doc``, sorted by path; [] when valid."""
    ranked: list[_Ranked] = []
    for error in _validator().iter_errors(doc):
        ranked.extend(_translate(error))
    if isinstance(doc, dict):
        ranked.extend(_Semantic(doc).run())
    return _finish(ranked)


def load(text: str | bytes, filename: str | None = None, content_type: str | None = None) -> dict:
    """Parse and validate; raise ArrangementsError listing every problem."""
    doc = parse_document(text, filename=filename, content_type=content_type)
    try:
        issues = validate(doc)
    except Exception as exc:
        log.exception("unexpected error while validating arrangements")
        raise ArrangementsError(ValidationIssue(
            "", None, f"The arrangements could not be checked because of an internal error "
            f"({type(exc).__name__}); please report this.",
        )) from None
    if issues:
        raise ArrangementsError(issues)
    return doc


def canonical_json(doc: Any) -> str:
    """Sorted keys, compact separators, UTF-8 text: the form hashed for a stored version."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def content_hash(doc: Any) -> str:
    """SHA-256 (hex) of :func:`canonical_json`."""
    return hashlib.sha256(canonical_json(doc).encode("utf-8")).hexdigest()
