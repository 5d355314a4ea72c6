"""The national body's monitoring page: timeliness and escalations across every partnership, pseudonymised.

``/national/monitoring`` shows late notifications, rapid reviews (in progress, overdue, submitted, awaiting the
Panel's response), escalations by the highest stage reached and by timeouts (and those shown to the national
body), a timeliness table per partnership, a monthly trend (an inline SVG chart, with the same figures as a table
for screen readers) and local reviews (in progress, due, overdue, published, not published). Cases link to the
pseudonymised case page ``/national/cases/{national_ref}``. Each table downloads as CSV from
``/national/monitoring/<table>.csv``. The notification figures (headline, by partnership, the late list) count the
trend's 12 months, as the trend and its CSV do, and say so; "raised in the last 12 months" is the trend's sum of
escalations, beside all escalations raised (issue 17, point 12).

Everything comes from ``safeguarding.monitoring`` (aggregate SQL, no names, no local references, no free text).
For the national body only: everyone else gets a 404 (administrators too: they have no monitoring role).
The figures are cached for ``monitoring.CACHE_SECONDS`` (the page says when they were computed).
"""

from __future__ import annotations

import math
import threading
from datetime import date
from typing import Any

from cachetools import LRUCache
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from safeguarding import monitoring
from safeguarding.accounts import Principal
from safeguarding.audit_log import audit
from safeguarding.clock import london_today
from web.deps import DbEngine, PagePrincipal
from web.errors import error_page
from web.pages import page_context
from web.session import csrf_token
from web.templating import LONDON, env, is_fragment_request, render

router = APIRouter(include_in_schema=False)

MONITORING_KINDS = ("national_body",)

# The charts: GOV.UK colours, drawn with SVG presentation attributes (no inline styles: CSP-friendly).
CHART = {"width": 720, "height": 260, "left": 56, "right": 16, "top": 40, "bottom": 48}
COLOURS = {"notifications": "#1d70b8", "late": "#d4351c", "escalations": "#0b0c0c", "grid": "#b1b4b6",
           "text": "#0b0c0c", "muted": "#505a5f"}


def _nice_step(raw: float) -> int:
    """The smallest 1, 2 or 5 x 10^k at least ``raw`` (for the axis' gridlines)."""
    if raw <= 1:
        return 1
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return int(factor * power)
    return int(10 * power)


def _panel(trend: list[monitoring.MonthCount], series: list[tuple[str, str, str]], *, line: bool,
           title: str, description: str) -> dict[str, Any]:
    """One chart's geometry: grouped bars for ``series`` (or one line, if ``line``), its own y-axis from 0."""
    c = CHART
    plot_w = c["width"] - c["left"] - c["right"]
    plot_h = c["height"] - c["top"] - c["bottom"]
    bottom = c["top"] + plot_h
    peak = max((getattr(m, key) for m in trend for key, _, _ in series), default=0)
    step = _nice_step(max(peak, 4) / 4)
    top_value = step * max(1, math.ceil(peak / step))

    def y(value: int) -> float:
        return round(bottom - value / top_value * plot_h, 1)

    group = plot_w / max(len(trend), 1)
    bar = round(group * 0.6 / len(series), 1)
    months, points = [], []
    for i, m in enumerate(trend):
        middle = round(c["left"] + i * group + group / 2, 1)
        bars = []
        for n, (key, label, colour) in enumerate(series):
            value = getattr(m, key)
            bars.append({"x": round(c["left"] + i * group + group * 0.2 + n * bar, 1), "y": y(value),
                         "h": round(bottom - y(value), 1), "fill": colour, "title": f"{m.label}: {value:,} {label}"})
        key, label, _ = series[0]
        months.append({"x": middle, "short": m.short, "year": m.year if (i == 0 or m.month == 1) else None,
                       "bars": [] if line else bars,
                       "dot": {"x": middle, "y": y(getattr(m, key)),
                               "title": f"{m.label}: {getattr(m, key):,} {label}"} if line else None})
        points.append(f"{middle},{y(getattr(m, key))}")
    legend, x = [], c["left"]
    for _key, label, colour in series:
        legend.append({"x": x, "label": label[:1].upper() + label[1:], "colour": colour, "line": line})
        x += 40 + 9 * len(label)
    return {**c, "plot_bottom": bottom, "plot_right": c["width"] - c["right"], "bar": bar, "months": months,
            "points": " ".join(points) if line else "", "line_colour": series[0][2] if line else "",
            "ticks": [{"value": v, "y": y(v)} for v in range(0, top_value + 1, step)], "legend": legend,
            "title": title, "description": description}


def trend_chart(trend: list[monitoring.MonthCount]) -> dict[str, Any]:
    """Two charts over the same months, each on its own scale (escalations are often far fewer than
    notifications, or far more): notifications due and late as paired bars; escalations raised as a line."""
    total = sum(m.notifications for m in trend)
    late = sum(m.late_notifications for m in trend)
    raised = sum(m.escalations for m in trend)
    first, last = (trend[0].label, trend[-1].label) if trend else ("", "")
    busiest = max(trend, key=lambda m: m.escalations) if trend else None
    notifications = _panel(
        trend, [("notifications", "notifications due", COLOURS["notifications"]),
                ("late_notifications", "late", COLOURS["late"])], line=False,
        title=f"Notifications due and late, {first} to {last}",
        description=f"Bar chart, two bars a month: notifications due, and how many of them were late. In all "
                    f"{total:,} notifications due, {late:,} late" + (f" ({round(100 * late / total)}%)" if total
                                                                   else "") + ". The table below has every figure.")
    escalations = _panel(
        trend, [("escalations", "escalations raised", COLOURS["escalations"])], line=True,
        title=f"Escalations raised, {first} to {last}",
        description=f"Line chart of escalations raised each month: {raised:,} in all"
                    + (f", most in {busiest.label} ({busiest.escalations:,})" if busiest and raised else "")
                    + ". The table below has every figure.")
    return {"notifications": notifications, "escalations": escalations, "first": first, "last": last,
            "description": notifications["description"] + " " + escalations["description"]}


def _allowed(principal: Principal) -> bool:
    return principal.kind in MONITORING_KINDS


_HTML: LRUCache[str, tuple[monitoring.Report, Markup]] = LRUCache(maxsize=16)  # database -> (report, content)
_HTML_LOCK = threading.Lock()


def report_html(engine, report: monitoring.Report) -> Markup:
    """The page's content for this report: rendered once, reused while ``cached_report`` returns the same report
    (it depends on nothing else: no user, no token). Autoescaped like any template."""
    key = str(engine.url)
    with _HTML_LOCK:
        hit = _HTML.get(key)
    if hit is not None and hit[0] is report:
        return hit[1]
    today = report.today
    # Markup: the output of an autoescaped template (every value in it was escaped as it was rendered).
    html = Markup(env.get_template("monitoring/_report.html").render(  # noqa: S704
        report=report, today=today, totals=report.totals, chart=trend_chart(report.trend), colours=COLOURS,
        computed=report.computed_at.astimezone(LONDON), cache_seconds=int(monitoring.CACHE_SECONDS),
        tables=monitoring.TABLES, purposes=[(p, monitoring.purpose_label(p)) for p in report.purposes],
        purpose_labels={p: monitoring.purpose_label(p) for p in {*report.purposes, *monitoring.PURPOSES}},
        outcomes=monitoring.OUTCOMES, lcspr_state=lambda line: monitoring.lcspr_state(line, today)))
    with _HTML_LOCK:
        _HTML[key] = (report, html)
    return html


# Whole pages, for a few seconds: the page is a function of the report, the person (their name and kind of
# account, for the header and navigation), their session's CSRF token (in the sign-out form) and page-or-fragment.
# Rendering GOV.UK's base template costs more than everything else a cached request does (benchmarks/RESULTS.md).
_PAGES: LRUCache[tuple, tuple[monitoring.Report, bytes]] = LRUCache(maxsize=128)


def _page_key(engine, principal: Principal, request: Request) -> tuple:
    return (str(engine.url), principal.user_id, principal.display_name, principal.kind, csrf_token(request),
            is_fragment_request(request))


def _render_page(request: Request, principal: Principal, engine, today: date) -> Response:
    report = monitoring.cached_report(engine, today)  # may compute it (slow at scale: benchmarks/RESULTS.md)
    context = page_context(request, principal, page_title="Monitoring", report_html=report_html(engine, report))
    response = render(request, "monitoring/index.html", context, block="report")
    with _HTML_LOCK:
        _PAGES[_page_key(engine, principal, request)] = (report, bytes(response.body))
    return response


@router.get("/national/monitoring")
async def monitoring_page(request: Request, engine: DbEngine, principal: PagePrincipal) -> Response:
    """Async on purpose: a page already rendered for this session and this report is answered straight from the
    event loop (no thread hop); anything else is rendered in the thread pool."""
    if not _allowed(principal):
        return error_page(request, 404)
    today = london_today()
    report = monitoring.fresh_report(engine, today)
    if report is not None:
        key = _page_key(engine, principal, request)
        with _HTML_LOCK:
            hit = _PAGES.get(key)  # (a hit is now the most recently used)
            if hit is not None and hit[0] is report:
                return HTMLResponse(hit[1], headers={"Vary": "HX-Request"})
    return await run_in_threadpool(_render_page, request, principal, engine, today)


@router.get("/national/monitoring/{table}.csv")
def monitoring_csv(request: Request, engine: DbEngine, table: str, principal: PagePrincipal) -> Response:
    if not _allowed(principal) or table not in monitoring.TABLES:
        return error_page(request, 404)
    today: date = london_today()
    with Session(engine) as session:
        header, rows = monitoring.table_rows(session, table, today)
    audit(engine, principal, "monitoring.export", detail=f"{table}: {len(rows)} rows")
    return Response(monitoring.csv_text(header, rows), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="sgflow-{table}-{today.isoformat()}.csv"',
        "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})
