"""The one way a page turns refused input into the GOV.UK error summary its template shows.

A form is read into the same pydantic models the JSON API takes (``model_validate`` of the form's values); what
pydantic refuses, and what the service layer refuses (``ApiError``'s fields), become ``{form field name: message}``
(each field's first message) with ``field_errors``, and the summary list with ``error_summary``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from safeguarding.refusals import FieldError, plain_errors


def first_segment(path: str) -> str:
    """``/children/0/pseudonym`` -> ``children``: a form field named as the model's field."""
    return path.lstrip("/").split("/")[0]


def named_in(names: Iterable[str], general: str = "form") -> Callable[[str], str]:
    """A ``name_of`` for ``field_errors``: the pointer's first segment when the form has that field, else
    ``general`` (the form as a whole: its message links to the form)."""
    names = frozenset(names)
    return lambda path: first_segment(path) if first_segment(path) in names else general


def sentence(message: str) -> str:
    """A message as people read it: its first letter a capital."""
    return message[:1].upper() + message[1:]


def field_errors(refused: ValidationError | Iterable[FieldError], *, model: type[BaseModel] | None = None,
                 name_of: Callable[[str], str] = first_segment) -> dict[str, str]:
    """``{form field name: message}`` from a ``ValidationError`` (its messages in plain English, naming fields as
    ``model``'s ``field_labels`` and ``field_prompts`` say) or from ``FieldError``s; ``name_of`` maps a field's
    JSON pointer to the form field that shows its message."""
    if isinstance(refused, ValidationError):
        refused = plain_errors(refused.errors(), getattr(model, "field_labels", None),
                               getattr(model, "field_prompts", None))
    errors: dict[str, str] = {}
    for field in refused:
        errors.setdefault(name_of(field.path), sentence(field.message))
    return errors


def error_summary(errors: Mapping[str, str], order: Iterable[str] = (),
                  anchors: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The GOV.UK error summary's items: ``order``'s fields first, then the rest; each links to its field
    (``anchors``, else ``#<name>``)."""
    anchors = anchors or {}
    names = [n for n in order if n in errors] + [n for n in errors if n not in set(order)]
    return [{"text": errors[name], "href": anchors.get(name, f"#{name}")} for name in names]


def unknown_fields(posted: Iterable[str], known: Callable[[str], bool]) -> str | None:
    """A message naming the posted fields a form does not take (the CSRF token and the idempotency key are every
    form's), or None."""
    unknown = sorted({name for name in posted if name not in ("csrf_token", "idempotency_key") and not known(name)})
    if not unknown:
        return None
    names = ", ".join(f"‘{name}’" for name in unknown)
    return f"This form does not take {names}: nothing was recorded. Reload the page and try again"
