"""``sgflow rebuild``: re-derive the read model from Temporal, the source of truth, if the database is lost.

Lists our workflows through Temporal's visibility (one list call, paged), asks each for its snapshot (a
Query: the case, its tasks and its whole timeline) and writes it with the same idempotent upsert the
activities use. Safe to run on a live system: a snapshot older than what is stored is skipped, and events
already present are not written twice. Outbox emails are not re-created (they were already sent or held).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.service import RPCError

from activities.read_model import apply_snapshot
from safeguarding.case_records import CaseSnapshot

PROCESS_QUERY = 'SgProcess = "incident"'


@dataclass
class RebuildReport:
    cases: int = 0
    written: int = 0
    failed: int = 0


async def rebuild(client: Client, engine: Engine, secret: str, query: str = PROCESS_QUERY) -> RebuildReport:
    report = RebuildReport()
    async for execution in client.list_workflows(query):
        report.cases += 1
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        try:
            snap = await handle.query("snapshot", result_type=CaseSnapshot)
        except RPCError:
            report.failed += 1
            continue
        if apply_snapshot(engine, snap, secret).fresh:
            report.written += 1
    return report
