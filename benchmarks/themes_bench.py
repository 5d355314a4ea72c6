"""Latency of the learning themes page with 50,000 learning events across 150 partnerships, beside /healthz.

Fills a fresh read model (SQLite by default, or PostgreSQL with --database-url, in a private schema dropped
afterwards) by bulk insert: --partnerships partnerships (each with the example arrangements under its own id and
name, a signed-in practitioner, and a national-body account), --events learning events spread over the last 14
months (so some fall outside the page's 12-month window) with 1-3 themes and 1-3 contributory factors each, and
--escalation-share as many escalations whose closing theme is counted beside them, and --rapid-review-share as many
rapid reviews whose decision recorded 1-3 themes. Each event is a ``case`` row
and its ``learning_tag`` rows, as the read-model activity writes them.

Then starts the app with uvicorn (a separate process, so the load generator does not share its GIL) on a free
127.0.0.1 port and, for each page, sends --requests requests from --clients concurrent signed-in clients (each
a practitioner of a different partnership; signed in with httpx, the load on one keep-alive connection each;
every loop bounded by --requests). Prints p50 / p95 /
p99 / max, throughput and the p50 ratio to /healthz, and the query plans of the themes queries. Aim: /learning/themes
p95 <= 100 ms.

Run:  .venv/bin/python benchmarks/themes_bench.py [--requests 2000] [--clients 20] [--workers 1]
      .venv/bin/python benchmarks/themes_bench.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import random
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import harness
from harness import PASSWORD, bench_database, chunks, measure, print_table, running_server, signed_in

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, text  # noqa: E402

from safeguarding.accounts import hash_password  # noqa: E402
from safeguarding.arrangements import canonical_json, content_hash  # noqa: E402
from safeguarding.tables import ArrangementsVersion, Case, LearningTag, Partnership, User  # noqa: E402
from safeguarding.themes import FACTORS, PANEL_THEMES  # noqa: E402

EXAMPLE = ROOT / "schemas" / "examples" / "riverford-and-vale.json"
KINDS = ["harm", "near_miss", "near_miss", "good_practice", "future_risk"]
THEMES = [t for t, _ in PANEL_THEMES] + ["rural-isolation", "transitions-to-adulthood"]
THEME_WEIGHTS = [9, 6, 2, 2, 5, 4, 7, 3, 2, 5, 3, 1, 1, 8, 6, 2, 1]
FACTOR_IDS = [f for f, _ in FACTORS]
SUMMARY = ("A referral sent on Friday evening sat in a shared inbox until Tuesday; the weekend rota did not cover "
           "the inbox and the duty worker could not see it from the case system.")


def fill(engine, partnerships: int, events: int, escalation_share: float, rapid_review_share: float = 0.02,
         seed: int = 5) -> dict:
    """Bulk-insert partnerships, people, cases and their tags; returns who to sign in as."""
    rng = random.Random(seed)
    base = json.loads(EXAMPLE.read_text())
    today = datetime.now(ZoneInfo("Europe/London")).date()
    now = datetime.now(UTC)
    password_hash = hash_password(PASSWORD)
    rows: dict[str, list[dict]] = {"partnership": [], "version": [], "user": [], "case": [], "tag": []}
    plan: dict = {"practitioners": [], "national": "national@bench.test"}
    rows["user"].append(dict(email="national@bench.test", display_name="Panel analyst", user_ref="u-bench-panel",
                             kind="national_body", partnership_id=None, agency_id=None, password_hash=password_hash,
                             active=True, created_at=now))
    pids = []
    for p in range(partnerships):
        pid = f"bench-{p:03d}"
        pids.append(pid)
        doc = copy.deepcopy(base)
        doc["partnership"]["id"], doc["partnership"]["name"] = pid, f"Bench Partnership {p:03d}"
        rows["partnership"].append(dict(id=pid, name=doc["partnership"]["name"], created_at=now))
        rows["version"].append(dict(partnership_id=pid, number=1, content_hash=content_hash(doc),
                                    document=canonical_json(doc), author="bench", change_note="bench", created_at=now))
        ref = f"u-b{p:03d}-practitioner"
        rows["user"].append(dict(email=f"b{p:03d}-practitioner@bench.test", display_name=f"Practitioner {p:03d}",
                                 user_ref=ref, kind="reviewer", partnership_id=pid, agency_id=None,
                                 password_hash=password_hash, active=True, created_at=now))
        plan["practitioners"].append(f"b{p:03d}-practitioner@bench.test")
    escalations = int(events * escalation_share)
    rapid_reviews = int(events * rapid_review_share)
    for n in range(events + escalations + rapid_reviews):
        process = "learning" if n < events else "escalation" if n < events + escalations else "incident"
        source = {"learning": "learning", "escalation": "escalation", "incident": "rapid_review"}[process]
        pid = pids[n % partnerships]
        day = today - timedelta(days=rng.randint(0, 425))
        ref = f"{dict(learning='L', escalation='D', incident='R')[process]}-{n:08X}"
        case_id = f"{process}-{pid}-{ref}"
        kind = rng.choice(KINDS) if process == "learning" else source
        opened = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=rng.randint(8, 18))
        rows["case"].append(dict(
            id=case_id, partnership_id=pid, case_ref=ref, process=process, national_ref=f"N-{uuid.uuid4().hex[:8]}",
            category="serious_harm_abuse_neglect" if process == "incident" else kind,
            status=rng.choice(["open", "closed", "closed"]), stage="", arrangements_version=1,
            aware_date=day, summary=SUMMARY, agencies=json.dumps(["riverford-council"]), children="[]",
            opened_by="reporter" if rng.random() < 0.7 else "anonymous", opened_at=opened, updated_at=now,
            closed_at=None, revision=3))
        month = day.isoformat()[:7]
        themes = {rng.choices(THEMES, THEME_WEIGHTS)[0] for _ in range(1 if process == "escalation"
                                                                       else rng.randint(1, 3))}
        factors = {rng.choice(FACTOR_IDS) for _ in range(rng.randint(1, 3))} if process == "learning" else set()
        for tag_type, values in (("theme", themes), ("factor", factors)):
            rows["tag"] += [dict(case_id=case_id, tag_type=tag_type, tag=value, partnership_id=pid, source=source,
                                 kind=kind, month=month) for value in values]
    tables = [("partnership", Partnership), ("version", ArrangementsVersion), ("user", User), ("case", Case),
              ("tag", LearningTag)]
    with engine.begin() as conn:
        for name, model in tables:
            for chunk in chunks(rows[name]):
                conn.execute(insert(model.__table__), chunk)
    with engine.begin() as conn:
        conn.execute(text("analyze"))
    plan["counts"] = {"partnerships": partnerships, "learning events": events, "escalations": escalations,
                      "rapid reviews": rapid_reviews,
                      "learning_tag rows": len(rows["tag"])}
    plan["today"] = today
    return plan


def query_plans(engine, today: date) -> list[tuple[str, str]]:
    """The database's plan for the themes page's statements (one partnership), to check the index is used."""
    from sqlalchemy.dialects import postgresql, sqlite

    from safeguarding import learning_stats as stats

    statements = []

    class Recorder:
        """Stands in for a Session: records each statement, answers with nothing."""

        def execute(self, statement):
            statements.append(statement)

            class Empty:
                def all(self):
                    return []

                def scalar_one(self):
                    return 0

            return Empty()

    stats.partnership_counts(Recorder(), "bench-000", today)
    stats.events_behind(Recorder(), "bench-000", today, theme="neglect")
    dialect = postgresql.dialect() if engine.dialect.name == "postgresql" else sqlite.dialect()
    out = []
    with engine.connect() as conn:
        for statement in statements:
            compiled = statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
            prefix = "EXPLAIN " if engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "
            plan = conn.exec_driver_sql(prefix + str(compiled)).all()
            text_plan = "; ".join(str(r[-1]) for r in plan)
            out.append((str(compiled).split("FROM")[0].replace("\n", " ")[:70], text_plan))
    return out


# --- the server -----------------------------------------------------------------------------------------------


# --- the load ---------------------------------------------------------------------------------------------------


async def run_load(base: str, plan: dict, n_clients: int, requests: int, pages: list[str],
                   server_pid: int) -> list[tuple[str, dict]]:
    clients = [await signed_in(base, email) for email in plan["practitioners"][:n_clients]]
    results = []
    try:
        if "healthz" in pages:
            results.append(("/healthz (baseline)", await measure(clients, "/healthz", requests, server_pid)))
        if "themes" in pages:
            results.append(("/learning/themes", await measure(clients, "/learning/themes", requests, server_pid)))
        if "events" in pages:
            results.append(("/learning/themes?theme=neglect", await measure(
                clients, "/learning/themes?theme=neglect", requests, server_pid)))
        if "national" in pages:
            national = [await signed_in(base, plan["national"]) for _ in range(n_clients)]
            results.append(("/national/learning", await measure(national, "/national/learning", requests, server_pid)))
            for c in national:
                await c.aclose()
    finally:
        for c in clients:
            await c.aclose()
    return results


def report(results: list[tuple[str, dict]], title: str) -> None:
    print_table(results, title)
    themes = next((r for name, r in results if name == "/learning/themes"), None)
    if themes:
        verdict = "met" if themes["p95"] <= 100 else "MISSED"
        print(f"aim: /learning/themes p95 <= 100 ms: {verdict} ({themes['p95']:.1f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="PostgreSQL URL (a private schema is created and dropped); "
                                               "default: a temporary SQLite file")
    parser.add_argument("--partnerships", type=int, default=150)
    parser.add_argument("--events", type=int, default=50_000, help="learning events in all")
    parser.add_argument("--escalation-share", type=float, default=0.1,
                        help="escalations with a closing theme, as a share of --events")
    parser.add_argument("--rapid-review-share", type=float, default=0.02,
                        help="rapid reviews whose decision recorded themes, as a share of --events")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=2000, help="per page")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--pages", default="healthz,themes,events,national",
                        help="comma-separated: healthz,themes,events,national")
    args = parser.parse_args()
    if args.clients > args.partnerships:
        parser.error("--clients can be at most --partnerships (one signed-in practitioner per partnership)")

    with bench_database(args.database_url, "sgflow-themes-bench-") as (url, tmp):
        engine, plan = harness.migrated_and_filled(url, fill, args.partnerships, args.events, args.escalation_share,
                                           args.rapid_review_share)
        print("\nquery plans of the themes page (one partnership):")
        for statement, plan_text in query_plans(engine, plan["today"]):
            print(f"  {statement}...\n    {plan_text}")
        engine.dispose()
        with running_server(url, tmp / "data", workers=args.workers) as (proc, base):
            results = asyncio.run(run_load(base, plan, args.clients, args.requests, args.pages.split(","),
                                           proc.pid))
        report(results, f"{args.clients} concurrent signed-in clients, {args.requests:,} requests per page, "
                        f"uvicorn ({args.workers} process{'es' if args.workers > 1 else ''}) on "
                        f"{engine.dialect.name}, {os.cpu_count()} CPUs, {date.today().isoformat()}")


if __name__ == "__main__":
    main()
