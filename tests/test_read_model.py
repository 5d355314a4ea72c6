"""The read-model activity's writes, on SQLite and PostgreSQL: idempotent by revision and by event/message id."""

from __future__ import annotations

import json

from sqlmodel import Session, select

from activities.email import deliver
from activities.read_model import NO_ADDRESS, Written, apply_snapshot, national_ref
from safeguarding.case_records import REPORTER, CaseSnapshot
from safeguarding.settings import Settings
from safeguarding.tables import (
    Case,
    CaseEvent,
    LearningReporter,
    LearningTag,
    OutboxMessage,
    Task,
    TaskCandidate,
)
from tests.support.read_model_snapshots import CASE, SECRET, counts, event, setup, snapshot, task


def test_a_snapshot_is_written_once_and_an_older_one_never_overwrites_a_newer(engine):
    setup(engine)
    first = snapshot(1, stage="Notification", tasks=[task("summary")], events=[event(1), event(2)],
                     messages=[{"seq": 3, "to_user_refs": ["u-a", "u-b", "u-nobody"], "subject": "New task",
                                "body": "A task is waiting."}])
    assert apply_snapshot(engine, first, SECRET, smtp=True) == Written(True, [f"{CASE}#3"])  # to send by SMTP
    written = counts(engine)
    assert written == {"events": 2, "outbox": 1, "tasks": 1, "candidates": 2, "tags": 0}
    assert apply_snapshot(engine, first, SECRET, smtp=True).fresh is False  # a retried activity: nothing twice
    assert counts(engine) == written
    with Session(engine) as session:
        case = session.get(Case, CASE)
        assert (case.stage, case.revision, case.national_ref) == ("Notification", 1, national_ref(SECRET, CASE))
        assert json.loads(case.children) == [{"pseudonym": "Child A"}] and str(case.aware_date) == "2026-05-23"
        row = session.get(Task, f"{CASE}/summary")
        assert (row.status, str(row.due_date), row.revision, row.opened_at.year) == ("open", "2026-06-01", 1, 2026)
        message = session.get(OutboxMessage, f"{CASE}#3")
        assert message.status == "queued" and message.attempts == 0 and message.created_at is not None
        assert json.loads(message.to_addresses) == ["a@rv.example", "b@rv.example"]

    done = task("summary", "done", completed_by="u-a", completed_at="2026-05-24T10:00:00+00:00",
                data={"involvement": "Health visiting."})
    second = snapshot(2, stage="Meeting", tasks=[done, task("meeting")], events=[event(4, "task_completed")],
                      notification_sent_on="2026-05-24")
    assert apply_snapshot(engine, second, SECRET) == Written(True, [])
    late = snapshot(1, stage="Stale", tasks=[task("summary")], events=[event(1), event(5)])
    assert apply_snapshot(engine, late, SECRET).fresh is False  # its case and tasks are older: only new events land
    with Session(engine) as session:
        case = session.get(Case, CASE)
        assert (case.stage, case.revision, str(case.notification_sent_on)) == ("Meeting", 2, "2026-05-24")
        summary = session.get(Task, f"{CASE}/summary")
        assert (summary.status, summary.completed_by, json.loads(summary.data)) == (
            "done", "u-a", {"involvement": "Health visiting."})
        assert summary.completed_at is not None and summary.revision == 2
        candidates = session.exec(select(TaskCandidate.task_id, TaskCandidate.user_ref)).all()
        assert sorted(candidates) == [(f"{CASE}/meeting", "u-a"), (f"{CASE}/meeting", "u-b")]  # closed: none
        assert sorted(session.exec(select(CaseEvent.seq).where(CaseEvent.case_id == CASE)).all()) == [1, 2, 4, 5]

    claimed = snapshot(3, stage="Meeting", tasks=[task("meeting", claimed_by="u-b", reminded=True)],
                       events=[event(6, "task_claimed", "meeting")])
    assert apply_snapshot(engine, claimed, SECRET).fresh is True  # an open task written again: updated, same candidates
    with Session(engine) as session:
        meeting = session.get(Task, f"{CASE}/meeting")
        assert (meeting.claimed_by, meeting.revision, meeting.case_id, meeting.key) == ("u-b", 3, CASE, "meeting")
        assert sorted(session.exec(select(TaskCandidate.user_ref).where(
            TaskCandidate.task_id == f"{CASE}/meeting")).all()) == ["u-a", "u-b"]
        assert session.get(Task, f"{CASE}/summary").status == "done"  # not in this snapshot: left as it was
    assert counts(engine) == {"events": 5, "outbox": 1, "tasks": 2, "candidates": 2, "tags": 0}


def partial(revision: int, *, tasks=(), events=(), **fields) -> CaseSnapshot:
    """What a sync sends once the read model has the case: the changed values and tasks only."""
    return CaseSnapshot.from_payload({
        "case_id": CASE, "partnership_id": "rv", "case_ref": "T-1", "process": "incident", "revision": revision,
        "fields": fields, "tasks": list(tasks), "events": list(events), "messages": [], "partial": True})


def test_a_partial_snapshot_applies_on_its_base_revision_and_asks_for_the_whole_case_otherwise(engine):
    setup(engine)
    assert apply_snapshot(engine, snapshot(1, stage="Notification", tasks=[task("summary")],
                                           events=[event(1)]), SECRET).fresh
    done = task("summary", "done", completed_by="u-a", completed_at="2026-05-24T10:00:00+00:00")
    assert apply_snapshot(engine, partial(2, tasks=[done], events=[event(2, "task_completed")], stage="Meeting",
                                          notification_sent_on="2026-05-24"), SECRET) == Written(True, [])
    with Session(engine) as session:
        case = session.get(Case, CASE)  # the values not sent stand
        assert (case.stage, str(case.notification_sent_on), case.summary, case.revision) == (
            "Meeting", "2026-05-24", "Injuries.", 2)
        assert session.get(Task, f"{CASE}/summary").status == "done"
    # a restored backup holds revision 2; the workflow is at 4 and sends what changed since 3: nothing of it is
    # written, and the whole case is asked for
    gap = apply_snapshot(engine, partial(4, events=[event(4, "task_claimed")], stage="Decision"), SECRET)
    assert gap == Written(False, [], resend=True)
    with Session(engine) as session:
        assert (session.get(Case, CASE).stage, session.get(Case, CASE).revision) == ("Meeting", 2)
        assert session.get(CaseEvent, f"{CASE}#4") is None
    assert apply_snapshot(engine, snapshot(5, stage="Decision", tasks=[done], events=[event(4, "task_claimed")]),
                          SECRET) == Written(True, [])
    # a late retry of an applied partial snapshot: older, refused, nothing asked for
    assert apply_snapshot(engine, partial(2, stage="Meeting"), SECRET) == Written(False, [])
    with engine.begin() as conn:  # a backup from before the case: nothing of it
        for table in (TaskCandidate, Task, CaseEvent, Case):
            column = table.__table__.c.id if table is Case else table.__table__.c.get("case_id")
            if column is None:
                conn.execute(table.__table__.delete())
            else:
                conn.execute(table.__table__.delete().where(column == CASE))
    assert apply_snapshot(engine, partial(6, stage="Sign-off", events=[event(6, "task_claimed")]), SECRET
                          ) == Written(False, [], resend=True)
    assert counts(engine)["events"] == 0


def test_learning_tags_are_replaced_and_the_reporter_is_reached_without_naming_them(engine, tmp_path):
    setup(engine)
    with Session(engine) as session:
        session.add(LearningReporter(case_id=CASE, user_ref="u-b"))
        session.commit()
    message = {"seq": 2, "to_user_refs": [f"{REPORTER}{CASE}"], "subject": "Thank you", "body": "Feedback."}
    tags = {"themes": ["information-sharing", "information-sharing"], "factors": ["workload"], "source": "learning",
            "kind": "near_miss"}
    nobody = {"seq": 3, "to_user_refs": ["u-nobody"], "subject": "Overdue", "body": "Nobody holds the role."}
    first = snapshot(1, stage="Triage", learning_tags=tags, events=[event(1)], messages=[message, nobody])
    assert apply_snapshot(engine, first, SECRET, smtp=True) == Written(True, [f"{CASE}#2"])
    second = snapshot(2, stage="Response", learning_tags={**tags, "factors": []})
    assert apply_snapshot(engine, second, SECRET).fresh
    with Session(engine) as session:
        rows = session.exec(select(LearningTag.tag_type, LearningTag.tag, LearningTag.month)).all()
        assert rows == [("theme", "information-sharing", "2026-05")]
        outbox = session.get(OutboxMessage, f"{CASE}#2")
        assert json.loads(outbox.to_addresses) == ["b@rv.example"]
        assert "u-b" not in outbox.to_user_refs
        nobody_row = session.get(OutboxMessage, f"{CASE}#3")  # no address to send to: held, with the reason
        assert (nobody_row.status, nobody_row.last_error) == ("held", NO_ADDRESS)
    # no SMTP configured any more: a message queued before is held in the outbox, once
    settings = Settings(data_dir=tmp_path, secret_key="x")
    assert deliver(engine, settings, [f"{CASE}#2", f"{CASE}#99"]) == {f"{CASE}#2": "held", f"{CASE}#99": "missing"}
    assert deliver(engine, settings, [f"{CASE}#2"]) == {f"{CASE}#2": "held"}


def test_many_activity_threads_write_one_at_a_time_on_sqlite_and_all_land(engine):
    """The worker runs up to 32 activities at once: on SQLite their writes queue on one lock per engine (a write
    waits while another holds it); on PostgreSQL they run side by side. Either way every snapshot lands."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from safeguarding.db import one_writer

    setup(engine)
    started = threading.Event()

    def write(revision: int) -> bool:
        started.set()
        return apply_snapshot(engine, snapshot(revision, stage=f"Stage {revision}", events=[event(revision)]),
                              SECRET).fresh

    with ThreadPoolExecutor(max_workers=8) as pool:
        if engine.dialect.name == "sqlite":
            with one_writer(engine):  # another writer holds the lock: the activity waits for it
                held = pool.submit(write, 1)
                assert started.wait(5)
                time.sleep(0.3)  # ample time to finish, were it not waiting
                assert not held.done()
            assert one_writer(engine) is one_writer(engine)
        else:
            held = pool.submit(write, 1)
            with one_writer(engine):  # nothing to wait for on PostgreSQL
                pass
        assert held.result(timeout=10) is True
        results = list(pool.map(write, range(2, 26)))
    assert sum(results) >= 1  # the highest revision wins; older ones that arrive later are refused, not errors
    with Session(engine) as session:
        assert session.get(Case, CASE).revision == 25
    assert counts(engine)["events"] == 25  # every event, once
