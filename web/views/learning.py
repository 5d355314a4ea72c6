"""What the everyday-learning pages (``web.pages.learning``) share: the labels of kinds and contributory factors, the
signed-in person's partnership's learning set-up (or the page saying why there is none), who leads and who may see
the list, one learning event of the person's partnership, events' themes."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sqlmodel import Session, select

from safeguarding.accounts import Principal
from safeguarding.pinned import Pinned, current
from safeguarding.tables import Case, LearningTag
from safeguarding.themes import FACTORS, LEARNING_KINDS
from web.deps import engine_of
from web.errors import ApiError, error_page

KIND_LABELS: dict[str, str] = dict(LEARNING_KINDS)
KIND_SHORT: dict[str, str] = {"harm": "Harm", "near_miss": "Near miss", "good_practice": "Good practice",
                              "future_risk": "Future risk", "escalation": "Escalation"}
FACTOR_LABELS: dict[str, str] = dict(FACTORS)
TEXT_MAX = 5000
SUMMARY_CHARS = 240


def short(text: str, limit: int = SUMMARY_CHARS) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def own_facts(request: Request, principal: Principal) -> Pinned | Response:
    """The signed-in person's partnership's learning set-up, or the page that says why there is none."""
    if principal.partnership_id is None:
        return error_page(request, 404, "Learning events are recorded and read by the people of a partnership.",
                          links=[{"text": "See learning across every partnership", "href": "/national/learning"}]
                          if principal.is_national else None)
    facts = current(engine_of(request), principal.partnership_id)
    if facts is None:
        return error_page(request, 404, "Your partnership has no arrangements yet.")
    if not facts.learning_lead_role:
        return error_page(request, 404, "Your partnership has not set up everyday learning in its arrangements yet "
                                        "(it needs a learning lead role). Ask your partnership’s business manager.",
                          heading="Everyday learning is not set up")
    return facts


def shown(facts: Pinned) -> dict[str, Any]:
    """What the learning templates read as ``facts``."""
    return {"partnership_name": facts.name, "lead_title": facts.learning_lead_title,
            "allow_anonymous": facts.allow_anonymous_reports}


def is_lead(facts: Pinned, principal: Principal) -> bool:
    return principal.partnership_id == facts.partnership_id and principal.user_ref in facts.learning_leads


def may_list(facts: Pinned, principal: Principal) -> bool:
    return is_lead(facts, principal) or (principal.kind == "partnership_lead"
                                          and principal.partnership_id == facts.partnership_id)


def learning_case(request: Request, principal: Principal, case_id: str) -> Case:
    with Session(engine_of(request)) as session:
        case = session.get(Case, case_id)
    if case is None or case.process != "learning" or principal.partnership_id != case.partnership_id:
        raise ApiError(404, "not_found", f"no learning event ‘{case_id}’")
    return case


def tags_of(session: Session, case_ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if case_ids:
        for case_id, tag in session.execute(select(LearningTag.case_id, LearningTag.tag).where(
                LearningTag.case_id.in_(case_ids), LearningTag.tag_type == "theme")).all():
            out.setdefault(case_id, []).append(tag)
    return out
