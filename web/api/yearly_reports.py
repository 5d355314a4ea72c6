"""JSON API for the yearly report: start one for a reporting period, list them, and export the figures.

The report's tasks (draft, scrutiny, sign-off, publication, copies) are done through the case routes every process
shares (``/api/cases/{case_id}/tasks/{key}/…``). ``start_yearly_report`` is also what the lead's page calls, so the
page and the API give the same answers and the same errors.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from safeguarding import yearly_report as yr
from safeguarding.accounts import Principal
from safeguarding.audit_log import audit, audited_refusal
from safeguarding.case_access import current_arrangements, readable_cases_where, reads_every_case
from safeguarding.case_commands import actor_of, request_digest, start_case
from safeguarding.clock import london_today
from safeguarding.tables import Case
from safeguarding.wording import plural
from web.api import READ, TEMPORAL, error_responses
from web.api.cases import IDEMPOTENCY_KEY, bounded
from web.deps import ApiPrincipal, DbEngine, TemporalTimeout
from web.errors import ApiError, FieldError

router = APIRouter(prefix="/api", tags=["yearly report"])


class YearlyReportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period_start: date | None = Field(None, description="The first day of the reporting year the report covers (it "
                                      "must be the arrangements' period start, e.g. 2025-04-01). Default: the latest "
                                      "reporting year that has ended.")
    previous_published_on: date | None = Field(None, description="When the previous yearly report was published, if "
                                               "it is not recorded here (the first report in the service): the report "
                                               "is due at most max_interval_months after it. Default: the last "
                                               "publication recorded here.")


async def start_yearly_report(engine, client, task_queue: str, principal: Principal, partnership_id: str,
                              body: YearlyReportIn, *, idempotency_key: str | None = None,
                              timeout: float = 10.0) -> dict[str, Any]:
    """Start the report for a period (409 when it exists); returns its case id, status, period and due date."""
    version, doc = await run_in_threadpool(current_arrangements, engine, principal, partnership_id)
    if not yr.may_start(doc, principal.user_ref, principal.kind):
        raise ApiError(403, "forbidden", "only the partnership's leads and the people who draft its yearly report "
                                         "(yearly_report.author_role) start a yearly report")
    config, today, errors = doc["yearly_report"], london_today(), []
    period = yr.latest_ended_period(config, today)
    if body.period_start is not None:
        try:
            period = yr.check_period_start(config, body.period_start, today)
        except yr.PeriodError as exc:
            errors.append(FieldError(path="/period_start", value=body.period_start.isoformat(), message=str(exc)))
    previous = body.previous_published_on
    if previous is not None and previous > today:
        errors.append(FieldError(path="/previous_published_on", value=previous.isoformat(),
                                 message=f"cannot be in the future (today is {yr.day_text(today)})"))
    if errors:
        raise ApiError(422, "invalid", f"{plural(len(errors), 'problem', 'problems')} in the yearly report", errors)
    if previous is None:
        previous = yr.latest_publication(engine, partnership_id, period.start)
    inp = yr.report_input(doc, version.number, period, previous, actor_of(principal), datetime.now(UTC))
    case_id = yr.workflow_id(partnership_id, inp.reference)
    from workflows.yearly_report import YearlyReport

    status = await start_case(client, YearlyReport.run, YearlyReport.opened, inp, case_id=case_id,
                              task_queue=task_queue, partnership_id=partnership_id, process=yr.PROCESS,
                              reference=inp.reference, what="yearly report", timeout=timeout,
                              request_key=request_digest(principal, idempotency_key) if idempotency_key else "")
    return {"case_id": case_id, "status": status, "reference": inp.reference, "url": f"/api/cases/{case_id}",
            "period": {"start": inp.period_start, "end": inp.period_end, "label": period.label},
            "due_date": inp.due_date or None, "due_reason": inp.due_reason,
            "warnings": [w for w in [yr.publish_by_warning(doc)] if w]}


@router.post("/partnerships/{partnership_id}/yearly-reports", status_code=201,
             responses={202: {"description": "Accepted, not yet applied"}, **error_responses(*TEMPORAL)})
@bounded
async def start_report(request: Request, timeout: TemporalTimeout, partnership_id: str, body: YearlyReportIn,
                       principal: ApiPrincipal,
                       idempotency_key: str | None = IDEMPOTENCY_KEY) -> JSONResponse:
    """Start the yearly report for a reporting year: draft, scrutiny, sign-off, publication, copies."""
    app = request.app
    with audited_refusal(app.state.engine, principal, "yearly_report.start", partnership_id=partnership_id):
        out = await start_yearly_report(app.state.engine, app.state.temporal, app.state.settings.task_queue,
                                        principal, partnership_id, body, idempotency_key=idempotency_key,
                                        timeout=timeout)
    return JSONResponse(out, status_code=201)


def report_rows(engine, principal: Principal, partnership_id: str) -> list[dict[str, Any]]:
    """The partnership's yearly reports the person may read (``may_read_case``), newest period first."""
    query = select(Case.id, Case.case_ref, Case.status, Case.stage, Case.aware_date, Case.report_due,
                   Case.publication_date, Case.overdue_tasks).where(
        Case.partnership_id == partnership_id, Case.process == yr.PROCESS)
    with engine.connect() as conn:
        readable = readable_cases_where(conn, principal, partnership_id)
        if readable is not None:
            query = query.where(readable)
        rows = conn.execute(query.order_by(Case.aware_date.desc())).all()
    return [{"case_id": r.id, "reference": r.case_ref, "status": r.status, "stage": r.stage,
             "period": {"start": r.aware_date.isoformat(), "end": yr.period_starting(r.aware_date).end.isoformat(),
                        "label": yr.period_starting(r.aware_date).label},
             "due_date": r.report_due.isoformat() if r.report_due else None,
             "published_on": r.publication_date.isoformat() if r.publication_date else None,
             "overdue_tasks": r.overdue_tasks} for r in rows]


@router.get("/partnerships/{partnership_id}/yearly-reports", responses=error_responses(*READ))
def list_reports(request: Request, engine: DbEngine, partnership_id: str,
                 principal: ApiPrincipal) -> dict[str, Any]:
    """The partnership's yearly reports, and the warning when the arrangements set no publication date."""
    _version, doc = current_arrangements(engine, principal, partnership_id)
    return {"warnings": [w for w in [yr.publish_by_warning(doc)] if w],
            "reports": report_rows(engine, principal, partnership_id)}


def may_export(engine, principal: Principal, doc: dict[str, Any]) -> bool:
    """Who may take the figures: those who read every case of the partnership, and the report's authors."""
    with engine.connect() as conn:
        every = reads_every_case(conn, principal, doc["partnership"]["id"])
    return every or yr.may_start(doc, principal.user_ref, principal.kind)


def export_figures(engine, principal: Principal, partnership_id: str, period_start: date | None,
                   fmt: str) -> Response:
    """The figures for a reporting year as JSON, CSV or a Word document (an audited export)."""
    _version, doc = current_arrangements(engine, principal, partnership_id)
    if not may_export(engine, principal, doc):
        raise ApiError(403, "forbidden", "only the partnership's leads, its independent scrutineer and the people "
                                         "who draft its yearly report take its figures")
    today = london_today()
    period = yr.latest_ended_period(doc["yearly_report"], today)
    if period_start is not None:
        try:
            period = yr.check_period_start(doc["yearly_report"], period_start, today)
        except yr.PeriodError as exc:
            raise ApiError(422, "invalid", str(exc), [FieldError(path="/period_start", value=period_start.isoformat(),
                                                                 message=str(exc))]) from None
    found = yr.figures(engine, doc, period, today)
    audit(engine, principal, "yearly_report.export", partnership_id=partnership_id,
          detail=f"figures {period.label} as {fmt}")
    name = f"{partnership_id}-yearly-report-{period.label}-figures"
    if fmt == "csv":
        return Response(yr.figures_csv(found), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    if fmt == "docx":
        return Response(yr.figures_docx(found), headers={"Content-Disposition": f'attachment; filename="{name}.docx"'},
                        media_type="application/vnd.openxmlformats-officedocument.wordprocessingml.document")
    return JSONResponse(found.as_json())


@router.get("/partnerships/{partnership_id}/yearly-reports/figures", responses=error_responses(*READ, 403))
def figures(request: Request, principal: ApiPrincipal, engine: DbEngine, partnership_id: str,
            period_start: date | None = Query(None),
            format: Literal["json", "csv", "docx"] = Query("json")) -> Response:
    """The report's figures from the case records (aggregate counts only): JSON, CSV, or a Word document to edit."""
    return export_figures(engine, principal, partnership_id, period_start, format)
