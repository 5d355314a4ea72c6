"""What the partnership lead's pages share (``web.pages.lead``: the outbox; ``web.pages.arrangements``: the
arrangements, their history, diff and editor): the not-found page, a number from the query string, and a version of
the arrangements in words."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from web.errors import error_page

CLOCK_STARTS = {"la_becomes_aware": "the local authority becoming aware of the incident",
                "notification_sent": "the notification being sent to the Panel",
                "rapid_review_sent": "the rapid review being sent to the Panel",
                "decision_to_initiate": "the decision to hold the review",
                "planned_publication": "the planned publication date",
                "previous_stage_start": "the start of the previous stage",
                "previous_stage_deadline": "the previous stage's deadline"}
PARTNER_TYPES = {"local_authority": "Local authority", "integrated_care_board": "Integrated care board",
                 "chief_officer_of_police": "Chief officer of police"}
UNITS = {"working_days": "working days", "calendar_months": "calendar months", "weeks": "weeks"}
STATUS_WORDS = {"statutory": "statutory", "statutory_guidance": "statutory guidance",
                "panel_expectation": "the Panel's expectation", "local": "local choice", "assumption": "assumption",
                "to_verify": "to be checked"}


def not_found(request: Request) -> Response:
    return error_page(request, 404)


def small_int(value: str | None) -> int | None:
    """A page or version number from the query string (digits only, and not absurdly long), else None."""
    return int(value) if value is not None and value.isdecimal() and len(value) < 9 else None


def duration(spec: dict[str, Any] | None) -> str:
    if not isinstance(spec, dict) or spec.get("value") is None:
        return "not set"
    text = f"{spec['value']} {UNITS.get(spec.get('unit', ''), spec.get('unit', ''))}".strip()
    if spec.get("clock_start"):
        text += f", counted from {CLOCK_STARTS.get(spec['clock_start'], spec['clock_start'])}"
    if spec.get("status"):
        text += f" ({STATUS_WORDS.get(spec['status'], spec['status'])})"
    return text


def arrangements_summary(doc: dict[str, Any]) -> dict[str, Any]:
    """The main rules of a (valid) document, in words: partners, deadlines, ladders."""
    roles = {r["id"]: r.get("title", r["id"]) for r in doc.get("roles", [])}
    partners = {p["id"]: p for p in doc.get("safeguarding_partners", [])}
    sin, rr = doc.get("serious_incident_notification", {}), doc.get("rapid_review", {})
    ladders = []
    for ladder in doc.get("escalation", {}).get("ladders", []):
        stages = []
        for stage in ladder.get("stages", []):
            timeout = stage.get("on_timeout", {})
            action = timeout.get("action")
            then = {"escalate": "goes to the next stage",
                    "notify_role": f"{roles.get(timeout.get('notify_role'), timeout.get('notify_role'))} is told",
                    "national_view": "shows in the national view"}.get(action, action or "")
            stages.append({"stage": stage.get("stage"), "name": stage.get("name", ""),
                           "handler": roles.get(stage.get("handler_role"), stage.get("handler_role")),
                           "limit": f"{stage.get('time_limit_working_days')} working days",
                           "then": then})
        ladders.append({"id": ladder.get("id"), "name": ladder.get("name", ladder.get("id")),
                        "purpose": str(ladder.get("purpose", "")).replace("_", " "), "stages": stages})
    return {
        "name": doc.get("partnership", {}).get("name", ""),
        "partners": [{"organisation": p.get("organisation", p["id"]), "type": PARTNER_TYPES.get(p.get("type"), ""),
                      "lead": p.get("lead", {}).get("role_title", ""),
                      "delegate": p.get("delegate", {}).get("role_title", "")} for p in partners.values()],
        "agencies": len(doc.get("relevant_agencies", [])),
        "notification": {
            "deadline": duration(sin.get("deadline")),
            "notifier": partners.get(sin.get("notifier_partner"), {}).get("organisation", sin.get("notifier_partner")),
            "role": roles.get(sin.get("notifier_role"), sin.get("notifier_role")),
            "categories": [{"label": c.get("label", c.get("id")), "rapid_review": bool(c.get("requires_rapid_review"))}
                           for c in sin.get("categories", [])],
        },
        "rapid_review": {
            "deadline": duration(rr.get("deadline")),
            "coordinator": roles.get(rr.get("coordinator_role"), rr.get("coordinator_role")),
            "decision": roles.get(rr.get("decision_role"), rr.get("decision_role")),
            "signoff": [partners.get(p, {}).get("organisation", p) for p in rr.get("signoff_required_from", [])],
            "milestones": [(name, (rr.get("milestones", {}).get(key) or {}).get("offset_working_days"))
                           for key, name in (("agency_summaries", "Agency summaries"), ("meeting", "Meeting"),
                                             ("signoff", "Sign-off"))
                           if (rr.get("milestones", {}).get(key) or {}).get("offset_working_days") is not None],
            "panel_response": duration(rr.get("panel_response_expected")) if rr.get("panel_response_expected")
            else "",
        },
        "ladders": ladders,
    }
