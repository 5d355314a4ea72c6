"""A partnership's escalations: open ones by stage and age, resolved and withdrawn ones with their actions and themes,
the challenge log and its CSV export. Raising and withdrawing one are ``web.pages.escalation_forms``.

Reads come from the read model. Everything is the signed-in person's own partnership: another partnership's escalation
is a 404, never a 403. Every page works without JavaScript; with htmx the challenge log's filters swap only the log.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import Session, select

from safeguarding.accounts import Principal
from safeguarding.audit_log import audit
from safeguarding.case_access import readable_cases_where
from safeguarding.clock import london_today
from safeguarding.monitoring import csv_text
from safeguarding.pinned import current
from safeguarding.tables import Case
from web.deps import DbEngine, PagePrincipal
from web.pages import page_context
from web.templating import LONDON, render
from web.views.escalations import escalation_rows, own_partnership

router = APIRouter(include_in_schema=False)

OUTCOME_FILTERS = {"open": "Open", "resolved": "Resolved", "withdrawn": "Withdrawn", "work_done": "Work done"}
LOG_LIMIT = 2000


def _filters(params) -> dict[str, str]:
    return {"ladder": params.get("ladder", "")[:63], "outcome": params.get("outcome", "")
            if params.get("outcome") in OUTCOME_FILTERS else "", "theme": params.get("theme", "")[:63]}


def _query(partnership_id: str, filters: dict[str, str] | None = None):
    query = select(Case).where(Case.partnership_id == partnership_id, Case.process == "escalation")
    filters = filters or {}
    if filters.get("ladder"):
        query = query.where(Case.ladder_id == filters["ladder"])
    outcome = filters.get("outcome")
    if outcome == "open":
        query = query.where(Case.status == "open")
    elif outcome:
        query = query.where(Case.outcome == ("work done" if outcome == "work_done" else outcome))
    if filters.get("theme"):
        query = query.where(Case.learning_theme == filters["theme"])
    return query.order_by(Case.aware_date.desc(), Case.opened_at.desc(), Case.id).limit(LOG_LIMIT)


def _load(engine, principal: Principal, partnership_id: str, filters: dict[str, str] | None = None) -> list[Case]:
    """The escalations this person may read (``case_access.may_read_case``): the rest are not listed at all."""
    with Session(engine) as session:
        query = _query(partnership_id, filters)
        readable = readable_cases_where(session.connection(), principal, partnership_id)
        if readable is not None:
            query = query.where(readable)
        return list(session.exec(query))


@router.get("/escalations")
def escalations_page(request: Request, engine: DbEngine, principal: PagePrincipal):

    pid = own_partnership(principal)
    today = london_today()
    filters = _filters(request.query_params)
    every = escalation_rows(engine, principal, pid, _load(engine, principal, pid), today)
    log = every if not any(filters.values()) else escalation_rows(engine, principal, pid,
                                                                   _load(engine, principal, pid, filters), today)
    open_rows = sorted((r for r in every if r["status"] == "open"),
                       key=lambda r: (-(r["current_stage"] or 0), -(r["age"] or 0), r["ref"]))
    closed_rows = [r for r in every if r["status"] != "open"]
    facts = current(engine, pid)
    ladders = facts.ladders if facts else {}
    themes = facts.themes if facts else {}
    by_stage: dict[str, int] = {}
    for row in open_rows:
        by_stage[row["stage_label"] or "Not started"] = by_stage.get(row["stage_label"] or "Not started", 0) + 1
    query = urlencode({k: v for k, v in filters.items() if v})
    withdrawn = request.query_params.get("withdrawn", "")[:40]
    context = page_context(
        request, principal, page_title="Escalations", open_rows=open_rows, closed_rows=closed_rows, log=log,
        filters=filters, by_stage=by_stage, today=today,
        ladder_items=[{"value": "", "text": "Any ladder"}] + [{"value": lid, "text": lad.name}
                                                              for lid, lad in ladders.items()],
        outcome_items=[{"value": "", "text": "Any outcome"}] + [{"value": k, "text": v}
                                                                for k, v in OUTCOME_FILTERS.items()],
        theme_items=[{"value": "", "text": "Any theme"}] + [{"value": k, "text": v} for k, v in themes.items()],
        csv_href="/escalations.csv" + (f"?{query}" if query else ""),
        withdrawn=withdrawn if any(r["ref"] == withdrawn for r in closed_rows) else "")
    return render(request, "escalations/index.html", context, block="log")


CSV_HEADER = ["Reference", "Raised", "Ladder", "Issue type", "What was disagreed", "Agencies", "Child",
              "Urgent", "Highest stage", "Current stage", "Stages timed out", "Shown to the national body",
              "Outcome", "Agreed actions or reason", "Learning theme", "Closed"]


@router.get("/escalations.csv")
def escalations_csv(request: Request, engine: DbEngine, principal: PagePrincipal):

    pid = own_partnership(principal)
    filters = _filters(request.query_params)
    rows = escalation_rows(engine, principal, pid, _load(engine, principal, pid, filters), london_today())
    body = csv_text(CSV_HEADER, ([r["ref"], r["raised"], r["ladder"], r["issue"], r["subject"],
                                  "; ".join(r["agencies"]), r["child"], r["urgent"], r["highest_stage"],
                                  r["current_stage"] if r["status"] == "open" else "", r["timeouts"],
                                  r["reached_national"], r["tag_text"], r["closing"], r["theme"],
                                  r["closed"].astimezone(LONDON).date() if r["closed"] else ""] for r in rows))
    audit(engine, principal, "escalations.export", partnership_id=pid, detail=f"{len(rows)} rows (page)")
    filename = f"challenge-log-{pid}-{london_today().isoformat()}.csv"
    return Response(body, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{filename}"', "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store"})
