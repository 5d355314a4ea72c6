"""Engine, sessions and migrations for the application database (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from functools import lru_cache
from pathlib import Path
from weakref import WeakKeyDictionary

from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlmodel import Session, create_engine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


class DatabaseUnavailableError(RuntimeError):
    """The configured database cannot be reached or used; the message says what to do."""


def _describe(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def private_file(path: Path) -> Path:
    """Make ``path`` (a SQLite file) readable by this user only: created 0600 if missing, tightened if it exists,
    and so are its ``-wal``/``-shm``/``-journal`` companions (SQLite creates those with the main file's mode)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    return tighten(path)


def tighten(path: Path) -> Path:
    """Make an existing SQLite file and its companions 0600 (a missing one is left missing)."""
    for candidate in (path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal"))):
        with suppress(FileNotFoundError, PermissionError):  # another owner's file (a mounted volume): leave it
            candidate.chmod(0o600)
    return path


def make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseUnavailableError(
            f"DATABASE_URL is not a valid database URL ({url!r}); "
            "expected e.g. sqlite:///path/to/file.db or postgresql+psycopg://user@host:5432/db"
        ) from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            private_file(Path(parsed.database))  # it holds children's data: never readable by other users
        # Keep a connection per busy web thread: the default pool (5 + 10 overflow) closes the overflow ones as
        # they come back, so under load every request paid for a new connection and its PRAGMAs.
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=20,
                               max_overflow=20)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


_SQLITE_WRITERS: WeakKeyDictionary[Engine, threading.Lock] = WeakKeyDictionary()
_SQLITE_WRITERS_GUARD = threading.Lock()


def one_writer(engine: Engine) -> AbstractContextManager:
    """Hold around a write transaction that many threads run at once (the worker's activities).

    On SQLite, a lock per engine: one thread of this process writes at a time. SQLite takes one writer
    anyway; with the lock the other threads wait here instead of retrying on its file lock (on a busy machine
    the worker used less CPU a case; a quiet run showed no difference: benchmarks/README.md). On PostgreSQL
    (row locks, real concurrency) it does nothing.
    """
    if engine.dialect.name != "sqlite":
        return nullcontext()
    with _SQLITE_WRITERS_GUARD:
        lock = _SQLITE_WRITERS.get(engine)
        if lock is None:
            lock = _SQLITE_WRITERS[engine] = threading.Lock()
    return lock


def check_connection(engine: Engine) -> None:
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except (OperationalError, ModuleNotFoundError) as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else type(exc).__name__
        raise DatabaseUnavailableError(
            f"cannot connect to the database at {_describe(str(engine.url.render_as_string(False)))}: {reason}. "
            "Check DATABASE_URL (and that the database server is running)."
        ) from exc


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` on ``engine`` (idempotent)."""
    from alembic import command

    check_connection(engine)
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def require_current(engine: Engine) -> None:
    """Refuse to run on a database whose schema is not at the newest migration (one clear line)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    check_connection(engine)
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current != head:
        state = "has no tables yet" if current is None else f"is at migration {current}, not {head}"
        raise DatabaseUnavailableError(f"the database {state}; run `sgflow db upgrade` first")


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    return make_engine(url)


def get_engine() -> Engine:
    from safeguarding.settings import get_settings

    return engine_for(get_settings().resolved_database_url)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error (no partial saves)."""
    with Session(engine or get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
