"""Learning across every partnership, for the national body only (everyone else: 404): ``/national/learning``
(counts by partnership name: no event text, no case references, no people) and ``/national/learning.csv``."""

from __future__ import annotations

import csv
import io
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import Session

from safeguarding import learning_stats as stats
from safeguarding.accounts import Principal
from safeguarding.audit_log import audit
from safeguarding.clock import london_today
from safeguarding.pinned import current
from safeguarding.themes import themes_for
from web.deps import DbEngine, PagePrincipal, engine_of
from web.errors import error_page
from web.pages import page_context
from web.templating import render
from web.views.learning import FACTOR_LABELS, KIND_LABELS
from web.views.learning_charts import charts_of, figures_cache, tag_count

router = APIRouter(include_in_schema=False)


def _national(request: Request, principal: Principal) -> tuple[stats.NationalCounts, dict[str, str]] | None:
    """Every partnership's counts and every theme's label (None for anyone but the national body), from the cache
    while the number of counted tags is unchanged."""
    if principal.kind != "national_body":
        return None
    today = london_today()
    with Session(engine_of(request)) as session:
        key = ("national", stats.months_window(today)[-1], tag_count(session, None))
        cached = figures_cache(request).get(key)
        if cached is None:
            national = stats.national_counts(session, today)
            cached = (national, _all_theme_labels(request, [pid for pid, _ in national.partnerships]))
            figures_cache(request).put(key, cached)
    return cached


def _all_theme_labels(request: Request, partnership_ids: list[str]) -> dict[str, str]:
    """Labels for every theme counted: the Panel's, and each partnership's own (an unknown id shows as itself)."""
    labels = themes_for({})
    for pid in partnership_ids:
        facts = current(engine_of(request), pid)
        if facts is not None:
            for theme, label in facts.themes.items():
                labels.setdefault(theme, label)
    return labels


@router.get("/national/learning")
def national_learning(request: Request, principal: PagePrincipal):
    found = _national(request, principal)
    if found is None:
        return error_page(request, 404)
    national, labels = found
    charts = charts_of(national.total, labels, None)
    rows = []
    for pid, name in national.partnerships:
        counts = national.by_partnership[pid]
        top = sorted(counts.themes.items(), key=lambda item: (-sum(item[1].values()), labels.get(item[0], item[0])))
        rows.append({"name": name, "learning": counts.events.get("learning", 0),
                     "escalation": counts.events.get("escalation", 0),
                     "rapid_review": counts.events.get("rapid_review", 0),
                     "top": [f"{labels.get(t, t)} ({sum(v.values())})" for t, v in top[:3]]})
    window = national.months
    context = page_context(request, principal, page_title="Learning across partnerships", charts=charts,
                           counts=national.total, rows=rows, source_labels=stats.SOURCES,
                           first_month=stats.month_label(window[0]), last_month=stats.month_label(window[-1]))
    return render(request, "learning/national.html", context)


CSV_MEASURES = {"theme": "Learning theme", "factor": "Contributing factor", "kind": "Kind of event",
                "events": "Events"}


def _cell(value: Any) -> Any:
    """Spreadsheet formula injection: text that starts like a formula is written with a leading apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@router.get("/national/learning.csv")
def national_learning_csv(request: Request, engine: DbEngine, principal: PagePrincipal):
    found = _national(request, principal)
    if found is None:
        return error_page(request, 404)
    national, labels = found
    label_of = {"theme": labels, "factor": FACTOR_LABELS, "kind": KIND_LABELS, "events": stats.SOURCES}
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    # headers and words for people (issue 17.12); the id column keeps the value a script can match on
    writer.writerow(["Partnership", "From month", "To month", "Measure", "Id", "Label", "Counted from", "Count"])
    for row in national.rows():
        label = label_of[row["measure"]].get(row["id"], row["id"])
        writer.writerow([_cell(v) for v in (row["partnership"], national.months[0], national.months[-1],
                                            CSV_MEASURES.get(row["measure"], row["measure"]), row["id"], label,
                                            stats.SOURCES.get(row["source"], row["source"]), row["count"])])
    name = f"learning-{national.months[0]}-to-{national.months[-1]}.csv"
    audit(engine, principal, "national.learning.export", detail=f"{len(national.partnerships)} partnerships")
    return Response("\ufeff" + buffer.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})
