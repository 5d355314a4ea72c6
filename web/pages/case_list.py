"""The cases a person may read (``/cases``), filtered by status or overdue work."""

from __future__ import annotations

from fastapi import APIRouter, Request

from safeguarding.case_queries import list_cases
from safeguarding.intake import may_record_incidents
from safeguarding.pinned import pinned
from web.deps import DbEngine, PagePrincipal
from web.pages import page_context
from web.templating import render
from web.views.common import (
    CASE_STATUSES,
    STATUS_TAGS,
)

router = APIRouter(include_in_schema=False)
# which process a case is: an incident and the local review opened from it are two cases (issue 17.11)
PROCESS_LABELS = {"incident": "Incident", "lcspr": "Local review", "escalation": "Escalation",
                  "learning": "Learning event", "yearly_report": "Yearly report"}


# --- cases ------------------------------------------------------------------------------------------------------------


@router.get("/cases")
def cases_page(request: Request, engine: DbEngine, principal: PagePrincipal):
    params = request.query_params
    status = params.get("status", "open")
    status = status if status in (*CASE_STATUSES, "all") else "open"
    overdue = params.get("overdue") == "1"
    rows = list_cases(engine, principal, status=None if status == "all" else status, overdue=True if overdue else None,
                      limit=200)
    for row in rows:
        facts = pinned(engine, row["partnership_id"], row["arrangements_version"])
        row["category_label"] = facts.categories.get(row["category"], row["category"]) if facts else row["category"]
        row["status_label"] = CASE_STATUSES.get(row["status"], row["status"])
        row["process_label"] = PROCESS_LABELS.get(row["process"], row["process"])
        row["status_classes"] = STATUS_TAGS.get(row["status"], "govuk-tag--grey")
    context = page_context(request, principal, page_title="Cases", rows=rows,
                           filters={"status": status, "overdue": overdue},
                           status_options=[("open", "Open"), ("closed", "Closed"),
                                           ("awaiting_lcspr", CASE_STATUSES["awaiting_lcspr"]),
                                           ("national_review", CASE_STATUSES["national_review"]), ("all", "All")],
                           may_record=may_record_incidents(engine, principal))
    return render(request, "reviewer/cases.html", context, block="results")


