"""The machinery every case workflow shares: human tasks, their deadlines, the timeline and the read model.

A workflow owns a ``Casework``. Tasks are opened with a due date (a working-day date from the pinned
calendar) and an optional follow-up (reminder) date; ``run_timers`` sleeps until the next reminder or
deadline, or until something changes. Every change is an event; ``sync`` sends the case, its tasks and the
new events and emails to the read-model activity, in order, so pages always show what the workflow knows.

Deterministic: time comes from ``workflow.now()``; no I/O here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import asdict
from datetime import date, datetime, time, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from safeguarding import forms
    from safeguarding.calendar import CalendarRangeError, WorkingCalendar
    from safeguarding.case_records import (
        CONTRIBUTOR,
        NATIONAL_PANEL,
        ActionCommand,
        Actor,
        CaseSnapshot,
        EventRecord,
        LadderInput,
        MessageRecord,
        TaskCommand,
        TaskRecord,
        TaskResult,
    )
    from safeguarding.wording import long_date, plural

SYNC_TIMEOUT = timedelta(seconds=30)
SYNC_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
REMINDER_HOUR = time(8, 0)
OVERDUE_LADDER_PATCH = "overdue-work-ladder-child"  # cases from before it only emailed the first-stage role
ONE_TIMER_PATCH = "one-timer-per-deadline"  # cases from before it started and cancelled a timer on every wait
NO_PAST_REMINDER_PATCH = "no-reminder-before-opening"  # cases from before it posted a late task's reminder at once
OVERDUE_STEP_TITLES_PATCH = "overdue-ladder-names-the-step"  # cases from before it titled every ladder's tasks alike
REMINDER_RULE_PATCH = "reminders-by-the-calendars-rule"  # cases from before it ignored the before-event rule
STEP_PLAN_PATCH = "step-plan-in-snapshot"  # cases from before it published no step plan (the page fell back)
DELIVERY_GIVE_UP = timedelta(hours=12)  # then the email stays in the outbox, marked failed, for a person to see


def rejected(kind: str, message: str, fields: list[dict[str, Any]] | None = None) -> ApplicationError:
    """A refusal the web app turns into 403/409/422 (``kind``: forbidden | conflict | invalid | not_found)."""
    return ApplicationError(message, {"kind": kind, "fields": fields or []}, type=kind, non_retryable=True)


def iso_day(value: str) -> date | None:
    """A form's ISO date, or None when it is not one (the form's schema reports that; rules skip it)."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


class Casework:
    def __init__(self, *, case_id: str, partnership_id: str, case_ref: str, process: str,
                 calendar: WorkingCalendar, arrangements: dict[str, Any], engine: int = 1):
        self.case_id, self.partnership_id, self.case_ref, self.process = case_id, partnership_id, case_ref, process
        self.engine = engine  # the workflow code generation the case started under (see case_records.ENGINE)
        self.calendar = calendar
        self.arrangements = arrangements
        self.tasks: dict[str, TaskRecord] = {}
        self.fields: dict[str, Any] = {}  # the case row's values: replace a value, never change one in place
        self._synced_fields: dict[str, Any] = {}  # the values the read model has (a sync sends the others)
        self.revision = 0
        self.synced_revision = 0  # the last revision the read model holds
        self._seq = 0
        self._pending_events: list[EventRecord] = []
        self._pending_messages: list[MessageRecord] = []
        self.on_overdue: Callable[[TaskRecord], None] = self.escalate_overdue  # a process may hand it on otherwise
        self.not_yet: dict[str, str] = {}  # task key -> why that step cannot start yet (a clear 409, not a 404)
        self._plans: bool | None = None  # whether this case publishes its step plan (decided once, at its first)
        self.ladders: dict[str, str] = {}  # task key -> id of the overdue-work ladder climbing for it
        self._children: list[tuple[str, Any, str, dict[str, str]]] = []
        self._dirty: set[str] = set()  # tasks changed since the read model last had them
        self.timeline: list[EventRecord] = []  # every event, so the read model can be rebuilt from a query
        self._changed = False
        self._rung = False  # the wake-up timer fired
        self._timer: asyncio.TimerHandle | None = None  # the one timer for the next reminder/deadline
        self._timer_at: datetime | None = None  # the instant it stands for
        self._sync_lock = asyncio.Lock()
        self._deliveries: list[asyncio.Future] = []
        self.roles = {r["id"]: r for r in arrangements.get("roles", [])}
        self.partners = {p["id"]: p for p in arrangements.get("safeguarding_partners", [])}
        self.agencies = {a["id"]: a for a in arrangements.get("relevant_agencies", [])}

    # --- time --------------------------------------------------------------------------------------------
    def now(self) -> datetime:
        return workflow.now()

    def today(self) -> date:
        """Today's date where the partnership works (the calendar's timezone)."""
        return self.calendar.local_date(workflow.now())

    def working_days_before(self, due: date, n: int) -> date | None:
        """The working day ``n`` working days before ``due`` (reminders), or None for no reminder (``n`` of 0, or
        a day outside the calendar's years). Counted by the calendar's own rule (``nth_working_day_before``: with
        ``clear_days_both_ends``, ``n`` clear working days between the reminder and the due date). Cases from before
        engine 6 decide by the ``REMINDER_RULE_PATCH`` marker: those that counted before it keep the old count (the
        nth working day before, whatever the rule), so their reminders stay on the days they were set for."""
        if n <= 0:
            return None
        if self.has(REMINDER_RULE_PATCH, since=6):
            try:
                return self.calendar.nth_working_day_before(due, n)
            except CalendarRangeError:
                return None
        day, counted = due, 0
        while counted < n:
            day -= timedelta(days=1)
            if day < self.calendar.first_day:
                return None
            if self.calendar.is_working_day(day):
                counted += 1
        return day

    # --- the step plan: what the process means to do, in order, for the case page -----------------------------
    def publish_plan(self, steps: list[dict[str, Any]]) -> None:
        """The process's planned steps, in order, as the case row's ``plan`` (the read model): each a dict with
        ``type`` (the task type its tasks have), ``title`` (plain English), ``applies`` (False: this case will not
        take it) and optionally ``key`` (one task's key, when several steps share a type, such as a ladder's
        stages) and step details the page shows. A process publishes it again when a decision changes it.
        Decided once per case (the first call, as the workflow starts): cases from before engine 6 decide by the
        ``STEP_PLAN_PATCH`` marker, so a case replaying from its start never publishes half a plan."""
        if self._plans is None:
            self._plans = self.has(STEP_PLAN_PATCH, since=6)
        if self._plans:
            self.fields["plan"] = [dict(step) for step in steps]

    # --- people --------------------------------------------------------------------------------------------
    def role_members(self, role_id: str) -> list[str]:
        return list(self.roles.get(role_id, {}).get("members", []))

    def role_title(self, role_id: str) -> str:
        return self.roles.get(role_id, {}).get("title", role_id)

    def agency_name(self, agency_id: str) -> str:
        if agency_id in self.partners:
            return self.partners[agency_id].get("organisation", agency_id)
        return self.agencies.get(agency_id, {}).get("name", agency_id)

    def agency_candidates(self, agency_id: str) -> tuple[str, str, list[str]]:
        """(candidate role, label, user refs) for the person who answers for an agency or partner."""
        if agency_id in self.partners:
            delegate = self.partners[agency_id].get("delegate", {})
            return (f"partner:{agency_id}", f"{delegate.get('role_title', 'Delegate')}, {self.agency_name(agency_id)}",
                    [delegate["user_ref"]] if delegate.get("user_ref") else [])
        role = self.agencies.get(agency_id, {}).get("contact_role", "")
        return role, f"{self.role_title(role)}, {self.agency_name(agency_id)}", self.role_members(role)

    # --- timeline ------------------------------------------------------------------------------------------
    def event(self, kind: str, message: str, *, actor: str = "system", task_key: str | None = None,
              data: dict[str, Any] | None = None) -> None:
        self._seq += 1
        record = EventRecord(seq=self._seq, at=self.now().isoformat(), actor=actor, kind=kind, message=message,
                             task_key=task_key, data=data or {})
        self._pending_events.append(record)
        self.timeline.append(record)
        self._changed = True

    def email(self, to_user_refs: list[str], subject: str, body: str) -> None:
        refs = sorted(set(to_user_refs))
        if not refs:
            return
        self._seq += 1
        self._pending_messages.append(MessageRecord(seq=self._seq, to_user_refs=refs, subject=subject, body=body))

    # --- tasks ---------------------------------------------------------------------------------------------
    def open_task(self, key: str, type_: str, title: str, form: str, *, candidate_role: str,
                  candidate_label: str, candidate_users: list[str], due: date | None,
                  reminder_working_days: int = 0) -> TaskRecord:
        """Open a human task, due on ``due``, with a reminder ``reminder_working_days`` working days before it.

        The reminder (the follow-up date, posted on the timeline and emailed at ``REMINDER_HOUR`` that day) is only
        set when that day comes after the day the task opens. A step opened late, on or after its reminder day
        (or already past its due date), gets no reminder: it would be dated before the task existed, or repeat on
        the same day what the new-task email has just said (that email gives the due date). Cases started under an
        older engine decide by the ``NO_PAST_REMINDER_PATCH`` marker: steps opened before this code (a replay)
        keep the old way, where such a reminder was posted at once."""
        follow_up = self.working_days_before(due, reminder_working_days) if due else None
        if follow_up is not None and follow_up <= self.today() and self.has(NO_PAST_REMINDER_PATCH, since=5):
            follow_up = None
        task = TaskRecord(key=key, type=type_, title=title, form=form, candidate_role=candidate_role,
                          candidate_label=candidate_label, candidate_users=sorted(set(candidate_users)),
                          opened_at=self.now().isoformat(), due_date=due.isoformat() if due else None,
                          follow_up_date=follow_up.isoformat() if follow_up else None)
        self.tasks[key] = task
        self._dirty.add(key)
        due_text = f", due {long_date(due)}" if due else ""
        self.event("task_opened", f"Task opened: {title} ({candidate_label}{due_text})", task_key=key)
        if task.candidate_users:
            self.email(task.candidate_users, f"New task: {title} ({self.case_ref})",
                       f"A task for {candidate_label} is waiting: {title}{due_text}.")
        return task

    def cancel_task(self, key: str, reason: str) -> None:
        task = self.tasks[key]
        if task.status == "open":
            task.status = "cancelled"
            self._dirty.add(key)
            self.event("task_cancelled", f"Task cancelled: {task.title} ({reason})", task_key=key)

    def open_tasks(self) -> list[TaskRecord]:
        return [t for t in self.tasks.values() if t.status == "open"]

    def may_act(self, task: TaskRecord, actor: Actor) -> bool:
        if task.candidate_role == NATIONAL_PANEL:
            return actor.kind == "national_body"
        if task.candidate_role.startswith(CONTRIBUTOR):  # the resident area's contributor (a cross-boundary case)
            return (actor.partnership_id == task.candidate_role[len(CONTRIBUTOR):]
                    and actor.user_ref in task.candidate_users)
        return actor.partnership_id == self.partnership_id and actor.user_ref in task.candidate_users

    def check_command(self, cmd: TaskCommand, *, completing: bool) -> TaskRecord:
        """The checks an Update validator makes: raise ``rejected`` before anything is recorded."""
        task = self.tasks.get(cmd.task_key)
        if task is None and cmd.task_key in self.not_yet:
            raise rejected("conflict", f"‘{cmd.task_key}’ cannot be done yet: {self.not_yet[cmd.task_key]}")
        if task is None:
            raise rejected("not_found", f"this case has no task ‘{cmd.task_key}’")
        if task.status == "done":
            raise rejected("conflict", f"‘{task.title}’ was already completed by {task.completed_by} "
                                       f"on {long_date(task.completed_at) if task.completed_at else '?'}")
        if task.status == "cancelled":
            raise rejected("conflict", f"‘{task.title}’ was cancelled and can no longer be completed")
        if not self.may_act(task, cmd.actor):
            raise rejected("forbidden", f"‘{task.title}’ is for {task.candidate_label}; you are not one of them")
        if task.claimed_by and task.claimed_by != cmd.actor.user_ref:
            raise rejected("forbidden", f"‘{task.title}’ is claimed by someone else; they must release it first")
        if completing:
            issues = forms.validate(task.form, cmd.data)
            if issues:
                raise rejected("invalid", f"{plural(len(issues), 'problem', 'problems')} in the form", issues)
        return task

    def claim(self, cmd: TaskCommand) -> TaskRecord:
        task = self.check_command(cmd, completing=False)
        if task.claimed_by == cmd.actor.user_ref:
            return task
        task.claimed_by = cmd.actor.user_ref
        self._dirty.add(task.key)
        self.event("task_claimed", f"{task.title}: claimed", actor=cmd.actor.user_ref, task_key=task.key)
        return task

    def release(self, cmd: TaskCommand) -> TaskRecord:
        task = self.check_command(cmd, completing=False)
        if task.claimed_by is None:
            raise rejected("conflict", f"‘{task.title}’ is not claimed")
        task.claimed_by = None
        self._dirty.add(task.key)
        self.event("task_released", f"{task.title}: released", actor=cmd.actor.user_ref, task_key=task.key)
        return task

    def complete(self, cmd: TaskCommand) -> tuple[TaskRecord, EventRecord]:
        """Mark the task done; returns it and its timeline event (the caller words the event's message)."""
        task = self.tasks[cmd.task_key]
        task.status = "done"
        self._dirty.add(task.key)
        task.completed_by = cmd.actor.user_ref
        task.completed_at = self.now().isoformat()
        task.data = dict(cmd.data)
        if task.due_date and self.today() > date.fromisoformat(task.due_date):
            task.days_late = self.calendar.working_days_late(date.fromisoformat(task.due_date), self.today())
        self.event("task_completed", f"{task.title}: completed", actor=cmd.actor.user_ref, task_key=task.key,
                   data={"request_id": cmd.request_id} if cmd.request_id else {})
        return task, self._pending_events[-1]

    # --- deadlines -----------------------------------------------------------------------------------------
    def _reminder_at(self, day: date) -> datetime:
        return self.calendar.instant(day, REMINDER_HOUR)

    def next_timer(self) -> datetime | None:
        instants = []
        for task in self.open_tasks():
            if task.follow_up_date and not task.reminded:
                instants.append(self._reminder_at(date.fromisoformat(task.follow_up_date)))
            if task.due_date and not task.overdue:
                instants.append(self.calendar.deadline_at(date.fromisoformat(task.due_date)))
        return min(instants) if instants else None

    def fire_due_timers(self) -> bool:
        """Send reminders and mark overdue tasks whose time has come; True if anything happened."""
        now, fired = self.now(), False
        for task in self.open_tasks():
            if task.follow_up_date and not task.reminded and now >= self._reminder_at(
                    date.fromisoformat(task.follow_up_date)):
                task.reminded = True
                fired = True
                self._dirty.add(task.key)
                due_text = long_date(task.due_date) if task.due_date else "soon"  # a due date in words
                self.event("reminder_sent", f"Reminder: {task.title} is due {due_text}", task_key=task.key)
                self.email(task.candidate_users if not task.claimed_by else [task.claimed_by],
                           f"Reminder: {task.title} is due {due_text} ({self.case_ref})",
                           f"{task.title} for {task.candidate_label} is due "
                           f"{'on ' if task.due_date else ''}{due_text}.")
            if task.due_date and not task.overdue and now >= self.calendar.deadline_at(
                    date.fromisoformat(task.due_date)):
                task.overdue = True
                task.reminded = True
                self._dirty.add(task.key)
                fired = True
                self.event("task_overdue", f"Overdue: {task.title} was due {long_date(task.due_date)}",
                           task_key=task.key)
                self.on_overdue(task)
        return fired

    async def wait_for_change_or_timer(self, is_finished, also_at: datetime | None = None) -> None:
        """Sleep until a handler changed something, the case finished, the next reminder/deadline, or
        ``also_at`` (a process's own timer, e.g. the next progress check).

        One Temporal timer stands for the next wake-up instant and is only replaced when that instant
        changes: a task completed through an Update that leaves the next deadline where it was starts and
        cancels no timer. Cases started before this (no ``ONE_TIMER_PATCH`` marker) keep the old way:
        a fresh timer for every wait, cancelled when something changes."""
        self._changed = self._rung = False
        instants = [i for i in (self.next_timer(), also_at) if i is not None]
        next_at = min(instants) if instants else None
        timeout = None if next_at is None else max((next_at - self.now()).total_seconds(), 0.0)
        if timeout == 0.0:
            return
        if not self.has(ONE_TIMER_PATCH, since=2):
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self._changed or is_finished(), timeout=timeout)
            return
        if next_at != self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = next_at
            self._timer = None if timeout is None else asyncio.get_running_loop().call_later(timeout, self._ring)
        await workflow.wait_condition(lambda: self._changed or self._rung or is_finished())

    def has(self, patch: str, since: int) -> bool:
        """Whether this case runs a change guarded by ``patch``: yes if it started under engine ``since`` or
        later (its input says so: nothing is recorded), else as ``workflow.patched`` decides for older cases."""
        return self.engine >= since or workflow.patched(patch)

    def _ring(self) -> None:
        self._timer, self._timer_at, self._rung = None, None, True

    # --- actions: owned by an agency, due on a date, done with evidence or closed with a reason -------------------
    def check_action(self, cmd: ActionCommand, role: str) -> None:
        """An Update validator's checks for a new action; raises ``rejected`` with field errors."""
        if cmd.actor.user_ref not in self.role_members(role):
            raise rejected("forbidden", f"only {self.role_title(role)} adds actions")
        fields = []
        if not cmd.owner or (cmd.owner not in self.partners and cmd.owner not in self.agencies):
            fields.append({"path": "/owner", "value": cmd.owner,
                           "message": "choose the agency that owns the action (a partner or relevant agency)"})
        if not cmd.description.strip():
            fields.append({"path": "/description", "value": cmd.description, "message": "Enter what must be done"})
        try:
            if date.fromisoformat(cmd.due_date) <= self.today():
                fields.append({"path": "/due_date", "value": cmd.due_date,
                               "message": "the due date must be in the future"})
        except (TypeError, ValueError):
            fields.append({"path": "/due_date", "value": cmd.due_date, "message": "Enter a real date"})
        if fields:
            raise rejected("invalid", f"{plural(len(fields), 'problem', 'problems')} in the action", fields)

    def add_action(self, cmd: ActionCommand, task_type: str) -> TaskRecord:
        number = 1 + sum(1 for t in self.tasks.values() if t.type == task_type)
        role, label, users = self.agency_candidates(cmd.owner)
        task = self.open_task(f"action-{number}", task_type, f"Action {number}: {cmd.description[:80]}",
                              "lcspr_action.v1", candidate_role=role, candidate_label=label, candidate_users=users,
                              due=date.fromisoformat(cmd.due_date))
        self.event("action_added", f"Action {number} for {self.agency_name(cmd.owner)}, "
                                   f"due {long_date(cmd.due_date)}: {cmd.description}",
                   actor=cmd.actor.user_ref, task_key=task.key)
        return task

    # --- overdue work goes up the partnership's overdue ladder -------------------------------------------------
    def escalate_overdue(self, task: TaskRecord) -> None:
        """Start the overdue ladder (a child workflow) for an overdue task; it stops when the task is done."""
        escalation = self.arrangements.get("escalation", {})
        ladder = next((lad for lad in escalation.get("ladders", []) if lad["id"] == escalation.get("overdue_ladder")),
                      None)
        if ladder is None:
            return
        first = ladder["stages"][0]
        if not self.has(OVERDUE_LADDER_PATCH, since=2):
            # cases started before the ladder engine: tell the first-stage role, as they always did
            self.event("escalated", f"Overdue work handed to ‘{ladder['name']}’ stage 1 "
                                    f"({self.role_title(first['handler_role'])})", task_key=task.key,
                       data={"ladder": ladder["id"], "stage": 1, "role": first["handler_role"]})
            self.email(self.role_members(first["handler_role"]) + task.candidate_users,
                       f"Overdue: {task.title} ({self.case_ref})",
                       f"{task.title} for {task.candidate_label} was due on {long_date(task.due_date)} "
                       f"and is overdue. It has been passed to stage 1 of ‘{ladder['name']}’.")
            return
        reference = f"{self.case_ref}-{task.key}"
        child_id = f"escalation-{self.partnership_id}-{reference}"
        self.ladders[task.key] = child_id
        self.event("escalated", f"Overdue work handed to ‘{ladder['name']}’ (escalation {reference})",
                   task_key=task.key, data={"ladder": ladder["id"], "escalation_id": child_id})
        self.email(task.candidate_users, f"Overdue: {task.title} ({self.case_ref})",
                   f"{task.title} for {task.candidate_label} was due on {long_date(task.due_date)} "
                   f"and is overdue. It has gone to the partnership's ‘{ladder['name']}’ ladder.")
        # each ladder's stage tasks name the overdue step (several steps of one case overdue: distinct tasks)
        prefix = f"Overdue: {task.title}" if self.has(OVERDUE_STEP_TITLES_PATCH, since=5) else ""
        self.start_child("EscalationLadder", LadderInput(
            partnership_id=self.partnership_id, reference=reference,
            arrangements_version=self.fields.get("arrangements_version", 0), arrangements=self.arrangements,
            calendar=self.calendar.to_payload(), ladder_id=ladder["id"],
            subject=f"Overdue: {task.title} (case {self.case_ref}), due {long_date(task.due_date)}",
            issue_type="overdue_work", agencies=[], urgent=False,
            raised_by=Actor(user_ref="system", kind="system", partnership_id=self.partnership_id),
            raised_at=self.now().isoformat(), related_case_id=self.case_id, related_task_key=task.key,
            engine=self.engine, task_title_prefix=prefix),
            child_id, "escalation", reference)

    def start_child(self, workflow_name: str, arg: Any, child_id: str, process: str, reference: str) -> None:
        """Start another process as a child workflow at the next sync (it outlives this one)."""
        self._children.append((workflow_name, arg, child_id, {"SgPartnership": self.partnership_id,
                                                               "SgProcess": process, "SgCaseRef": reference}))

    async def _start_and_stop_ladders(self) -> None:
        while self._children:
            name, arg, child_id, search = self._children.pop(0)
            await workflow.start_child_workflow(
                name, arg, id=child_id, parent_close_policy=ParentClosePolicy.ABANDON,
                search_attributes=TypedSearchAttributes(
                    [SearchAttributePair(SearchAttributeKey.for_keyword(k), v) for k, v in search.items()]))
        for key, child_id in list(self.ladders.items()):
            task = self.tasks[key]
            if task.status != "open":
                why = "the overdue work was done" if task.status == "done" else "the overdue task was cancelled"
                await workflow.get_external_workflow_handle(child_id).signal("work_done", why)
                del self.ladders[key]

    # --- read model ----------------------------------------------------------------------------------------
    def snapshot(self, events: list[EventRecord], messages: list[MessageRecord]) -> CaseSnapshot:
        """The case now, with every task (the ``snapshot`` query; a sync sends only what changed)."""
        self.fields["overdue_tasks"] = sum(1 for t in self.open_tasks() if t.overdue)
        tasks = [TaskRecord(**asdict(t)) for t in self.tasks.values()]
        return CaseSnapshot(case_id=self.case_id, partnership_id=self.partnership_id, case_ref=self.case_ref,
                            process=self.process, revision=self.revision, fields=dict(self.fields),
                            tasks=tasks, events=events, messages=messages)

    def changed_fields(self) -> dict[str, Any]:
        """The case's values the read model does not have yet (all of them at the first sync). A snapshot
        replaces the case row only when it is newer, and every revision lands in order, so the others stand.
        The learning tags are counted by the month of awareness: it goes with them."""
        self.fields["overdue_tasks"] = sum(1 for t in self.open_tasks() if t.overdue)
        synced = self._synced_fields
        changed = {k: v for k, v in self.fields.items() if k not in synced or synced[k] != v}
        if ("learning_tags" in changed or "learning_theme" in changed) and "aware_date" in self.fields:
            changed["aware_date"] = self.fields["aware_date"]
        return changed

    def sync_payload(self, events: list[EventRecord], messages: list[MessageRecord],
                     task_keys: set[str], fields: dict[str, Any]) -> dict[str, Any]:
        """What ``sync`` sends: a ``CaseSnapshot`` as plain JSON types, built directly, with the changed tasks
        and values only (``partial`` once the read model has had the case). Converting the dataclasses
        (``asdict``, twice: a copy here, then the data converter) was most of a sync's cost in the workflow
        sandbox, where every ``isinstance`` goes through the sandbox's wrapper."""
        return {"case_id": self.case_id, "partnership_id": self.partnership_id, "case_ref": self.case_ref,
                "process": self.process, "revision": self.revision, "fields": fields,
                "tasks": [{**t.__dict__, "candidate_users": list(t.candidate_users), "data": dict(t.data)}
                          for k, t in self.tasks.items() if k in task_keys],
                "events": [{**e.__dict__, "data": dict(e.data)} for e in events],
                "messages": [{**m.__dict__, "to_user_refs": list(m.to_user_refs)} for m in messages],
                "partial": bool(self._synced_fields)}

    async def sync(self) -> None:
        """Write the current state, new events and new emails to the read model (in order, exactly once)."""
        async with self._sync_lock:
            self.fire_due_timers()  # a task opened already past its date is overdue in the very same write
            await self._start_and_stop_ladders()
            while await self._write():
                # the read model held an older revision than this write built on (restored from a backup, or the
                # case row gone): send it the whole case, every task and the whole timeline
                self._synced_fields.clear()
                self._dirty.update(self.tasks)
                self._pending_events[:0] = self.timeline[: len(self.timeline) - len(self._pending_events)]

    async def _write(self) -> bool:
        """One sync activity; True when the read model asks for the whole case."""
        events, messages = list(self._pending_events), list(self._pending_messages)
        self.revision += 1
        revision = self.revision
        changed, self._dirty = self._dirty, set()  # changes made while this write is in flight go next time
        fields = self.changed_fields()
        written = await workflow.execute_activity(
            "sync_case", self.sync_payload(events, messages, changed, fields), start_to_close_timeout=SYNC_TIMEOUT,
            retry_policy=SYNC_RETRY)
        self.synced_revision = revision
        self._synced_fields.update(fields)
        # The read model says which new emails wait for SMTP: none when the worker has no mail server (they are
        # held in the outbox). A history from before that recorded a bool here, and then delivered every new
        # email: the recorded result alone decides, so a replay takes the same branch.
        if isinstance(written, dict):
            to_send, resend = written.get("to_send", []), bool(written.get("resend"))
        else:
            to_send, resend = [f"{self.case_id}#{m.seq}" for m in messages], False
        del self._pending_events[: len(events)]
        if not resend:  # else nothing was written: the emails go again with the whole case
            del self._pending_messages[: len(messages)]
        if to_send:  # sent in the background: a slow mail server never holds up a form
            self._deliveries.append(workflow.start_activity(
                "deliver_outbox", to_send,
                start_to_close_timeout=timedelta(minutes=1), schedule_to_close_timeout=DELIVERY_GIVE_UP,
                retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=10))))
        return resend

    async def finish(self) -> None:
        """Before the workflow ends: handlers done, last state written, emails handed over (or given up)."""
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self.sync()
        if self._deliveries:
            await asyncio.gather(*self._deliveries, return_exceptions=True)


class TaskUpdates:
    """What every process answers the same way (``self.cw`` is its Casework, ``self.status`` its state):
    claim and release, "opened" (returns once the read model has the case), and the snapshot query."""

    cw: Casework
    status: str

    @workflow.update
    async def opened(self) -> str:
        await workflow.wait_condition(lambda: self.cw.synced_revision >= 1)
        return self.status

    @workflow.query
    def snapshot(self) -> CaseSnapshot:
        """The case as it is now, with its whole timeline (``sgflow rebuild`` re-derives the read model from it)."""
        return self.cw.snapshot(self.cw.timeline, [])

    @workflow.update
    async def claim_task(self, cmd: TaskCommand) -> TaskResult:
        task = self.cw.claim(cmd)
        await self.cw.sync()
        return TaskResult(task.key, task.status, self.status, "claimed")

    @claim_task.validator
    def _validate_claim(self, cmd: TaskCommand) -> None:
        self.cw.check_command(cmd, completing=False)

    @workflow.update
    async def release_task(self, cmd: TaskCommand) -> TaskResult:
        task = self.cw.release(cmd)
        await self.cw.sync()
        return TaskResult(task.key, task.status, self.status, "released")

    @release_task.validator
    def _validate_release(self, cmd: TaskCommand) -> None:
        task = self.cw.check_command(cmd, completing=False)
        if task.claimed_by is None:
            raise rejected("conflict", f"‘{task.title}’ is not claimed")
