"""Everyday learning: a practitioner records what went wrong, nearly went wrong or went well; the learning lead
chooses a proportionate response from the arrangements (e.g. a huddle, an after-action review, a round table,
a thematic review); the response's findings and actions (each owned by an agency, due on a date; overdue ones
go up the overdue ladder); and feedback to the reporter about what was learned and what changed.

No blame by construction: the workflow never knows who reported the event (the web app keeps that, for the
learning lead only, and only when the reporter gave their name); feedback is addressed to "the reporter"
and resolved to an address by the email activity.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from safeguarding.calendar import WorkingCalendar
    from safeguarding.case_records import REPORTER, ActionCommand, LearningInput, TaskCommand, TaskRecord, TaskResult
    from safeguarding.wording import plural

from workflows.casework import Casework, TaskUpdates, rejected

PROCESS = "learning"
NO_FURTHER_ACTION = "no_further_action"
TRIAGE_DEFAULT_WORKING_DAYS = 5


def learning_workflow_id(partnership_id: str, reference: str) -> str:
    return f"{PROCESS}-{partnership_id}-{reference}"


@workflow.defn(name="LearningEvent")
class LearningEvent(TaskUpdates):
    @workflow.init
    def __init__(self, inp: LearningInput) -> None:
        self.inp = inp
        self.cfg = inp.arrangements.get("learning") or {}
        self.responses = {r["id"]: r for r in self.cfg.get("responses", [])}
        self.cw = Casework(case_id=workflow.info().workflow_id, partnership_id=inp.partnership_id,
                           case_ref=inp.reference, process=PROCESS,
                           calendar=WorkingCalendar.from_payload(inp.calendar), arrangements=inp.arrangements,
                           engine=inp.engine)
        self.lead = self.cfg.get("learning_lead_role", "")
        self.status = "open"
        self.cw.fields.update(
            category=inp.kind, status="open", stage="Triage", arrangements_version=inp.arrangements_version,
            aware_date=inp.occurred_on, summary=inp.what_happened, agencies=inp.agencies, children=[],
            opened_by="reporter" if inp.reporter_known else "anonymous", opened_at=inp.reported_at,
            learning_theme=inp.themes[0] if inp.themes else None,
            learning_tags={"themes": inp.themes, "factors": inp.factors, "source": "learning", "kind": inp.kind})

    @workflow.run
    async def run(self, inp: LearningInput) -> str:
        cw = self.cw
        cw.event("learning_recorded", f"Learning event recorded ({inp.kind.replace('_', ' ')}): {inp.what_happened}",
                 actor="reporter" if inp.reporter_known else "anonymous",
                 data={"expected": inp.what_was_expected, "factors": inp.factors, "themes": inp.themes})
        reported = cw.calendar.local_date(datetime.fromisoformat(inp.reported_at))
        days = int(self.cfg.get("triage_working_days", TRIAGE_DEFAULT_WORKING_DAYS))
        cw.publish_plan(self._plan(None))
        cw.open_task("triage", "learning_triage", "Choose a proportionate learning response", "learning_triage.v1",
                     **self._lead(), due=cw.calendar.add_working_days(reported, days))
        await cw.sync()
        while self.status == "open":
            await cw.wait_for_change_or_timer(lambda: self.status != "open")
            if cw.fire_due_timers():
                await cw.sync()
        await cw.finish()
        return self.status

    def _plan(self, choice: str | None) -> list[dict]:
        """The steps, in order (engine 6): the triage decides the learning response (none: straight to feedback)."""
        response = self.responses.get(choice or "")
        return [{"type": "learning_triage", "title": "Choose a proportionate learning response", "applies": True},
                {"type": "learning_response", "title": response["label"] if response else "The learning response",
                 "applies": choice != NO_FURTHER_ACTION},
                {"type": "learning_feedback", "title": "Feed back to the reporter", "applies": True}]

    def _lead(self) -> dict:
        cw = self.cw
        return {"candidate_role": self.lead, "candidate_label": cw.role_title(self.lead),
                "candidate_users": cw.role_members(self.lead)}

    def _open_feedback(self) -> None:
        self.cw.open_task("feedback", "learning_feedback", "Feed back to the reporter", "learning_feedback.v1",
                          **self._lead(), due=self.cw.calendar.add_working_days(self.cw.today(), 5))
        self.cw.fields["stage"] = "Feedback to the reporter"

    def _after(self, task: TaskRecord) -> str:
        cw, data = self.cw, task.data
        if task.type == "learning_triage":
            choice = data["response"]
            cw.publish_plan(self._plan(choice))
            if choice == NO_FURTHER_ACTION:
                self._open_feedback()
                return f"Triaged: no further action. {data['rationale']}"
            response = self.responses[choice]
            cw.open_task("response", "learning_response", response["label"], "learning_response.v1", **self._lead(),
                         due=cw.calendar.add_working_days(cw.today(), response["within_working_days"]))
            cw.fields["stage"] = response["label"]
            within = plural(response["within_working_days"], "working day", "working days")
            return f"Triaged: {response['label']} within {within}. {data['rationale']}"
        if task.type == "learning_response":
            self._open_feedback()
            return f"Findings: {data['findings']}"
        if task.type == "learning_feedback":
            cw.email([f"{REPORTER}{cw.case_id}"], f"What we learned from what you reported ({cw.case_ref})",
                     data["feedback"])
            cw.event("feedback_sent", "Feedback sent to the reporter" if self.inp.reporter_known else
                     "Feedback recorded (reported anonymously: nobody to send it to)")
            self._maybe_close()
            return "Feedback written"
        if task.type == "learning_action":
            self._maybe_close()
            return f"{task.title}: {data['outcome']}"
        return f"{task.title} recorded"

    def _maybe_close(self) -> None:
        feedback = self.cw.tasks.get("feedback")
        if feedback and feedback.status == "done" and not any(
                t.type == "learning_action" for t in self.cw.open_tasks()):
            for task in self.cw.open_tasks():
                self.cw.cancel_task(task.key, "the learning event closed")
            self.status = "closed"
            self.cw.fields.update(status="closed", stage="Learning fed back; actions done",
                                  closed_at=workflow.now().isoformat())
            self.cw.event("case_closed", "Learning event closed")

    @workflow.update
    async def complete_task(self, cmd: TaskCommand) -> TaskResult:
        task, event = self.cw.complete(cmd)
        event.message = self._after(task)
        await self.cw.sync()
        return TaskResult(task.key, task.status, self.status, event.message)

    @complete_task.validator
    def _validate_complete(self, cmd: TaskCommand) -> None:
        if self.status != "open":
            raise rejected("conflict", "this learning event is closed")
        self.cw.check_command(cmd, completing=True)
        choice = cmd.data.get("response")
        if choice is not None and choice != NO_FURTHER_ACTION and choice not in self.responses:
            options = ", ".join([*self.responses, NO_FURTHER_ACTION])
            raise rejected("invalid", "not a learning response of this partnership", [
                {"path": "/response", "value": choice, "message": f"choose one of: {options}"}])

    @workflow.update
    async def add_action(self, cmd: ActionCommand) -> TaskResult:
        task = self.cw.add_action(cmd, "learning_action")
        await self.cw.sync()
        return TaskResult(task.key, task.status, self.status, "action added")

    @add_action.validator
    def _validate_action(self, cmd: ActionCommand) -> None:
        if self.status != "open":
            raise rejected("conflict", "this learning event is closed")
        if "triage" not in self.cw.tasks or self.cw.tasks["triage"].status != "done":
            raise rejected("conflict", "choose the learning response first")
        self.cw.check_action(cmd, self.lead)
