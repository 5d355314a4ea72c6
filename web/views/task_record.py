"""What a task decides on, read from the case's earlier tasks (issue 17, points 1 and 2).

* ``signing_record``: a partner signing off sees the decision, its rationale against the criteria, the agency
  summaries and the meeting record they are signing (the latest round's decision).
* ``sent_back``: a decision sent back by a partner says who refused, when and why, and starts from the earlier
  answers (``schema_forms.form_values``).
* ``next_steps``: what happens after a completed task, in words, for its confirmation.
* ``panel_view``: the rapid review the national Panel responds to, pseudonymised: dates, the decision and its
  controlled answers (national importance, learning themes), the partners' sign-offs; never what people typed.

Local pages only: the national body's view stays pseudonymised (no one's answers)."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from sqlmodel import Session, select

from safeguarding import forms
from safeguarding.tables import Case, Task
from safeguarding.wording import long_date
from web import schema_forms as sf
from web.views.common import display_names

SIGNED = ("lcspr_decision", "rr_meeting", "agency_summary")  # what a partner signs off, in the order shown


def _done(engine, case_id: str) -> list[Task]:
    with Session(engine) as session:
        return list(session.exec(select(Task).where(Task.case_id == case_id, Task.status == "done")
                                 .order_by(Task.completed_at, Task.key)))


def _answers(task: Task, options: Any) -> list[dict]:
    schema = forms.schema(task.form) if task.form in forms.FORMS else {"properties": {}}
    return sf.answers(schema, json.loads(task.data or "{}"), options)


def _when(task: Task) -> date | None:
    return task.completed_at.date() if task.completed_at else None


def signing_record(engine, case: Case, options: Any) -> list[dict[str, Any]]:
    """The latest decision, the meeting record and the agency summaries: title, who, when and the answers."""
    done = _done(engine, case.id)
    latest = {}
    for task in done:  # the last of each kind of single step (a decision re-made after a refusal replaces it)
        if task.type in ("lcspr_decision", "rr_meeting"):
            latest[task.type] = task
    chosen = [latest[t] for t in ("lcspr_decision", "rr_meeting") if t in latest]
    chosen += [t for t in done if t.type == "agency_summary"]
    names = display_names(engine, {t.completed_by or "" for t in chosen})
    return [{"title": t.title, "type": t.type, "by": names.get(t.completed_by or "", t.completed_by or ""),
             "on": _when(t), "answers": _answers(t, options)} for t in chosen]


def sent_back(engine, case: Case, task: Task) -> dict[str, Any] | None:
    """For a decision re-opened after a partner did not sign off: who refused, when, why, and the decision's earlier
    answers (``data``); None for a first decision."""
    if task.type != "lcspr_decision":
        return None
    done = _done(engine, case.id)
    refusals = [t for t in done if t.type == "partner_signoff" and json.loads(t.data or "{}").get("agree") is False]
    earlier = [t for t in done if t.type == "lcspr_decision"]
    if not refusals or not earlier:
        return None
    refusal, previous = refusals[-1], earlier[-1]
    names = display_names(engine, {refusal.completed_by or ""})
    return {"by": names.get(refusal.completed_by or "", refusal.completed_by or ""), "step": refusal.title,
            "on": _when(refusal), "reason": json.loads(refusal.data or "{}").get("comments", ""),
            "data": json.loads(previous.data or "{}")}


def next_steps(task: Task) -> str:
    """What happens now that this task is done, for its confirmation."""
    data = json.loads(task.data or "{}")
    if task.type == "partner_signoff":
        if data.get("agree") is False:
            return ("You did not sign off. The other sign-offs are cancelled and the decision goes back to be "
                    "reconsidered: the people who decide get a new decision task that shows your comments and "
                    "starts from their earlier answers. Every partner then signs off again.")
        return ("Your sign-off is recorded. When every partner has signed off, the coordinator is asked to submit "
                "the rapid review to the national Panel.")
    if task.type == "lcspr_decision":
        return "The decision is recorded. Each partner named in the arrangements is now asked to sign it off."
    if task.type == "rr_meeting":
        return "The meeting is recorded. The people who decide are now asked for the decision on a local review."
    if task.type == "agency_summary":
        return "Your agency's summary is recorded. The rapid review meeting uses it."
    if task.type == "notification_sent":
        return "The notification is recorded, with whether it was on time. The next steps of the case are open."
    if task.type == "panel_submission":
        return "The submission is recorded. The national Panel is now asked for its response."
    return "What you recorded is on the case’s timeline, and the case moves on to its next step."


def panel_view(engine, case: Case, themes: Any) -> list[dict[str, Any]]:
    """Summary-list rows of the rapid review the Panel responds to: no names, no free text (issue 17.1)."""
    done = _done(engine, case.id)
    rows: list[dict[str, Any]] = []

    def row(key: str, text: str) -> None:
        rows.append({"key": {"text": key}, "value": {"text": text}})

    meeting = [t for t in done if t.type == "rr_meeting"]
    if meeting:
        held = json.loads(meeting[-1].data or "{}").get("held_on")
        row("Rapid review meeting", _long(held))
    summaries = [t for t in done if t.type == "agency_summary"]
    row("Agency summaries", f"{len(summaries)} received")
    decisions = [t for t in done if t.type == "lcspr_decision"]
    if decisions:
        data = json.loads(decisions[-1].data or "{}")
        row("Decision on a local review", "Hold a local review" if data.get("hold_lcspr") == "yes"
            else "No local review")
        if data.get("decided_on"):
            row("Decided on", _long(data["decided_on"]))
        row("May be of national importance", "Yes" if data.get("national_importance") else "No")
        chosen = [(themes or {}).get(t, t) for t in data.get("learning_themes") or []]
        row("Learning themes", ", ".join(chosen) if chosen else "None chosen")
        if len(decisions) > 1:
            row("Decision made", f"{len(decisions)} times (sent back by a partner before sign-off)")
    signed = [t for t in done if t.type == "partner_signoff" and json.loads(t.data or "{}").get("agree")]
    if signed:
        row("Signed off by", "; ".join(f"{t.title.split(': ', 1)[-1]} ({_long(_when(t))})" for t in signed))
    return rows


def _long(value: Any) -> str:
    return long_date(value) if value else "–"  # long_date keeps what it cannot read; "–" for nothing
