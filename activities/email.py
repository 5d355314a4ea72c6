"""Email: deliver outbox messages through SMTP, once each.

With no SMTP server configured (the embedded default) a message is marked ``held``: it stays readable in
the app and nothing leaves the machine. A message already ``sent`` is skipped, so a retried activity
sends nothing twice; the Message-ID is derived from the outbox id, so a mail server that saw a message
before a crash can drop the repeat.
"""

from __future__ import annotations

import json
import smtplib
from datetime import UTC, datetime
from email.message import EmailMessage

from sqlalchemy.engine import Engine
from sqlmodel import Session

from safeguarding.settings import Settings
from safeguarding.tables import OutboxMessage


def _message(row: OutboxMessage, settings: Settings, to: list[str]) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = ", ".join(to)
    msg["Subject"] = row.subject
    domain = settings.smtp_from.rpartition("@")[2] or "localhost"
    msg["Message-ID"] = f"<{row.id.replace('#', '.').replace('/', '.')}@{domain}>"
    msg.set_content(f"{row.body}\n\n{settings.resolved_public_url}\n")
    return msg


def deliver(engine: Engine, settings: Settings, message_ids: list[str]) -> dict[str, str]:
    """Send each queued message; returns id -> final status. Raises on an SMTP fault (the activity retries)."""
    outcome: dict[str, str] = {}
    for message_id in message_ids:
        with Session(engine) as session:
            row = session.get(OutboxMessage, message_id)
            if row is None or row.status in ("sent", "held"):
                outcome[message_id] = row.status if row else "missing"
                continue
            to = json.loads(row.to_addresses)
            if not settings.smtp_host or not to:
                row.status = "held"
                row.last_error = None if to else "nobody with an email address holds this role"
                session.add(row)
                session.commit()
                outcome[message_id] = row.status
                continue
            row.attempts += 1
            try:
                with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=20) as smtp:
                    if settings.smtp_starttls and smtp.has_extn("starttls"):
                        smtp.starttls()
                    if settings.smtp_username:
                        smtp.login(settings.smtp_username, settings.smtp_password or "")
                    smtp.send_message(_message(row, settings, to))
            except (OSError, smtplib.SMTPException) as exc:
                row.status, row.last_error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
                session.add(row)
                session.commit()
                raise
            row.status, row.sent_at, row.last_error = "sent", datetime.now(UTC), None
            session.add(row)
            session.commit()
            outcome[message_id] = "sent"
    return outcome
