"""Task forms: one JSON Schema per task type and version in ``schemas/tasks/`` (``<name>.v<N>.json``).

A task records the form key it was opened with (``notification_sent.v1``), so an old task is always
checked and shown with its old form. Schemas are loaded and compiled once, at import, from package data:
this module is safe to use from workflow validators (no I/O after import, deterministic).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from safeguarding.arrangements import schema_issues

TASK_SCHEMAS_DIR = Path(__file__).resolve().parents[1] / "schemas" / "tasks"


def _load() -> dict[str, tuple[dict[str, Any], Draft202012Validator]]:
    loaded = {}
    for path in sorted(TASK_SCHEMAS_DIR.glob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
        loaded[path.stem] = (schema, Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER))
    return loaded


FORMS = _load()


def schema(form: str) -> dict[str, Any]:
    return FORMS[form][0]


def validate(form: str, data: Any) -> list[dict[str, Any]]:
    """Every problem with ``data`` for ``form``: ``[{"path", "message", "value"}]``, sorted by path."""
    if form not in FORMS:
        return [{"path": "", "message": f"unknown form ‘{form}’", "value": None}]
    schema_doc, validator = FORMS[form]
    issues = []
    for issue in schema_issues(validator, data):
        message = issue.message
        prop = schema_doc.get("properties", {}).get(issue.path.lstrip("/"), {})
        if issue.value is None and message.endswith("is missing") and prop.get("title"):
            verb = "Select" if "enum" in prop or prop.get("type") in ("boolean", "array") else "Enter"
            title = prop["title"]
            message = f"{verb} {title[0].lower()}{title[1:]}".rstrip("?")
        issues.append({"path": issue.path, "message": message, "value": issue.value})
    return issues
