"""Cross-boundary cases (issue 16, point 3): an incident whose child lives in another area.

The notifying partnership (where the incident happened) leads the case. Where the child lives is recorded: a
partnership that uses this service (``resident_partnership_id``), or the name of an area that does not
(``resident_area_name``). A resident partnership on the service is invited as a contributor: the rapid review
gives it its own agency summary task, for the members of its own ``rapid_review.coordinator_role`` (read from its
current arrangements when the case opens and carried in the workflow input: a workflow reads nothing), and its
people get read access to that case only:

* ``resident_area``: intake's check of the resident area, and what to put in ``IncidentInput``;
* ``contributor_may_read``: whether someone of the resident partnership may read one case;
* ``contributed_cases`` / ``contributor_tasks``: the same as SQL conditions on ``case`` and ``task`` (lists, inbox).

The read model records both partnerships of such a case in ``case_partnership`` (roles ``lead`` and ``resident``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, false, func, or_, select, true
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from safeguarding.accounts import Principal
from safeguarding.case_records import CONTRIBUTOR
from safeguarding.incident_categories import category_problems
from safeguarding.tables import ArrangementsVersion, Case, CasePartnership, Partnership, Task, TaskCandidate

__all__ = ["ResidentArea", "contributed_cases", "contributor_may_read", "contributor_role", "contributor_tasks",
           "intake_fields", "resident_area"]

AREA_NAME_MAX = 200


@dataclass(frozen=True)
class ResidentArea:
    """Where the child lives, as the case records it."""

    partnership_id: str | None  # the resident partnership, when it uses this service
    area_name: str  # its name, or the area's name as typed
    contributor: dict[str, Any] | None = field(default=None)  # captured for the workflow (None: nobody invited)

    def input_fields(self) -> dict[str, Any]:
        """The ``IncidentInput`` keyword arguments: ``IncidentInput(..., **area.input_fields())``."""
        return {"resident_partnership_id": self.partnership_id, "resident_area_name": self.area_name,
                "resident_contributor": self.contributor}


def contributor_role(partnership_id: str) -> str:
    """The candidate role of a resident partnership's tasks in another partnership's case."""
    return f"{CONTRIBUTOR}{partnership_id}"


def _current_doc(conn: Connection, partnership_id: str) -> dict[str, Any] | None:
    av = ArrangementsVersion.__table__.c
    document = conn.execute(select(av.document).where(av.partnership_id == partnership_id)
                            .order_by(av.number.desc()).limit(1)).scalar()
    return json.loads(document) if document else None


def _contributor(partnership_id: str, name: str, doc: dict[str, Any] | None) -> dict[str, Any] | None:
    role_id = ((doc or {}).get("rapid_review") or {}).get("coordinator_role")
    role = next((r for r in (doc or {}).get("roles", []) if r.get("id") == role_id), None)
    if role is None:
        return None
    return {"partnership_id": partnership_id, "name": name, "role": role_id,
            "role_title": role.get("title", role_id), "members": sorted(set(role.get("members", [])))}


def resident_area(conn: Connection, lead_id: str, partnership_id: str | None = None,
                  area_name: str | None = None) -> tuple[ResidentArea | None, list[tuple[str, str]]]:
    """Check where the child lives and say what to record: (area, []) or (None, [(field, message), ...]).

    (None, []) when neither is given: the child lives in the notifying partnership's own area. A partnership must
    be on this service and not the notifying one; an area name (an area not on the service) must not be the name
    of a partnership that is on it (choose that partnership instead, so it is invited to contribute)."""
    partnership_id = (partnership_id or "").strip() or None
    area_name = " ".join((area_name or "").split()) or None
    if partnership_id is None and area_name is None:
        return None, []
    p = Partnership.__table__.c
    if partnership_id is not None:
        if partnership_id == lead_id:
            return None, [("resident_partnership_id", "The child lives in your own area: leave where the child "
                                                      "lives empty")]
        name = conn.execute(select(p.name).where(p.id == partnership_id)).scalar()
        if name is None:
            return None, [("resident_partnership_id", "Choose a partnership that uses this service, or type the "
                                                      "name of the area where the child lives")]
        return ResidentArea(partnership_id, name, _contributor(partnership_id, name,
                                                               _current_doc(conn, partnership_id))), []
    if len(area_name) > AREA_NAME_MAX:
        return None, [("resident_area_name", f"Enter the area's name in {AREA_NAME_MAX} characters or fewer")]
    found = conn.execute(select(p.id, p.name).where(func.lower(p.name) == area_name.lower())).first()
    if found is not None and found.id == lead_id:
        return None, [("resident_area_name", "The child lives in your own area: leave where the child lives empty")]
    if found is not None:
        return None, [("resident_area_name", f"{found.name} uses this service: choose it from the list, so it is "
                                             "invited to contribute")]
    return ResidentArea(None, area_name, None), []


def intake_fields(conn: Connection, doc: dict[str, Any], lead_id: str, *, category: str,
                  age_at_incident: int | None = None, resident_partnership_id: str | None = None,
                  resident_area_name: str | None = None) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Issue 16's part of recording an incident, in one call for the intake: the category's age rule
    (``incident_categories.category_problems``) and where the child lives (``resident_area``). Returns the extra
    ``IncidentInput`` keyword arguments and the problems as (field, message), fields named as the intake's
    (``category``, ``age_at_incident``, ``resident_partnership_id``, ``resident_area_name``)."""
    problems = [p for p in category_problems(doc, category, age_at_incident) if p[0] != "category"]
    area, area_problems = resident_area(conn, lead_id, resident_partnership_id, resident_area_name)
    problems += area_problems
    extra: dict[str, Any] = {"age_at_incident": age_at_incident}
    if area is not None:
        extra.update(area.input_fields())
    return extra, problems


def _resident_of(case_id: Any, partnership_id: str) -> Any:
    cp = CasePartnership.__table__.c
    return select(cp.case_id).where(cp.case_id == case_id, cp.partnership_id == partnership_id,
                                    cp.role == "resident")


def _contributor_work(principal: Principal) -> Any:
    """Ids of the cases where the person may do, has claimed or completed their partnership's contributor tasks."""
    t, c = Task.__table__.c, TaskCandidate.__table__.c
    role = contributor_role(principal.partnership_id or "")
    candidate = select(t.case_id).join(TaskCandidate.__table__, c.task_id == t.id).where(
        t.candidate_role == role, c.user_ref == principal.user_ref)
    did = select(t.case_id).where(t.candidate_role == role, or_(t.claimed_by == principal.user_ref,
                                                                t.completed_by == principal.user_ref))
    return candidate.union(did)


def _may_contribute(principal: Principal, case_partnership_id: str | None) -> bool:
    return (not principal.is_national and not principal.is_admin and bool(principal.partnership_id)
            and principal.partnership_id != case_partnership_id)


def contributor_may_read(conn: Connection, principal: Principal, case: Any) -> bool:
    """Whether someone of the partnership where the child lives may read this case (and only this one): the case
    records their partnership as the resident one, and they are its partnership lead or one of its people the
    contributor's task is for (or who claimed or completed it). Everyone else: False (the lead's own rules apply)."""
    if not _may_contribute(principal, case.partnership_id):
        return False
    if conn.execute(_resident_of(case.id, principal.partnership_id)).first() is None:
        return False
    if principal.kind == "partnership_lead":
        return True
    work = _contributor_work(principal).subquery()
    return conn.execute(select(work.c.case_id).where(work.c.case_id == case.id).limit(1)).first() is not None


def contributed_cases(principal: Principal) -> ColumnElement[bool]:
    """``contributor_may_read`` as a condition on ``case``: the other partnerships' cases this person contributes to
    (for lists, OR-ed with the partnership's own condition)."""
    if principal.is_national or principal.is_admin or not principal.partnership_id:
        return false()
    cp = CasePartnership.__table__.c
    resident = Case.id.in_(select(cp.case_id).where(cp.partnership_id == principal.partnership_id,
                                                    cp.role == "resident"))
    whose = true() if principal.kind == "partnership_lead" else Case.id.in_(_contributor_work(principal))
    return and_(Case.partnership_id != principal.partnership_id, resident, whose)


def contributor_tasks(principal: Principal) -> ColumnElement[bool]:
    """A condition on ``task``: the tasks of other partnerships' cases given to this person's partnership as the
    area where the child lives, that this person may do (a candidate) or has claimed (for "my tasks")."""
    if principal.is_national or principal.is_admin or not principal.partnership_id:
        return false()
    mine = select(TaskCandidate.task_id).where(TaskCandidate.user_ref == principal.user_ref)
    return and_(Task.candidate_role == contributor_role(principal.partnership_id),
                or_(Task.id.in_(mine), Task.claimed_by == principal.user_ref))
