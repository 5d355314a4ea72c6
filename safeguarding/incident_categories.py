"""What an incident category of the arrangements says: who is notified, whether the national Panel sees it, and
the ages it covers at the date of the incident (issue 16).

A category's ``notify`` lists its recipients (default: the national Panel); ``panel_sees`` says whether the Panel
reviews it, so whether it is on the Panel's overview and counts in its figures (default: true); ``age_at_incident``
(``{min, max}``, inclusive, whole years) makes the age at the date of the incident a question at intake.

Pure functions of the arrangements document: the workflow (no I/O) and the web intake both use them.
"""

from __future__ import annotations

from typing import Any

from safeguarding.case_records import NATIONAL_PANEL

DEFAULT_NOTIFY = (NATIONAL_PANEL,)
RECIPIENT_NAMES: dict[str, str] = {
    "national_panel": "the national Panel",
    "secretary_of_state": "the Secretary of State",
    "ofsted": "Ofsted",
    "dfe": "the Department for Education",
}

__all__ = ["DEFAULT_NOTIFY", "RECIPIENT_NAMES", "age_range", "category", "category_problems", "notification_title",
           "panel_sees", "recipients", "recipients_text"]


def category(doc: dict[str, Any], category_id: str) -> dict[str, Any] | None:
    """The category ``category_id`` of the arrangements, or None."""
    categories = (doc.get("serious_incident_notification") or {}).get("categories") or []
    return next((c for c in categories if c.get("id") == category_id), None)


def recipients(cat: dict[str, Any]) -> list[str]:
    """Who a notification in this category goes to (ids, in the arrangements' order)."""
    return list(cat.get("notify") or DEFAULT_NOTIFY)


def panel_sees(cat: dict[str, Any]) -> bool:
    """Whether the national Panel reviews incidents in this category (its overview, lists and figures)."""
    return cat.get("panel_sees", True) is not False


def age_range(cat: dict[str, Any]) -> tuple[int | None, int | None] | None:
    """(youngest, oldest) when the category depends on the age at the date of the incident, else None."""
    ages = cat.get("age_at_incident")
    if not isinstance(ages, dict) or not ages:
        return None
    return ages.get("min"), ages.get("max")


def _and(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def recipients_text(ids: list[str]) -> str:
    """"the Secretary of State and Ofsted", "the national Panel": for titles and timeline messages."""
    return _and([RECIPIENT_NAMES.get(r, r.replace("_", " ")) for r in ids])


def notification_title(cat: dict[str, Any]) -> str:
    """The notification task's title: "Notify the national Panel", "Notify the Secretary of State and Ofsted"."""
    return f"Notify {recipients_text(recipients(cat))}"


def ages_text(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"from {low} to {high}"
    if low is not None:
        return f"{low} or over"
    return f"up to and including {high}"


def category_problems(doc: dict[str, Any], category_id: str, age: int | None) -> list[tuple[str, str]]:
    """What is wrong with recording an incident in this category with this age at the date of the incident, as
    (field, message) pairs in plain English; [] when nothing. ``field`` is ``category`` or ``age_at_incident``.

    The age is required when the category covers only some ages, and must be within them; it is not asked
    otherwise (an age given anyway is only checked to be a whole number from 0 to 30)."""
    cat = category(doc, category_id)
    if cat is None:
        known = [c.get("id", "") for c in (doc.get("serious_incident_notification") or {}).get("categories") or []]
        return [("category", "Choose an incident category from the partnership's arrangements: "
                             + ", ".join(known))]
    label = cat.get("label", category_id)
    ages = age_range(cat)
    if age is not None and (isinstance(age, bool) or not isinstance(age, int) or not 0 <= age <= 30):
        return [("age_at_incident", "Enter the age at the date of the incident as a whole number of years, "
                                    "from 0 to 30")]
    if ages is None:
        return []
    low, high = ages
    if age is None:
        return [("age_at_incident", f"Enter the age at the date of the incident: ‘{label}’ covers ages "
                                    f"{ages_text(low, high)}")]
    if (low is not None and age < low) or (high is not None and age > high):
        return [("age_at_incident", f"‘{label}’ covers ages {ages_text(low, high)} at the date of the incident, "
                                    f"not {age}: check the age, or choose another category")]
    return []
