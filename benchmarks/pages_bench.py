"""Page latency under load: the inbox, the case page and the lead/national pages, beside /healthz.

Fills a fresh read model (SQLite by default, or PostgreSQL with --database-url, in a private schema dropped
afterwards) with --partnerships partnerships, --cases-per-partnership cases each, 4 open tasks per case (by
default 100 x 50 x 4 = 20,000 open tasks) plus done tasks, candidates, timeline events and outbox messages;
bulk inserts, realistic rows. Then starts the app with uvicorn (a separate process, so the load generator does
not share its GIL) on a free 127.0.0.1 port and, for each page, sends --requests requests from --clients
concurrent signed-in clients (signed in with httpx; the load on one keep-alive connection each,
harness.KeepAliveClient). Prints p50 / p95 / p99 / max, throughput and the p50 ratio to /healthz of the same app.

Run:  .venv/bin/python benchmarks/pages_bench.py [--requests 2000] [--clients 20]
      .venv/bin/python benchmarks/pages_bench.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

Only loopback traffic; every loop is bounded by --requests; the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
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
from safeguarding.tables import (  # noqa: E402
    ArrangementsVersion,
    Case,
    CaseEvent,
    OutboxMessage,
    Partnership,
    Task,
    TaskCandidate,
    User,
)

EXAMPLE = ROOT / "schemas" / "examples" / "riverford-and-vale.json"
AGENCIES = ["riverford-schools", "riverford-hospitals", "vale-gp-practices", "probation", "riverford-housing"]
AGENCY_ROLE = {"riverford-schools": "education_safeguarding_lead",
               "riverford-hospitals": "designated_health_professionals",
               "vale-gp-practices": "designated_health_professionals", "probation": "probation_contact",
               "riverford-housing": "housing_contact"}
# An index the outbox page could use (not in the migrations): --with-proposed-indexes adds it. (The national
# page's two, on task (candidate_role, status) and case (aware_date, id), are in migration 0006.)
PROPOSED_INDEXES = [
    'create index ix_outbox_message_partnership_created on outbox_message (partnership_id, created_at)',
]
CATEGORIES = ["death_abuse_neglect", "serious_harm_abuse_neglect", "death_or_harm_outside_england_resident"]


# --- data --------------------------------------------------------------------------------------------------------


def fill(engine, partnerships: int, cases_per: int, seed: int = 7) -> dict:
    """Bulk-insert the read model; returns who to sign in as and which cases to open."""
    rng = random.Random(seed)
    base = json.loads(EXAMPLE.read_text())
    today = datetime.now(ZoneInfo("Europe/London")).date()
    now = datetime.now(UTC)
    password_hash = hash_password(PASSWORD)
    rows: dict[str, list[dict]] = {name: [] for name in
                                   ("partnership", "version", "user", "case", "task", "candidate", "event", "outbox")}
    plan: dict = {"reviewers": [], "leads": [], "cases": {}, "national": "national@bench.test"}
    rows["user"].append(dict(email="national@bench.test", display_name="Panel analyst", user_ref="u-bench-panel",
                             kind="national_body", partnership_id=None, agency_id=None, password_hash=password_hash,
                             active=True, created_at=now))
    for p in range(partnerships):
        pid = f"bench-{p:03d}"
        doc = copy.deepcopy(base)
        doc["partnership"]["id"], doc["partnership"]["name"] = pid, f"Bench Partnership {p:03d}"
        prefix = f"u-b{p:03d}-"
        members = {"review_officer": [f"{prefix}officer-{i}" for i in range(3)],
                   "notification_officers": [f"{prefix}notifier-{i}" for i in range(2)],
                   "business_manager": [f"{prefix}manager"]}
        for agency in AGENCIES:
            members.setdefault(AGENCY_ROLE[agency], []).append(f"{prefix}{agency}")
        for role in doc["roles"]:
            if role["id"] in members:
                role["members"] = sorted(set(members[role["id"]]))
        rows["partnership"].append(dict(id=pid, name=doc["partnership"]["name"], created_at=now))
        rows["version"].append(dict(partnership_id=pid, number=1, content_hash=content_hash(doc),
                                    document=canonical_json(doc), author="bench", change_note="bench", created_at=now))
        people = sorted({ref for refs in members.values() for ref in refs})
        for ref in people:
            kind = "partnership_lead" if ref.endswith("manager") else "reviewer"
            rows["user"].append(dict(email=f"{ref[2:]}@bench.test", display_name=f"Person {ref[2:]}", user_ref=ref,
                                     kind=kind, partnership_id=pid, agency_id=None, password_hash=password_hash,
                                     active=True, created_at=now))
        plan["leads"].append(f"{prefix[2:]}manager@bench.test")
        plan["reviewers"] += [(f"{prefix[2:]}officer-0@bench.test", pid),
                              (f"{prefix[2:]}riverford-schools@bench.test", pid)]
        plan["cases"][pid] = []
        for c in range(cases_per):
            case_ref = f"B{p:03d}-{c:04d}"
            case_id = f"incident-{pid}-{case_ref}"
            plan["cases"][pid].append(case_id)
            aware = today - timedelta(days=rng.randint(3, 40))
            n_due = aware + timedelta(days=7)
            sent = aware + timedelta(days=rng.choice([5, 6, 7, 8, 9]))
            agencies = rng.sample(AGENCIES, 3)
            opened = datetime.combine(aware, datetime.min.time(), tzinfo=UTC) + timedelta(hours=10)
            rows["case"].append(dict(
                id=case_id, partnership_id=pid, case_ref=case_ref, process="incident",
                national_ref=f"N-{uuid.uuid4().hex[:8].upper()}", category=rng.choice(CATEGORIES), status="open",
                stage="Rapid review: agency summaries and meeting", arrangements_version=1, aware_date=aware,
                notification_due=n_due, notification_sent_on=sent, notification_days_late=max(0, (sent - n_due).days),
                rapid_review_required=True, rapid_review_due=aware + timedelta(days=21), rapid_review_submitted_on=None,
                rapid_review_days_late=None, lcspr_decision=None, panel_response=None,
                overdue_tasks=rng.choice([0, 0, 0, 1]), children=json.dumps([{"pseudonym": "Child A"}]),
                summary="A child was taken to hospital with injuries that suggest abuse; police and children's "
                        "social care are involved. " * 3,
                agencies=json.dumps(agencies), opened_by=members["notification_officers"][0], opened_at=opened,
                closed_at=None, revision=5, updated_at=now))
            tasks = [("notification", "notification_sent", "Notify the national Panel", "notification_officers",
                      "done", n_due)]
            tasks += [(f"summary-{a}", "agency_summary", f"Agency summary: {a}", AGENCY_ROLE[a], "open",
                       aware + timedelta(days=14)) for a in agencies]
            tasks.append(("meeting", "rr_meeting", "Record the rapid review meeting", "review_officer", "open",
                          aware + timedelta(days=16)))
            for key, kind, title, role, status, due in tasks:
                task_id = f"{case_id}/{key}"
                done = status == "done"
                claimed = None if done or rng.random() < 0.7 else members[role][0]
                rows["task"].append(dict(
                    id=task_id, case_id=case_id, partnership_id=pid, key=key, type=kind, title=title,
                    form=f"{kind}.v1", candidate_role=role, candidate_label=role.replace("_", " ").capitalize(),
                    status=status, due_date=due, follow_up_date=None, overdue=not done and due < today,
                    claimed_by=claimed, completed_by=members[role][0] if done else None,
                    completed_at=opened + timedelta(days=5) if done else None, days_late=None,
                    data=json.dumps({"sent_on": sent.isoformat()}) if done else "{}", opened_at=opened, revision=5))
                if not done:
                    rows["candidate"] += [dict(task_id=task_id, user_ref=ref) for ref in members[role]]
            for seq in range(1, 6):
                rows["event"].append(dict(id=f"{case_id}#{seq}", case_id=case_id, partnership_id=pid, seq=seq,
                                          at=opened + timedelta(hours=seq), actor="system", kind="task_opened",
                                          task_key=None, message=f"Step {seq} of the case", data="{}"))
        for m in range(20):
            rows["outbox"].append(dict(
                id=f"bench-{pid}#{m}", partnership_id=pid, case_id=plan["cases"][pid][m % cases_per],
                to_user_refs=json.dumps([members["review_officer"][0]]),
                to_addresses=json.dumps([f"{members['review_officer'][0][2:]}@bench.test"]),
                subject=f"Overdue: Record the rapid review meeting ({m})", body="It is overdue.\nPlease act.",
                status="held", attempts=1, last_error=None, created_at=now - timedelta(minutes=m), sent_at=None))
    tables = [("partnership", Partnership), ("version", ArrangementsVersion), ("user", User), ("case", Case),
              ("task", Task), ("candidate", TaskCandidate), ("event", CaseEvent), ("outbox", OutboxMessage)]
    with engine.begin() as conn:
        for name, model in tables:
            for chunk in chunks(rows[name]):
                conn.execute(insert(model.__table__), chunk)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("analyze"))
    plan["counts"] = {name: len(value) for name, value in rows.items()}
    plan["counts"]["open tasks"] = sum(1 for t in rows["task"] if t["status"] == "open")
    return plan


# --- the server -----------------------------------------------------------------------------------------------


# --- the load ---------------------------------------------------------------------------------------------------


async def run_load(base: str, plan: dict, n_clients: int, requests: int, pages: list[str],
                   server_pid: int) -> list[tuple[str, dict]]:
    rng = random.Random(11)
    reviewers = (plan["reviewers"][::2] + plan["reviewers"][1::2])[:n_clients]  # one partnership each, first
    leads = plan["leads"][:n_clients]
    results = []
    reviewer_clients = [await signed_in(base, email) for email, _pid in reviewers]
    pid_of = [pid for _email, pid in reviewers]
    try:
        if "healthz" in pages:
            results.append(("/healthz (baseline)", await measure(reviewer_clients, lambda i: "/healthz", requests,
                                                                 server_pid)))
        if "tasks" in pages:
            results.append(("/tasks (inbox)", await measure(reviewer_clients, lambda i: "/tasks", requests,
                                                            server_pid)))
        if "case" in pages:
            results.append(("/cases/{id}", await measure(
                reviewer_clients, lambda i: f"/cases/{rng.choice(plan['cases'][pid_of[i]])}", requests, server_pid)))
        if "outbox" in pages:
            lead_clients = [await signed_in(base, email) for email in leads]
            results.append(("/outbox (lead)", await measure(lead_clients, lambda i: "/outbox", requests, server_pid)))
            for c in lead_clients:
                await c.aclose()
        if "national" in pages:
            national = [await signed_in(base, plan["national"]) for _ in range(n_clients)]
            results.append(("/national (all partnerships)", await measure(national, lambda i: "/national",
                                                                          requests, server_pid)))
            for c in national:
                await c.aclose()
    finally:
        for c in reviewer_clients:
            await c.aclose()
    return results



def add_proposed_indexes(engine) -> None:
    with engine.begin() as conn:
        for statement in PROPOSED_INDEXES:
            conn.execute(text(statement))

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="PostgreSQL URL (a private schema is created and dropped); "
                                               "default: a temporary SQLite file")
    parser.add_argument("--partnerships", type=int, default=100)
    parser.add_argument("--cases-per-partnership", type=int, default=50, help="4 open tasks each")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=2000, help="per page")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (SGFLOW_WEB_WORKERS)")
    parser.add_argument("--with-proposed-indexes", action="store_true",
                        help="also create the indexes proposed for the national and outbox pages")
    parser.add_argument("--pages", default="healthz,tasks,case,outbox,national",
                        help="comma-separated: healthz,tasks,case,outbox,national")
    args = parser.parse_args()
    if args.clients > 2 * args.partnerships:
        parser.error("--clients can be at most twice --partnerships (two signed-in reviewers per partnership)")

    with bench_database(args.database_url, "sgflow-bench-") as (url, tmp):
        engine, plan = harness.migrated_and_filled(url, fill, args.partnerships, args.cases_per_partnership,
                                           then=add_proposed_indexes if args.with_proposed_indexes else None)
        engine.dispose()
        with running_server(url, tmp / "data", workers=args.workers) as (proc, base):
            results = asyncio.run(run_load(base, plan, args.clients, args.requests, args.pages.split(","),
                                           proc.pid))
        print_table(results, f"{args.clients} concurrent signed-in clients, {args.requests:,} requests per page, "
                             f"uvicorn ({args.workers} process{'es' if args.workers > 1 else ''}) on "
                             f"{engine.dialect.name}, {date.today().isoformat()}"
                             + (", with the proposed indexes" if args.with_proposed_indexes else ""))


if __name__ == "__main__":
    main()
