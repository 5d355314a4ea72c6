"""The service layer's refusals: an error with a status, a code, a message and the fields at fault.

The JSON API answers them in its one error shape and the pages with the GOV.UK error page (``web.errors``); the
service layer (``safeguarding``) raises them without knowing about the web.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

RETRY_AFTER_SECONDS = 5


class FieldError(BaseModel):
    path: str
    message: str
    value: Any = None


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, fields: list[FieldError] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields or []
        self.headers = headers


class NotApplied(ApiError):
    """503: Temporal could not be reached, or did not accept the change in time. It may still be applied when the
    service recovers, so the caller retries with the same Idempotency-Key (which never applies a change twice)."""

    def __init__(self, message: str):
        super().__init__(503, "not_applied", f"{message}. It may still be applied when the service recovers: try "
                                             "again in a few seconds with the same Idempotency-Key, which never "
                                             "applies it twice.")
        self.headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}


class StillApplying(Exception):
    """202: the workflow has the change (accepted, or the case's workflow started) but has not finished applying it
    in time; it will be applied without anything more from the caller."""

    def __init__(self, case_id: str, message: str):
        super().__init__(message)
        self.case_id, self.message = case_id, message


# --- pydantic's errors in plain English ------------------------------------------------------------------------


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def plain_message(error: Mapping[str, Any], labels: Mapping[str, str],
                  prompts: Mapping[str, str] | None = None) -> str:
    """One of pydantic's errors (an item of ``ValidationError.errors()``) as a sentence that names the field as
    people know it (``labels``: field name -> how a sentence names it, e.g. "the date the local authority became
    aware of the incident"), in the GOV.UK style: "Enter ...", "... must be a real date". ``prompts``: the whole
    sentence for a field left out or empty, where "Enter <label>" does not fit ("Select the incident category")."""
    loc, kind, ctx = error.get("loc", ()), error.get("type", ""), error.get("ctx") or {}
    name = next((str(part) for part in reversed(loc) if isinstance(part, str)), "")
    label = labels.get(name) or name.replace("_", " ") or "this"
    if kind == "extra_forbidden":
        return f"‘{name}’ is not something this takes: remove it"
    if kind == "missing" or (kind in ("string_too_short", "too_short") and ctx.get("min_length") == 1):
        return (prompts or {}).get(name) or f"Enter {label}"
    if kind in ("string_too_short", "too_short"):
        return f"{_sentence(label)} must have at least {ctx.get('min_length')}"
    if kind == "string_too_long":
        return f"{_sentence(label)} must be {ctx.get('max_length')} characters or fewer"
    if kind == "too_long":
        return f"{_sentence(label)} must have at most {ctx.get('max_length')}"
    if kind.startswith("date"):
        return f"{_sentence(label)} must be a real date, for example 2026-03-27"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{_sentence(label)} must be a whole number, for example 17"
    if kind == "greater_than_equal":
        return f"{_sentence(label)} must be {ctx.get('ge')} or more"
    if kind == "greater_than":
        return f"{_sentence(label)} must be more than {ctx.get('gt')}"
    if kind == "less_than_equal":
        return f"{_sentence(label)} must be {ctx.get('le')} or less"
    if kind == "less_than":
        return f"{_sentence(label)} must be less than {ctx.get('lt')}"
    if kind in ("value_error", "assertion_error") and ctx.get("error") is not None:
        return _sentence(str(ctx["error"]))
    message = str(error.get("msg", "is not valid"))
    return f"{_sentence(label)}: {message[:1].lower()}{message[1:]}"


def plain_errors(errors: Iterable[Mapping[str, Any]], labels: Mapping[str, str] | None = None,
                 prompts: Mapping[str, str] | None = None, *,
                 skip: tuple[str, ...] = ("body", "query", "path", "header")) -> list[FieldError]:
    """Pydantic's errors as ``FieldError``s: a JSON pointer to the field (``/children/0/pseudonym``; the request
    part FastAPI puts first, ``skip``, is left out) and a plain-English message (``plain_message``)."""
    found = []
    for error in errors:
        loc = tuple(error.get("loc", ()))
        parts = [str(p) for p in (loc[1:] if loc and loc[0] in skip else loc)]
        value = error.get("input") if error.get("type") != "extra_forbidden" else None
        found.append(FieldError(path="/" + "/".join(parts) if parts else "",
                                message=plain_message(error, labels or {}, prompts),
                                value=value if not isinstance(value, dict | list) else None))
    return found
