"""A bounded schemathesis run against /openapi.json: no request may get a server error (5xx but a 503).

Starts ``sgflow up`` on embedded defaults in a scratch data folder (free ports, demo data), then lets schemathesis
generate requests for every operation of the JSON API as each kind of user (a partnership lead, a reviewer, the
national body) with HTTP Basic, and reports per user how many requests were sent and how many were server errors.
Only loopback traffic; the run is bounded by ``--max-examples`` per operation and ``--max-time`` per user.

    .venv/bin/python benchmarks/api_fuzz.py [--max-examples 25] [--max-time 120] [--seed 1]

A 503 is not counted as a server error: it is the documented "not applied, try again" answer when Temporal cannot
take a change in time. Run by hand; figures go in the issue notes, never in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
USERS = {
    "lead": "rv-business-manager@demo.test",
    "reviewer": "rv-la-head-qa@demo.test",
    "national": "panel@demo.test",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_stack(data_dir: Path) -> tuple[subprocess.Popen, int]:
    web_port = free_port()
    env = {**os.environ, "SGFLOW_DATA_DIR": str(data_dir), "SGFLOW_WEB_PORT": str(web_port),
           "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}", "SGFLOW_TEMPORAL_UI_PORT": str(free_port()),
           "PYTHONUNBUFFERED": "1"}
    env.pop("DATABASE_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "sgflow", "up"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    deadline = time.monotonic() + 180
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            raise SystemExit("sgflow up exited:\n" + "".join(lines))
        lines.append(line)
        if "Press Ctrl-C to stop." in line:
            return proc, web_port
    proc.kill()
    raise SystemExit("sgflow up did not start in time:\n" + "".join(lines))


def fuzz(base: str, who: str, email: str, args, report_dir: Path) -> dict:
    ndjson = report_dir / f"{who}.ndjson"
    cmd = [str(Path(sys.executable).parent / "schemathesis"), "run", f"{base}/openapi.json",
           "--auth", f"{email}:demo-password", "--checks", "not_a_server_error",
           "--max-examples", str(args.max_examples), "--max-time", str(args.max_time), "--seed", str(args.seed),
           "--workers", "1", "--request-timeout", "30", "--no-color", "--report", "ndjson",
           "--report-ndjson-path", str(ndjson), "--suppress-health-check", "all", "--generation-database", "none"]
    started = time.monotonic()
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=report_dir)  # its .schemathesis/ goes there
    statuses: dict[int, int] = {}
    for line in ndjson.read_text().splitlines() if ndjson.exists() else []:
        _count_statuses(json.loads(line), statuses)
    server_errors = sum(n for status, n in statuses.items() if status >= 500 and status != 503)
    tail = "\n".join(result.stdout.strip().splitlines()[-25:])
    return {"who": who, "seconds": time.monotonic() - started, "exit": result.returncode,
            "requests": sum(statuses.values()), "statuses": dict(sorted(statuses.items())),
            "server_errors": server_errors, "tail": tail}


def _count_statuses(node, statuses: dict[int, int]) -> None:
    """Every response's status code, wherever the ndjson event nests it."""
    if isinstance(node, dict):
        response = node.get("response")
        if isinstance(response, dict) and isinstance(response.get("status_code"), int):
            statuses[response["status_code"]] = statuses.get(response["status_code"], 0) + 1
        for key, value in node.items():
            if key != "response":
                _count_statuses(value, statuses)
    elif isinstance(node, list):
        for value in node:
            _count_statuses(value, statuses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=25, help="generated cases per operation (default 25)")
    parser.add_argument("--max-time", type=int, default=120, help="seconds per user at most (default 120)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--users", default="lead,reviewer,national")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="sgflow-fuzz-"))
    proc, port = start_stack(scratch / "data")
    results = []
    try:
        for who in args.users.split(","):
            results.append(fuzz(f"http://127.0.0.1:{port}", who, USERS[who], args, scratch))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        worker_log = (scratch / "data" / "web.log")
        errors_logged = worker_log.read_text().count("Traceback") if worker_log.exists() else 0
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{'user':<10} {'requests':>9} {'5xx (not 503)':>14} {'seconds':>8}  statuses")
    for r in results:
        print(f"{r['who']:<10} {r['requests']:>9} {r['server_errors']:>14} {r['seconds']:>8.0f}  {r['statuses']}")
    print(f"tracebacks in web.log: {errors_logged}")
    for r in results:
        if r["server_errors"]:
            print(f"\n--- {r['who']} (schemathesis exit {r['exit']}) ---\n{r['tail']}")


if __name__ == "__main__":
    main()
