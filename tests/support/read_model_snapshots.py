"""Read-model snapshots for tests: a case's snapshot, its tasks and events as the workflow sends them; row counts."""

from __future__ import annotations

from sqlmodel import Session, select

from safeguarding.case_records import CaseSnapshot
from safeguarding.tables import (
    CaseEvent,
    LearningTag,
    OutboxMessage,
    Partnership,
    Task,
    TaskCandidate,
    User,
)

CASE = "incident-rv-T-1"
SECRET = "test-secret"


def setup(engine) -> None:
    with Session(engine) as session:
        session.add(Partnership(id="rv", name="Riverford and Vale"))
        session.add(User(email="a@rv.example", display_name="A", user_ref="u-a", kind="reviewer", partnership_id="rv",
                         password_hash="x"))
        session.add(User(email="b@rv.example", display_name="B", user_ref="u-b", kind="reviewer", partnership_id="rv",
                         password_hash="x"))
        session.commit()


def task(key: str, status: str = "open", **extra) -> dict:
    return {"key": key, "type": "agency_summary", "title": f"Summary {key}", "form": "agency_summary.v1",
            "candidate_role": "partner:rv", "candidate_label": "Delegate", "candidate_users": ["u-a", "u-b"],
            "opened_at": "2026-05-23T09:00:00+00:00", "status": status, "due_date": "2026-06-01",
            "follow_up_date": "2026-05-28", "overdue": False, "reminded": False, "claimed_by": None,
            "completed_by": None, "completed_at": None, "days_late": None, "data": {}, **extra}


def event(seq: int, kind: str = "task_opened", task_key: str | None = "summary") -> dict:
    return {"seq": seq, "at": "2026-05-23T09:00:00+00:00", "actor": "system", "kind": kind,
            "message": f"event {seq}", "task_key": task_key, "data": {}}


def snapshot(revision: int, *, stage: str, tasks=(), events=(), messages=(), **fields) -> CaseSnapshot:
    return CaseSnapshot.from_payload({
        "case_id": CASE, "partnership_id": "rv", "case_ref": "T-1", "process": "incident", "revision": revision,
        "fields": {"category": "serious_harm_abuse_neglect", "status": "open", "stage": stage,
                   "arrangements_version": 1, "aware_date": "2026-05-23", "notification_due": "2026-06-01",
                   "rapid_review_required": True, "children": [{"pseudonym": "Child A"}], "summary": "Injuries.",
                   "agencies": ["rv-council"], "opened_by": "u-a", "opened_at": "2026-05-23T09:00:00+00:00",
                   "overdue_tasks": 0, "not_a_column": "ignored", **fields},
        "tasks": list(tasks), "events": list(events), "messages": list(messages)})


def counts(engine) -> dict[str, int]:
    with Session(engine) as session:
        return {name: len(session.exec(select(table)).all())
                for name, table in (("events", CaseEvent), ("outbox", OutboxMessage), ("tasks", Task),
                                    ("candidates", TaskCandidate), ("tags", LearningTag))}

