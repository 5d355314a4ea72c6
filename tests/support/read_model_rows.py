"""Rows written straight into the read model for page tests (cases, tasks, outbox messages), and counting versions."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, func, select

from safeguarding.clock import london_today
from safeguarding.tables import (
    ArrangementsVersion,
    Case,
    OutboxMessage,
    Task,
)

RV, NE = "riverford-and-vale", "northmoor-and-eastholme"
NAMES = ["Jayden Smith-Okoro", "Practitioner Mary Wilkins", "Kayleigh Brennan", "DS Tom Hartley"]


def versions(engine, pid: str = RV) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(ArrangementsVersion)
                            .where(ArrangementsVersion.partnership_id == pid)).one()


def national_ref(case_id: str) -> str:
    return "N-" + hashlib.sha256(case_id.encode()).hexdigest()[:8].upper()


def add_case(engine, case_ref: str, pid: str = RV, **fields) -> Case:
    today = london_today()
    values = dict(id=f"incident-{pid}-{case_ref}", partnership_id=pid, case_ref=case_ref, process="incident",
                  national_ref=national_ref(f"incident-{pid}-{case_ref}"), category="serious_harm_abuse_neglect",
                  status="open", stage="Rapid review: agency summaries and meeting", arrangements_version=1,
                  aware_date=today - timedelta(days=30), notification_due=today - timedelta(days=23),
                  rapid_review_required=True, opened_by="u-rv-la-head-qa",
                  opened_at=datetime.now(UTC) - timedelta(days=30),
                  children=json.dumps([{"pseudonym": "Child A"}]), summary="Injuries.",
                  agencies=json.dumps(["vale-icb"]))
    values.update(fields)
    case = Case(**values)
    with Session(engine) as session:
        session.add(case)
        session.commit()
        session.refresh(case)
    return case


def add_task(engine, case: Case, key: str, *, status: str = "open", candidate_role: str = "review_officer",
             title: str | None = None, **fields) -> None:
    with Session(engine) as session:
        session.add(Task(id=f"{case.id}/{key}", case_id=case.id, partnership_id=case.partnership_id, key=key,
                         type=fields.pop("type", key), title=title or f"Step {key}", form=f"{key}.v1",
                         candidate_role=candidate_role, candidate_label=fields.pop("candidate_label", "Review officer"),
                         status=status, opened_at=fields.pop("opened_at", datetime.now(UTC) - timedelta(days=20)),
                         **fields))
        session.commit()


def add_message(engine, message_id: str, pid: str | None, subject: str, **fields) -> None:
    with Session(engine) as session:
        session.add(OutboxMessage(id=message_id, partnership_id=pid, case_id=fields.pop("case_id", None),
                                  to_user_refs=json.dumps(["u-x"]), to_addresses=json.dumps(fields.pop("to", [])),
                                  subject=subject, body=fields.pop("body", "Body text."), **fields))
        session.commit()
