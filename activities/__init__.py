"""Every side effect of the workflows: writing the read model, sending email. Built with the engine they use."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine
from temporalio import activity

from safeguarding.case_records import CaseSnapshot
from safeguarding.settings import Settings


class CaseActivities:
    """Synchronous activities (run in the worker's thread pool) bound to one database and settings."""

    def __init__(self, engine: Engine, settings: Settings):
        self.engine, self.settings = engine, settings
        self.secret = settings.resolved_secret_key()

    @activity.defn(name="sync_case")
    def sync_case(self, snap: dict[str, Any]) -> dict[str, Any]:
        """Write the snapshot. Returns ``to_send``: the ids of its emails that wait for SMTP delivery (none without
        a server: they are held in the outbox), and ``resend: true`` when the read model needs the whole case.
        Workers before it returned a bool (the workflow reads both)."""
        from activities.read_model import apply_snapshot

        written = apply_snapshot(self.engine, CaseSnapshot.from_payload(snap), self.secret,
                                 smtp=bool(self.settings.smtp_host))
        return {"to_send": written.to_send, "resend": written.resend}

    @activity.defn(name="deliver_outbox")
    def deliver_outbox(self, message_ids: list[str]) -> dict[str, str]:
        from activities.email import deliver

        return deliver(self.engine, self.settings, message_ids)


def build_activities(engine: Engine, settings: Settings) -> list:
    from activities.yearly_report import YearlyReportActivities

    acts, yearly = CaseActivities(engine, settings), YearlyReportActivities(engine)
    return [acts.sync_case, acts.deliver_outbox, yearly.start_next]
