"""What the escalation pages share (``web.pages.escalations``: the list and the challenge log;
``web.pages.escalation_forms``: raising and withdrawing): whose escalations a person sees, who may withdraw one, and
one escalation's row as every page shows it."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from sqlmodel import Session, select

from safeguarding.accounts import Principal
from safeguarding.pinned import Pinned, pinned
from safeguarding.refusals import ApiError
from safeguarding.tables import Case, Task
from web.views.common import ISSUE_LABELS, aware

OUTCOME_TAGS = {"open": ("Open", "govuk-tag--blue"), "resolved": ("Resolved", "govuk-tag--green"),
                "withdrawn": ("Withdrawn", "govuk-tag--grey"), "work done": ("Work done", "govuk-tag--green")}


def own_partnership(principal: Principal) -> str:
    """The partnership whose escalations this person sees (people without one have no such pages)."""
    if principal.partnership_id is None:
        raise ApiError(404, "not_found", "no escalations")
    return principal.partnership_id


def issue_label(issue_type: str) -> str:
    return ISSUE_LABELS.get(issue_type, issue_type)


def may_withdraw(principal: Principal, case: Case, facts: Pinned | None) -> bool:
    """The workflow's rule (the raiser, the ladder's business unit, the partnership's leads), for showing the link."""
    if case.status != "open" or principal.partnership_id != case.partnership_id:
        return False
    ladder = facts.ladders.get(case.ladder_id or "") if facts else None
    return (case.opened_by == principal.user_ref or principal.kind == "partnership_lead"
            or (ladder is not None and principal.user_ref in ladder.business_unit))


def _agreed_actions(engine, partnership_id: str) -> dict[str, str]:
    """case id -> the agreed actions recorded when it was resolved (one query for the partnership)."""
    with Session(engine) as session:
        rows = session.exec(select(Task.case_id, Task.data).where(
            Task.partnership_id == partnership_id, Task.status == "done", Task.type == "ladder_stage")).all()
    out = {}
    for case_id, data in rows:
        try:
            recorded = json.loads(data or "{}")
        except ValueError:
            continue
        if isinstance(recorded, dict) and recorded.get("outcome") == "resolved":
            out[case_id] = str(recorded.get("agreed_actions", ""))
    return out


def escalation_rows(engine, principal: Principal, partnership_id: str, cases: list[Case],
                    today: date) -> list[dict[str, Any]]:
    actions = _agreed_actions(engine, partnership_id) if any(c.status != "open" for c in cases) else {}
    rows = []
    for case in cases:
        facts = pinned(engine, partnership_id, case.arrangements_version)
        ladder = facts.ladders.get(case.ladder_id or "") if facts else None
        stage_name = ladder.stages.get(case.current_stage or 0, "") if ladder else ""
        state = "open" if case.status == "open" else (case.outcome or case.status)
        tag_text, tag_classes = OUTCOME_TAGS.get(state, (state.capitalize(), "govuk-tag--grey"))
        closing = ""
        if state == "resolved":
            closing = actions.get(case.id, "")
        elif state in ("withdrawn", "work done"):
            closing = case.stage.split(": ", 1)[1] if ": " in case.stage else case.stage
        age = facts.working_days_since(case.aware_date, today) if facts else None
        agencies = json.loads(case.agencies or "[]")
        children = json.loads(case.children or "[]")
        rows.append({
            "id": case.id, "ref": case.case_ref, "href": f"/cases/{case.id}", "raised": case.aware_date,
            "ladder": ladder.name if ladder else (case.ladder_id or ""), "ladder_id": case.ladder_id or "",
            "purpose": case.ladder_purpose or "", "issue": issue_label(case.category), "subject": case.summary,
            "agencies": [facts.agencies.get(a, a) if facts else a for a in agencies],
            "child": ", ".join(c["pseudonym"] if isinstance(c, dict) else str(c) for c in children),
            "urgent": case.urgent, "current_stage": case.current_stage, "highest_stage": case.highest_stage,
            "stage_label": (f"Stage {case.current_stage}: {stage_name}" if stage_name
                            else f"Stage {case.current_stage}") if case.current_stage else "",
            "timeouts": case.timeouts, "reached_national": case.reached_national, "status": case.status,
            "state": state, "tag_text": tag_text, "tag_classes": tag_classes, "closing": closing,
            "theme": (facts.themes.get(case.learning_theme, case.learning_theme) if facts else case.learning_theme)
            if case.learning_theme else "",
            "closed": aware(case.closed_at), "age": age,
            "age_text": "" if age is None else f"{age} working day{'s' if age != 1 else ''}",
            "may_withdraw": may_withdraw(principal, case, facts),
            "withdraw_href": f"/escalations/{case.id}/withdraw"})
    return rows
