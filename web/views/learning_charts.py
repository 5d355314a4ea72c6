"""The learning charts' geometry (drawn by ``learning/_charts.html``): bars by theme, factor and kind, events by
month, stacked by source; and ``FiguresCache``, the rendered figures the themes and national pages share until the
counts change."""

from __future__ import annotations

import threading
from typing import Any

from cachetools import TTLCache
from fastapi import Request
from sqlalchemy import func
from sqlmodel import Session, select

from safeguarding import learning_stats as stats
from safeguarding.tables import LearningTag
from web.views.learning import FACTOR_LABELS, KIND_LABELS, KIND_SHORT

# Bars: the GOV.UK palette, each at least 3:1 against white (WCAG 1.4.11).
SOURCE_COLOURS = {"learning": "#1d70b8", "escalation": "#912b88", "rapid_review": "#505a5f"}
TEXT_COLOUR, MUTED_COLOUR, GRID_COLOUR = "#0b0c0c", "#505a5f", "#b1b4b6"

NOUNS = {"learning": ("learning event", "learning events"), "escalation": ("escalation", "escalations"),
         "rapid_review": ("rapid review", "rapid reviews")}


def _counted(n: int, source: str) -> str:
    one, many = NOUNS.get(source, (source, source))
    return f"{n} {one if n == 1 else many}"


def bar_chart(chart_id: str, title: str, rows: list[dict[str, Any]], sources: list[str]) -> dict[str, Any]:
    """Horizontal bars, one row per item (label above its bar, the figure after it), stacked by source.

    ``rows``: ``[{"label", "values": {source: n}, "href"}]``, in the order to draw them.
    """
    width, label_h, bar_h, gap = 640, 18, 18, 14
    number_room = 70
    top = 28 if len(sources) > 1 else 4
    biggest = max((sum(r["values"].values()) for r in rows), default=0) or 1
    scale = (width - number_room) / biggest
    drawn, y = [], top
    for row in rows:
        x, segments = 0.0, []
        for source in sources:
            n = row["values"].get(source, 0)
            if n:
                w = max(2.0, n * scale)
                segments.append({"x": round(x, 1), "w": round(w, 1), "fill": SOURCE_COLOURS.get(source, MUTED_COLOUR),
                                 "n": n, "source": source})
                x += w
        total = sum(row["values"].values())
        parts = [_counted(row["values"][s], s) for s in sources if row["values"].get(s)]
        drawn.append({**row, "y_top": y, "h_row": label_h + bar_h + gap - 2, "y_label": y + 13,
                      "y_bar": y + label_h + 2, "segments": segments, "total": total,
                      "x_total": round(x + 8, 1), "y_total": y + label_h + 2 + 14,
                      # the link's name starts with what the bar shows, its label and total (WCAG 2.5.3)
                      "aria": f"{row['label']} {total}: {' and '.join(parts) if parts else _counted(0, sources[0])}"})
        y += label_h + bar_h + gap
    legend = [{"x": i * 190, "label": stats.SOURCES.get(s, s), "colour": SOURCE_COLOURS.get(s, MUTED_COLOUR)}
              for i, s in enumerate(sources)] if len(sources) > 1 else []
    return {"id": chart_id, "title": title, "width": width, "height": max(y, 40), "rows": drawn, "legend": legend,
            "text": TEXT_COLOUR, "muted": MUTED_COLOUR}


def month_chart(chart_id: str, title: str, counts: stats.Counts, sources: list[str]) -> dict[str, Any]:
    """Events per month, stacked by source: a vertical bar per month, with value ticks."""
    width, height, left, right, top, bottom = 640, 240, 40, 8, 30, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(counts.by_month.get(m, {}).get(s, 0) for s in sources) for m in counts.months]
    biggest = max(totals, default=0)
    step = max(1, -(-biggest // 4))
    top_value = max(step * 4, 1)
    slot = plot_w / len(counts.months)
    bar = slot * 0.6
    months = []
    for index, month in enumerate(counts.months):
        x = left + index * slot + (slot - bar) / 2
        y_base = top + plot_h
        bars = []
        for source in sources:
            n = counts.by_month.get(month, {}).get(source, 0)
            if n:
                h = n / top_value * plot_h
                y_base -= h
                bars.append({"x": round(x, 1), "y": round(y_base, 1), "h": round(h, 1),
                             "fill": SOURCE_COLOURS.get(source, MUTED_COLOUR)})
        year = month[:4] if index == 0 or month.endswith("-01") else ""
        months.append({"month": month, "label": stats.month_label(month), "short": stats.month_label(month, True),
                       "year": year, "x": round(left + index * slot + slot / 2, 1), "bars": bars,
                       "total": totals[index], "by_source": {s: counts.by_month.get(month, {}).get(s, 0)
                                                            for s in sources}})
    ticks = [{"value": v, "y": round(top + plot_h - v / top_value * plot_h, 1)} for v in range(0, top_value + 1, step)]
    legend = [{"x": left + i * 190, "label": stats.SOURCES.get(s, s), "colour": SOURCE_COLOURS.get(s, MUTED_COLOUR)}
              for i, s in enumerate(sources)]
    busiest = max(months, key=lambda m: m["total"]) if biggest else None
    description = (f"{sum(totals)} events over {len(months)} months, from {months[0]['label']} to "
                   f"{months[-1]['label']}" + (f"; the most in {busiest['label']} ({busiest['total']})."
                                               if busiest else "."))
    return {"id": chart_id, "title": title, "description": description, "width": width, "height": height,
            "left": left, "plot_right": width - right, "plot_bottom": top + plot_h, "bar": round(bar, 1),
            "months": months, "ticks": ticks, "legend": legend, "text": TEXT_COLOUR, "muted": MUTED_COLOUR,
            "grid": GRID_COLOUR}


def charts_of(counts: stats.Counts, theme_labels: dict[str, str], href) -> dict[str, Any]:
    """The theme, factor, kind and month charts (and their tables) for one set of counts."""
    sources = counts.sources or ["learning"]
    theme_rows = sorted(({"id": t, "label": theme_labels.get(t, t), "values": per_source,
                          "href": href("theme", t) if href else None}
                         for t, per_source in counts.themes.items()),
                        key=lambda r: (-sum(r["values"].values()), r["label"]))
    factor_rows = sorted(({"id": f, "label": FACTOR_LABELS.get(f, f).split(":")[0], "full": FACTOR_LABELS.get(f, f),
                           "values": {"learning": n}, "href": href("factor", f) if href else None}
                          for f, n in counts.factors.items()), key=lambda r: (-r["values"]["learning"], r["label"]))
    kind_rows = [{"id": k, "label": KIND_SHORT.get(k, k), "full": KIND_LABELS.get(k, k),
                  "values": {"learning": counts.kinds.get(k, 0)}, "href": href("kind", k) if href else None}
                 for k in [*KIND_LABELS, *sorted(set(counts.kinds) - set(KIND_LABELS))]]
    return {
        "sources": sources,
        "themes": bar_chart("themes-chart", "Themes", theme_rows, sources),
        "factors": bar_chart("factors-chart", "Contributory factors", factor_rows, ["learning"]),
        "kinds": bar_chart("kinds-chart", "Kinds of learning event", kind_rows, ["learning"]),
        "months": month_chart("months-chart", "Events each month", counts, sources),
    }


class FiguresCache:
    """Rendered figures (charts and tables), shared by everyone who reads them, kept until the counts change.

    Keyed by what the figures depend on: the partnership (or the whole country), its arrangements version (the
    theme labels), the 12-month window (today) and the number of ``learning_tag`` rows counted (one indexed
    ``count(*)``). Tags mostly arrive (a new learning event, an escalation closing with a theme, a rapid review's
    decision) or go (a case removed), which changes the number at once; a decision sent back and made again may
    swap its themes for as many others, which ``TTL`` (a minute) catches. One per app
    (``app.state``), so two databases never share entries. Thread-safe; at most ``MAX`` entries (a
    ``cachetools.TTLCache``: least recently used out first).
    """

    TTL = 60.0
    MAX = 2000

    def __init__(self) -> None:
        self._entries: TTLCache[tuple, Any] = TTLCache(maxsize=self.MAX, ttl=self.TTL)
        self._lock = threading.Lock()

    def get(self, key: tuple) -> Any | None:
        with self._lock:
            return self._entries.get(key)

    def put(self, key: tuple, value: Any) -> None:
        with self._lock:
            self._entries[key] = value


def figures_cache(request: Request) -> FiguresCache:
    """The app's figures cache (``app.state.learning_figures``), made on first use."""
    cache = getattr(request.app.state, "learning_figures", None)
    if cache is None:
        cache = request.app.state.learning_figures = FiguresCache()
    return cache


def tag_count(session: Session, partnership_id: str | None) -> int:
    """The ``learning_tag`` rows counted (a partnership's, or every partnership's): part of the figures' cache key."""
    query = select(func.count()).select_from(LearningTag)
    if partnership_id is not None:
        query = query.where(LearningTag.partnership_id == partnership_id)
    return session.execute(query).scalar_one()
