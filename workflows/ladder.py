"""One escalation ladder engine, for professional disagreements and for overdue statutory work.

Driven by a named ladder in the pinned arrangements: stages in order, each handled by a role, each with a
time limit in working days. A stage's clock starts from

- ``previous_stage_start``: the day the previous stage started (Lincolnshire: "stage 2 within 5 working days
  of step 1"); the first stage counts from the day the ladder was raised;
- ``previous_stage_deadline``: the previous stage's deadline, or the day it was escalated if that was
  earlier (escalating early never buys the next stage less time than its limit from that day).

At each stage the handler records an outcome (resolved with agreed actions and a learning theme, or
escalated with a reason). No answer by the deadline triggers the stage's timeout action: ``escalate`` to
the next stage, ``notify_role``, or ``national_view`` (the national body's monitoring then shows it). The
last stage's timeout always tells the independent scrutineer, once (also when its action names the
scrutineer's role). An urgent ladder starts at the configured stage; the business unit is told from the
configured stage on. A ladder can be withdrawn with a reason.
Overdue-work ladders close themselves when the parent case signals that the work is done; their stage tasks
are titled with the overdue step (``LadderInput.task_title_prefix``: "Overdue: Agency summary: Vale ICB — stage 1:
…"), so the ladders of several overdue steps of one case give tasks that say which step each is for.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from safeguarding.calendar import WorkingCalendar
    from safeguarding.case_records import LadderInput, TaskCommand, TaskRecord, TaskResult, WithdrawCommand
    from safeguarding.themes import themes_for
    from safeguarding.wording import long_date

from workflows.casework import Casework, TaskUpdates, rejected

PROCESS = "escalation"
# cases from before it told the scrutineer twice when the last stage's timeout action named the scrutineer's role
SCRUTINEER_ONCE_PATCH = "scrutineer-told-once"


def ladder_workflow_id(partnership_id: str, reference: str) -> str:
    return f"{PROCESS}-{partnership_id}-{reference}"


@workflow.defn(name="EscalationLadder")
class EscalationLadder(TaskUpdates):
    @workflow.init
    def __init__(self, inp: LadderInput) -> None:
        self.inp = inp
        doc = inp.arrangements
        escalation = doc["escalation"]
        self.ladder = next(lad for lad in escalation["ladders"] if lad["id"] == inp.ladder_id)
        self.stages = {s["stage"]: s for s in self.ladder["stages"]}
        self.last_stage = max(self.stages)
        self.cw = Casework(case_id=workflow.info().workflow_id, partnership_id=inp.partnership_id,
                           case_ref=inp.reference, process=PROCESS,
                           calendar=WorkingCalendar.from_payload(inp.calendar), arrangements=doc, engine=inp.engine)
        self.cw.on_overdue = self._timed_out
        self.themes = themes_for(doc)
        self.status = "open"
        self.stage = 0
        self.stage_started: dict[int, date] = {}
        self.stage_due: dict[int, date] = {}
        self.raised_on = self.cw.calendar.local_date(datetime.fromisoformat(inp.raised_at))
        self.cw.fields.update(
            category=inp.issue_type, status="open", stage="", arrangements_version=inp.arrangements_version,
            aware_date=self.raised_on.isoformat(), children=[inp.child_pseudonym] if inp.child_pseudonym else [],
            summary=inp.subject, agencies=inp.agencies, opened_by=inp.raised_by.user_ref, opened_at=inp.raised_at,
            parent_case_id=inp.related_case_id or None, ladder_id=self.ladder["id"],
            ladder_purpose=self.ladder["purpose"], urgent=inp.urgent, timeouts=0, reached_national=False)

    @workflow.run
    async def run(self, inp: LadderInput) -> str:
        cw = self.cw
        first = self.ladder.get("urgent_start_stage", 1) if inp.urgent else 1
        cw.event("ladder_raised", f"Raised on ‘{self.ladder['name']}’" + (" as urgent" if inp.urgent else "")
                 + f": {inp.subject}", actor=inp.raised_by.user_ref,
                 data={"ladder": self.ladder["id"], "urgent": inp.urgent})
        cw.publish_plan(self._plan(first))
        self._enter(first, self.raised_on)
        await cw.sync()
        while self.status == "open":
            await cw.wait_for_change_or_timer(lambda: self.status != "open")
            if cw.fire_due_timers():
                await cw.sync()
        await cw.finish()
        return self.status

    def _plan(self, first: int) -> list[dict[str, Any]]:
        """The ladder's stages, in order, from the arrangements version it started with (engine 6): who handles
        each and its time limit; an urgent ladder skips the stages before the one it starts at."""
        cw, plan = self.cw, []
        for number in sorted(self.stages):
            stage = self.stages[number]
            plan.append({"type": "ladder_stage", "key": f"stage-{number}", "title": f"Stage {number}: {stage['name']}",
                         "applies": number >= first, "stage": number, "name": stage["name"],
                         "handler": cw.role_title(stage["handler_role"]),
                         "time_limit_working_days": stage["time_limit_working_days"],
                         "clock_start": stage.get("clock_start", "previous_stage_deadline")})
        return plan

    # --- stages ----------------------------------------------------------------------------------------------
    def _due(self, number: int, starting: date) -> date:
        stage, cal = self.stages[number], self.cw.calendar
        previous = number - 1
        if previous in self.stage_started:
            if stage.get("clock_start") == "previous_stage_start":
                base = self.stage_started[previous]
            else:
                base = min(self.stage_due[previous], starting)
        else:
            base = starting
        return cal.add_working_days(base, stage["time_limit_working_days"])

    def _enter(self, number: int, starting: date) -> None:
        cw, stage = self.cw, self.stages[number]
        due = self._due(number, starting)
        self.stage = number
        self.stage_started[number] = starting
        self.stage_due[number] = due
        role = stage["handler_role"]
        prefix = self.inp.task_title_prefix  # overdue work: which step it is for
        title = f"{prefix} — stage {number}: {stage['name']}" if prefix else f"Stage {number}: {stage['name']}"
        cw.open_task(f"stage-{number}", "ladder_stage", title, "ladder_stage.v1",
                     candidate_role=role, candidate_label=cw.role_title(role), candidate_users=cw.role_members(role),
                     due=due)
        highest = max(number, cw.fields.get("highest_stage") or 0)
        cw.fields.update(current_stage=number, highest_stage=highest, stage=f"Stage {number}: {stage['name']}")
        if number >= self.ladder.get("notify_business_unit_from_stage", 1):
            unit = self.ladder.get("business_unit_role", "")
            cw.email(cw.role_members(unit), f"Escalation at stage {number}: {self.inp.reference}",
                     f"‘{self.inp.subject}’ is at stage {number} ({stage['name']}) of ‘{self.ladder['name']}’, "
                     f"due {long_date(due)}.")
            cw.event("business_unit_told", f"Business unit told: stage {number}", data={"role": unit})

    def _timed_out(self, task: TaskRecord) -> None:
        """No outcome by the stage's deadline: its timeout action."""
        cw = self.cw
        number = int(task.key.split("-")[1])
        stage = self.stages[number]
        action = stage.get("on_timeout", {}).get("action", "escalate")
        cw.fields["timeouts"] = cw.fields.get("timeouts", 0) + 1
        if number == self.last_stage or action != "escalate":
            scrutineer = self.ladder.get("scrutineer_role", "")
            told_once = number == self.last_stage and self.cw.has(SCRUTINEER_ONCE_PATCH, since=3)
            if action == "notify_role" and not (told_once and stage["on_timeout"]["notify_role"] == scrutineer):
                role = stage["on_timeout"]["notify_role"]
                cw.email(cw.role_members(role), f"Escalation timed out at stage {number}: {self.inp.reference}",
                         f"‘{self.inp.subject}’ had no outcome at stage {number} by {long_date(task.due_date)}.")
                cw.event("role_notified", f"Stage {number} timed out: {cw.role_title(role)} told",
                         task_key=task.key, data={"role": role})
            if action == "national_view":
                cw.fields["reached_national"] = True
                cw.event("national_view", f"Stage {number} timed out: now shown to the national body",
                         task_key=task.key)
            if number == self.last_stage:
                cw.email(cw.role_members(scrutineer), f"Escalation unresolved at the last stage: {self.inp.reference}",
                         f"‘{self.inp.subject}’ had no outcome at the last stage of ‘{self.ladder['name']}’.")
                cw.event("scrutineer_notified", f"Last stage timed out: {cw.role_title(scrutineer)} told",
                         task_key=task.key, data={"role": scrutineer})
            return
        cw.cancel_task(task.key, "no outcome by the deadline")
        cw.event("escalated", f"Stage {number} timed out on {long_date(task.due_date)}: "
                              f"escalated to stage {number + 1}",
                 task_key=task.key, data={"from": number, "to": number + 1, "by": "timer"})
        self._enter(number + 1, date.fromisoformat(task.due_date))

    def _close(self, status: str, outcome: str, why: str, actor: str = "system") -> None:
        for task in self.cw.open_tasks():
            self.cw.cancel_task(task.key, why)
        self.status = status
        self.cw.fields.update(status=status, outcome=outcome, stage=why, closed_at=workflow.now().isoformat())
        self.cw.event("ladder_closed", f"{outcome.capitalize()}: {why}", actor=actor)

    # --- updates and signals -----------------------------------------------------------------------------------
    @workflow.update
    async def complete_task(self, cmd: TaskCommand) -> TaskResult:
        task, event = self.cw.complete(cmd)
        number, data = int(task.key.split("-")[1]), cmd.data
        if data["outcome"] == "resolved":
            self.cw.fields["learning_theme"] = data["learning_theme"]
            event.message = f"Stage {number}: resolved. Agreed actions: {data['agreed_actions']}"
            self._close("resolved", "resolved", f"resolved at stage {number}", actor=cmd.actor.user_ref)
        else:
            event.message = f"Stage {number}: escalated to stage {number + 1}. Reason: {data['reason']}"
            self.cw.event("escalated", f"Escalated from stage {number} to {number + 1}", actor=cmd.actor.user_ref,
                          task_key=task.key, data={"from": number, "to": number + 1, "by": "handler"})
            self._enter(number + 1, self.cw.today())
        await self.cw.sync()
        return TaskResult(task.key, task.status, self.status, event.message)

    @complete_task.validator
    def _validate_complete(self, cmd: TaskCommand) -> None:
        if self.status != "open":
            raise rejected("conflict", f"this escalation is {self.status}; it cannot change")
        task = self.cw.check_command(cmd, completing=True)
        number = int(task.key.split("-")[1])
        if cmd.data.get("outcome") == "escalated" and number == self.last_stage:
            raise rejected("invalid", "this is the last stage: record a resolution", [
                {"path": "/outcome", "value": "escalated",
                 "message": "this is the last stage of the ladder; it cannot be escalated further"}])
        theme = cmd.data.get("learning_theme")
        if theme is not None and theme not in self.themes:
            raise rejected("invalid", "unknown learning theme", [
                {"path": "/learning_theme", "value": theme,
                 "message": "not a theme of this partnership; choose one of: " + ", ".join(sorted(self.themes))}])

    @workflow.update
    async def withdraw(self, cmd: WithdrawCommand) -> str:
        self._close("withdrawn", "withdrawn", f"withdrawn: {cmd.reason.strip()}", actor=cmd.actor.user_ref)
        await self.cw.sync()
        return self.status

    @withdraw.validator
    def _validate_withdraw(self, cmd: WithdrawCommand) -> None:
        if self.status != "open":
            raise rejected("conflict", f"this escalation is {self.status}; it cannot be withdrawn")
        unit = self.cw.role_members(self.ladder.get("business_unit_role", ""))
        allowed = cmd.actor.user_ref == self.inp.raised_by.user_ref or cmd.actor.user_ref in unit or (
            cmd.actor.kind == "partnership_lead" and cmd.actor.partnership_id == self.inp.partnership_id)
        if not allowed:
            raise rejected("forbidden", "only the person who raised it, the business unit or a partnership lead "
                                        "may withdraw it")
        if not cmd.reason.strip():
            raise rejected("invalid", "say why it is withdrawn", [
                {"path": "/reason", "value": cmd.reason, "message": "Enter the reason for withdrawing"}])

    @workflow.signal
    def work_done(self, why: str) -> None:
        """For overdue-work ladders: the parent case did the work (or closed); the ladder stops."""
        if self.status == "open":
            self._close("resolved", "work done", why)

