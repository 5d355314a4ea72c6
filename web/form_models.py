"""Reading a page's posted form into the pydantic model that checks it (issue 18).

``posted`` takes a form's values as text (and the fields that repeat, checkboxes, as lists); ``read_form`` gives
them to a model, ``model_validate`` with a ``context`` for the checks that need the partnership's lists or today,
and answers (the model, or None; ``{form field: message}``) with every problem at once, worded by
``web.form_errors.field_errors``. A model names its GOV.UK date inputs in ``date_titles`` (``{field: title}``):
their three boxes (``<field>-day``, ``-month``, ``-year``) are read as one date (``schema_forms.parse_date``: "The
due date must be a real date"). A field left empty (or blank) is left out, so the model's ``field_prompts`` say
what is missing ("Enter what must be done"). ``posted_names`` is what the form may post: anything else is refused
by name (``form_errors.unknown_fields``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from web.form_errors import field_errors, first_segment
from web.schema_forms import DATE_PARTS, parse_date

Model = TypeVar("Model", bound=BaseModel)


def posted(form: Any, lists: Iterable[str] = ()) -> dict[str, Any]:
    """A posted form's values: each field's text (the CSRF token left out), each of ``lists`` as the list of the
    values sent (repeats once)."""
    lists = tuple(lists)
    values: dict[str, Any] = {k: str(v) for k, v in form.items()
                              if isinstance(v, str) and k != "csrf_token" and k not in lists}
    for name in lists:
        values[name] = list(dict.fromkeys(str(v) for v in form.getlist(name)))
    return values


def date_titles(model: type[BaseModel]) -> Mapping[str, str]:
    return getattr(model, "date_titles", {})


def posted_names(model: type[BaseModel]) -> Callable[[str], bool]:
    """Whether the form of ``model`` has a field of that name (a date's three boxes for each date)."""
    dates = date_titles(model)
    names = {f"{name}-{part}" if name in dates else name for name in model.model_fields
             for part in (DATE_PARTS if name in dates else ("",))}
    return names.__contains__


def read_form(model: type[Model], values: Mapping[str, Any], *, context: Mapping[str, Any] | None = None,
              name_of: Callable[[str], str] = first_segment) -> tuple[Model | None, dict[str, str]]:
    """(the model, or None; every problem as ``{form field name: message}``) from a form's ``values``."""
    data: dict[str, Any] = {}
    errors: dict[str, str] = {}
    dates = date_titles(model)
    for name in model.model_fields:
        if name in dates:
            day, error = parse_date(dates[name], *(str(values.get(f"{name}-{p}", "")) for p in DATE_PARTS))
            if error:
                errors[name] = error
            elif day:
                data[name] = day
            continue
        value = values.get(name)
        if value is None or (isinstance(value, str) and not value.strip()) or value == []:
            continue  # left out: the model says what is missing
        data[name] = value
    try:
        found = model.model_validate(data, context=dict(context or {}))
    except ValidationError as exc:
        return None, {**field_errors(exc, model=model, name_of=name_of), **errors}
    return (None, errors) if errors else (found, errors)
