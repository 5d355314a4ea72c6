"""The ``sgflow`` command: run the engine, migrate its database, manage arrangements."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from sgflow.audit import audit_app

app = typer.Typer(
    name="sgflow",
    help="Workflow engine for England's local safeguarding children partnerships.\n\n"
    "Start everything on this machine with `sgflow up`; in production run `sgflow db upgrade`, "
    "then `sgflow worker` and `sgflow web` as separate processes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="The application database.", no_args_is_help=True)
arrangements_app = typer.Typer(help="Partnership arrangements: validate, load, list versions, diff.",
                               no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(arrangements_app, name="arrangements")
app.add_typer(audit_app, name="audit")


class CliError(Exception):
    """A fault the user can fix; printed as one line, exit status 1."""


def _settings():
    from safeguarding.settings import get_settings

    return get_settings()


@app.command()
def up() -> None:
    """Start everything on embedded defaults: Temporal dev server, database, worker and web app.

    Data lives in SGFLOW_DATA_DIR (default ./.data) and survives restarts. Ctrl-C stops it all.
    """
    from sgflow.supervisor import run_up

    raise typer.Exit(run_up(_settings()))


@app.command()
def worker() -> None:
    """Run the Temporal worker (workflows and activities) until SIGTERM or Ctrl-C."""
    from sgflow.worker import run_worker

    asyncio.run(run_worker(_settings()))


@app.command()
def web(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default SGFLOW_WEB_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default SGFLOW_WEB_PORT).")] = None,
) -> None:
    """Run the web app and JSON API."""
    import uvicorn

    from sgflow.supervisor import ensure_port_free

    settings = _settings()
    host, port = host or settings.web_host, port or settings.web_port
    ensure_port_free(host, port, "SGFLOW_WEB_PORT")
    from safeguarding.db import get_engine, require_current
    from safeguarding.temporal_connection import connect

    require_current(get_engine())
    from web.security import parse_trusted_proxies

    try:
        parse_trusted_proxies(settings.trusted_proxies)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    asyncio.run(connect(settings))  # fail now, in one line, rather than inside the server's start-up
    # proxy_headers=False: X-Forwarded-* are read only from SGFLOW_TRUSTED_PROXIES, in the app (web.security).
    uvicorn.run("web.app:create_app", factory=True, host=host, port=port, log_level="info",
                proxy_headers=False, workers=settings.web_workers)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations (safe to run repeatedly)."""
    from safeguarding.db import get_engine, upgrade

    upgrade(get_engine())
    typer.echo("database is up to date")


@app.command()
def seed() -> None:
    """Load the demo partnerships and demo users (idempotent)."""
    from safeguarding.db import get_engine, upgrade
    from sgflow.seed import seed_demo

    upgrade(get_engine())
    for line in seed_demo(get_engine()):
        typer.echo(line)


@app.command()
def rebuild() -> None:
    """Re-derive the read model (cases, tasks, timelines) from Temporal, e.g. after losing the database."""
    from safeguarding.db import get_engine, upgrade
    from safeguarding.temporal_connection import connect
    from sgflow.rebuild import rebuild as run_rebuild

    settings = _settings()
    engine = get_engine()
    upgrade(engine)

    async def _go():
        return await run_rebuild(await connect(settings), engine, settings.resolved_secret_key())

    report = asyncio.run(_go())
    typer.echo(f"{report.cases} case(s) found in Temporal; {report.written} written to the read model"
               + (f"; {report.failed} could not be queried" if report.failed else ""))


def _read(file: Path) -> tuple[bytes, str]:
    try:
        return file.read_bytes(), file.name
    except OSError as exc:
        raise CliError(f"cannot read {file}: {exc.strerror}") from exc


@arrangements_app.command("validate")
def arrangements_validate(file: Annotated[Path, typer.Argument(help="A JSON or YAML arrangements file.")]) -> None:
    """Check an arrangements file; print every problem, one a line, path first. Exit 1 if any."""
    from safeguarding.arrangements import ArrangementsError, load

    data, name = _read(file)
    try:
        doc = load(data, filename=name)
    except ArrangementsError as exc:
        for issue in exc.issues:
            typer.echo(str(issue))
        typer.secho(f"{file}: {len(exc.issues)} problem(s) found", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{file}: valid arrangements for ‘{doc['partnership']['id']}’")


@arrangements_app.command("load")
def arrangements_load(
    partnership: Annotated[str, typer.Argument(help="The partnership id the file must carry.")],
    file: Annotated[Path, typer.Argument(help="A JSON or YAML arrangements file.")],
    author: Annotated[str, typer.Option(help="Who is storing this version.")] = "command line",
    note: Annotated[str, typer.Option(help="What changed and why.")] = "",
) -> None:
    """Validate a file and store it as the partnership's next arrangements version."""
    from safeguarding.arrangements import ArrangementsError, load
    from safeguarding.db import get_engine, require_current, session_scope
    from safeguarding.versions import store_version

    data, name = _read(file)
    require_current(get_engine())
    try:
        doc = load(data, filename=name)
        with session_scope(get_engine()) as session:
            stored = store_version(session, partnership, doc, author=author, change_note=note)
    except ArrangementsError as exc:
        for issue in exc.issues:
            typer.echo(str(issue))
        typer.secho(f"{file}: nothing stored, {len(exc.issues)} problem(s)", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    if stored.created:
        typer.echo(f"stored {partnership} arrangements version {stored.number} ({stored.content_hash[:12]})")
    else:
        typer.echo(f"unchanged: identical to {partnership} version {stored.number}; nothing stored")


@arrangements_app.command("versions")
def arrangements_versions(partnership: Annotated[str, typer.Argument(help="Partnership id.")]) -> None:
    """List a partnership's arrangements versions, newest first."""
    from safeguarding.db import get_engine, require_current, session_scope
    from safeguarding.versions import list_versions

    require_current(get_engine())
    with session_scope(get_engine()) as session:
        rows = list_versions(session, partnership)
    if not rows:
        raise CliError(f"partnership ‘{partnership}’ has no arrangements")
    for row in rows:
        typer.echo(f"v{row.number}  {row.created_at:%Y-%m-%d %H:%M}  {row.author}  {row.content_hash[:12]}  "
                   f"{row.change_note}")


@arrangements_app.command("diff")
def arrangements_diff(
    partnership: Annotated[str, typer.Argument(help="Partnership id.")],
    old: Annotated[int, typer.Argument(help="Older version number.")],
    new: Annotated[int, typer.Argument(help="Newer version number.")],
) -> None:
    """Show what changed between two versions, one change a line."""
    from safeguarding.db import get_engine, require_current, session_scope
    from safeguarding.versions import diff, document_of, get_version

    require_current(get_engine())
    with session_scope(get_engine()) as session:
        before, after = get_version(session, partnership, old), get_version(session, partnership, new)
    changes = diff(document_of(before), document_of(after))
    for change in changes:
        typer.echo(str(change))
    if not changes:
        typer.echo("no differences")


def main() -> None:
    """Entry point: known faults become one clear line and exit status 1, never a traceback."""
    from safeguarding.binaries import MissingBinaryError
    from safeguarding.calendar import CalendarRangeError
    from safeguarding.db import DatabaseUnavailableError
    from safeguarding.settings import SettingsError
    from safeguarding.temporal_connection import TemporalUnavailableError
    from safeguarding.versions import VersionNotFoundError
    from sgflow.supervisor import StartupError

    known = (CliError, DatabaseUnavailableError, TemporalUnavailableError, MissingBinaryError, StartupError,
             VersionNotFoundError, CalendarRangeError, SettingsError)
    try:
        app(standalone_mode=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except known as exc:
        typer.secho(f"sgflow: error: {exc}", fg=typer.colors.RED, err=True)
        code = 1
    except KeyboardInterrupt:
        code = 130
    # Leave without interpreter finalisation: the Temporal SDK's native runtime can abort the process while its
    # threads are torn down ("PyGILState_Release", seen here), turning a clean exit status into SIGABRT.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
