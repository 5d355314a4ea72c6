"""Reading cases and tasks from the read model (never from Temporal): a case with its tasks and timeline, lists,
and the tasks a person may do."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Any

from sqlalchemy import Row, and_, bindparam, or_
from sqlalchemy import select as sql_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from safeguarding.accounts import Principal
from safeguarding.case_access import json_or_none, readable_cases_where, visible_case
from safeguarding.case_records import NATIONAL_PANEL, TaskResult
from safeguarding.cross_boundary import contributed_cases, contributor_role
from safeguarding.tables import Case, CaseEvent, Task, TaskCandidate

_tasks, _events = Task.__table__, CaseEvent.__table__


def case_summary(case: Case) -> dict[str, Any]:
    return {
        "id": case.id, "partnership_id": case.partnership_id, "case_ref": case.case_ref, "process": case.process,
        "category": case.category, "status": case.status, "stage": case.stage,
        "arrangements_version": case.arrangements_version, "aware_date": case.aware_date,
        "notification_due": case.notification_due, "notification_sent_on": case.notification_sent_on,
        "notification_days_late": case.notification_days_late,
        "rapid_review_required": case.rapid_review_required, "rapid_review_due": case.rapid_review_due,
        "rapid_review_submitted_on": case.rapid_review_submitted_on,
        "rapid_review_days_late": case.rapid_review_days_late, "lcspr_decision": case.lcspr_decision,
        "panel_response": case.panel_response, "overdue_tasks": case.overdue_tasks,
        "opened_at": case.opened_at, "closed_at": case.closed_at,
    }


def task_out(task: Task, today: date | None = None) -> dict[str, Any]:
    return {
        "case_id": task.case_id, "key": task.key, "type": task.type, "title": task.title, "form": task.form,
        "for": task.candidate_label, "candidate_role": task.candidate_role, "status": task.status,
        "due_date": task.due_date, "follow_up_date": task.follow_up_date, "overdue": task.overdue,
        "claimed_by": task.claimed_by, "completed_by": task.completed_by, "completed_at": task.completed_at,
        "days_late": task.days_late, "data": json_or_none(task.data),
    }


# A case's tasks and timeline, in page order (the case page adds the names of the people they name to these)
CASE_TASKS = (sql_select(_tasks).where(_tasks.c.case_id == bindparam("case_id"))
              .order_by(_tasks.c.opened_at, _tasks.c.key))
CASE_EVENTS = sql_select(_events).where(_events.c.case_id == bindparam("case_id")).order_by(_events.c.seq)


def load_case(engine: Engine, principal: Principal, case_id: str) -> tuple[Row, list[Row], list[Row]]:
    """One case with its tasks and timeline, if the principal may see it (else 404, never 403: no probing).

    Rows of ``case``, ``task`` and ``case_event``: read-only, with the columns as attributes (``case.case_ref``)."""
    with engine.connect() as conn:
        case = visible_case(conn, principal, case_id)
        tasks = conn.execute(CASE_TASKS, {"case_id": case_id}).all()
        events = conn.execute(CASE_EVENTS, {"case_id": case_id}).all()
    return case, list(tasks), list(events)


def case_detail(engine: Engine, principal: Principal, case_id: str) -> dict[str, Any]:
    case, tasks, events = load_case(engine, principal, case_id)
    return {**case_summary(case), "children": json_or_none(case.children), "summary": case.summary,
            "agencies": json_or_none(case.agencies), "opened_by": case.opened_by, "plan": json_or_none(case.plan),
            "tasks": [task_out(t) for t in tasks],
            "timeline": [{"at": e.at, "actor": e.actor, "kind": e.kind, "task": e.task_key, "message": e.message}
                         for e in events]}


def list_cases(engine: Engine, principal: Principal, *, status: str | None = None, overdue: bool | None = None,
               limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    if principal.partnership_id is None and not principal.is_admin:
        return []
    query = select(Case)
    if not principal.is_admin:
        with engine.connect() as conn:
            readable = readable_cases_where(conn, principal, principal.partnership_id)
        own = Case.partnership_id == principal.partnership_id
        if readable is not None:  # the rest of the partnership does not see the case at all (may_read_case)
            own = and_(own, readable)
        # and the other partnerships' cases of a child who lives here, that this person contributes to
        query = query.where(or_(own, contributed_cases(principal)))
    if status:
        query = query.where(Case.status == status)
    if overdue is not None:
        query = query.where((Case.overdue_tasks > 0) if overdue else (Case.overdue_tasks == 0))
    with Session(engine) as session:
        rows = session.exec(query.order_by(Case.opened_at.desc()).offset(offset).limit(limit))
        return [case_summary(c) for c in rows]


_own_task = Task.__table__.alias("own_task")


def my_tasks_where(national: bool, by_overdue: bool) -> list[Any]:
    """Conditions on ``task`` for the tasks a principal may do (the inbox and the API share them).

    Their values are bound parameters (``my_tasks_params``), so a statement built on them once serves everyone:
    ``national`` for the national body (the Panel's tasks), ``by_overdue`` to filter on being overdue.

    A partnership's people: the open (or done) tasks they are a candidate for or have claimed, of their own
    partnership, and those another partnership's case gives them as where the child lives. Written as the ids of
    two index searches (by partnership and status; by contributor role and status), not as one ``OR`` of the two:
    with that ``OR`` SQLite, which keeps no statistics unless asked, read every task of that status in every
    partnership (20,000 rows for 25 in ``benchmarks/pages_cpu.py``'s fill; ``tests/test_query_plans.py``)."""
    if national:
        where = [Task.status == bindparam("mine_status"), Task.candidate_role == NATIONAL_PANEL]
    else:
        t = _own_task.c
        mine = or_(t.id.in_(sql_select(TaskCandidate.task_id).where(TaskCandidate.user_ref == bindparam("mine_user"))),
                   t.claimed_by == bindparam("mine_user"))
        own = sql_select(t.id).where(t.partnership_id == bindparam("mine_partnership"),
                                     t.status == bindparam("mine_status"), mine)
        # the tasks another partnership's case gives this one as where the child lives
        given = sql_select(t.id).where(t.candidate_role == bindparam("mine_contributor_role"),
                                       t.partnership_id != bindparam("mine_partnership"),
                                       t.status == bindparam("mine_status"), mine)
        where = [Task.id.in_(own.union_all(given))]
    if by_overdue:
        where.append(Task.overdue == bindparam("mine_overdue"))
    return where


def my_tasks_params(principal: Principal, status: str, overdue: bool | None) -> dict[str, Any]:
    """The values for ``my_tasks_where(principal.is_national, overdue is not None)``."""
    params: dict[str, Any] = {"mine_status": status}
    if not principal.is_national:
        params.update(mine_user=principal.user_ref, mine_partnership=principal.partnership_id,
                      mine_contributor_role=contributor_role(principal.partnership_id or ""))
    if overdue is not None:
        params["mine_overdue"] = overdue
    return params


def my_tasks(engine: Engine, principal: Principal, *, status: str = "open", overdue: bool | None = None,
             limit: int = 200, offset: int = 0) -> list[dict[str, Any]]:
    """Tasks the principal may do: theirs by role (or, for the national body, the Panel's), soonest due first."""
    query = select(Task).where(*my_tasks_where(principal.is_national, overdue is not None))
    with Session(engine) as session:
        rows = session.exec(query.order_by(Task.due_date.is_(None), Task.due_date, Task.opened_at, Task.id)
                            .offset(offset).limit(limit), params=my_tasks_params(principal, status, overdue))
        return [task_out(t) for t in rows]


def result_out(result: TaskResult) -> dict[str, Any]:
    return asdict(result)
