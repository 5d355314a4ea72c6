"""Pages for the national body: notifications and rapid reviews across every partnership, pseudonymised.

Everything shown comes from ``safeguarding.national`` (fixed SQL over the read model, never one query per
case), which hands out no children's pseudonyms, summaries, people, user references, form data or local case
references. Cases are named by their pseudonymous ``national_ref``. Administrators may read these pages too;
everyone else gets a 403.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import Session

from safeguarding import national
from safeguarding.clock import london_today
from safeguarding.monitoring import TREND_MONTHS
from web.deps import DbEngine, PagePrincipal
from web.errors import error_page
from web.pages import page_context
from web.templating import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
NATIONAL_KINDS = ("national_body", "administrator")
PANEL_RESPONSES = {"agrees": "Agrees with the decision", "disagrees": "Disagrees with the decision",
                   "national_review": "Will hold a national review"}
LCSPR_DECISIONS = {"yes": "Local review to be held", "no": "No local review"}
PROCESSES = {"incident": "Serious incident: notification and rapid review", "escalation": "Escalation",
             "lcspr": "Local child safeguarding practice review"}
PURPOSES = {"professional_disagreement": "Resolving a professional disagreement",
            "overdue_work": "Overdue statutory work"}
OUTCOMES = {"resolved": "Resolved", "withdrawn": "Withdrawn", "work done": "The overdue work was done"}
STATUS_WORDS = {**national.CASE_STATUSES, "resolved": "Resolved", "withdrawn": "Withdrawn"}
TASK_STATUSES = {"open": ("Open", "govuk-tag--blue"), "done": ("Done", "govuk-tag--green"),
                 "cancelled": ("Cancelled", "govuk-tag--grey")}


def _forbidden(request: Request) -> Response:
    return error_page(request, 403, "These pages are for the national Child Safeguarding Practice Review Panel.",
                      heading="You cannot see the national overview")


def _page_number(value: str | None) -> int:
    return int(value) if value and value.isdecimal() and len(value) < 7 and int(value) > 0 else 1


def _labels() -> dict[str, dict[str, str]]:
    return {"statuses": STATUS_WORDS, "responses": PANEL_RESPONSES, "decisions": LCSPR_DECISIONS,
            "task_statuses": TASK_STATUSES, "processes": PROCESSES, "purposes": PURPOSES, "outcomes": OUTCOMES}


@router.get("/national")
def overview(request: Request, principal: PagePrincipal, engine: DbEngine, partnership: str | None = None,
             status: str | None = None,
             show: str | None = None,
             page: str | None = None) -> Response:
    """Headline figures and every case (filtered by partnership, status or what needs attention), paginated."""
    if principal.kind not in NATIONAL_KINDS:
        return _forbidden(request)
    partnership = partnership or None
    status = status if status in national.CASE_STATUSES else None
    show = show if show in national.SHOW_FILTERS else None
    number = _page_number(page)
    today = london_today()
    with Session(engine) as session:
        everyone = national.partnerships(session)
        if partnership not in {pid for pid, _ in everyone}:
            partnership = None
        figures = national.figures(session, today, partnership_id=partnership)
        rows, total = national.list_cases(session, today, partnership_id=partnership, status=status, show=show,
                                          limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE)
        pages = max(1, -(-total // PAGE_SIZE))
        if number > pages:  # past the end (e.g. after a filter): show the last page
            number = pages
            rows, total = national.list_cases(session, today, partnership_id=partnership, status=status,
                                              show=show, limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE)
    params: dict[str, str | int | None] = {"partnership": partnership, "status": status, "show": show}

    def href(**override: str | int | None) -> str:
        text = urlencode({k: v for k, v in {**params, **override}.items() if v})
        return "/national" + (f"?{text}" if text else "")

    return render(request, "national/overview.html", page_context(
        request, principal, page_title="National overview", today=today, figures=figures, cases=rows, total=total,
        page=number, pages=pages, first=(number - 1) * PAGE_SIZE + 1, last=(number - 1) * PAGE_SIZE + len(rows),
        previous_href=href(page=number - 1) if number > 1 else None,
        next_href=href(page=number + 1) if number < pages else None, figure_href=href,
        partnerships=everyone, partnership=partnership, status=status, show=show,
        partnership_name=dict(everyone).get(partnership) if partnership else None,
        show_filters=national.SHOW_FILTERS, status_filters=national.CASE_STATUSES, trend_months=TREND_MONTHS,
        **_labels()), block="results")


@router.get("/national/cases/{national_ref}")
def case_page(request: Request, engine: DbEngine, national_ref: str, principal: PagePrincipal) -> Response:
    """One case by its national reference: dates, lateness, status and its steps, without people."""
    if principal.kind not in NATIONAL_KINDS:
        return _forbidden(request)
    if len(national_ref) > 20:
        return error_page(request, 404)
    with Session(engine) as session:
        found = national.cases_by_ref(session, london_today(), national_ref)
    if not found:
        return error_page(request, 404)
    return render(request, "national/case.html", page_context(
        request, principal, page_title=f"Case {national_ref}", national_ref=national_ref, found=found,
        **_labels()))
