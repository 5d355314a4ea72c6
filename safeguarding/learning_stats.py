"""Counting what a partnership (or the whole country) is learning: themes, contributory factors and kinds of
learning events over the last 12 months, from ``learning_tag``, and the events behind a count.

``learning_tag`` holds one row per theme or factor of a learning event (and the theme recorded at the close of an
escalation, ``source = "escalation"``), with the month it happened. It never holds anyone's identity, and nothing
here reads ``learning_reporter`` or ``app_user``: what comes out is ids, labels and counts (and, for the events
behind a count, the case's reference, date, kind, status and what happened: the partnership's own cases).

Every figure is one grouped query over the partnership's rows for the window, which the
``ix_learning_tag_counts (partnership_id, tag_type, tag, month)`` index narrows to that partnership:

* ``partnership_counts``: four statements (themes by source, factors, kinds, months);
* ``events_behind``: one count and one page of cases (``case.id IN (tag rows)``, newest first);
* ``national_counts``: the same four aggregations across every partnership, plus the partnership names.

An event is counted once per theme it has (and once per factor): so the theme figures add up to more than the
number of events. Kinds and months count events (distinct cases), never tags.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import distinct, func, select
from sqlmodel import Session

from safeguarding.tables import Case, LearningTag, Partnership

__all__ = [
    "SOURCES",
    "WINDOW_MONTHS",
    "Counts",
    "EventRow",
    "events_behind",
    "month_label",
    "months_window",
    "national_counts",
    "partnership_counts",
]

WINDOW_MONTHS = 12
# Where a theme was recorded, in the order pages show them.
SOURCES: dict[str, str] = {"learning": "Learning events", "escalation": "Escalations",
                           "rapid_review": "Rapid reviews"}
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")


def months_window(today: date, months: int = WINDOW_MONTHS) -> list[str]:
    """The last ``months`` calendar months up to and including this one, oldest first, as ``YYYY-MM``."""
    out = []
    year, month = today.year, today.month
    for _ in range(months):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return out[::-1]


def month_label(month: str, short: bool = False) -> str:
    """``2026-03`` -> ``March 2026`` (``Mar`` when short)."""
    year, number = month.split("-")
    name = _MONTHS[int(number) - 1]
    return name[:3] if short else f"{name} {year}"


@dataclass
class Counts:
    """Counts over a window. ``themes[tag][source]`` counts tags; ``kinds``/``months`` count events."""

    months: list[str]
    themes: dict[str, dict[str, int]] = field(default_factory=dict)
    factors: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)  # learning events only
    by_month: dict[str, dict[str, int]] = field(default_factory=dict)  # month -> source -> events
    events: dict[str, int] = field(default_factory=dict)  # source -> events in the window

    @property
    def sources(self) -> list[str]:
        """The sources that have anything to count, in display order."""
        seen = set(self.events)
        return [s for s in SOURCES if s in seen] + sorted(seen - set(SOURCES))


def _window_filter(query, partnership_id: str | None, since: str, until: str):
    query = query.where(LearningTag.month >= since, LearningTag.month <= until)
    if partnership_id is not None:
        query = query.where(LearningTag.partnership_id == partnership_id)
    return query


def _fill(counts: Counts, rows_themes, rows_factors, rows_kinds, rows_months) -> Counts:
    for tag, source, n in rows_themes:
        counts.themes.setdefault(tag, {})[source] = n
    for tag, n in rows_factors:
        counts.factors[tag] = n
    for kind, n in rows_kinds:
        counts.kinds[kind] = n
    for month, source, n in rows_months:
        counts.by_month.setdefault(month, {})[source] = n
        counts.events[source] = counts.events.get(source, 0) + n
    return counts


def partnership_counts(session: Session, partnership_id: str, today: date,
                       months: int = WINDOW_MONTHS) -> Counts:
    """One partnership's themes (by source), factors, kinds and events per month over the last ``months``."""
    window = months_window(today, months)
    since, until = window[0], window[-1]
    tag = LearningTag
    themes = session.execute(_window_filter(
        select(tag.tag, tag.source, func.count()).where(tag.tag_type == "theme"), partnership_id, since, until)
        .group_by(tag.tag, tag.source)).all()
    factors = session.execute(_window_filter(
        select(tag.tag, func.count()).where(tag.tag_type == "factor"), partnership_id, since, until)
        .group_by(tag.tag)).all()
    # every learning event has at least one theme and an escalation's tag is its theme: one theme row per event
    # would double count, so kinds and months count distinct cases over the theme rows
    kinds = session.execute(_window_filter(
        select(tag.kind, func.count(distinct(tag.case_id))).where(tag.tag_type == "theme", tag.source == "learning"),
        partnership_id, since, until).group_by(tag.kind)).all()
    by_month = session.execute(_window_filter(
        select(tag.month, tag.source, func.count(distinct(tag.case_id))).where(tag.tag_type == "theme"),
        partnership_id, since, until).group_by(tag.month, tag.source)).all()
    return _fill(Counts(months=window), themes, factors, kinds, by_month)


# --- the events behind a count ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventRow:
    """One event behind a count: the partnership's own case (no people: who reported it is never here)."""

    case_id: str
    case_ref: str
    process: str  # learning | escalation
    kind: str
    occurred_on: date
    status: str
    summary: str


def events_behind(session: Session, partnership_id: str, today: date, *, theme: str | None = None,
                  factor: str | None = None, kind: str | None = None, month: str | None = None,
                  source: str | None = None, limit: int = 50, months: int = WINDOW_MONTHS
                  ) -> tuple[list[EventRow], int]:
    """(the newest ``limit`` events behind one count, how many there are in all), newest first."""
    window = months_window(today, months)
    since, until = window[0], window[-1]
    tag = LearningTag
    if month is not None:
        if month not in window:
            return [], 0
        since = until = month
    inner = _window_filter(select(tag.case_id), partnership_id, since, until)
    if factor is not None:
        inner = inner.where(tag.tag_type == "factor", tag.tag == factor)
    else:
        inner = inner.where(tag.tag_type == "theme")
        if theme is not None:
            inner = inner.where(tag.tag == theme)
    if kind is not None:
        inner = inner.where(tag.kind == kind)
    if source is not None:
        inner = inner.where(tag.source == source)
    condition = (Case.id.in_(inner), Case.partnership_id == partnership_id)
    total = session.execute(select(func.count()).select_from(Case).where(*condition)).scalar_one()
    rows = session.execute(select(Case.id, Case.case_ref, Case.process, Case.category, Case.aware_date, Case.status,
                               Case.summary).where(*condition)
                        .order_by(Case.aware_date.desc(), Case.opened_at.desc(), Case.id).limit(limit)).all()
    events = [EventRow(case_id=r[0], case_ref=r[1], process=r[2], kind=r[3], occurred_on=r[4], status=r[5],
                       summary=r[6]) for r in rows]
    return events, total


# --- across every partnership (the national body): names and counts only -------------------------------------------


@dataclass
class NationalCounts:
    """Every partnership's counts over one window, and the country's. No event text, no case ids, no people."""

    months: list[str]
    total: Counts
    partnerships: list[tuple[str, str]]  # (id, name) of partnerships with something counted, by name
    by_partnership: dict[str, Counts]

    def rows(self) -> list[dict[str, Any]]:
        """Flat rows for the CSV: partnership, measure, id, source, count."""
        out: list[dict[str, Any]] = []
        for pid, name in self.partnerships:
            counts = self.by_partnership[pid]
            for source, n in sorted(counts.events.items()):
                out.append({"partnership_id": pid, "partnership": name, "measure": "events", "id": source,
                            "source": source, "count": n})
            for theme, per_source in sorted(counts.themes.items()):
                for source, n in sorted(per_source.items()):
                    out.append({"partnership_id": pid, "partnership": name, "measure": "theme", "id": theme,
                                "source": source, "count": n})
            for factor, n in sorted(counts.factors.items()):
                out.append({"partnership_id": pid, "partnership": name, "measure": "factor", "id": factor,
                            "source": "learning", "count": n})
            for kind, n in sorted(counts.kinds.items()):
                out.append({"partnership_id": pid, "partnership": name, "measure": "kind", "id": kind,
                            "source": "learning", "count": n})
        return out


def national_counts(session: Session, today: date, months: int = WINDOW_MONTHS) -> NationalCounts:
    """The four aggregations across every partnership, grouped by partnership (four statements, plus names)."""
    window = months_window(today, months)
    since, until = window[0], window[-1]
    tag = LearningTag
    pid = tag.partnership_id
    themes = session.execute(_window_filter(
        select(pid, tag.tag, tag.source, func.count()).where(tag.tag_type == "theme"), None, since, until)
        .group_by(pid, tag.tag, tag.source)).all()
    factors = session.execute(_window_filter(
        select(pid, tag.tag, func.count()).where(tag.tag_type == "factor"), None, since, until)
        .group_by(pid, tag.tag)).all()
    kinds = session.execute(_window_filter(
        select(pid, tag.kind, func.count(distinct(tag.case_id))).where(tag.tag_type == "theme",
                                                                       tag.source == "learning"),
        None, since, until).group_by(pid, tag.kind)).all()
    by_month = session.execute(_window_filter(
        select(pid, tag.month, tag.source, func.count(distinct(tag.case_id))).where(tag.tag_type == "theme"),
        None, since, until).group_by(pid, tag.month, tag.source)).all()
    grouped: dict[str, list[list]] = defaultdict(lambda: [[], [], [], []])
    for index, rows in enumerate((themes, factors, kinds, by_month)):
        for row in rows:
            grouped[row[0]][index].append(tuple(row[1:]))
    by_partnership = {p: _fill(Counts(months=window), *parts) for p, parts in grouped.items()}
    total = Counts(months=window)
    for counts in by_partnership.values():
        for theme, per_source in counts.themes.items():
            for source, n in per_source.items():
                total.themes.setdefault(theme, {})[source] = total.themes.get(theme, {}).get(source, 0) + n
        for factor, n in counts.factors.items():
            total.factors[factor] = total.factors.get(factor, 0) + n
        for kind, n in counts.kinds.items():
            total.kinds[kind] = total.kinds.get(kind, 0) + n
        for month, per_source in counts.by_month.items():
            for source, n in per_source.items():
                total.by_month.setdefault(month, {})[source] = total.by_month.get(month, {}).get(source, 0) + n
        for source, n in counts.events.items():
            total.events[source] = total.events.get(source, 0) + n
    names = dict(session.execute(select(Partnership.id, Partnership.name).where(
        Partnership.id.in_(list(by_partnership)))).all()) if by_partnership else {}
    partnerships = sorted(((p, names.get(p, p)) for p in by_partnership), key=lambda item: item[1].lower())
    return NationalCounts(months=window, total=total, partnerships=partnerships, by_partnership=by_partnership)
