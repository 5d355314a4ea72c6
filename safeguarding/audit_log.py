"""The audit log: append-only and hash-chained, so an entry changed, removed or moved is found.

Every row carries its place in the chain (``seq``: 1, 2, 3, ...), the hash of the row before it (``prev_hash``;
the first row's is 64 zeros) and its own hash (``row_hash``): sha256 over a canonical JSON of its fields and
``prev_hash``. The database refuses UPDATE and DELETE on ``audit_entry`` (triggers, migration 0008); the chain
finds what was done behind the triggers' back (``verify``).

Appends are serialised so the chain never forks: on PostgreSQL the appending transaction takes a
transaction-level advisory lock; on SQLite it takes the database's write lock before it reads the chain's head
(SQLite has one writer; ``db.one_writer`` also lines up the threads of one process). The lock is held until the
caller's transaction ends, so append last in a transaction that does other work.

``record`` appends inside the caller's transaction (the read-model sync writes an applied action's row in the
same transaction as the action's timeline event, keyed by the event's id: written once however often the sync
runs). ``record_for`` opens its own transaction (the web app's refusals, views, downloads and sign-ins). Rows
added through the ORM (``session.add(AuditEntry(...))``) are chained too (``chain_orm_insert``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.engine import Connection, Engine

from safeguarding.db import one_writer
from safeguarding.refusals import ApiError, NotApplied
from safeguarding.tables import AuditEntry

AUDIT = AuditEntry.__table__
GENESIS = "0" * 64
ADVISORY_LOCK = 0x53_47_46_4C_4F_57_41  # "SGFLOWA": the PostgreSQL advisory lock key for appends
DETAIL_LIMIT = 4000
_HEAD = select(AUDIT.c.seq, AUDIT.c.row_hash).order_by(AUDIT.c.seq.desc()).limit(1)
_FIELDS = ("seq", "at", "actor", "action", "partnership_id", "case_id", "outcome", "detail", "event_id", "prev_hash")
_CACHE = "sgflow_audit_head"  # connection.info: (transaction, seq, hash) of the last row this transaction appended


def canonical_at(at: datetime) -> str:
    """The instant in UTC to the microsecond (SQLite hands back naive UTC, PostgreSQL an aware value)."""
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def row_hash(row: Mapping[str, Any]) -> str:
    """sha256 of the row's fields and the previous row's hash, as canonical JSON (format 1: never change it)."""
    doc = {name: (canonical_at(row[name]) if name == "at" else row[name]) for name in _FIELDS}
    body = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


def _actor(actor: Any) -> str:
    """A user ref, a ``Principal`` (its user ref), or None: "anonymous"."""
    if actor is None:
        return "anonymous"
    return actor if isinstance(actor, str) else actor.user_ref


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
    else:  # SQLite: a write that changes nothing takes the write lock now, before the head is read
        conn.execute(text("UPDATE audit_entry SET id = id WHERE 1 = 0"))


def _head(conn: Connection) -> tuple[int, str]:
    """(seq, hash) of the chain's last row, under the append lock (taken once per transaction)."""
    transaction = conn.get_transaction()
    cached = conn.info.get(_CACHE)
    if cached is not None and transaction is not None and cached[0] is transaction:
        return cached[1], cached[2]
    _lock(conn)
    last = conn.execute(_HEAD).first()
    return (last.seq, last.row_hash) if last else (0, GENESIS)


def _chain(conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give each new row its place, previous hash and hash (they are inserted in this order)."""
    seq, prev = _head(conn)
    for row in rows:
        seq += 1
        row.update(seq=seq, prev_hash=prev)
        row["row_hash"] = prev = row_hash(row)
    conn.info[_CACHE] = (conn.get_transaction(), seq, prev)
    return rows


def _row(actor: Any, action: str, *, partnership_id: str | None, case_id: str | None, outcome: str, detail: str,
         event_id: str | None, at: datetime | None) -> dict[str, Any]:
    return {"at": (at or datetime.now(UTC)).astimezone(UTC), "actor": _actor(actor)[:100], "action": action[:80],
            "partnership_id": partnership_id, "case_id": case_id, "outcome": outcome[:20],
            "detail": (detail or "")[:DETAIL_LIMIT], "event_id": event_id}


def record(conn: Connection, actor: Any, action: str, *, partnership_id: str | None = None,
           case_id: str | None = None, outcome: str = "ok", detail: str = "", event_id: str | None = None,
           at: datetime | None = None) -> None:
    """Append one chained row inside the caller's transaction (``conn`` from ``engine.begin()``).
    ``actor``: a user ref, a ``Principal``, or None (recorded as "anonymous")."""
    row = _row(actor, action, partnership_id=partnership_id, case_id=case_id, outcome=outcome, detail=detail,
               event_id=event_id, at=at)
    conn.execute(insert(AUDIT), _chain(conn, [row]))


def record_events(conn: Connection, entries: Iterable[dict[str, Any]]) -> int:
    """Append the rows for applied actions (each with an ``event_id``) that the log does not hold yet, in one
    go; returns how many were new. Keys as ``record``'s arguments."""
    entries = list(entries)
    if not entries:
        return 0
    _head(conn)  # the lock first: nobody else can add one of these between the check and the insert
    held = set(conn.execute(select(AUDIT.c.event_id).where(
        AUDIT.c.event_id.in_([e["event_id"] for e in entries]))).scalars())
    rows = [_row(e.get("actor"), e["action"], partnership_id=e.get("partnership_id"), case_id=e.get("case_id"),
                 outcome=e.get("outcome", "ok"), detail=e.get("detail", ""), event_id=e["event_id"], at=e.get("at"))
            for e in entries if e["event_id"] not in held]
    rows = list({row["event_id"]: row for row in rows}.values())  # one row per event, even if sent twice at once
    if rows:
        conn.execute(insert(AUDIT), _chain(conn, rows))
    return len(rows)


def record_for(engine: Engine, principal: Any, action: str, *, partnership_id: str | None = None,
               case_id: str | None = None, outcome: str = "ok", detail: str = "") -> None:
    """``record`` in a transaction of its own: the same arguments as ``audit``."""
    with one_writer(engine), engine.begin() as conn:
        record(conn, principal, action, partnership_id=partnership_id, case_id=case_id, outcome=outcome,
               detail=detail)


def chain_orm_insert(_mapper, connection: Connection, target: AuditEntry) -> None:
    """``before_insert`` of ``AuditEntry``: a row added through a Session is chained like any other."""
    if target.row_hash:
        return
    row = _row(target.actor, target.action, partnership_id=target.partnership_id, case_id=target.case_id,
               outcome=target.outcome, detail=target.detail, event_id=target.event_id, at=target.at)
    _chain(connection, [row])
    for name in ("at", "actor", "action", "detail", "outcome", "seq", "prev_hash", "row_hash"):
        setattr(target, name, row[name])


# --- checking the chain ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Break:
    """The first row where the chain does not hold: its id and place, and what is wrong."""

    row_id: int | None
    seq: int | None
    reason: str

    def __str__(self) -> str:
        return f"audit entry {self.row_id} (position {self.seq}): {self.reason}"


@dataclass(frozen=True)
class Verified:
    rows: int
    problem: Break | None


def check(engine: Engine) -> Verified:
    """Walk the whole chain in order; the number of rows and the first break (None when intact)."""
    columns = [AUDIT.c[name] for name in ("id", *_FIELDS, "row_hash")]
    expected_seq, prev, last_id, rows = 1, GENESIS, None, 0
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=1000).execute(select(*columns).order_by(AUDIT.c.seq, AUDIT.c.id))
        for row in result.mappings():
            rows += 1
            if row["seq"] is None or row["row_hash"] is None:
                return Verified(rows, Break(row["id"], None, "is not chained (no position or hash)"))
            if row["seq"] < expected_seq:
                return Verified(rows, Break(row["id"], row["seq"], "has the same position as the entry before it"))
            if row["seq"] > expected_seq:
                missing = (f"position {expected_seq}" if row["seq"] == expected_seq + 1
                           else f"positions {expected_seq} to {row['seq'] - 1}")
                return Verified(rows, Break(row["id"], row["seq"], f"the entry before it is missing ({missing})"))
            if row["prev_hash"] != prev:
                return Verified(rows, Break(row["id"], row["seq"], "does not follow the entry before it (an entry "
                                                                   "was removed, replaced or moved)"))
            if row_hash(row) != row["row_hash"]:
                return Verified(rows, Break(row["id"], row["seq"], "was altered after it was written (its hash "
                                                                   "does not match its contents)"))
            if last_id is not None and row["id"] < last_id:
                return Verified(rows, Break(row["id"], row["seq"], "is out of order (its id is lower than the "
                                                                   "entry's before it)"))
            expected_seq, prev, last_id = row["seq"] + 1, row["row_hash"], row["id"]
    return Verified(rows, None)


def verify(engine: Engine) -> Break | None:
    """The first broken, missing or altered row of the audit log, or None when the chain is intact."""
    return check(engine).problem


# --- what the web app audits ---------------------------------------------------------------------------------


def audit(engine: Engine, principal: Any, action: str, *, partnership_id: str | None = None,
          case_id: str | None = None, outcome: str = "ok", detail: str = "") -> None:
    """What the web app itself audits: refusals, views, downloads, exports, sign-ins, stored arrangements. A change
    applied by a workflow is audited by the read-model sync, in the transaction that records it
    (``activities.read_model``), so a web crash after the change cannot leave it unaudited."""
    record_for(engine, principal, action, partnership_id=partnership_id, case_id=case_id, outcome=outcome,
               detail=detail[:DETAIL_LIMIT])


@contextmanager
def audited_refusal(engine: Engine, principal: Any, action: str, *, partnership_id: str | None = None,
                    case_id: str | None = None, prefix: str = "") -> Iterator[None]:
    """Record an ApiError raised inside the block as a rejected ``action`` in the audit log, then let it go on.

    A 503 (``NotApplied``) is recorded as ``not_applied``, not ``rejected``: Temporal may still apply the change,
    and then the read-model sync audits it as applied."""
    try:
        yield
    except ApiError as exc:
        outcome = "not_applied" if isinstance(exc, NotApplied) else "rejected"
        audit(engine, principal, action, partnership_id=partnership_id, case_id=case_id, outcome=outcome,
              detail=f"{prefix}{exc.code}: {exc.message}")
        raise
