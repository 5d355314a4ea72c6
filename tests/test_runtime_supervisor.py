"""`sgflow up` as an operator meets it on a bad day: a child process dies and comes back; Ctrl-C or SIGTERM at
any moment of start-up stops everything cleanly; and the files it leaves are readable by its user only."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from sgflow.supervisor import Child

pytestmark = pytest.mark.stack


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def processes_with(data_dir: Path) -> dict[int, str]:
    """pid -> command line of live processes started for this data folder (found by their environment)."""
    marker = f"SGFLOW_DATA_DIR={data_dir}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in environ.split(b"\0") and state != "Z":
            found[int(entry.name)] = cmdline
    return found


class Stack:
    def __init__(self, tmp_path: Path):
        self.data_dir = tmp_path / "data"
        self.web_port, self.temporal_port, self.ui_port = free_port(), free_port(), free_port()
        self.env = {**os.environ, "SGFLOW_DATA_DIR": str(self.data_dir), "SGFLOW_WEB_PORT": str(self.web_port),
                    "TEMPORAL_ADDRESS": f"127.0.0.1:{self.temporal_port}",
                    "SGFLOW_TEMPORAL_UI_PORT": str(self.ui_port), "PYTHONUNBUFFERED": "1"}
        for name in ("DATABASE_URL", "SGFLOW_PAYLOAD_KEYS", "SGFLOW_SEED_DEMO"):
            self.env.pop(name, None)
        self.proc: subprocess.Popen | None = None
        self.output: list[str] = []

    def start(self, until: str = "Press Ctrl-C to stop.", timeout: float = 120) -> str:
        self.output = []
        self.proc = subprocess.Popen([sys.executable, "-m", "sgflow", "up"], env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        return self.read_until(until, timeout)

    def read_until(self, text: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line and self.proc.poll() is not None:
                raise AssertionError(f"sgflow up exited:\n{''.join(self.output)}{self.proc.stderr.read()}")
            self.output.append(line)
            if text in line:
                return "".join(self.output)
        raise AssertionError(f"no ‘{text}’ in time:\n" + "".join(self.output))

    def signal_and_wait(self, sig: int = signal.SIGINT) -> tuple[int, str, str]:
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=90)
        return self.proc.returncode, "".join(self.output) + out, err

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.web_port}{path}", method=method,
                                         data=json.dumps(body).encode() if body is not None else None)
        token = base64.b64encode(b"rv-business-manager@demo.test:demo-password").decode()
        request.add_header("Authorization", f"Basic {token}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())
        except OSError as exc:
            return 0, {"error": str(exc)}

    def pid_of(self, words: str) -> int | None:
        return next((pid for pid, cmd in processes_with(self.data_dir).items() if words in cmd), None)


@pytest.fixture
def stack(tmp_path):
    stack = Stack(tmp_path)
    yield stack
    if stack.proc and stack.proc.poll() is None:
        stack.proc.kill()
        stack.proc.wait(10)
    for pid in processes_with(stack.data_dir):
        os.kill(pid, signal.SIGKILL)


def incident(ref: str) -> dict:
    return {"case_ref": ref, "aware_date": time.strftime("%Y-%m-%d"), "category": "serious_harm_abuse_neglect",
            "children": [{"pseudonym": "Child A"}], "summary": "Test incident.", "agencies": ["vale-icb"]}


def wait_for(predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    return None


# --- a dying child comes back ----------------------------------------------------------------------------------


def test_a_killed_worker_is_restarted_and_cases_work_again(stack):
    stack.start()
    worker = stack.pid_of("sgflow worker")
    assert worker is not None
    os.kill(worker, signal.SIGKILL)
    line = stack.read_until("worker: stopped unexpectedly", timeout=30).splitlines()[-1]
    assert "killed by SIGKILL" in line and "restarting in 1 s (restart 1)" in line and "worker.log" in line
    assert wait_for(lambda: (stack.pid_of("sgflow worker") or worker) != worker, 30), "no new worker"
    status, body = stack.call("POST", "/api/partnerships/riverford-and-vale/incidents", incident("RV-RESTART-1"))
    assert status == 201, body  # opening a case needs the worker: the new one answers
    web = stack.pid_of("sgflow web")
    os.kill(web, signal.SIGKILL)  # the web app too
    stack.read_until("web: stopped unexpectedly", timeout=30)
    assert wait_for(lambda: stack.call("GET", f"/api/cases/{body['case_id']}")[0] == 200, 60)
    code, out, err = stack.signal_and_wait(signal.SIGTERM)
    assert code == 0 and "Traceback" not in err + out, err
    assert out.count("stopped unexpectedly") == 2  # once per restart
    assert processes_with(stack.data_dir) == {}


def test_restarts_back_off_and_reset_once_a_child_has_run_a_while(tmp_path):
    child = Child("flaky", [sys.executable, "-c", "import sys; sys.exit(3)"], dict(os.environ),
                  log=tmp_path / "flaky.log")
    delays = []
    for _ in range(7):
        child.proc.wait(10)
        now = child.started_at + 1  # it died one second after starting
        line = child.check(now)
        assert line and "exit status 3" in line
        delays.append(float(line.split("restarting in ")[1].split(" s")[0]))
        assert child.check(now) is None and not child.alive()  # not yet: still waiting out its back-off
        child.check(child.restart_at)  # the back-off has passed: started again
    assert delays == [1, 2, 4, 8, 16, 30, 30]
    child.proc.wait(10)
    line = child.check(child.started_at + 61)  # it had run for a minute before dying
    assert "restarting in 1 s (restart 8)" in line
    assert (tmp_path / "flaky.log").stat().st_mode & 0o777 == 0o600


# --- Ctrl-C or SIGTERM at any moment of start-up ---------------------------------------------------------------


@pytest.mark.parametrize("moment, sig", [
    ("Temporal: dev server started", signal.SIGINT),  # next: the migrations
    ("Seed: demo arrangements and users", signal.SIGINT),  # during the seed of arrangements and users
    ("Seed: recording the demo's learning events", signal.SIGINT),  # during the seed through Temporal
    ("Seed: recording the demo's learning events", signal.SIGTERM),
])
def test_a_stop_during_start_up_is_clean(stack, moment, sig):
    stack.start(until=moment)
    code, out, err = stack.signal_and_wait(sig)
    assert code == 130, (out, err)  # start-up was interrupted
    assert "Traceback" not in err and "Traceback" not in out, err
    assert "Error" not in err, err
    assert "sgflow is running" not in out
    assert processes_with(stack.data_dir) == {}  # no child left behind

    banner = stack.start()  # and the next start is a normal one
    assert "Press Ctrl-C to stop." in banner
    code, out, err = stack.signal_and_wait(signal.SIGINT)
    assert code == 0 and "Traceback" not in err
    assert processes_with(stack.data_dir) == {}


# --- files readable by this user only --------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_data_folder_and_its_files_are_private(stack):
    previous = os.umask(0o022)  # a usual umask: what we create must not depend on the caller's being strict
    try:
        stack.start()
    finally:
        os.umask(previous)
    status, _ = stack.call("POST", "/api/partnerships/riverford-and-vale/incidents", incident("RV-PERM-1"))
    assert status == 201
    data = stack.data_dir
    assert mode(data) == 0o700
    names = ["sgflow.db", "sgflow.db-wal", "sgflow.db-shm", "worker.log", "web.log", "temporal.log", "temporal.db",
             "secret_key", "payload_keys"]
    for name in names:
        assert (data / name).exists(), name
        assert mode(data / name) == 0o600, f"{name} is {oct(mode(data / name))}"
    for path in data.rglob("*"):  # anything else the stack made (Temporal's -wal/-shm, upload folders)
        assert mode(path) & 0o077 == 0, f"{path} is {oct(mode(path))}"
    code, _, _ = stack.signal_and_wait(signal.SIGINT)
    assert code == 0


def test_sqlite_files_are_created_private_and_loose_ones_tightened(tmp_path):
    from sqlalchemy import text

    from safeguarding.db import make_engine

    previous = os.umask(0o022)
    try:
        fresh = tmp_path / "new" / "app.db"
        engine = make_engine(f"sqlite:///{fresh}")
        with engine.begin() as conn:
            conn.execute(text("create table t (x int)"))
            conn.execute(text("insert into t values (1)"))
            assert {p.name for p in fresh.parent.iterdir()} >= {"app.db", "app.db-wal", "app.db-shm"}
            assert all(mode(p) == 0o600 for p in fresh.parent.iterdir())
        engine.dispose()
        loose = tmp_path / "old.db"
        loose.write_bytes(b"")
        loose.chmod(0o644)
        (tmp_path / "old.db-wal").write_bytes(b"")
        (tmp_path / "old.db-wal").chmod(0o644)
        make_engine(f"sqlite:///{loose}").dispose()
        assert mode(loose) == 0o600 and mode(tmp_path / "old.db-wal") == 0o600
    finally:
        os.umask(previous)
