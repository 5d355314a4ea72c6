"""The audit log, on SQLite and PostgreSQL: the database refuses changing or removing an entry, the hash chain
finds what was done behind the triggers' back, concurrent writers keep one chain, and every applied case action
gets exactly one entry, written by the read-model sync with its timeline event (no web request needed)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DatabaseError
from sqlmodel import Session

from activities.read_model import apply_snapshot
from safeguarding import audit_log
from safeguarding.db import make_engine, upgrade
from safeguarding.tables import AuditEntry, CaseEvent
from tests.support.read_model_snapshots import CASE, SECRET, event, setup, snapshot, task

AUDIT = AuditEntry.__table__


def entries(engine, **where) -> list:
    query = select(AUDIT).order_by(AUDIT.c.seq)
    for name, value in where.items():
        query = query.where(AUDIT.c[name] == value)
    with engine.connect() as conn:
        return list(conn.execute(query).mappings())


def write(engine, n: int, *, who: str = "u-a") -> list[int]:
    for i in range(n):
        audit_log.record_for(engine, who, "case.view", partnership_id="rv", case_id=CASE, detail=f"view {i}")
    return [row["id"] for row in entries(engine)]


def behind_the_triggers_back(engine, statement: str, **params) -> None:
    """What someone with the database's owner rights could do: drop the triggers, then change the table."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("DROP TRIGGER audit_entry_no_change ON audit_entry"))
        else:
            conn.execute(text("DROP TRIGGER audit_entry_no_update"))
            conn.execute(text("DROP TRIGGER audit_entry_no_delete"))
        conn.execute(text(statement), params)


def sgflow_audit_verify(engine) -> subprocess.CompletedProcess:
    """`sgflow audit verify` as its own process, on this database."""
    env = {**os.environ, "DATABASE_URL": engine.url.render_as_string(hide_password=False)}
    return subprocess.run([sys.executable, "-c", "from sgflow.audit import audit_app; audit_app()", "verify"],
                          env=env, capture_output=True, text=True, timeout=60)


def test_the_database_refuses_to_change_or_remove_an_entry(engine):
    ids = write(engine, 3)
    before = entries(engine)
    for statement in ("UPDATE audit_entry SET detail = 'nothing happened' WHERE id = :id",
                      "UPDATE audit_entry SET actor = 'someone-else'",
                      "DELETE FROM audit_entry WHERE id = :id", "DELETE FROM audit_entry"):
        with pytest.raises(DatabaseError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement), {"id": ids[1]})
    with Session(engine) as session:  # nor through the ORM
        row = session.get(AuditEntry, ids[0])
        row.detail = "edited"
        with pytest.raises(DatabaseError, match="append-only"):
            session.commit()
    if engine.dialect.name == "postgresql":
        with pytest.raises(DatabaseError, match="append-only"), engine.begin() as conn:
            conn.execute(text("TRUNCATE audit_entry"))
    assert entries(engine) == before
    assert audit_log.verify(engine) is None


def test_verify_and_the_command_name_an_entry_altered_behind_the_triggers_back(engine):
    ids = write(engine, 5)
    intact = sgflow_audit_verify(engine)
    assert intact.returncode == 0, intact.stderr
    assert "5 entries" in intact.stdout
    behind_the_triggers_back(engine, "UPDATE audit_entry SET detail = 'nothing to see' WHERE id = :id", id=ids[2])
    problem = audit_log.verify(engine)
    assert (problem.row_id, problem.seq) == (ids[2], 3) and "altered" in problem.reason
    broken = sgflow_audit_verify(engine)
    assert broken.returncode == 1
    assert f"audit entry {ids[2]} (position 3)" in broken.stderr and "altered" in broken.stderr
    assert len(broken.stderr.strip().splitlines()) == 1 and "Traceback" not in broken.stderr


def test_verify_finds_a_deleted_entry(engine):
    ids = write(engine, 5)
    behind_the_triggers_back(engine, "DELETE FROM audit_entry WHERE id = :id", id=ids[1])
    problem = audit_log.verify(engine)
    assert (problem.row_id, problem.seq) == (ids[2], 3) and "position 2" in problem.reason
    assert "missing" in problem.reason


def test_verify_finds_a_reordered_chain(engine):
    ids = write(engine, 4)
    behind_the_triggers_back(engine, "UPDATE audit_entry SET seq = -seq WHERE id IN (:a, :b)", a=ids[1], b=ids[2])
    with engine.begin() as conn:  # swap the places of entries 2 and 3
        conn.execute(text("UPDATE audit_entry SET seq = 2 WHERE id = :id"), {"id": ids[2]})
        conn.execute(text("UPDATE audit_entry SET seq = 3 WHERE id = :id"), {"id": ids[1]})
    problem = audit_log.verify(engine)
    assert problem.row_id == ids[2] and "does not follow" in problem.reason


def test_verify_finds_an_entry_forged_with_a_recomputed_hash_in_the_middle(engine):
    ids = write(engine, 3)
    forged = dict(entries(engine)[1], detail="forged")
    forged["row_hash"] = audit_log.row_hash(forged)
    behind_the_triggers_back(engine, "UPDATE audit_entry SET detail = 'forged', row_hash = :h WHERE id = :id",
                             h=forged["row_hash"], id=ids[1])
    problem = audit_log.verify(engine)  # its own hash is right, but the next entry no longer follows it
    assert problem.row_id == ids[2] and "does not follow" in problem.reason


def test_concurrent_writers_keep_one_chain(engine):
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def through_the_helper(n: int):
        start.wait()
        for i in range(15):
            audit_log.record_for(engine, f"u-{n}", "case.view", detail=str(i))

    def in_own_transactions(n: int):  # no process-level lock: the database's lock alone orders them
        start.wait()
        for i in range(15):
            with engine.begin() as conn:
                conn.execute(text("SELECT 1"))
                audit_log.record(conn, f"u-{n}", "case.view", detail=str(i))

    def through_the_orm(n: int):
        start.wait()
        for i in range(15):
            with Session(engine) as session:
                session.add(AuditEntry(actor=f"u-{n}", action="case.view", outcome="ok", detail=str(i)))
                session.add(AuditEntry(actor=f"u-{n}", action="file.download", outcome="ok", detail=str(i)))
                session.commit()

    def run(target, n):
        try:
            target(n)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(target, n))
               for n, target in enumerate((through_the_helper, through_the_helper, in_own_transactions,
                                           in_own_transactions, through_the_orm, through_the_orm))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    rows = entries(engine)
    assert len(rows) == 15 * 4 + 30 * 2
    assert [row["seq"] for row in rows] == list(range(1, len(rows) + 1))
    assert audit_log.check(engine) == audit_log.Verified(len(rows), None)


def test_entries_from_before_the_migration_are_chained_by_it(db_url):
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0006")
        with engine.begin() as conn:
            for i in range(3):
                conn.execute(text("INSERT INTO audit_entry (at, actor, action, outcome, detail) "
                                  "VALUES (:at, 'u-a', 'sign_in', 'ok', :d)"),
                             {"at": f"2026-11-0{i + 1} 09:00:00", "d": f"old {i}"})
        upgrade(engine)
        rows = entries(engine)
        assert [(row["seq"], row["detail"]) for row in rows] == [(1, "old 0"), (2, "old 1"), (3, "old 2")]
        assert rows[0]["prev_hash"] == audit_log.GENESIS and rows[1]["prev_hash"] == rows[0]["row_hash"]
        audit_log.record_for(engine, "u-b", "sign_in")
        assert audit_log.check(engine) == audit_log.Verified(4, None)
        with pytest.raises(DatabaseError, match="append-only"), engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_entry"))
    finally:
        engine.dispose()


# --- applied actions: written by the read-model sync, with their event, once ---------------------------------


def human(seq: int, kind: str, actor: str, task_key: str | None = "summary") -> dict:
    return {**event(seq, kind, task_key), "actor": actor}


def test_the_sync_writes_one_entry_per_applied_action_however_often_it_runs(engine):
    setup(engine)
    first = snapshot(1, stage="Notification", tasks=[task("summary")],
                     events=[human(1, "case_opened", "u-a", None), event(2)])
    apply_snapshot(engine, first, SECRET)
    done = task("summary", status="done", completed_by="u-b", completed_at="2026-05-24T10:00:00+00:00")
    second = snapshot(2, stage="Meeting", tasks=[done], events=[human(3, "task_claimed", "u-b"),
                                                                human(4, "task_completed", "u-b")])
    for _ in range(3):  # the activity retried, then sent again whole
        apply_snapshot(engine, second, SECRET)
    whole = snapshot(2, stage="Meeting", tasks=[done], events=[
        human(1, "case_opened", "u-a", None), event(2), human(3, "task_claimed", "u-b"),
        human(4, "task_completed", "u-b")])
    apply_snapshot(engine, whole, SECRET)
    apply_snapshot(engine, whole, SECRET, restore=True)  # sgflow rebuild
    rows = entries(engine)
    assert [(r["event_id"], r["actor"], r["action"], r["detail"]) for r in rows] == [
        (f"{CASE}#1", "u-a", "incident.open", ""), (f"{CASE}#3", "u-b", "task.claim", "summary"),
        (f"{CASE}#4", "u-b", "task.complete", "summary")]  # the system's own event (#2) is not an action
    assert all((r["case_id"], r["partnership_id"], r["outcome"]) == (CASE, "rv", "ok") for r in rows)
    assert audit_log.verify(engine) is None


def test_an_entry_is_written_in_the_same_transaction_as_its_event(engine, monkeypatch):
    import activities.read_model as read_model

    setup(engine)
    apply_snapshot(engine, snapshot(1, stage="Notification", tasks=[task("summary")], events=[event(1)]), SECRET)
    claimed = snapshot(2, stage="Notification", tasks=[task("summary", claimed_by="u-a")],
                       events=[human(2, "task_claimed", "u-a")])

    def crash(*_args, **_kw):
        raise RuntimeError("the worker died mid-write")

    for step in ("_queue_messages", "record_events"):  # before the audit entry, and while writing it
        with monkeypatch.context() as patch:
            patch.setattr(read_model, step, crash)
            with pytest.raises(RuntimeError):
                apply_snapshot(engine, claimed, SECRET)
        with Session(engine) as session:
            assert session.exec(select(func.count()).select_from(CaseEvent)).one()[0] == 1  # the claim is not applied
        assert entries(engine) == []  # ... and not audited
    apply_snapshot(engine, claimed, SECRET)  # the activity's retry: both
    assert [(r["event_id"], r["action"]) for r in entries(engine)] == [(f"{CASE}#2", "task.claim")]


def test_a_learning_events_reporter_is_never_named(engine):
    setup(engine)
    learning = snapshot(1, stage="Triage", tasks=[task("triage")],
                        events=[human(1, "learning_recorded", "reporter", None), human(2, "task_claimed", "u-b")])
    apply_snapshot(engine, learning, SECRET)
    assert [(r["action"], r["actor"]) for r in entries(engine)] == [("learning.record", "anonymous"),
                                                                     ("task.claim", "u-b")]


async def test_completing_a_task_on_the_time_skipping_server_audits_it_once_without_the_web_app(
        time_env, seeded_engine, settings):
    from safeguarding.clock import london_today
    from tests.support.workflow_driver import CaseDriver, running_worker

    async with running_worker(time_env, seeded_engine, settings):
        driver = CaseDriver(time_env, seeded_engine, settings)
        case_id = await driver.open(london_today())  # no web request: straight to Temporal, as after a web crash
        await driver.complete("notification", {"sent_on": london_today().isoformat(),
                                               "local_partners_notified": True}, "u-rv-la-head-qa")
    completed = [e for e in driver.events("task_completed") if e.task_key == "notification"]
    rows = entries(seeded_engine, case_id=case_id, action="task.complete")
    assert [(r["event_id"], r["actor"], r["detail"]) for r in rows] == [
        (completed[0].id, "u-rv-la-head-qa", "notification")]
    opened = entries(seeded_engine, case_id=case_id, action="incident.open")
    assert [r["actor"] for r in opened] == ["u-rv-business-manager"]
    assert audit_log.verify(seeded_engine) is None
