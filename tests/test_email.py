"""Email from the outbox through a real SMTP server on loopback (aiosmtpd): sent once, never twice."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session

from activities.email import deliver
from safeguarding.settings import Settings
from safeguarding.tables import OutboxMessage
from tests.conftest import free_port


def queue(engine, message_id: str, to: list[str]) -> None:
    with Session(engine) as session:
        session.add(OutboxMessage(id=message_id, partnership_id=None, case_id=None, to_user_refs=json.dumps([]),
                                  to_addresses=json.dumps(to), subject="Overdue: Notify the national Panel",
                                  body="It is overdue."))
        session.commit()


def status(engine, message_id: str) -> OutboxMessage:
    with Session(engine) as session:
        return session.get(OutboxMessage, message_id)


def test_a_queued_message_is_sent_once(engine, smtp, tmp_path):
    inbox, port = smtp
    settings = Settings(data_dir=tmp_path, secret_key="x", smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False,
                        smtp_from="sgflow@rv.example")
    queue(engine, "case-1#3", ["lead@rv.example", "bm@rv.example"])
    assert deliver(engine, settings, ["case-1#3"]) == {"case-1#3": "sent"}
    assert deliver(engine, settings, ["case-1#3"]) == {"case-1#3": "sent"}  # a retried activity: no second email
    assert len(inbox.messages) == 1
    envelope = inbox.messages[0]
    assert sorted(envelope.rcpt_tos) == ["bm@rv.example", "lead@rv.example"]
    text = envelope.content.decode()
    assert "Subject: Overdue: Notify the national Panel" in text and "Message-ID: <case-1.3@rv.example>" in text
    row = status(engine, "case-1#3")
    assert row.status == "sent" and row.sent_at is not None and row.attempts == 1


def test_the_messages_of_one_delivery_share_one_connection(engine, smtp, tmp_path):
    inbox, port = smtp
    settings = Settings(data_dir=tmp_path, secret_key="x", smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False)
    for n in range(3):
        queue(engine, f"case-5#{n}", [f"person{n}@rv.example"])
    assert deliver(engine, settings, [f"case-5#{n}" for n in range(3)]) == {f"case-5#{n}": "sent" for n in range(3)}
    assert [envelope.rcpt_tos for envelope in inbox.messages] == [[f"person{n}@rv.example"] for n in range(3)]
    assert len(set(inbox.peers)) == 1
    assert all(status(engine, f"case-5#{n}").status == "sent" for n in range(3))


def test_without_smtp_messages_are_held_in_the_outbox(engine, tmp_path):
    queue(engine, "case-2#1", ["lead@rv.example"])
    assert deliver(engine, Settings(data_dir=tmp_path, secret_key="x"), ["case-2#1"]) == {"case-2#1": "held"}
    assert status(engine, "case-2#1").status == "held"


def test_a_mail_server_fault_is_recorded_and_raised_for_retry(engine, tmp_path):
    settings = Settings(data_dir=tmp_path, secret_key="x", smtp_host="127.0.0.1", smtp_port=free_port(),
                        smtp_starttls=False)
    queue(engine, "case-3#1", ["lead@rv.example"])
    with pytest.raises(OSError):
        deliver(engine, settings, ["case-3#1"])
    row = status(engine, "case-3#1")
    assert row.status == "failed" and "Connection" in row.last_error and row.attempts == 1


def test_a_message_to_a_role_nobody_holds_is_held_with_a_reason(engine, tmp_path, smtp):
    _, port = smtp
    settings = Settings(data_dir=tmp_path, secret_key="x", smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False)
    queue(engine, "case-4#1", [])
    assert deliver(engine, settings, ["case-4#1"]) == {"case-4#1": "held"}
    assert "nobody" in status(engine, "case-4#1").last_error
