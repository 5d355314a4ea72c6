"""The partnership's learning themes (``/learning/themes``): counts by theme, factor, kind and month over 12 months
(learning events beside escalations and rapid reviews; the figures rendered once and cached,
``web.views.learning_charts``), and the events behind a count. No people."""

from __future__ import annotations

from datetime import date
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup
from sqlmodel import Session, select

from safeguarding import learning_stats as stats
from safeguarding.case_access import readable_cases_where
from safeguarding.clock import london_today
from safeguarding.pinned import Pinned
from safeguarding.tables import Case
from web.deps import DbEngine, PagePrincipal
from web.pages import page_context
from web.templating import env, render
from web.views.learning import FACTOR_LABELS, KIND_LABELS, KIND_SHORT, may_list, own_facts, short, shown
from web.views.learning_charts import charts_of, figures_cache, tag_count

router = APIRouter(include_in_schema=False)

EVENTS_SHOWN = 50
PROCESS_WHAT = {"escalation": "Escalation", "incident": "Rapid review"}  # what a non-learning case behind a count is


def _themes_href(name: str, value: str) -> str:
    return "/learning/themes?" + urlencode({name: value}) + "#events"


def _figures(request: Request, session: Session, facts: Pinned, today: date) -> Markup:
    """The partnership's figures, rendered (from the cache while its counts have not changed)."""
    window = stats.months_window(today)
    key = ("partnership", facts.partnership_id, facts.number, window[-1],
           tag_count(session, facts.partnership_id))
    cache = figures_cache(request)
    html = cache.get(key)
    if html is None:
        counts = stats.partnership_counts(session, facts.partnership_id, today)
        # an autoescaped template's output (every value in it was escaped as it was rendered)
        html = Markup(env.get_template("learning/_figures.html").render(  # noqa: S704
            counts=counts, charts=charts_of(counts, facts.themes, _themes_href), source_labels=stats.SOURCES,
            first_month=stats.month_label(window[0]), last_month=stats.month_label(window[-1]),
            month_href=lambda month: _themes_href("month", month)))
        cache.put(key, html)
    return html


@router.get("/learning/themes")
def themes_page(request: Request, engine: DbEngine, principal: PagePrincipal):
    facts = own_facts(request, principal)
    if isinstance(facts, Response):
        return facts
    params = request.query_params
    today = london_today()
    window = stats.months_window(today)
    selectors = {
        "theme": (facts.themes, "with the theme"), "factor": (FACTOR_LABELS, "with the contributory factor"),
        "kind": ({**KIND_LABELS, "escalation": "Escalation"}, "of the kind"),
        "month": ({m: stats.month_label(m) for m in window}, "that happened in"),
    }
    chosen = next(((name, params[name]) for name in selectors if params.get(name) in selectors[name][0]), None)
    source = params.get("source") if params.get("source") in stats.SOURCES else None
    with Session(engine) as session:
        figures_html = _figures(request, session, facts, today)
        events, events_total = ([], 0)
        if chosen:
            events, events_total = stats.events_behind(session, facts.partnership_id, today,
                                                       **{chosen[0]: chosen[1]}, source=source, limit=EVENTS_SHOWN)
        # Learning events are everyone's to learn from (no people in them); an escalation's subject or a rapid
        # review's summary only for those who may read that case (case_access.may_read_case): others see it counted.
        others = [e.case_id for e in events if e.process != "learning"]
        readable = set(others)
        condition = readable_cases_where(session.connection(), principal, facts.partnership_id) if others else None
        if condition is not None:
            readable = set(session.execute(select(Case.id).where(Case.id.in_(others), condition)).scalars())

    selection = None
    if chosen:
        labels, phrase = selectors[chosen[0]]
        label = labels[chosen[1]]
        if chosen[0] == "factor":
            label = label.split(":")[0]
        elif chosen[0] == "kind":
            label = KIND_SHORT.get(chosen[1], label)
        selection = {"name": chosen[0], "value": chosen[1], "label": label, "phrase": phrase,
                     "source": stats.SOURCES.get(source) if source else None}
    event_rows = [{"case_id": e.case_id, "case_ref": e.case_ref, "occurred_on": e.occurred_on,
                   "what": PROCESS_WHAT.get(e.process) or KIND_SHORT.get(e.kind, e.kind),
                   "status": "Closed" if e.status == "closed" else "Open",
                   "readable": e.process == "learning" or e.case_id in readable,
                   "summary": short(e.summary) if e.process == "learning" or e.case_id in readable
                   else "Shown to the people involved in it"}
                  for e in events]
    context = page_context(
        request, principal, page_title="Learning themes", facts=shown(facts), figures_html=figures_html,
        first_month=stats.month_label(window[0]), last_month=stats.month_label(window[-1]),
        selection=selection, events=event_rows, events_total=events_total, events_shown=EVENTS_SHOWN,
        may_list=may_list(facts, principal))
    return render(request, "learning/themes.html", context)
