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


# Contributory factors: a systems taxonomy (SEIPS-style, as in the NHS learning responses and SCIE's
# Learning Together): conditions and systems, never culprits.
FACTORS: list[tuple[str, str]] = [
    ("person", "Person: workload, wellbeing, experience, training"),
    ("task", "Task: how complex, clear or time-pressured the work was"),
    ("tools-and-information-systems", "Tools and information systems"),
    ("organisation-and-culture", "Organisation and culture"),
    ("environment", "Environment: place, time of day, staffing"),
    ("inter-agency-working", "Working between agencies"),
]

LEARNING_KINDS: list[tuple[str, str]] = [
    ("harm", "Something went wrong and a child was or could have been harmed"),
    ("near_miss", "Something nearly went wrong"),
    ("good_practice", "Good practice others can learn from"),
    ("future_risk", "A risk for the future"),
]
