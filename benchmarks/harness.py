"""What the page benchmarks share: the app under uvicorn over a prepared database, signed-in clients, bulk rows.

Only loopback traffic; the server is a child process the caller stops.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

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
