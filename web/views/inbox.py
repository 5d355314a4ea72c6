"""The inbox (my tasks, or the Panel's): its rows from one statement, and its page or live block."""

from __future__ import annotations

import functools
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import Connection, Row, bindparam, func
from sqlalchemy import select as sql_select

from safeguarding.accounts import Principal
from safeguarding.case_queries import my_tasks_params, my_tasks_where
from safeguarding.clock import london_today
from safeguarding.intake import may_record_incidents
from safeguarding.pinned import Pinned, pinned
from safeguarding.tables import Case, Task, User
from web.deps import engine_of
from web.pages import page_context
from web.templating import is_fragment_request, render
from web.views.common import (
    POLL_SECONDS,
    account_of,
    days_left_text,
    digest,
    task_href,
)

INBOX_PAGE_SIZE = 25


def inbox_filters(params) -> dict[str, Any]:
    status = params.get("status", "open")
    page = params.get("page", "1")
    return {"status": status if status in ("open", "done") else "open", "overdue": params.get("overdue") == "1",
            "page": int(page) if page.isdecimal() and 0 < int(page) < 100_000 else 1}


def inbox_rows(engine, principal: Principal, filters: dict[str, Any],
               conn: Connection | None = None) -> tuple[list[dict[str, Any]], int, int]:
    """(this page's rows, how many tasks in all, the page shown: the last one if asked for one past it).

    One statement: the page of tasks joined to their cases and to the names of who claimed them, with the total as a
    window count. A row has what the inbox shows and what its digest (``rev``) covers, nothing else: the rows are
    the inbox macro's parameters (``reviewer/_inbox.html``), whose output is remembered by them. ``conn``: a
    connection the caller has open (else one is taken)."""
    if conn is None:
        with engine.connect() as own:
            return inbox_rows(engine, principal, filters, own)
    overdue = True if filters["overdue"] else None
    page = filters["page"]
    found, total = _inbox_page(conn, principal, filters["status"], overdue, page)
    if not found and total and page > 1:  # past the end: the last page
        page = -(-total // INBOX_PAGE_SIZE)
        found, total = _inbox_page(conn, principal, filters["status"], overdue, page)
    today = london_today()
    me, my_name, national = principal.user_ref, principal.display_name, principal.is_national
    pins: dict[tuple[str, int], Pinned | None] = {}
    rows = []
    for (case_id, key, title, for_, status, due_date, overdue_flag, claimed_by, partnership_id, version, national_ref,
         case_ref, claimer_name, follow_up_date, _total) in found:
        pin_key = (partnership_id, version)
        if pin_key not in pins:
            pins[pin_key] = pinned(engine, partnership_id, version)
        pin = pins[pin_key]
        left = pin.working_days_left(today, due_date) if pin else None
        # The signed-in person's own name is known; an account that is gone shows its reference.
        claimed_by_name = my_name if claimed_by == me else claimed_by if claimer_name is None else claimer_name
        rows.append({"case_id": case_id, "key": key, "title": title, "for": for_, "status": status,
                     "due_date": due_date, "overdue": overdue_flag, "claimed_by": claimed_by,
                     # a step with no deadline but an expected date (the Panel's response): as its page says
                     "expected": follow_up_date if due_date is None else None,
                     "case_label": national_ref if national else case_ref, "days_left": left,
                     "days_left_text": days_left_text(left), "claimed_by_name": claimed_by_name,
                     "mine": claimed_by == me,
                     "href": task_href(case_id, national_ref, key, national and not principal.can_read(partnership_id)),
                     })
    return rows, total, page


_claimer = User.__table__.alias("claimer")
_INBOX_COLUMNS = (Task.case_id, Task.key, Task.title, Task.candidate_label.label("for"), Task.status, Task.due_date,
                  Task.overdue, Task.claimed_by, Case.partnership_id, Case.arrangements_version, Case.national_ref,
                  Case.case_ref, _claimer.c.display_name.label("claimed_by_name"), Task.follow_up_date)


@functools.cache
def _inbox_statements(national: bool, by_overdue: bool):
    """(a page of the inbox with the total as a window count, the count alone), built once per kind of inbox:
    everything that differs between people and pages is a bound parameter. The name of whoever claimed a task
    comes with it (``account_of``)."""
    where = my_tasks_where(national, by_overdue)
    page = (sql_select(*_INBOX_COLUMNS, func.count().over().label("total"))
            .join(Case, Case.id == Task.case_id)
            .outerjoin(_claimer, account_of(_claimer, Task.__table__.c.claimed_by))
            .where(*where)
            .order_by(Task.due_date.is_(None), Task.due_date, Task.opened_at, Task.id)
            .offset(bindparam("page_offset")).limit(bindparam("page_size")))
    return page, sql_select(func.count()).select_from(Task).where(*where)


def _inbox_page(conn: Connection, principal: Principal, status: str, overdue: bool | None,
                page: int) -> tuple[list[Row], int]:
    page_query, count_query = _inbox_statements(principal.is_national, overdue is not None)
    params = my_tasks_params(principal, status, overdue)
    found = conn.execute(page_query, {
        **params, "page_offset": (page - 1) * INBOX_PAGE_SIZE, "page_size": INBOX_PAGE_SIZE}).all()
    if found:
        return found, found[0].total
    if page == 1:
        return [], 0
    return [], conn.execute(count_query, params).scalar_one()


def inbox_response(request: Request, principal: Principal, filters: dict[str, Any], *,
                   flash: str | None = None, known_rev: str | None = None,
                   listing: tuple[list[dict[str, Any]], int, int] | None = None) -> Response:
    """The inbox page (or its live block, for htmx), of ``listing`` (``inbox_rows``'s answer) when the caller has
    it already."""
    rows, total, page = listing if listing is not None else inbox_rows(engine_of(request), principal, filters)
    rev = digest([london_today(), total, page, [(r["case_id"], r["key"], r["status"], r["claimed_by"],
                                                  r["overdue"], r["due_date"]) for r in rows]])
    if known_rev is not None and known_rev == rev and flash is None:
        return Response(status_code=204)
    filter_query = "&".join(f"{k}={v}" for k, v in (("status", filters["status"]),
                                                     ("overdue", "1" if filters["overdue"] else "")) if v)
    query = "&".join(q for q in (filter_query, f"page={page}" if page > 1 else "") if q)
    pages = max(1, -(-total // INBOX_PAGE_SIZE))

    def page_href(number: int) -> str:
        return "/tasks?" + "&".join(q for q in (filter_query, f"page={number}") if q)

    context = page_context(request, principal, page_title="Panel tasks" if principal.is_national else "My tasks",
                           rows=rows, total=total, page=page, pages=pages,
                           first=(page - 1) * INBOX_PAGE_SIZE + 1, last=(page - 1) * INBOX_PAGE_SIZE + len(rows),
                           previous_href=page_href(page - 1) if page > 1 else None,
                           next_href=page_href(page + 1) if page < pages else None,
                           filters=filters, rev=rev, flash=flash, poll_seconds=POLL_SECONDS,
                           back="/tasks" + (f"?{query}" if query else ""), query=query,
                           # the notifying role's work starts here too (issue 17.11); not for polls and swaps
                           may_record=not principal.is_national and not is_fragment_request(request)
                           and may_record_incidents(engine_of(request), principal))
    return render(request, "reviewer/tasks.html", context, block="inbox")
