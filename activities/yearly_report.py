"""Starting the next period's yearly report, when the published report's workflow reaches the day after the next
reporting period ends (``workflows.yearly_report``). It reads the partnership's arrangements current *then* (so a
changed ``publish_by`` or sign-off rule applies to the new report) and starts the report's workflow once: a report
already started for that period, by hand or by an earlier try, is left as it is."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio import activity
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from safeguarding import yearly_report as yr
from safeguarding.case_records import Actor, YearlyReportInput
from safeguarding.versions import VersionNotFoundError, document_of, get_version


class YearlyReportActivities:
    def __init__(self, engine: Engine):
        self.engine = engine

    def _input(self, request: dict[str, Any]) -> YearlyReportInput | None:
        pid = request["partnership_id"]
        with Session(self.engine) as session:
            try:
                version = get_version(session, pid)
            except VersionNotFoundError:
                return None
        doc = document_of(version)
        period = yr.period_starting(date.fromisoformat(request["period_start"]))
        given = request.get("previous_published_on")
        previous = date.fromisoformat(given) if given else yr.latest_publication(self.engine, pid, period.start)
        return yr.report_input(doc, version.number, period, previous,
                               Actor(user_ref="system", kind="system", partnership_id=pid), datetime.now(UTC))

    @activity.defn(name="start_next_yearly_report")
    async def start_next(self, request: dict[str, Any]) -> dict[str, Any]:
        inp = await asyncio.to_thread(self._input, request)
        if inp is None:
            return {"outcome": "not_started", "why": "the partnership has no arrangements"}
        case_id = yr.workflow_id(inp.partnership_id, inp.reference)
        keys = {name: SearchAttributeKey.for_keyword(name) for name in ("SgPartnership", "SgProcess", "SgCaseRef")}
        try:
            await activity.client().start_workflow(
                "YearlyReport", inp, id=case_id, task_queue=activity.info().task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=TypedSearchAttributes([
                    SearchAttributePair(keys["SgPartnership"], inp.partnership_id),
                    SearchAttributePair(keys["SgProcess"], yr.PROCESS),
                    SearchAttributePair(keys["SgCaseRef"], inp.reference)]))
        except WorkflowAlreadyStartedError:
            return {"outcome": "exists", "case_id": case_id}
        except RPCError as exc:  # the time-skipping test server says ALREADY_EXISTS this way
            if exc.status != RPCStatusCode.ALREADY_EXISTS:
                raise
            return {"outcome": "exists", "case_id": case_id}
        return {"outcome": "started", "case_id": case_id, "due_date": inp.due_date}
