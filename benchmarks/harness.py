"""What the page benchmarks share: the app under uvicorn over a prepared database, signed-in clients, bulk rows.

Only loopback traffic; the server is a child process the caller stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httptools
import httpx

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "bench-password"  # throwaway accounts in a throwaway database
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def chunks(rows: list[dict], size: int = 5000):
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def app_factory():
    """For ``uvicorn --factory``: the app over SGFLOW_BENCH_DB, without Temporal (these pages read the DB)."""
    from safeguarding.db import make_engine
    from safeguarding.settings import Settings
    from web.app import create_app

    if os.environ.get("SGFLOW_BENCH_NO_CACHE") == "1":
        from safeguarding import monitoring

        monitoring.CACHE_SECONDS = 0.0
    settings = Settings(data_dir=Path(os.environ["SGFLOW_BENCH_DATA"]), secret_key="bench-secret")
    return create_app(settings, engine=make_engine(os.environ["SGFLOW_BENCH_DB"]), temporal_client=None,
                      connect_temporal=False)


def migrated_and_filled(url: str, fill: Callable[..., Any], *args: Any,
                        then: Callable[[Any], None] | None = None,
                        counted: Callable[[Any], dict[str, int]] = lambda plan: plan["counts"]) -> tuple[Any, Any]:
    """(engine, what ``fill`` returned) for the app database at ``url``: migrated, filled by ``fill(engine, *args)``,
    then ``then(engine)`` (e.g. indexes to try); prints what it holds (``counted(plan)``) and how long that took."""
    from safeguarding.db import make_engine, upgrade

    engine = make_engine(url)
    upgrade(engine)
    start = time.perf_counter()
    plan = fill(engine, *args)
    if then is not None:
        then(engine)
    print(f"database: {engine.dialect.name}; filled in {time.perf_counter() - start:.1f} s: "
          + ", ".join(f"{v:,} {k}" for k, v in counted(plan).items()))
    return engine, plan


@contextmanager
def bench_database(database_url: str | None, prefix: str) -> Iterator[tuple[str, Path]]:
    """(database URL, scratch folder) for one run: a temporary SQLite file, or a private schema on the
    PostgreSQL at ``database_url``, dropped afterwards (with the scratch folder)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    admin = schema = None
    try:
        if not database_url:
            yield f"sqlite:///{tmp / 'bench.db'}", tmp
            return
        from sqlalchemy import create_engine, text

        schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(database_url)
        with admin.begin() as conn:
            conn.execute(text(f'create schema "{schema}"'))
        sep = "&" if "?" in database_url else "?"
        yield f"{database_url}{sep}options=-csearch_path%3D{schema}", tmp
    finally:
        if admin is not None:
            from sqlalchemy import text

            with admin.begin() as conn:
                conn.execute(text(f'drop schema "{schema}" cascade'))
            admin.dispose()
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def running_server(url: str, data_dir: Path, **options) -> Iterator[tuple[subprocess.Popen, str]]:
    """``start_server``, stopped (terminated, killed after 10 s) when the block ends."""
    proc, base = start_server(url, data_dir, **options)
    try:
        yield proc, base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and all its descendants (the uvicorn workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(url: str, data_dir: Path, *, workers: int = 1, no_cache: bool = False) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "SGFLOW_BENCH_DB": url, "SGFLOW_BENCH_DATA": str(data_dir),
           "SGFLOW_BENCH_NO_CACHE": "1" if no_cache else "0",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "harness:app_factory", "--factory", "--app-dir",
                             str(Path(__file__).resolve().parent), "--host", "127.0.0.1", "--port", str(port),
                             "--workers", str(workers), "--log-level", "warning", "--no-access-log"], env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {proc.returncode}")
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("uvicorn did not answer /healthz within 60 s")


async def signed_in(base: str, email: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=base, timeout=120)
    page = await client.get("/sign-in")
    response = await client.post("/sign-in", data={"email": email, "password": PASSWORD,
                                                   "csrf_token": TOKEN.search(page.text).group(1)})
    if response.status_code != 303:
        raise RuntimeError(f"sign-in failed for {email}: {response.status_code}")
    return client


# --- the load and its table -------------------------------------------------------------------------------------


class _Response:
    """What ``httptools.HttpResponseParser`` reports of one response: its body, its cookies, whether it is whole."""

    def __init__(self) -> None:
        self.body: list[bytes] = []
        self.set_cookies: list[str] = []
        self.complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"set-cookie":
            self.set_cookies.append(value.decode("latin-1"))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


class KeepAliveClient:
    """The load loop's client: one HTTP/1.1 keep-alive connection sending GETs with a signed-in client's cookies.

    httpx costs the load generator 1.1 ms of CPU per /healthz request and 1.7-2.1 ms per inbox page (44 kB), taken
    from the server on a 2-core machine; this costs 0.1 and 0.15-0.25 ms (measured side by side). Responses are parsed
    by ``httptools`` (uvicorn's parser); it keeps the session cookie the server re-issues (``Set-Cookie``) and
    reconnects when the server has closed an idle connection (uvicorn does after 5 s).
    """

    def __init__(self, base: str, cookies: dict[str, str]):
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.host_header = parts.netloc.encode("ascii")
        self.cookies = dict(cookies)
        self._cookie_header = self._cookie_line()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    @classmethod
    def of(cls, client: httpx.AsyncClient) -> KeepAliveClient:
        """A connection carrying this (signed-in) httpx client's cookies."""
        return cls(str(client.base_url), {cookie.name: cookie.value or "" for cookie in client.cookies.jar})

    def _cookie_line(self) -> bytes:
        if not self.cookies:
            return b""
        return b"Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()).encode("latin-1") + b"\r\n"

    async def get(self, path: str) -> tuple[int, bytes]:
        """(status, body) of ``GET path``."""
        request = b"GET " + path.encode("ascii") + b" HTTP/1.1\r\nHost: " + self.host_header + b"\r\n" + \
            self._cookie_header + b"\r\n"
        reused = self.writer is not None
        if not reused:
            await self._connect()
        try:
            return await self._exchange(request)
        except ConnectionError:
            await self.close()
            if not reused:
                raise
        await self._connect()  # the server closed the idle connection: once more on a new one
        return await self._exchange(request)

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def _exchange(self, request: bytes) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        self.writer.write(request)
        response = _Response()
        parser = httptools.HttpResponseParser(response)  # uvicorn's own HTTP parser (llhttp, in C)
        while not response.complete:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            parser.feed_data(data)
        for header in response.set_cookies:
            self._keep_cookie(header)
        if not parser.should_keep_alive():
            await self.close()
        return parser.get_status_code(), b"".join(response.body)

    def _keep_cookie(self, header: str) -> None:
        pair, *attributes = header.split(";")
        name, _, value = pair.strip().partition("=")
        if any(a.strip().lower() == "max-age=0" for a in attributes):
            self.cookies.pop(name, None)
        else:
            self.cookies[name] = value
        self._cookie_header = self._cookie_line()

    async def close(self) -> None:
        writer, self.reader, self.writer = self.writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def measure(clients: list[httpx.AsyncClient], paths: str | Callable[[int], str], total: int,
                  server_pid: int) -> dict:
    """``total`` GETs spread over the clients, each a closed loop (its next request as soon as the last answers).

    ``paths`` is one path, or ``paths(i)`` gives client i's next one. Each signed-in httpx client lends its cookies
    to a ``KeepAliveClient`` (one connection each) that sends the load. One warm-up request per client first (the
    very first is timed on its own as ``first``: for a cached report it is the one that computes it).
    """
    path_of = (lambda _i: paths) if isinstance(paths, str) else paths
    latencies: list[float] = []
    errors = 0
    remaining = total
    connections = [KeepAliveClient.of(client) for client in clients]

    async def worker(i: int, connection: KeepAliveClient) -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            path = path_of(i)
            start = time.perf_counter()
            status, _body = await connection.get(path)
            latencies.append(time.perf_counter() - start)
            if status != 200:
                errors += 1

    try:
        first = time.perf_counter()
        await connections[0].get(path_of(0))
        first_ms = (time.perf_counter() - first) * 1000
        for i, connection in enumerate(connections[1:], start=1):
            await connection.get(path_of(i))
        start, cpu = time.perf_counter(), tree_cpu_seconds(server_pid)
        await asyncio.gather(*(worker(i, c) for i, c in enumerate(connections)))
        wall, cpu = time.perf_counter() - start, tree_cpu_seconds(server_pid) - cpu
    finally:
        for connection in connections:
            await connection.close()
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return {"n": len(latencies), "errors": errors, "first": first_ms, "p50": pct(0.50), "p95": pct(0.95),
            "p99": pct(0.99), "max": latencies[-1] * 1000, "mean": statistics.fmean(latencies) * 1000,
            "rps": len(latencies) / wall, "cpu_ms": cpu / len(latencies) * 1000}


def print_table(results: list[tuple[str, dict]], title: str) -> None:
    """One row per page, with its p50 as a multiple of /healthz's (the baseline) when that was measured."""
    base = next((r for name, r in results if name.startswith("/healthz")), None)
    width = max([30] + [len(name) for name, _ in results])
    print(f"\n{title}")
    print(f"{'page':<{width}} {'requests':>8} {'errors':>6} {'first ms':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8} {'req/s':>7} {'ms/req':>7} {'cpu ms':>7} {'p50/healthz':>11}")
    for name, r in results:
        ratio = f"{r['p50'] / base['p50']:.1f}x" if base else "-"
        print(f"{name:<{width}} {r['n']:>8} {r['errors']:>6} {r['first']:>8.1f} {r['p50']:>8.1f} {r['p95']:>8.1f} "
              f"{r['p99']:>8.1f} {r['max']:>8.1f} {r['rps']:>7.1f} {1000 / r['rps']:>7.1f} {r['cpu_ms']:>7.2f} "
              f"{ratio:>11}")
    print("first = the run's first request (for a cached report: the one that computes it). ms/req = 1000 / "
          "throughput while\nsaturated (each client sends its next request as soon as the last answers, so p50 is "
          "about clients x ms/req / processes).\ncpu ms = the server's CPU time (all its processes) per request: "
          "its own cost; it moves less than latency with other load,\nbut still moves (its threads "
          "wait longer for the interpreter lock), so compare runs made back to back.")
