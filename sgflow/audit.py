"""``sgflow audit verify``: check that the audit log is whole (no entry changed, removed or moved).

Wire it into the ``sgflow`` command with ``app.add_typer(audit_app, name="audit")`` (sgflow/cli.py).
"""

from __future__ import annotations

import typer

audit_app = typer.Typer(help="The audit log: append-only and hash-chained.", no_args_is_help=True)


@audit_app.callback()
def _group() -> None:
    """The audit log: append-only and hash-chained."""


def verify_command(engine) -> int:
    """Print the outcome; 0 when the chain is intact, 1 naming the first bad entry."""
    from safeguarding.audit_log import check

    result = check(engine)
    if result.problem is not None:
        typer.secho(f"sgflow: error: the audit log is broken at {result.problem}", fg=typer.colors.RED, err=True)
        return 1
    typer.echo(f"audit log intact: {result.rows} entr{'y' if result.rows == 1 else 'ies'}, chain verified")
    return 0


@audit_app.command("verify")
def verify() -> None:
    """Walk the audit log's hash chain: exit 0 with the number of entries when intact, else 1 naming the first
    entry that was altered, removed or moved."""
    from safeguarding.db import DatabaseUnavailableError, get_engine, require_current

    try:
        engine = get_engine()
        require_current(engine)
    except DatabaseUnavailableError as exc:
        typer.secho(f"sgflow: error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    raise typer.Exit(verify_command(engine))
