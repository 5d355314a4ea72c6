"""A serious incident: notification to the national Panel, the rapid review, and the Panel's response.

Every due date comes from the case's pinned arrangements version and working-day calendar (workflow
input). Steps, as human tasks completed through Updates:

1. the notification (due N working days after the local authority became aware), to whom the category's
   ``notify`` says: "Notify the national Panel", or for a care leaver's death "Notify the Secretary of State and
   Ofsted"; categories that need no rapid review stop here. A category the Panel does not see (``panel_sees``
   false) is kept off the Panel's overview, lists and figures (the case row's ``panel_sees``);
2. an agency summary from each involved agency, and the rapid review meeting record; in a cross-boundary case
   whose child lives in another partnership's area that uses this service, also a summary from that
   partnership (its rapid review coordinators, captured when the case opened);
3. the LCSPR decision (after the meeting);
4. sign-off by each partner the arrangements name (one who does not sign off sends the decision back);
5. submission to the Panel (by the rapid review deadline, counted from awareness or from the
   notification as the arrangements say);
6. the Panel's response (national-body users): agrees, disagrees, or a national review. With
   ``panel_response_expected.enforce`` the response is due N working days after the submission and, when it
   has not come by then, the coordinator is given a task to chase the Panel (the Panel's own work never goes
   up the partnership's overdue ladder); otherwise the expected date is only shown.

The LCSPR decision records the date the partners decided; a local review's final report is counted from it.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from safeguarding.calendar import WorkingCalendar
    from safeguarding.case_records import (
        CONTRIBUTOR,
        NATIONAL_PANEL,
        IncidentInput,
        LcsprInput,
        TaskCommand,
        TaskRecord,
        TaskResult,
    )
    from safeguarding.incident_categories import panel_sees, recipients, recipients_text
    from safeguarding.themes import themes_for
    from safeguarding.wording import clock_start_text, long_date, plural

from workflows.casework import Casework, TaskUpdates, iso_day, rejected
from workflows.lcspr import lcspr_workflow_id

PROCESS = "incident"
LCSPR_PATCH = "start-local-review"  # cases from before it closed without starting the review
THEMES_PATCH = "rapid-review-themes"  # decisions from before it used lcspr_decision.v1, which records no themes
DECISION_DATE_PATCH = "lcspr-decision-date"  # decisions from before it (v2) took the day they were recorded
PANEL_CHASE_PATCH = "chase-the-panel"  # cases from before it sent a late Panel response up the overdue ladder
NOTIFY_PATCH = "notify-by-category"  # cases from before it notified the Panel whatever the category said
RESIDENT_SUMMARY = "summary-resident"  # the task key of the resident area's agency summary (cross-boundary)


def workflow_id(partnership_id: str, case_ref: str) -> str:
    return f"{PROCESS}-{partnership_id}-{case_ref}"


@workflow.defn(name="IncidentCase")
class IncidentCase(TaskUpdates):
    @workflow.init
    def __init__(self, inp: IncidentInput) -> None:
        self.inp = inp
        doc = inp.arrangements
        self.sin = doc["serious_incident_notification"]
        self.rr = doc["rapid_review"]
        self.category = next(c for c in self.sin["categories"] if c["id"] == inp.category)
        self.themes = themes_for(doc)
        self.cw = Casework(case_id=workflow.info().workflow_id, partnership_id=inp.partnership_id,
                           case_ref=inp.case_ref, process=PROCESS,
                           calendar=WorkingCalendar.from_payload(inp.calendar), arrangements=doc, engine=inp.engine)
        self.cw.on_overdue = self._overdue
        self.aware = date.fromisoformat(inp.aware_date)
        self.rr_required = bool(self.category.get("requires_rapid_review"))
        self.notify = ["national_panel"]  # who the notification goes to: the category's ``notify`` (engine 4)
        self.status = "open"
        self.round = 1
        self.decided_on: date | None = None
        self.rr_start: date | None = None
        self.cw.fields.update(
            category=inp.category, status="open", stage="Notification to the national Panel",
            arrangements_version=inp.arrangements_version, aware_date=inp.aware_date,
            rapid_review_required=self.rr_required, children=inp.children, summary=inp.summary,
            agencies=inp.agencies, opened_by=inp.opened_by.user_ref, opened_at=inp.opened_at)
        if inp.resident_area_name or inp.resident_partnership_id:
            self.cw.fields.update(resident_partnership_id=inp.resident_partnership_id,
                                  resident_area_name=inp.resident_area_name)

    # --- the process ---------------------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: IncidentInput) -> str:
        cw = self.cw
        by_category = cw.has(NOTIFY_PATCH, since=4)
        if by_category:
            self.notify = recipients(self.category)
            cw.fields.update(panel_sees=panel_sees(self.category), stage=f"Notification to {self._to()}")
        age = f", aged {inp.age_at_incident} at the date of the incident" if inp.age_at_incident is not None else ""
        cw.event("case_opened", f"Case opened: {self.category.get('label', inp.category)}, aware "
                                f"{long_date(self.aware)}, {plural(len(inp.children), 'child', 'children')}{age}, "
                                f"arrangements v{inp.arrangements_version}", actor=inp.opened_by.user_ref,
                 data={"notify": list(self.notify)} if by_category else None)
        if inp.resident_area_name or inp.resident_partnership_id:
            self._record_resident_area()
        cw.publish_plan(self._plan())
        due = cw.calendar.add_working_days(self.aware, self.sin["deadline"]["value"])
        cw.fields["notification_due"] = due.isoformat()
        role = self.sin["notifier_role"]
        cw.open_task("notification", "notification_sent", f"Notify {self._to()}", "notification_sent.v1",
                     candidate_role=role, candidate_label=cw.role_title(role),
                     candidate_users=cw.role_members(role), due=due, reminder_working_days=self._reminder_days())
        if self.rr_required and self.rr["deadline"]["clock_start"] == "la_becomes_aware":
            self._start_rapid_review(self.aware)
        await cw.sync()
        while self.status == "open":
            await cw.wait_for_change_or_timer(lambda: self.status != "open")
            if cw.fire_due_timers():
                await cw.sync()
        await cw.finish()
        return self.status

    def _plan(self) -> list[dict[str, Any]]:
        """The steps this case will take, in order (engine 6: the case page shows the ones not reached yet)."""
        rr = self.rr_required
        return [{"type": "notification_sent", "title": f"Notify {self._to()}", "applies": True},
                {"type": "agency_summary", "title": "Agency summaries", "applies": rr},
                {"type": "rr_meeting", "title": "Record the rapid review meeting", "applies": rr},
                {"type": "lcspr_decision", "title": "Decide on a local child safeguarding practice review",
                 "applies": rr},
                {"type": "partner_signoff", "title": "Partner sign-off", "applies": rr},
                {"type": "panel_submission", "title": "Submit the rapid review to the national Panel", "applies": rr},
                {"type": "panel_response", "title": "The national Panel’s response", "applies": rr}]

    def _to(self) -> str:
        """Whom the notification goes to, in words: "the national Panel", "the Secretary of State and Ofsted"."""
        return recipients_text(self.notify)

    def _record_resident_area(self) -> None:
        """A cross-boundary case: the notifying partnership leads; where the child lives is recorded and, when that
        partnership uses this service, it is invited to contribute (its summary opens with the rapid review)."""
        inp, contributor = self.inp, self.inp.resident_contributor
        if contributor:
            self.cw.event("resident_area", f"The child lives in {inp.resident_area_name}: "
                                           f"{contributor.get('name', inp.resident_area_name)} is invited to "
                                           f"contribute ({contributor.get('role_title', 'its coordinators')})",
                          data={"partnership_id": inp.resident_partnership_id})
        else:
            self.cw.event("resident_area", f"The child lives in {inp.resident_area_name}"
                                           + ("" if inp.resident_partnership_id else " (not on this service)"),
                          data={"partnership_id": inp.resident_partnership_id})

    def _reminder_days(self) -> int:
        return int(self.rr.get("reminders", {}).get("working_days_before_due", 0))

    def _start_rapid_review(self, clock_start: date) -> None:
        cw, rr = self.cw, self.rr
        self.rr_start = clock_start
        milestones = rr.get("milestones", {})

        def at(name: str) -> date:
            offset = milestones.get(name, {}).get("offset_working_days", rr["deadline"]["value"])
            return cw.calendar.add_working_days(clock_start, offset)

        rr_due = cw.calendar.add_working_days(clock_start, rr["deadline"]["value"])
        cw.fields.update(rapid_review_due=rr_due.isoformat(), stage="Rapid review: agency summaries and meeting")
        counted = clock_start_text(rr["deadline"]["clock_start"])  # "from the notification", not its id
        cw.event("rapid_review_started", f"Rapid review started: counted {counted} ({long_date(clock_start)}), "
                                         f"due {long_date(rr_due)}")
        for agency in self.inp.agencies:
            role, label, users = cw.agency_candidates(agency)
            cw.open_task(f"summary-{agency}", "agency_summary", f"Agency summary: {cw.agency_name(agency)}",
                         "agency_summary.v1", candidate_role=role, candidate_label=label, candidate_users=users,
                         due=at("agency_summaries"), reminder_working_days=self._reminder_days())
        contributor = self.inp.resident_contributor
        if contributor:  # the partnership where the child lives (cross-boundary): its own summary, its own people
            name = contributor.get("name") or self.inp.resident_area_name or contributor["partnership_id"]
            cw.open_task(RESIDENT_SUMMARY, "agency_summary", f"Agency summary: {name} (where the child lives)",
                         "agency_summary.v1", candidate_role=f"{CONTRIBUTOR}{contributor['partnership_id']}",
                         candidate_label=f"{contributor.get('role_title', 'Rapid review coordinators')}, {name}",
                         candidate_users=list(contributor.get("members", [])), due=at("agency_summaries"),
                         reminder_working_days=self._reminder_days())
        coordinator = rr["coordinator_role"]
        cw.open_task("meeting", "rr_meeting", "Record the rapid review meeting", "rr_meeting.v1",
                     candidate_role=coordinator, candidate_label=cw.role_title(coordinator),
                     candidate_users=cw.role_members(coordinator), due=at("meeting"),
                     reminder_working_days=self._reminder_days())
        self._meeting_due, self._signoff_due, self._rr_due = at("meeting"), at("signoff"), rr_due

    def _open_decision(self) -> None:
        cw, role = self.cw, self.rr["decision_role"]
        key = "decision" if self.round == 1 else f"decision-{self.round}"
        if cw.has(DECISION_DATE_PATCH, since=3):
            form = "lcspr_decision.v3"
        else:
            form = "lcspr_decision.v2" if cw.has(THEMES_PATCH, since=2) else "lcspr_decision.v1"
        cw.open_task(key, "lcspr_decision", "Decide on a local child safeguarding practice review",
                     form, candidate_role=role, candidate_label=cw.role_title(role),
                     candidate_users=cw.role_members(role), due=self._meeting_due,
                     reminder_working_days=self._reminder_days())
        cw.fields["stage"] = "Rapid review: decision"

    def _open_signoffs(self) -> None:
        cw = self.cw
        for partner in self.rr["signoff_required_from"]:
            role, label, users = cw.agency_candidates(partner)
            key = f"signoff-{partner}" if self.round == 1 else f"signoff-{partner}-{self.round}"
            cw.open_task(key, "partner_signoff", f"Sign off the rapid review: {cw.agency_name(partner)}",
                         "partner_signoff.v1", candidate_role=role, candidate_label=label, candidate_users=users,
                         due=self._signoff_due, reminder_working_days=self._reminder_days())
        cw.fields["stage"] = "Rapid review: partner sign-off"

    # --- what completing each task does ----------------------------------------------------------------------
    def _after(self, task: TaskRecord) -> str:
        cw, data = self.cw, task.data
        if task.type == "notification_sent":
            sent = date.fromisoformat(data["sent_on"])
            due = date.fromisoformat(cw.fields["notification_due"])
            late = cw.calendar.working_days_late(due, sent)
            cw.fields.update(notification_sent_on=sent.isoformat(), notification_days_late=late)
            task.days_late = late if sent > due else None
            if not self.rr_required:
                self._close("closed", "Notification recorded; this category needs no rapid review")
            elif self.rr_start is None:
                self._start_rapid_review(sent)
            to = "the Panel" if self.notify == ["national_panel"] else self._to()
            return f"Notification sent to {to} on {long_date(sent)}" + (
                f" ({plural(late, 'working day', 'working days')} late)" if sent > due else " (on time)")
        if task.type == "agency_summary":
            return f"{task.title} recorded"
        if task.type == "rr_meeting":
            self._open_decision()
            return f"Rapid review meeting held on {long_date(data['held_on'])} recorded"
        if task.type == "lcspr_decision":
            cw.fields["lcspr_decision"] = data["hold_lcspr"]
            if data.get("learning_themes"):  # counted on the themes page beside learning events and escalations
                cw.fields["learning_tags"] = {"themes": data["learning_themes"], "factors": [],
                                              "source": "rapid_review", "kind": "rapid_review"}
            # the partners' decision date (lcspr_decision.v3); earlier forms took the day it was recorded
            self.decided_on = date.fromisoformat(data["decided_on"]) if data.get("decided_on") else cw.today()
            self._open_signoffs()
            return f"Decision recorded: LCSPR {data['hold_lcspr']}" + (
                f", decided on {long_date(data['decided_on'])}" if data.get("decided_on") else "") + (
                "; may be of national importance" if data.get("national_importance") else "")
        if task.type == "partner_signoff":
            if not data["agree"]:
                for other in cw.open_tasks():
                    if other.type == "partner_signoff":
                        cw.cancel_task(other.key, "the decision went back to be reconsidered")
                self.round += 1
                self._open_decision()
                return f"{task.title}: NOT signed off; the decision goes back to be reconsidered"
            if not any(t.type == "partner_signoff" for t in cw.open_tasks()):
                coordinator = self.rr["coordinator_role"]
                cw.open_task("submission", "panel_submission", "Submit the rapid review to the national Panel",
                             "panel_submission.v1", candidate_role=coordinator,
                             candidate_label=cw.role_title(coordinator),
                             candidate_users=cw.role_members(coordinator), due=self._rr_due,
                             reminder_working_days=self._reminder_days())
                cw.fields["stage"] = "Rapid review: submission to the Panel"
            return f"{task.title}: signed off"
        if task.type == "panel_submission":
            sent = date.fromisoformat(data["submitted_on"])
            late = cw.calendar.working_days_late(self._rr_due, sent)
            cw.fields.update(rapid_review_submitted_on=sent.isoformat(), rapid_review_days_late=late)
            task.days_late = late if sent > self._rr_due else None
            expected = self.rr.get("panel_response_expected") or {}
            response_due = (cw.calendar.add_working_days(sent, expected["value"])
                            if expected.get("value") else None)
            cw.open_task("panel-response", "panel_response", "Respond to the rapid review", "panel_response.v1",
                         candidate_role=NATIONAL_PANEL, candidate_label="the national Panel", candidate_users=[],
                         due=response_due if expected.get("enforce") else None)
            if response_due and not expected.get("enforce"):
                cw.tasks["panel-response"].follow_up_date = response_due.isoformat()
                cw.tasks["panel-response"].reminded = True  # an expectation only: shown, never chased
            cw.fields["stage"] = "Awaiting the Panel's response"
            cw.fields["status"] = self.status = "open"
            return f"Rapid review submitted to the Panel on {long_date(sent)}" + (
                f" ({plural(late, 'working day', 'working days')} late)" if sent > self._rr_due else " (on time)")
        if task.type == "panel_response":
            response = data["response"]
            cw.fields["panel_response"] = response
            if cw.has(LCSPR_PATCH, since=2) and (response == "national_review"
                                                  or cw.fields.get("lcspr_decision") == "yes"):
                self._start_review(national=response == "national_review")
            if response == "national_review":
                self._close("national_review", "The Panel will hold a national review")
            elif cw.fields.get("lcspr_decision") == "yes":
                self._close("awaiting_lcspr", "Waiting for the local child safeguarding practice review")
            else:
                self._close("closed", "Rapid review complete")
            return f"The Panel's response: {response.replace('_', ' ')}"
        if task.type == "panel_chase":
            return f"The Panel was chased for its response on {long_date(data['chased_on'])}"
        raise rejected("invalid", f"unknown task type {task.type}")

    def _start_review(self, *, national: bool) -> None:
        """The next process: a local review, or the local side of a national review (a child workflow)."""
        cw, inp = self.cw, self.inp
        child_id = lcspr_workflow_id(inp.partnership_id, inp.case_ref)
        cw.start_child("LocalReview", LcsprInput(
            partnership_id=inp.partnership_id, reference=inp.case_ref, parent_case_id=cw.case_id,
            arrangements_version=inp.arrangements_version, arrangements=inp.arrangements, calendar=inp.calendar,
            decision_date=(self.decided_on or cw.today()).isoformat(), national_review=national,
            opened_at=workflow.now().isoformat(), category=inp.category, engine=cw.engine), child_id, "lcspr",
            inp.case_ref)
        cw.event("review_started", ("The local side of the national review" if national else
                                    "The local child safeguarding practice review") + f" is case {child_id}",
                 data={"case_id": child_id})

    def _overdue(self, task: TaskRecord) -> None:
        """An overdue step goes up the overdue ladder; the Panel's late response is chased by the coordinator."""
        cw = self.cw
        if task.key != "panel-response" or not cw.has(PANEL_CHASE_PATCH, since=3):
            cw.escalate_overdue(task)
            return
        coordinator = self.rr["coordinator_role"]
        due = date.fromisoformat(task.due_date) if task.due_date else cw.today()
        cw.event("panel_response_late", f"No response from the national Panel by {long_date(due)}: "
                                        f"{cw.role_title(coordinator)} asked to chase it", task_key=task.key)
        cw.open_task("panel-chase", "panel_chase", "Chase the national Panel for its response", "panel_chase.v1",
                     candidate_role=coordinator, candidate_label=cw.role_title(coordinator),
                     candidate_users=cw.role_members(coordinator), due=cw.calendar.add_working_days(due, 1))

    def _close(self, status: str, why: str) -> None:
        for task in self.cw.open_tasks():
            self.cw.cancel_task(task.key, "the case closed")
        self.status = status
        self.cw.fields.update(status=status, stage=why, closed_at=workflow.now().isoformat())
        self.cw.event("case_closed", f"Case {status.replace('_', ' ')}: {why}")

    def _date_problems(self, cmd: TaskCommand) -> list[dict[str, Any]]:
        """Form rules that need the case: dates not in the future, not before the LA became aware. A value that is
        not a date is left to the form's schema (its problem is reported with these, in one round)."""
        today = self.cw.today()
        fields = []
        for name in ("sent_on", "held_on", "submitted_on", "decided_on", "chased_on"):
            value = cmd.data.get(name)
            if not isinstance(value, str):
                continue
            day = iso_day(value)
            if day is None:
                continue
            if day > today:
                fields.append({"path": f"/{name}", "value": value,
                               "message": f"the date cannot be in the future (today is {long_date(today)})"})
            elif day < self.aware:
                fields.append({"path": f"/{name}", "value": value, "message":
                               f"the date cannot be before the local authority became aware ({long_date(self.aware)})"})
        return fields

    # --- updates and queries ---------------------------------------------------------------------------------
    @workflow.update
    async def complete_task(self, cmd: TaskCommand) -> TaskResult:
        task, event = self.cw.complete(cmd)
        message = event.message = self._after(task)
        await self.cw.sync()
        return TaskResult(task.key, task.status, self.status, message)

    @complete_task.validator
    def _validate_complete(self, cmd: TaskCommand) -> None:
        if self.status != "open":
            raise rejected("conflict", f"this case is {self.status.replace('_', ' ')}; its tasks are closed")
        # every problem in one round (issue 17.4): the form's schema, then the dates and themes the case knows
        fields: list[dict[str, Any]] = []
        try:
            task = self.cw.check_command(cmd, completing=True)
        except ApplicationError as exc:
            if exc.type != "invalid":
                raise
            fields = list((exc.details[0] if exc.details else {}).get("fields") or [])
            task = self.cw.tasks[cmd.task_key]
        taken = {f.get("path") for f in fields}
        fields += [f for f in self._date_problems(cmd) if f["path"] not in taken]
        unknown = [t for t in cmd.data.get("learning_themes") or [] if isinstance(t, str) and t not in self.themes]
        if unknown and "/learning_themes" not in taken:
            fields.append({"path": "/learning_themes", "value": unknown,
                           "message": f"not a theme of this partnership: {', '.join(unknown)}; choose from: "
                                      + ", ".join(sorted(self.themes))})
        if fields:
            raise rejected("invalid", f"{plural(len(fields), 'problem', 'problems')} in the form: {task.title}", fields)

