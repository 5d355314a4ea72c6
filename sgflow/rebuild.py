"""``sgflow rebuild``: re-derive the read model from Temporal, the source of truth, if the database is lost or
was changed by hand.

Lists our workflows of every process (incidents, local reviews, escalations, learning events) through Temporal's
visibility (one list call, paged), asks each for its snapshot (a Query on its latest run: the case, every task
and its whole timeline) and writes it with ``restore=True``: the case row, its tasks, candidates, timeline and
learning tags are made exactly the workflow's, even where the stored revision is the same (rows deleted or
altered by hand come back). Safe on a live system: a case the read model already holds at a newer revision is
left alone. Each applied action's audit-log row is written once (keyed by its event): a rebuild adds only the
missing ones. Outbox emails are not re-created (they were already sent or held).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError

from activities.read_model import apply_snapshot
from safeguarding import yearly_report
from safeguarding.case_records import CaseSnapshot
from workflows import incident, ladder, lcspr, learning

PROCESSES = (incident.PROCESS, lcspr.PROCESS, ladder.PROCESS, learning.PROCESS, yearly_report.PROCESS)
PROCESS_QUERY = "SgProcess IN (" + ", ".join(f'"{name}"' for name in PROCESSES) + ")"


@dataclass
class RebuildReport:
    cases: int = 0
    written: int = 0
    failed: int = 0


async def rebuild(client: Client, engine: Engine, secret: str, query: str = PROCESS_QUERY) -> RebuildReport:
    report, seen = RebuildReport(), set()
    async for execution in client.list_workflows(query):
        if execution.id in seen:  # every run of a case is listed; its latest run holds its state
            continue
        seen.add(execution.id)
        report.cases += 1
        try:
            snap = await client.get_workflow_handle(execution.id).query("snapshot", result_type=CaseSnapshot)
        except (RPCError, WorkflowQueryFailedError):
            report.failed += 1
            continue
        if apply_snapshot(engine, snap, secret, restore=True).fresh:
            report.written += 1
    return report
