"""CPU per request of the inbox and the case page in this process, one request at a time: no uvicorn, no load.

For comparing two versions of the page code on a busy or shared machine, where pages_bench.py's latencies (and
even its ``cpu ms``) move with other load, and without loading the machine for anyone else: one core, one thread.

Fills the read model as pages_bench.py does (same fill: --partnerships x --cases-per-partnership cases, 4 open tasks
each; a temporary SQLite file, or a private schema on --database-url PostgreSQL), builds the app as the benchmark
harness does (no Temporal), runs its startup (as the lifespan does), and gives each of --clients reviewers (one a
partnership, as pages_bench.py's clients) a signed session cookie made with the app's key (no sign-in: its password
hashing would only cost time here). Requests go straight to the ASGI app: ``/healthz``, ``/tasks`` from each
client in turn, ``/cases/{id}`` of a random case of the client's partnership (seeded), so the pages' remembered
parts are used as under pages_bench.py's load. After --warmup requests a page, --requests more are timed.

Two measures:

* default: ``time.process_time()`` per request (all threads of this process: sync endpoints run in FastAPI's
  thread pool as under uvicorn), the best and the median of --rounds rounds. uvicorn's own HTTP work is not in it
  (about 0.5 ms a request more under pages_bench.py).
* ``--instructions``: the machine instructions a request executes, counted by valgrind (cachegrind, no cache
  simulation) in two runs of the same requests, one with --requests more than the other; the difference, divided.
  Deterministic to about 1% whatever else the machine does, so two versions compare reliably; endpoints run
  inline (no thread pool: thread switches are not the pages' own work). Needs ``valgrind`` on the PATH; about a
  minute per page.

Run:  .venv/bin/python benchmarks/pages_cpu.py                          # healthz, tasks, case: CPU ms
      .venv/bin/python benchmarks/pages_cpu.py --instructions --pages tasks,case
      .venv/bin/python benchmarks/pages_cpu.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import bench_database, migrated_and_filled

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PAGES = ("healthz", "tasks", "case")


def build(url: str, data_dir: Path, inline: bool):
    """(app, cookies, path_of): the app over ``url`` after its startup, one signed session cookie per client and
    ``path_of(page)(i)``, the path client ``i`` asks for."""
    if inline:  # endpoints run where they are awaited, not in the thread pool
        import anyio.to_thread

        async def run_here(func, *args, **_kwargs):
            return func(*args)

        anyio.to_thread.run_sync = run_here
    from sqlalchemy import text

    from safeguarding.db import make_engine
    from safeguarding.settings import Settings
    from web import app as web_app
    from web.session import COOKIE_NAME, new_signed_in_cookie

    app = web_app.create_app(Settings(data_dir=data_dir, secret_key="bench-secret"), engine=make_engine(url),
                             temporal_client=None, connect_temporal=False)
    # What the lifespan does first (where it does: this script also measures older versions, copied beside them).
    try:  # as each web process does when it starts (a version without it: nothing)
        from safeguarding.heap import freeze_startup_objects
    except ImportError:
        freeze_startup_objects = None
    if freeze_startup_objects:
        freeze_startup_objects()
    plan = json.loads((data_dir / "plan.json").read_text())
    cookies = []
    with app.state.engine.connect() as conn:
        for email, _partnership in plan["clients"]:
            uid, password_hash = conn.execute(text("select id, password_hash from app_user where email = :e"),
                                              {"e": email}).one()
            cookies.append(f"{COOKIE_NAME}={new_signed_in_cookie(app, uid, password_hash)}".encode("latin-1"))
    rng = random.Random(11)
    partnership_of = [partnership for _email, partnership in plan["clients"]]
    path_of = {"healthz": lambda i: "/healthz", "tasks": lambda i: "/tasks",
               "case": lambda i: f"/cases/{rng.choice(plan['cases'][partnership_of[i]])}"}
    return app, cookies, path_of


async def get(app, path: str, cookie: bytes) -> int:
    """One GET straight to the ASGI app; its status."""
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": [(b"host", b"bench"), (b"cookie", cookie)],
             "client": ("127.0.0.1", 50000), "server": ("bench", 80)}
    status = 0

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def requests(app, cookies, path_of, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        client = i % len(cookies)
        status = await get(app, path_of(client), cookies[client])
        if status != 200:
            raise RuntimeError(f"{path_of(client)} answered {status}")


def child(args) -> None:
    """Under valgrind: warm up, then --requests requests of one page (inline), and nothing else."""
    app, cookies, path_of = build(args.url, Path(args.data_dir), inline=True)
    page = path_of[args.pages]
    asyncio.run(requests(app, cookies, page, args.warmup + args.requests))


def cpu_ms(args, url: str, data_dir: Path) -> None:
    app, cookies, path_of = build(url, data_dir, inline=False)

    async def measure() -> dict[str, list[float]]:
        results: dict[str, list[float]] = {}
        for name in args.pages.split(","):
            await requests(app, cookies, path_of[name], args.warmup)
            for _ in range(args.rounds):
                start = time.process_time()
                await requests(app, cookies, path_of[name], args.requests)
                results.setdefault(name, []).append((time.process_time() - start) / args.requests * 1000)
        return results

    print(f"\nCPU ms per request in this process ({args.requests} requests a round, {args.rounds} rounds, after "
          f"{args.warmup}; {len(cookies)} clients)")
    for name, values in asyncio.run(measure()).items():
        print(f"  {name:8} best {min(values):.3f}  median {statistics.median(values):.3f}   "
              f"rounds: {' '.join(f'{v:.3f}' for v in values)}")


def instructions(args, url: str, data_dir: Path) -> None:
    if not shutil.which("valgrind"):
        sys.exit("--instructions needs valgrind on the PATH")

    def count(page: str, requests_: int) -> int:
        command = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
                   sys.executable, __file__, "--child", "--url", url, "--data-dir", str(data_dir), "--pages", page,
                   "--warmup", str(args.warmup), "--requests", str(requests_)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        return int(re.search(r"I\s+refs:\s+([\d,]+)", done.stderr).group(1).replace(",", ""))

    print(f"\nmillion instructions per request (valgrind; {args.requests} requests after {args.warmup}, inline)")
    for page in args.pages.split(","):
        base, more = count(page, 0), count(page, args.requests)
        print(f"  {page:8} {(more - base) / args.requests / 1e6:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="PostgreSQL URL (a private schema is created and dropped); "
                                               "default: a temporary SQLite file")
    parser.add_argument("--partnerships", type=int, default=100)
    parser.add_argument("--cases-per-partnership", type=int, default=50)
    parser.add_argument("--clients", type=int, default=20, help="signed-in reviewers, one a partnership")
    parser.add_argument("--pages", default=",".join(PAGES), help="comma-separated: " + ",".join(PAGES))
    parser.add_argument("--warmup", type=int, default=300, help="requests a page before measuring")
    parser.add_argument("--requests", type=int, default=300, help="measured requests a page (a round)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--instructions", action="store_true", help="count instructions with valgrind instead")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if unknown := set(args.pages.split(",")) - set(PAGES):
        parser.error(f"unknown pages: {', '.join(sorted(unknown))}")
    if args.clients > args.partnerships:
        parser.error("--clients can be at most --partnerships (one reviewer of each)")

    from pages_bench import fill

    with bench_database(args.database_url, "sgflow-pages-cpu-") as (url, tmp):
        engine, plan = migrated_and_filled(url, fill, args.partnerships, args.cases_per_partnership)
        engine.dispose()
        data_dir = tmp / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        reviewers = plan["reviewers"][::2][:args.clients]  # one review officer a partnership, as pages_bench.py
        (data_dir / "plan.json").write_text(json.dumps({"clients": reviewers, "cases": plan["cases"]}))
        if args.instructions:
            instructions(args, url, data_dir)
        else:
            cpu_ms(args, url, data_dir)


if __name__ == "__main__":
    main()
