"""Who may read a case: the one rule (``may_read_case``), its SQL form for lists (``readable_cases_where``), and
the partnership's current arrangements for one of its own people."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Row, and_, bindparam, false, or_
from sqlalchemy import select as sql_select
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from safeguarding.accounts import Principal
from safeguarding.cross_boundary import contributor_may_read
from safeguarding.pinned import Ladder, current
from safeguarding.refusals import ApiError
from safeguarding.tables import Case, LearningReporter, Task, TaskCandidate
from safeguarding.versions import VersionNotFoundError, document_of, get_version

_cases, _tasks = Case.__table__, Task.__table__
_candidates = TaskCandidate.__table__
_reporters = LearningReporter.__table__
_CASE = sql_select(_cases).where(_cases.c.id == bindparam("case_id"))


def json_or_none(text: str) -> Any:
    return json.loads(text) if text else None


def check_arrangements_readable(principal: Principal, partnership_id: str) -> None:
    """Who may read a partnership's arrangements, else 404 (no probing). Arrangements are published documents with
    no personal data: the national body and scrutineers may read them too."""
    if not (principal.can_read(partnership_id) or principal.is_national or principal.kind == "scrutineer"):
        raise ApiError(404, "not_found", f"no partnership ‘{partnership_id}’")


def current_arrangements(engine: Engine, principal: Principal, partnership_id: str):
    """The partnership's current arrangements version and document, for one of its own people; else 404 (the
    same answer for a partnership that does not exist and one that is not yours: no probing)."""
    with Session(engine) as session:
        try:
            version = get_version(session, partnership_id)
        except VersionNotFoundError:
            version = None
    if version is None or principal.partnership_id != partnership_id:
        raise ApiError(404, "not_found", f"no partnership ‘{partnership_id}’")
    return version, document_of(version)



def _reader_roles(conn: Connection, partnership_id: str) -> tuple[frozenset[str], Mapping[str, Ladder]]:
    """(who reads every case of the partnership by role, its ladders: who reads each one's escalations), from the
    partnership's CURRENT arrangements: whoever holds a role now reads by it (someone who has left the role no
    longer does, and a newly appointed scrutineer does at once)."""
    found = current(conn.engine, partnership_id, conn)
    return (found.case_readers, found.ladders) if found is not None else (frozenset(), {})


def _involved_in(principal: Principal):
    """Ids of the cases whose tasks the person may do, has claimed or has completed (a subquery)."""
    candidate = sql_select(_tasks.c.case_id).join(_candidates, _candidates.c.task_id == _tasks.c.id).where(
        _candidates.c.user_ref == principal.user_ref)
    did = sql_select(_tasks.c.case_id).where(or_(_tasks.c.claimed_by == principal.user_ref,
                                                 _tasks.c.completed_by == principal.user_ref))
    return candidate.union(did)


def reads_every_case(conn: Connection, principal: Principal, partnership_id: str) -> bool:
    """Administrators; the partnership's leads and scrutineers; the holders of its scrutineer and re-identification
    key roles (``may_read_case``)."""
    if principal.is_admin:
        return True
    if principal.partnership_id != partnership_id:
        return False
    if principal.kind in ("partnership_lead", "scrutineer"):
        return True
    return principal.user_ref in _reader_roles(conn, partnership_id)[0]


def may_read_case(conn: Connection, principal: Principal, case: Any) -> bool:
    """THE rule for who may read a case's details (its children, summary, subject, timeline, tasks' answers and
    files). Pages, the JSON API and file downloads all ask here (lists through ``readable_cases_where``, its SQL).

    Within the case's partnership, the reader must be one of:

    * a partnership lead (``partnership_lead``), or an administrator (any partnership);
    * the independent scrutineer: an account of kind ``scrutineer``, or a member of the arrangements'
      ``independent_scrutiny.scrutineer_role``; and a member of ``data_protection.reidentification_key_role`` (the
      business unit that holds the re-identification key);
    * a member of an agency involved in the case: the account's agency is one of the case's agencies (an incident's
      agencies involved, an escalation's agencies named, a learning event's agencies), or of the incident a local
      review was opened from;
    * someone the case's work is given to: a candidate of any of its tasks (by role), or whoever claimed or
      completed one; and whoever opened it (an escalation's raiser; a learning event's named reporter, who is
      known only to this database, never to Temporal);
    * for an escalation, the members of its ladder's ``business_unit_role`` and ``scrutineer_role``.

    Roles are read from the partnership's current arrangements (who holds a role now). Anyone else, including
    the rest of the partnership and the national body, gets 404 on the case, its tasks and its files, and does not
    see it in lists. The national body reaches its own tasks only by the case's national reference
    (``safeguarding.national``). The partnership where an incident's child lives, when it uses this service, reads
    that case through ``cross_boundary.contributor_may_read``. Learning events keep their own no-blame rules on the
    learning pages as well."""
    if principal.is_admin:
        return True
    if principal.is_national:
        return False
    if principal.partnership_id != case.partnership_id:  # the area where the child lives: that case only
        return contributor_may_read(conn, principal, case)
    if principal.kind in ("partnership_lead", "scrutineer"):
        return True
    if principal.user_ref and case.opened_by == principal.user_ref:
        return True
    if principal.agency_id:
        agencies = set(json_or_none(case.agencies) or [])
        if principal.agency_id in agencies:
            return True
        if case.parent_case_id:
            parent = conn.execute(sql_select(_cases.c.agencies).where(_cases.c.id == case.parent_case_id)).scalar()
            if principal.agency_id in set(json_or_none(parent or "") or []):
                return True
    everyone, ladders = _reader_roles(conn, case.partnership_id)
    if principal.user_ref in everyone:
        return True
    if case.process == "learning" and conn.execute(sql_select(_reporters.c.case_id).where(
            _reporters.c.case_id == case.id, _reporters.c.user_ref == principal.user_ref)).first() is not None:
        return True
    ladder = ladders.get(case.ladder_id or "")
    if case.process == "escalation" and ladder is not None and principal.user_ref in ladder.readers:
        return True
    involved = _involved_in(principal).subquery()
    return conn.execute(sql_select(involved.c.case_id).where(involved.c.case_id == case.id).limit(1)).first() \
        is not None


def readable_cases_where(conn: Connection, principal: Principal, partnership_id: str) -> Any:
    """``may_read_case`` as a SQL condition on ``case`` (for lists), or None when the person reads every case."""
    if reads_every_case(conn, principal, partnership_id):
        return None
    if principal.is_national or principal.partnership_id != partnership_id:
        return false()
    _, ladders = _reader_roles(conn, partnership_id)
    mine = [lid for lid, ladder in ladders.items() if principal.user_ref in ladder.readers]
    conditions = [_cases.c.opened_by == principal.user_ref, _cases.c.id.in_(_involved_in(principal)),
                  _cases.c.id.in_(sql_select(_reporters.c.case_id).where(_reporters.c.user_ref == principal.user_ref))]
    if mine:
        conditions.append(and_(_cases.c.process == "escalation", _cases.c.ladder_id.in_(mine)))
    if principal.agency_id:
        named = _cases.c.agencies.contains(json.dumps(principal.agency_id), autoescape=True)
        parent = _cases.alias("parent_case")
        conditions += [named, _cases.c.parent_case_id.in_(sql_select(parent.c.id).where(
            parent.c.agencies.contains(json.dumps(principal.agency_id), autoescape=True)))]
    return or_(*conditions)


def readable_case(engine: Engine, principal: Principal, case_id: str, *, what: str = "case",
                  processes: tuple[str, ...] | None = None) -> Row:
    """The ``case`` row if the principal may read it (and it is one of ``processes``), else 404: no probing."""
    with engine.connect() as conn:
        return visible_case(conn, principal, case_id, what=what, processes=processes)


def visible_case(conn: Connection, principal: Principal, case_id: str, *, what: str = "case",
                 processes: tuple[str, ...] | None = None) -> Row:
    """The ``case`` row, if the principal may read it (``may_read_case``; else 404, as ``load_case``), on an open
    connection: the case page reads the rest of the case on the same one."""
    case = conn.execute(_CASE, {"case_id": case_id}).first() if len(case_id) <= 140 else None
    if (case is None or (processes is not None and case.process not in processes)
            or not may_read_case(conn, principal, case)):
        raise ApiError(404, "not_found", f"no {what} ‘{case_id}’")
    return case
