"""Email: deliver outbox messages through SMTP, once each.

With no SMTP server configured (the embedded default) the read model writes a message as ``held`` and no
delivery runs: it stays readable in the app and nothing leaves the machine (a message queued before, while a
server was configured, is marked ``held`` here). A message already ``sent`` is skipped, so a retried activity
sends nothing twice; the Message-ID is derived from the outbox id, so a mail server that saw a message
before a crash can drop the repeat. The messages of one delivery share one SMTP connection; each sent
message is recorded in its own transaction, right after the server accepted it.
"""

from __future__ import annotations

import json
import smtplib
from contextlib import ExitStack
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Engine

from activities.read_model import NO_ADDRESS
from safeguarding.db import one_writer
from safeguarding.settings import Settings
from safeguarding.tables import OutboxMessage

OUTBOX = OutboxMessage.__table__
_QUEUED = select(OUTBOX.c.id, OUTBOX.c.status, OUTBOX.c.to_addresses, OUTBOX.c.subject, OUTBOX.c.body,
                 OUTBOX.c.attempts).where(OUTBOX.c.id.in_(bindparam("b_ids", expanding=True)))
_HOLD = update(OUTBOX).where(OUTBOX.c.id == bindparam("b_id")).values(status="held",
                                                                      last_error=bindparam("last_error"))
_SET = update(OUTBOX).where(OUTBOX.c.id == bindparam("b_id"))  # SET: the columns given


def _message(row: Any, settings: Settings, to: list[str]) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = ", ".join(to)
    msg["Subject"] = row.subject
    domain = settings.smtp_from.rpartition("@")[2] or "localhost"
    msg["Message-ID"] = f"<{row.id.replace('#', '.').replace('/', '.')}@{domain}>"
    msg.set_content(f"{row.body}\n\n{settings.resolved_public_url}\n")
    return msg


def _set(engine: Engine, message_id: str, **values: Any) -> None:
    with one_writer(engine), engine.begin() as conn:
        conn.execute(_SET, {"b_id": message_id, **values})


def deliver(engine: Engine, settings: Settings, message_ids: list[str]) -> dict[str, str]:
    """Send each queued message; returns id -> final status. Raises on an SMTP fault (the activity retries)."""
    with engine.connect() as conn:
        rows = {row.id: row for row in conn.execute(_QUEUED, {"b_ids": list(message_ids)})}
    outcome: dict[str, str] = {}
    held: list[dict[str, Any]] = []
    to_send = []
    for message_id in message_ids:
        row = rows.get(message_id)
        if row is None or row.status in ("sent", "held"):
            outcome[message_id] = row.status if row else "missing"
            continue
        to = json.loads(row.to_addresses)
        if not settings.smtp_host or not to:
            held.append({"b_id": message_id,
                         "last_error": None if to else NO_ADDRESS})
            outcome[message_id] = "held"
            continue
        to_send.append((row, to))
    if held:  # one statement for every message that stays in the outbox
        with one_writer(engine), engine.begin() as conn:
            conn.execute(_HOLD, held)
    if not to_send:
        return outcome
    with ExitStack() as stack:  # one connection for the messages of one delivery
        smtp = None
        for row, to in to_send:
            attempts = row.attempts + 1
            try:
                if smtp is None:
                    smtp = stack.enter_context(_connect(settings))
                smtp.send_message(_message(row, settings, to))
            except (OSError, smtplib.SMTPException) as exc:
                _set(engine, row.id, status="failed", attempts=attempts,
                     last_error=f"{type(exc).__name__}: {exc}"[:2000])
                raise
            _set(engine, row.id, status="sent", attempts=attempts, sent_at=datetime.now(UTC), last_error=None)
            outcome[row.id] = "sent"
    return outcome


def _connect(settings: Settings) -> smtplib.SMTP:
    smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=20)
    try:
        if settings.smtp_starttls and smtp.has_extn("starttls"):
            smtp.starttls()
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password or "")
    except BaseException:
        smtp.close()
        raise
    return smtp
