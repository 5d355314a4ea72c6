"""The controlled vocabulary of learning themes: the national Panel's themes, plus a partnership's own.

Seeded from the Panel's annual reports (domain brief section 8); a partnership adds local themes in its
arrangements (``learning.extra_themes``). Escalations, rapid reviews and learning events all record themes
from this one list, so they can be counted side by side.
"""

from __future__ import annotations

from typing import Any

PANEL_THEMES: list[tuple[str, str]] = [
    ("information-sharing", "Information sharing"),
    ("risk-assessment", "Risk assessment and decision-making"),
    ("leadership-and-culture", "Leadership and culture for critical thinking"),
    ("race-ethnicity-culture", "Race, ethnicity and culture"),
    ("whole-family", "Working with the whole family"),
    ("vulnerable-babies", "Vulnerable babies"),
    ("domestic-abuse", "Domestic abuse"),
    ("risks-outside-the-family", "Risks outside the family"),
    ("disability", "Disability"),
    ("mental-health", "Mental health"),
    ("children-not-in-school", "Children not in school"),
    ("young-carers", "Young carers"),
    ("gypsy-roma-traveller", "Gypsy, Roma and Traveller communities"),
    ("neglect", "Neglect"),
    ("multi-agency-working", "Agencies working together"),
]


def themes_for(arrangements: dict[str, Any]) -> dict[str, str]:
    """Theme id -> label: the Panel's themes and the partnership's own."""
    themes = dict(PANEL_THEMES)
    for theme in (arrangements.get("learning") or {}).get("extra_themes", []):
        themes[theme["id"]] = theme["label"]
    return themes
