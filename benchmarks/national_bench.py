"""The national body's pages under load: /national/monitoring and /national, beside /healthz.

Fills a fresh read model (SQLite by default, or PostgreSQL with --database-url, in a private schema dropped
afterwards) with --partnerships partnerships of --cases-per-partnership cases each (default 150 x 200 = 30,000),
bulk-inserted: about 70% serious incidents (notifications on time, late and not sent; rapid reviews in progress,
overdue, submitted, awaiting the Panel, closed), 20% escalations (both ladders, highest stage 1-4, 0-5 timeouts,
open, resolved, withdrawn, some shown to the national body) and 10% local reviews (in progress, overdue, suspended,
published, not published), with their task rows (done and open, overdue ones, candidates) and timeline events.

Then, in this process, it times the monitoring report's computation with no cache (its SQL and Python: what a
request pays every ``CACHE_SECONDS``) and prints each statement's query plan with --explain. Then it starts the app
with uvicorn (a separate process) on a free 127.0.0.1 port, signs in --clients national-body users and sends
--requests requests per page from them concurrently (signed in with httpx; the load on one keep-alive
connection each, harness.KeepAliveClient), and prints p50 / p95 / p99 / max and
throughput per page. Target: p95 <= 100 ms for /national/monitoring.

Run:  .venv/bin/python benchmarks/national_bench.py [--clients 20] [--requests 2000] [--explain]
      .venv/bin/python benchmarks/national_bench.py --no-cache        # every request recomputes the report
      .venv/bin/python benchmarks/national_bench.py --with-indexes    # also the indexes proposed below
      .venv/bin/python benchmarks/national_bench.py --database-url postgresql+psycopg://postgres@127.0.0.1/test

Only loopback traffic; every loop is bounded by --requests; the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import harness
from harness import PASSWORD, bench_database, chunks, measure, print_table, running_server, signed_in

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import event, insert, text  # noqa: E402
from sqlmodel import Session  # noqa: E402

from safeguarding import monitoring  # noqa: E402
from safeguarding.accounts import hash_password  # noqa: E402
from safeguarding.arrangements import canonical_json, content_hash  # noqa: E402
from safeguarding.tables import (  # noqa: E402
    ArrangementsVersion,
    Case,
    CaseEvent,
    Partnership,
    Task,
    TaskCandidate,
    User,
)

EXAMPLE = ROOT / "schemas" / "examples" / "riverford-and-vale.json"
CATEGORIES = ["death_abuse_neglect", "serious_harm_abuse_neglect", "death_or_harm_outside_england_resident"]
AGENCIES = ["riverford-council", "vale-icb", "riverford-schools", "riverford-hospitals", "probation"]
ISSUES = ["threshold", "information_sharing", "case_closure", "plan_or_decision"]
# Candidate indexes for the monitoring queries (not in the migrations): --with-indexes adds them, to compare.
PROPOSED_INDEXES = [
    'create index ix_case_process_status on "case" (process, status)',
    'create index ix_case_monitoring on "case" (partnership_id, process, status, notification_due, '
    'notification_sent_on, notification_days_late, rapid_review_required, rapid_review_due, '
    'rapid_review_submitted_on, rapid_review_days_late, panel_response, reached_national, report_due, published, '
    'overdue_tasks)',
]


# --- data --------------------------------------------------------------------------------------------------------


def fill(engine, partnerships: int, cases_per: int, seed: int = 11) -> dict:
    rng = random.Random(seed)
    base = json.loads(EXAMPLE.read_text())
    today = datetime.now(ZoneInfo("Europe/London")).date()
    now = datetime.now(UTC)
    password_hash = hash_password(PASSWORD)
    rows: dict[str, list[dict]] = {k: [] for k in ("partnership", "version", "user", "case", "task", "candidate",
                                                   "event")}
    rows["user"].append(dict(email="national@bench.test", display_name="Panel analyst", user_ref="u-bench-panel",
                             kind="national_body", partnership_id=None, agency_id=None, password_hash=password_hash,
                             active=True, created_at=now))
    case_defaults = {c.name: None for c in Case.__table__.columns} | {
        "timeouts": 0, "urgent": False, "reached_national": False, "rapid_review_required": False,
        "overdue_tasks": 0, "revision": 5, "updated_at": now, "arrangements_version": 1, "children": "[]",
        "summary": "", "agencies": "[]", "stage": ""}

    def task(case_id, pid, key, kind, title, role, status, due, opened, *, overdue=False, data="{}"):
        done = status == "done"
        rows["task"].append(dict(
            id=f"{case_id}/{key}", case_id=case_id, partnership_id=pid, key=key, type=kind, title=title,
            form=f"{kind}.v1", candidate_role=role, candidate_label=role.replace("_", " ").capitalize(), status=status,
            due_date=due, follow_up_date=None, overdue=overdue, claimed_by=None,
            completed_by=f"u-{pid}-officer" if done else None,
            completed_at=opened + timedelta(days=3) if done else None,
            days_late=None, data=data, opened_at=opened, revision=5))
        if status == "open":
            rows["candidate"].append(dict(task_id=f"{case_id}/{key}", user_ref=f"u-{pid}-officer"))

    for p in range(partnerships):
        pid = f"bench-{p:03d}"
        doc = copy.deepcopy(base)
        doc["partnership"]["id"], doc["partnership"]["name"] = pid, f"Bench Partnership {p:03d}"
        rows["partnership"].append(dict(id=pid, name=doc["partnership"]["name"], created_at=now))
        rows["version"].append(dict(partnership_id=pid, number=1, content_hash=content_hash(doc),
                                    document=canonical_json(doc), author="bench", change_note="bench", created_at=now))
        rows["user"].append(dict(email=f"officer@{pid}.test", display_name=f"Officer {pid}",
                                 user_ref=f"u-{pid}-officer", kind="partnership_lead", partnership_id=pid,
                                 agency_id=None, password_hash=password_hash, active=True, created_at=now))
        for c in range(cases_per):
            roll = rng.random()
            opened = now - timedelta(days=rng.randint(0, 400), hours=rng.randint(0, 23))
            aware = opened.astimezone(ZoneInfo("Europe/London")).date()
            values = dict(case_defaults, partnership_id=pid, opened_at=opened, aware_date=aware,
                          national_ref=f"N-{uuid.UUID(int=rng.getrandbits(128)).hex[:8].upper()}",
                          summary="A child was taken to hospital with injuries; agencies are involved. " * 2,
                          children=json.dumps([{"pseudonym": "Child A"}]), opened_by=f"u-{pid}-officer")
            if roll < 0.7:  # a serious incident
                ref = f"I{p:03d}-{c:04d}"
                case_id = f"incident-{pid}-{ref}"
                n_due = aware + timedelta(days=7)
                state = rng.random()
                if (state < 0.08 and n_due < today) or n_due >= today:
                    sent = None  # not sent: overdue, or not yet due
                elif state < 0.75:
                    sent = n_due - timedelta(days=rng.choice([0, 1, 2]))
                else:
                    sent = n_due + timedelta(days=rng.randint(1, 6))
                late = None if sent is None else max(0, (sent - n_due).days)
                rr_required = rng.random() < 0.8
                rr_due = aware + timedelta(days=21) if rr_required and sent else None
                submitted = None
                response = None
                status = "open"
                if rr_due and rr_due < today and rng.random() < 0.85:
                    submitted = rr_due - timedelta(days=rng.choice([0, 1, 3])) if rng.random() < 0.8 else (
                        rr_due + timedelta(days=rng.randint(1, 5)))
                    if (today - submitted).days > 20 or rng.random() < 0.5:
                        response, status = rng.choice(["agrees", "agrees", "disagrees", "national_review"]), "closed"
                values.update(id=case_id, case_ref=ref, process="incident", category=rng.choice(CATEGORIES),
                              status=status, stage="Rapid review" if status == "open" else "Closed",
                              notification_due=n_due, notification_sent_on=sent, notification_days_late=late,
                              rapid_review_required=rr_required, rapid_review_due=rr_due,
                              rapid_review_submitted_on=submitted,
                              rapid_review_days_late=None if submitted is None else max(0, (submitted - rr_due).days),
                              panel_response=response, closed_at=opened + timedelta(days=40) if status == "closed"
                              else None, agencies=json.dumps(rng.sample(AGENCIES, 3)))
                task(case_id, pid, "notification", "notification_sent", "Notify the national Panel",
                     "notification_officers", "done" if sent else "open", n_due, opened,
                     overdue=sent is None and n_due < today)
                open_overdue = int(sent is None and n_due < today)
                if rr_due:
                    for a in json.loads(values["agencies"]):
                        done = submitted is not None or rng.random() < 0.6
                        od = not done and aware + timedelta(days=14) < today and status == "open"
                        open_overdue += od
                        task(case_id, pid, f"summary-{a}", "agency_summary", f"Agency summary: {a}", "review_officer",
                             "done" if done else ("open" if status == "open" else "cancelled"),
                             aware + timedelta(days=14), opened, overdue=od)
                    task(case_id, pid, "submission", "panel_submission", "Submit the rapid review", "review_officer",
                         "done" if submitted else ("open" if status == "open" else "cancelled"), rr_due, opened,
                         overdue=submitted is None and rr_due < today and status == "open")
                    open_overdue += submitted is None and rr_due < today and status == "open"
                    if submitted:
                        task(case_id, pid, "panel-response", "panel_response", "Respond to the rapid review",
                             "national_panel", "done" if response else "open", None, opened)
                values["overdue_tasks"] = open_overdue
            elif roll < 0.9:  # an escalation
                ref = f"D{p:03d}-{c:04d}"
                case_id = f"escalation-{pid}-{ref}"
                purpose = rng.choice(["professional_disagreement", "professional_disagreement", "overdue_work"])
                highest = rng.choice([1, 1, 1, 2, 2, 3, 4])
                timeouts = min(highest - 1 + rng.choice([0, 0, 1]), 5)
                status = rng.choice(["open", "resolved", "resolved", "withdrawn"])
                values.update(id=case_id, case_ref=ref, process="escalation",
                              category=rng.choice(ISSUES) if purpose != "overdue_work" else "overdue_work",
                              status=status, ladder_id="professional-disagreement" if purpose != "overdue_work"
                              else "overdue-work", ladder_purpose=purpose, current_stage=highest, highest_stage=highest,
                              timeouts=timeouts, urgent=rng.random() < 0.1, reached_national=rng.random() < 0.05,
                              outcome=None if status == "open" else ("work done" if purpose == "overdue_work"
                                                                     and status == "resolved" else status),
                              learning_theme="information-sharing" if status == "resolved" else None,
                              stage=f"Stage {highest}" if status == "open" else "closed",
                              closed_at=None if status == "open" else opened + timedelta(days=10),
                              overdue_tasks=int(status == "open" and timeouts > 0))
                for stage in range(1, highest + 1):
                    last = stage == highest
                    task(case_id, pid, f"stage-{stage}", "ladder_stage", f"Stage {stage}", "line_managers",
                         "open" if last and status == "open" else ("done" if last and status == "resolved"
                                                                   else "cancelled"),
                         aware + timedelta(days=3 * stage), opened,
                         overdue=last and status == "open" and timeouts > 0,
                         data=json.dumps({"outcome": "resolved", "agreed_actions": "A meeting.",
                                          "learning_theme": "information-sharing"}) if last and status == "resolved"
                         else "{}")
            else:  # a local review
                ref = f"R{p:03d}-{c:04d}"
                case_id = f"lcspr-{pid}-{ref}"
                status = rng.choice(["open", "open", "open", "suspended", "closed", "closed"])
                report_due = aware + timedelta(days=182)
                published = None if status != "closed" else rng.random() < 0.7
                values.update(id=case_id, case_ref=ref, process="lcspr", category="lcspr", status=status,
                              stage="Review: in progress", report_due=report_due if status != "suspended" else None,
                              published=published, publication_date=report_due + timedelta(days=30) if published
                              else None, closed_at=opened + timedelta(days=250) if status == "closed" else None,
                              children="[]", summary="", opened_by="system")
                task(case_id, pid, "terms", "lcspr_terms", "Agree the terms of reference", "business_manager", "done",
                     aware + timedelta(days=28), opened)
                task(case_id, pid, "final-report", "lcspr_final_report", "Accept the final report", "business_manager",
                     "open" if status == "open" else ("done" if status == "closed" else "cancelled"), report_due,
                     opened, overdue=status == "open" and report_due < today)
                values["overdue_tasks"] = int(status == "open" and report_due < today)
            rows["case"].append(values)
            for seq in range(1, 4):
                rows["event"].append(dict(id=f"{case_id}#{seq}", case_id=case_id, partnership_id=pid, seq=seq,
                                          at=opened + timedelta(hours=seq), actor="system", kind="task_opened",
                                          task_key=None, message=f"Step {seq} of the case", data="{}"))
    tables = [("partnership", Partnership), ("version", ArrangementsVersion), ("user", User), ("case", Case),
              ("task", Task), ("candidate", TaskCandidate), ("event", CaseEvent)]
    with engine.begin() as conn:
        for name, model in tables:
            for chunk in chunks(rows[name]):
                conn.execute(insert(model.__table__), chunk)
    with engine.begin() as conn:
        conn.execute(text("analyze"))
    counts = {name: len(value) for name, value in rows.items()}
    counts["open tasks"] = sum(1 for t in rows["task"] if t["status"] == "open")
    counts.update({p: sum(1 for c in rows["case"] if c["process"] == p) for p in ("incident", "escalation", "lcspr")})
    return counts


# --- the report, without the server ---------------------------------------------------------------------------------


def time_report(engine, today: date, runs: int, explain: bool) -> dict:
    """Compute the report ``runs`` times without the cache (first run: the label and calendar caches are cold)."""
    statements: list[tuple[str, tuple | dict]] = []

    def keep(_conn, _cursor, statement, parameters, *_args):
        statements.append((statement, parameters))

    timings = []
    for run in range(runs):
        if run == runs - 1:
            event.listen(engine, "before_cursor_execute", keep)
        with Session(engine) as session:
            start = time.perf_counter()
            report = monitoring.compute_report(session, today)
            timings.append((time.perf_counter() - start) * 1000)
    event.remove(engine, "before_cursor_execute", keep)
    if explain:
        prefix = "explain query plan " if engine.dialect.name == "sqlite" else "explain "
        with engine.connect() as conn:
            for statement, parameters in statements:
                first = " ".join(statement.split())[:110]
                print(f"\n-- {first}...")
                for row in conn.exec_driver_sql(prefix + statement, parameters):
                    print("   ", " | ".join(str(v) for v in row))
    return {"timings": timings, "statements": report.statements, "totals": report.totals}


# --- the server -----------------------------------------------------------------------------------------------


# --- the load ---------------------------------------------------------------------------------------------------


async def run_load(base: str, n_clients: int, requests: int, pages: list[str],
                   server_pid: int) -> list[tuple[str, dict]]:
    clients = [await signed_in(base, "national@bench.test") for _ in range(n_clients)]
    try:
        results = []
        for path in pages:
            results.append((path, await measure(clients, path, requests, server_pid)))
        return results
    finally:
        for client in clients:
            await client.aclose()



def add_proposed_indexes(engine) -> None:
    with engine.begin() as conn:
        for statement in PROPOSED_INDEXES:
            conn.execute(text(statement))
        conn.execute(text("analyze"))

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="PostgreSQL URL (a private schema is created and dropped); "
                                               "default: a temporary SQLite file")
    parser.add_argument("--partnerships", type=int, default=150)
    parser.add_argument("--cases-per-partnership", type=int, default=200)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=2000, help="per page")
    parser.add_argument("--pages", default="/healthz,/national/monitoring,/national",
                        help="comma-separated paths to load ('' to time the report only)")
    parser.add_argument("--no-cache", action="store_true", help="every monitoring request recomputes the report")
    parser.add_argument("--with-indexes", action="store_true", help="also create PROPOSED_INDEXES")
    parser.add_argument("--explain", action="store_true", help="print the query plan of each report statement")
    parser.add_argument("--report-runs", type=int, default=5, help="in-process report computations to time")
    args = parser.parse_args()

    with bench_database(args.database_url, "sgflow-national-bench-") as (url, tmp):
        engine, _counts = harness.migrated_and_filled(url, fill, args.partnerships, args.cases_per_partnership,
                                              then=add_proposed_indexes if args.with_indexes else None,
                                              counted=lambda counts: counts)
        today = datetime.now(ZoneInfo("Europe/London")).date()
        timed = time_report(engine, today, args.report_runs, args.explain)
        t = timed["timings"]
        print(f"\nmonitoring report computed in-process without the cache, {len(t)} runs, {timed['statements']} SQL "
              f"statements each: first {t[0]:.0f} ms (cold label/calendar caches), then median "
              f"{statistics.median(t[1:] or t):.0f} ms, max {max(t[1:] or t):.0f} ms")
        tot = timed["totals"]
        print(f"figures: {tot.notifications_judged:,} notifications due ({tot.notifications_late:,} late), "
              f"{tot.rapid_reviews_overdue:,} rapid reviews overdue, {tot.awaiting_panel:,} awaiting the Panel, "
              f"{tot.escalations:,} escalations ({tot.escalations_open:,} open, {tot.escalations_national:,} national),"
              f" {tot.lcsprs_overdue:,} local reviews overdue")
        engine.dispose()
        if not args.pages:
            return
        with running_server(url, tmp / "data", no_cache=args.no_cache) as (proc, base):
            results = asyncio.run(run_load(base, args.clients, args.requests, args.pages.split(","), proc.pid))
        print_table(results, f"{args.clients} concurrent national-body clients, {args.requests:,} requests per page, "
                             f"uvicorn (1 process) on {engine.dialect.name}, {date.today().isoformat()}, "
                             f"{args.partnerships} partnerships x {args.cases_per_partnership} cases"
                             + (", report cache off" if args.no_cache else
                                f", report cached for {monitoring.CACHE_SECONDS:.0f} s")
                             + (", with the proposed indexes" if args.with_indexes else ""))
        monitoring_row = next((r for name, r in results if name == "/national/monitoring"), None)
        if monitoring_row:
            verdict = "meets" if monitoring_row["p95"] <= 100 else "misses"
            print(f"\n/national/monitoring p95 {monitoring_row['p95']:.1f} ms: {verdict} the 100 ms target")


if __name__ == "__main__":
    main()
