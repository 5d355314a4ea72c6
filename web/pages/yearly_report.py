"""The lead's page for the yearly report: the rules the arrangements set (with a warning when no publication date
is set), the partnership's reports and where each is, a form to start one, and the figures to download (Word and
CSV) for any reporting year.

Starting goes through the same call as the JSON API (``web.api.yearly_reports.start_yearly_report``), so both give
the same answers and errors; the report itself is a case like any other (``/cases/{case_id}``, its tasks on the task
pages). Everything is the signed-in person's own partnership; anyone else gets a 404.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from safeguarding import yearly_report as yr
from safeguarding.accounts import Principal
from safeguarding.audit_log import audit
from safeguarding.case_access import current_arrangements
from safeguarding.clock import london_today
from web.api.yearly_reports import (
    YearlyReportIn,
    export_figures,
    may_export,
    report_rows,
    start_yearly_report,
)
from web.deps import AppSettings, DbEngine, PagePrincipal, TemporalClient, TemporalTimeout
from web.errors import ApiError
from web.pages import bounded_page, page_context
from web.schema_forms import parse_date
from web.templating import render

router = APIRouter(include_in_schema=False)

PERIODS_OFFERED = 3  # the latest reporting years that have begun, newest first
STATUS_TAGS = {"open": ("In progress", "govuk-tag--blue"), "closed": ("Published", "govuk-tag--green")}
SIGNOFF_WORDS = {"all_lead_safeguarding_partners": "each partner’s lead safeguarding partner",
                 "partnership_executive": "each partner’s delegated safeguarding partner (the partnership executive)"}


def _own(request: Request, principal: Principal) -> tuple[str, dict[str, Any]]:
    if principal.partnership_id is None:
        raise ApiError(404, "not_found", "The yearly report belongs to a partnership; you are not in one.")
    _version, doc = current_arrangements(request.app.state.engine, principal, principal.partnership_id)
    return principal.partnership_id, doc


def _periods(doc: dict[str, Any], today: date) -> list[yr.Period]:
    latest = yr.latest_ended_period(doc["yearly_report"], today)
    periods = [latest.following()] if latest.following().start <= today else []
    start = latest.start
    while len(periods) < PERIODS_OFFERED:
        periods.append(yr.period_starting(start))
        start = start.replace(year=start.year - 1)
    return sorted(periods, key=lambda p: p.start, reverse=True)


def rules_in_words(doc: dict[str, Any]) -> list[tuple[str, str]]:
    config = doc["yearly_report"]
    roles = {r["id"]: r.get("title", r["id"]) for r in doc.get("roles", [])}
    scrutiny = doc.get("independent_scrutiny") or {}
    month_day = (config.get("publish_by") or {}).get("month_day")
    first = yr.period_starting(date(2001, *map(int, config["period"]["start"].split("-"))))
    due = (f"By {int(month_day[3:])} {yr.MONTHS[int(month_day[:2]) - 1]} after the reporting year, or "
           f"{config['max_interval_months']} months after the previous report was published if that is sooner"
           if month_day else f"{config['max_interval_months']} months after the previous report was published "
                             "(no publication date is set)")
    steps = yr.steps(config)
    return [
        ("Reporting year", f"{first.words.replace(' 2001', '').replace(' 2002', '')}"),
        ("Due", due),
        ("Drafted by", f"{roles.get(yr.author_role(doc), yr.author_role(doc))}: the draft is due "
                       f"{steps['draft_working_days_before_due']} working days before the due date"),
        ("Independent scrutiny", f"{roles.get(scrutiny.get('scrutineer_role'), '')}, within "
                                 f"{steps['scrutiny_working_days']} working days of each draft"
         if scrutiny.get("reviews_yearly_report") else "Not part of this process"),
        ("Signed off by", f"{SIGNOFF_WORDS[config['signoff']]}, within {steps['signoff_working_days']} working days"),
        ("Copies to", (", ".join(yr.RECIPIENTS[r] for r in config.get("send_copy_to") or []) or "Nobody") +
         (f", within {steps['copies_within_working_days']} working days of publication"
          if config.get("send_copy_to") else "")),
    ]


def _page(request: Request, principal: Principal, *, values: dict[str, str] | None = None,
          errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    engine = request.app.state.engine
    pid, doc = _own(request, principal)
    today = london_today()
    periods = _periods(doc, today)
    values = values or {"period_start": yr.latest_ended_period(doc["yearly_report"], today).start.isoformat()}
    errors = errors or {}
    reports = report_rows(engine, principal, pid)
    for row in reports:
        row["tag"] = STATUS_TAGS.get(row["status"], (row["status"], "govuk-tag--grey"))
        row["period_words"] = yr.period_starting(date.fromisoformat(row["period"]["start"])).words
        row["due_text"] = yr.day_text(date.fromisoformat(row["due_date"])) if row["due_date"] else "No due date"
        row["published_text"] = yr.day_text(date.fromisoformat(row["published_on"])) if row["published_on"] \
            else "Not yet"
    started = {r["period"]["start"] for r in reports}
    summary = [{"text": message, "href": f"#{name}"} for name, message in errors.items()]
    return render(request, "yearly_report/index.html", page_context(
        request, principal, page_title="Yearly report", warning=yr.publish_by_warning(doc),
        rules=rules_in_words(doc), reports=reports, values=values, errors=errors, error_summary=summary,
        page_has_errors=bool(summary), may_start=yr.may_start(doc, principal.user_ref, principal.kind),
        may_export=may_export(engine, principal, doc),
        period_items=[{"value": p.start.isoformat(), "text": f"{p.label} ({p.words})"
                       + (" (started)" if p.start.isoformat() in started else ""),
                       "selected": values.get("period_start") == p.start.isoformat()} for p in periods],
        figures=[{"label": p.label, "words": p.words, "start": p.start.isoformat()} for p in periods]),
        status_code=status_code)


@router.get("/yearly-report")
def yearly_report_page(request: Request, principal: PagePrincipal) -> Response:
    return _page(request, principal)


@router.post("/yearly-report")
@bounded_page
async def start_report(request: Request, timeout: TemporalTimeout, engine: DbEngine, temporal: TemporalClient,
                       settings: AppSettings, principal: PagePrincipal) -> Response:

    pid, _doc = _own(request, principal)
    form = await request.form()
    values = {k: str(v) for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    errors: dict[str, str] = {}
    try:
        period_start = date.fromisoformat(values.get("period_start", ""))
    except ValueError:
        period_start = None
        errors["period_start"] = "Select the reporting year the report covers"
    previous, error = parse_date("The date the previous report was published", values.get("previous-day", ""),
                                 values.get("previous-month", ""), values.get("previous-year", ""))
    if error:
        errors["previous"] = error
    if errors:
        await run_in_threadpool(audit, engine, principal, "yearly_report.start", partnership_id=pid, outcome="rejected",
              detail=f"invalid: {', '.join(sorted(errors))} (page)")
        return _page(request, principal, values=values, errors=errors, status_code=422)
    body = YearlyReportIn(period_start=period_start, previous_published_on=date.fromisoformat(previous)
                          if previous else None)
    try:
        out = await start_yearly_report(engine, temporal, settings.task_queue,
                                        principal, pid, body,
                                        timeout=timeout)
    except ApiError as exc:
        await run_in_threadpool(audit, engine, principal, "yearly_report.start", partnership_id=pid, outcome="rejected",
              detail=f"{exc.code}: {exc.message} (page)")
        if exc.status not in (409, 422):
            raise
        found = {{"/previous_published_on": "previous"}.get(f.path, "period_start"):
                 f.message[:1].upper() + f.message[1:] for f in exc.fields}
        return _page(request, principal, values=values, status_code=exc.status,
                     errors=found or {"period_start": exc.message[:1].upper() + exc.message[1:]})
    return RedirectResponse(f"/cases/{out['case_id']}", status_code=303)


@router.get("/yearly-report/figures.{fmt}")
def figures_download(request: Request, principal: PagePrincipal, engine: DbEngine, fmt: str,
                     period: str = "") -> Response:
    """The figures for a reporting year, as a Word document to edit or a CSV file."""
    if fmt not in ("docx", "csv"):
        raise ApiError(404, "not_found", "no such file")
    pid, _doc = _own(request, principal)
    try:
        start = date.fromisoformat(period) if period else None
    except ValueError:
        raise ApiError(404, "not_found", "no such reporting year") from None
    return export_figures(engine, principal, pid, start, fmt)
