"""HTML forms from a task's JSON Schema (the restricted subset our task forms use), with GOV.UK macros.

A form schema is an object of scalar properties:

- ``string`` -> ``govukInput``; with ``x-widget: textarea`` -> ``govukTextarea``;
  with ``format: date`` -> ``govukDateInput`` (``<name>-day``, ``-month``, ``-year`` -> an ISO date);
- ``enum`` -> ``govukRadios`` (labels from ``x-labels``);
- ``boolean`` -> Yes/No ``govukRadios``; ``integer``/``number`` -> a numeric ``govukInput``;
- a string with ``x-options: <list>`` -> ``govukSelect`` of that list (e.g. ``themes``: the partnership's learning
  themes), passed in by the page as ``options={"themes": {id: label}}``;
- an array with ``x-options: <list>`` -> ``govukCheckboxes`` of that list (the posted field repeats).

``parse`` turns the posted fields into the JSON the workflow checks, with the errors only the browser form
can have (an impossible date, a date with a missing part); ``widgets`` builds each macro's parameters, keeping
what the person typed and showing each field's error inline. Field names are the schema's property names, so
a validator error at ``/sent_on`` lands on the ``sent_on`` field.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from safeguarding.refusals import FieldError
from web import form_errors
from web.form_errors import first_segment, sentence

DATE_PARTS = ("day", "month", "year")


def kind_of(prop: Mapping[str, Any]) -> str:
    if "enum" in prop:
        return "radios"
    if prop.get("x-options"):
        return "checkboxes" if prop.get("type") == "array" else "select"
    kind = prop.get("type")
    if kind == "boolean":
        return "boolean"
    if kind in ("integer", "number"):
        return "number"
    if prop.get("format") == "date":
        return "date"
    if prop.get("x-widget") == "textarea":
        return "textarea"
    return "input"


def properties(schema: Mapping[str, Any]) -> list[tuple[str, dict[str, Any], bool]]:
    required = set(schema.get("required", []))
    return [(name, prop, name in required) for name, prop in schema.get("properties", {}).items()]


def anchor(schema: Mapping[str, Any], name: str) -> str:
    """The id an error-summary link points at: the field's first input."""
    prop = schema.get("properties", {}).get(name)
    return f"#{name}-day" if prop is not None and kind_of(prop) == "date" else f"#{name}"  # checkboxes: idPrefix


def parse_date(title: str, day: str, month: str, year: str) -> tuple[str | None, str | None]:
    """(ISO date or None, error or None) from the three boxes of a GOV.UK date input."""
    parts = {"day": day.strip(), "month": month.strip(), "year": year.strip()}
    if not any(parts.values()):
        return None, None
    missing = [p for p in DATE_PARTS if not parts[p]]
    if missing:
        return None, f"{title} must include a {' and '.join(missing)}"
    if not all(v.isdecimal() for v in parts.values()):
        return None, f"{title} must be a real date, in numbers"
    if len(parts["year"]) != 4:
        return None, "Year must include 4 numbers"
    try:
        return date(int(parts["year"]), int(parts["month"]), int(parts["day"])).isoformat(), None
    except ValueError:
        return None, f"{title} must be a real date"


def parse(schema: Mapping[str, Any], form: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(data for the workflow, errors by field name). Empty fields are left out (the schema says if required)."""
    data: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, prop, _required in properties(schema):
        title = prop.get("title", name)
        kind = kind_of(prop)
        if kind == "date":
            value, error = parse_date(title, *(str(form.get(f"{name}-{p}", "")) for p in DATE_PARTS))
            if error:
                errors[name] = error
            elif value:
                data[name] = value
            continue
        if kind == "checkboxes":
            picked = form.getlist(name) if hasattr(form, "getlist") else form.get(name, [])
            picked = [str(v).strip() for v in ([picked] if isinstance(picked, str) else picked)]
            if any(picked):
                data[name] = list(dict.fromkeys(v for v in picked if v))
            continue
        raw = str(form.get(name, "")).strip()
        if not raw:
            continue
        if kind == "boolean":
            if raw in ("true", "false"):
                data[name] = raw == "true"
            else:
                errors[name] = f"Select yes or no for ‘{title}’"
        elif kind == "number":
            try:
                data[name] = int(raw) if prop.get("type") == "integer" else float(raw)
            except ValueError:
                errors[name] = f"‘{title}’ must be a number"
        else:
            data[name] = raw
    return data, errors


def form_values(schema: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """Recorded answers as the form's values (the inverse of ``parse``), to start a form from them."""
    values: dict[str, Any] = {}
    for name, prop, _ in properties(schema):
        if name not in data:
            continue
        value, kind = data[name], kind_of(prop)
        if kind == "date":
            try:
                day = date.fromisoformat(value)
            except (TypeError, ValueError):
                continue
            values.update({f"{name}-day": str(day.day), f"{name}-month": str(day.month), f"{name}-year": str(day.year)})
        elif kind == "boolean":
            values[name] = "true" if value else "false"
        elif kind == "checkboxes":
            values[name] = [str(v) for v in value]
        else:
            values[name] = str(value)
    return values


def friendly(schema: Mapping[str, Any], name: str, message: str, value: Any) -> str:
    """The validator's words, except for a missing answer, which GOV.UK words as an instruction."""
    prop = schema.get("properties", {}).get(name, {})
    title = prop.get("title", name)
    if value is None and message.endswith("is missing"):
        return (f"Select an answer for ‘{title}’" if kind_of(prop) in ("radios", "boolean", "checkboxes")
                else f"Enter ‘{title}’")
    if message == "must not be empty":
        return f"Enter ‘{title}’"
    return message[:1].upper() + message[1:]


def field_errors(schema: Mapping[str, Any], fields: list[Any]) -> tuple[dict[str, str], list[str]]:
    """Validator errors (``[{path, message, value}]`` or FieldError) -> (by field name, form-level), through the one
    mapper (``web.form_errors.field_errors``), each field's message worded by ``friendly``."""
    known = schema.get("properties", {})
    refused = [item if isinstance(item, FieldError) else FieldError(path=item["path"], message=item["message"],
                                                                    value=item.get("value")) for item in fields]
    by_name = form_errors.field_errors(
        FieldError(path=f.path, message=friendly(schema, first_segment(f.path), f.message, f.value))
        for f in refused if first_segment(f.path) in known)
    return by_name, [sentence(f.message) for f in refused if first_segment(f.path) not in known]


def error_list(schema: Mapping[str, Any], errors: Mapping[str, str], general: list[str] = ()) -> list[dict]:
    """The error summary's links, in the order of the fields on the page."""
    order = [name for name, _, _ in properties(schema)]
    return [{"text": message, "href": "#task-form"} for message in general] + form_errors.error_summary(
        {name: errors[name] for name in order if name in errors}, order,
        {name: anchor(schema, name) for name in order})


def widgets(schema: Mapping[str, Any], values: Mapping[str, Any], errors: Mapping[str, str],
            options: Mapping[str, Mapping[str, str]] | None = None) -> list[dict]:
    """``[{"macro": "govukInput" | ..., "params": {...}}]``: what the template calls, field by field."""
    out = []
    options = options or {}
    for name, prop, required in properties(schema):
        kind = kind_of(prop)
        title = prop.get("title", name) + ("" if required or kind in ("radios", "boolean") else " (optional)")
        hint = {"text": prop["description"]} if prop.get("description") else None
        error = {"text": errors[name]} if name in errors else None
        if kind == "date":
            items = []
            for part in DATE_PARTS:
                width = "govuk-input--width-4" if part == "year" else "govuk-input--width-2"
                items.append({"name": part, "value": values.get(f"{name}-{part}", ""),
                              "classes": width + (" govuk-input--error" if error else "")})
            params = {"id": name, "namePrefix": name, "items": items, "hint": hint, "errorMessage": error,
                      "fieldset": {"legend": {"text": title, "classes": "govuk-fieldset__legend--s"}}}
            out.append({"macro": "govukDateInput", "params": params})
        elif kind in ("radios", "boolean"):
            if kind == "boolean":
                choices = [("true", "Yes"), ("false", "No")]
            else:
                labels = prop.get("x-labels", {})
                choices = [(str(v), labels.get(str(v), str(v).replace("_", " ").capitalize())) for v in prop["enum"]]
            current = values.get(name, "")
            params = {"name": name, "idPrefix": name, "hint": hint, "errorMessage": error,
                      "classes": "govuk-radios--inline" if kind == "boolean" else "",
                      "fieldset": {"legend": {"text": title, "classes": "govuk-fieldset__legend--s"}},
                      "items": [{"value": v, "text": label, "checked": current == v} for v, label in choices]}
            out.append({"macro": "govukRadios", "params": params})
        elif kind == "select":
            current = values.get(name, "")
            choices = options.get(prop["x-options"], {})
            items = [{"value": "", "text": "Choose one", "selected": not current}] + [
                {"value": v, "text": label, "selected": current == v} for v, label in choices.items()]
            if current and current not in choices:
                items.append({"value": current, "text": current, "selected": True})
            params = {"name": name, "id": name, "label": {"text": title, "classes": "govuk-label--s"}, "hint": hint,
                      "errorMessage": error, "items": items}
            out.append({"macro": "govukSelect", "params": params})
        elif kind == "checkboxes":
            current = values.get(name) or []
            current = [current] if isinstance(current, str) else list(current)
            choices = options.get(prop["x-options"], {})
            items = [{"value": v, "text": label, "checked": v in current} for v, label in choices.items()]
            items += [{"value": v, "text": v, "checked": True} for v in current if v not in choices]
            params = {"name": name, "idPrefix": name, "hint": hint, "errorMessage": error,
                      "classes": "govuk-checkboxes--small",
                      "fieldset": {"legend": {"text": title, "classes": "govuk-fieldset__legend--s"}},
                      "items": items}
            out.append({"macro": "govukCheckboxes", "params": params})
        elif kind == "textarea":
            params = {"name": name, "id": name, "label": {"text": title, "classes": "govuk-label--s"}, "hint": hint,
                      "errorMessage": error, "value": values.get(name, ""), "rows": 5}
            out.append({"macro": "govukTextarea", "params": params})
        else:
            params = {"name": name, "id": name, "label": {"text": title, "classes": "govuk-label--s"}, "hint": hint,
                      "errorMessage": error, "value": values.get(name, ""), "spellcheck": False}
            if kind == "number":
                params.update(inputmode="numeric", classes="govuk-input--width-10")
            out.append({"macro": "govukInput", "params": params})
    return out


def answers(schema: Mapping[str, Any], data: Mapping[str, Any],
            options: Mapping[str, Mapping[str, str]] | None = None) -> list[dict]:
    """Summary-list rows of what was recorded (plain text: autoescaped by the template)."""
    rows = []
    options = options or {}
    for name, prop, _ in properties(schema):
        if name not in data:
            continue
        value = data[name]
        kind = kind_of(prop)
        if kind == "boolean":
            text = "Yes" if value else "No"
        elif kind == "radios":
            text = prop.get("x-labels", {}).get(str(value), str(value))
        elif kind == "select":
            text = options.get(prop["x-options"], {}).get(str(value), str(value))
        elif kind == "checkboxes":
            labels = options.get(prop["x-options"], {})
            text = ", ".join(labels.get(str(v), str(v)) for v in value)
        elif kind == "date":
            try:
                from web.templating import date_uk

                text = date_uk(date.fromisoformat(value))
            except (TypeError, ValueError):
                text = str(value)
        else:
            text = str(value)
        rows.append({"key": {"text": prop.get("title", name)}, "value": {"text": text}})
    return rows
