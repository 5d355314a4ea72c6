"""The inbox's statement searches by index on SQLite, where no statistics guide the planner (the embedded default
never runs ANALYZE): a person's open tasks are found through their partnership (or the contributor role a
cross-boundary case gives it) and their candidacy, never by reading every open task of every partnership.

Which tasks come back is tested with the pages and the API (tests/test_cross_boundary_web.py, test_pages_reviewer.py);
speed is measured by benchmarks/pages_cpu.py. Here: the plan that decides it, which does not depend on the data."""

from __future__ import annotations

import pytest

from safeguarding.case_queries import my_tasks_params, my_tasks_where
from safeguarding.tables import Task
from tests.support.workflow_driver import principal as principal_of
from web.views.inbox import _inbox_statements


def plan_of(engine, statement, params) -> list[str]:
    compiled = statement.compile(engine)
    values = compiled.construct_params(params)
    with engine.connect() as conn:
        return [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}",
                                                        tuple(values[name] for name in compiled.positiontup))]


@pytest.mark.parametrize("overdue", [None, True])
def test_a_partnerships_inbox_searches_by_partnership_and_candidacy_not_by_status(seeded_engine, overdue):
    principal = principal_of(seeded_engine, "u-rv-review-officer")
    page, _count = _inbox_statements(False, overdue is not None)
    params = {**my_tasks_params(principal, "open", overdue), "page_offset": 0, "page_size": 25}
    plan = plan_of(seeded_engine, page, params)
    searches = [step for step in plan if step.startswith(("SEARCH", "SCAN"))]
    assert not any("ix_task_status" in step for step in searches), plan  # every open task, of every partnership
    assert any("ix_task_partnership_status_due (partnership_id=? AND status=?)" in step for step in searches), plan
    assert any("ix_task_candidate_role_status (candidate_role=? AND status=?)" in step for step in searches), plan
    assert any("ix_task_candidate_user_ref (user_ref=?)" in step for step in searches), plan


def test_the_apis_task_list_uses_the_same_searches(seeded_engine):
    from sqlmodel import select

    principal = principal_of(seeded_engine, "u-rv-review-officer")
    query = select(Task).where(*my_tasks_where(False, False)).limit(200)
    plan = plan_of(seeded_engine, query, my_tasks_params(principal, "open", None))
    assert not any("ix_task_status" in step for step in plan), plan
    assert any("ix_task_partnership_status_due" in step for step in plan), plan
