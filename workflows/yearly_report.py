"""The yearly report: draft, independent scrutiny where configured, sign-off by each partner, publication, copies.

Started by the partnership's lead (pages or JSON API) for one reporting period, or by itself: once a report is
published and its copies sent, its workflow waits until the day after the next reporting period ends and then
starts the next period's report (an activity reads the partnership's arrangements current then), so a partnership
that starts its first report in the service never has to remember the next one.

Steps, as human tasks (``safeguarding.yearly_report`` for the rules and their defaults):

1. *Draft the yearly report* (``author_role``), due ``steps.draft_working_days_before_due`` working days before
   the publication due date;
2. *Scrutinise the draft* (the independent scrutineer, when ``independent_scrutiny.reviews_yearly_report``), due
   ``steps.scrutiny_working_days`` after the draft; asking for changes opens *Revise the draft* and the revised
   draft comes back;
3. *Sign off* by each safeguarding partner (its lead, or its delegate for ``partnership_executive``), due
   ``steps.signoff_working_days`` after the draft is ready; a partner who does not sign off sends it back for
   revision (the other sign-offs are cancelled and asked again for the revised draft);
4. *Publish the yearly report* (``author_role``), due on the publication due date (none when it cannot be set:
   the case then says so on its timeline);
5. *Send a copy to* each recipient of ``send_copy_to``, due ``steps.copies_within_working_days`` after
   publication.

Overdue steps go up the partnership's overdue ladder, as in every process (``Casework``).
"""

from __future__ import annotations

from datetime import date, time, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from safeguarding.calendar import WorkingCalendar
    from safeguarding.case_records import TaskCommand, TaskRecord, TaskResult, YearlyReportInput
    from safeguarding.wording import long_date, plural
    from safeguarding.yearly_report import (
        PROCESS,
        RECIPIENTS,
        SIGNERS,
        Period,
        author_role,
        day_text,
        steps,
    )

from workflows.casework import Casework, TaskUpdates, rejected

NEXT_REPORT_HOUR = time(8, 0)
DATE_FIELDS = ("drafted_on", "reviewed_on", "published_on", "sent_on")


@workflow.defn(name="YearlyReport")
class YearlyReport(TaskUpdates):
    @workflow.init
    def __init__(self, inp: YearlyReportInput) -> None:
        self.inp = inp
        doc = inp.arrangements
        self.cfg = doc["yearly_report"]
        self.steps = steps(self.cfg)
        self.author = author_role(doc)
        scrutiny = doc.get("independent_scrutiny") or {}
        self.scrutineer = scrutiny.get("scrutineer_role") if scrutiny.get("reviews_yearly_report") else None
        self.period = Period(date.fromisoformat(inp.period_start), date.fromisoformat(inp.period_end))
        self.due = date.fromisoformat(inp.due_date) if inp.due_date else None
        self.cw = Casework(case_id=workflow.info().workflow_id, partnership_id=inp.partnership_id,
                           case_ref=inp.reference, process=PROCESS,
                           calendar=WorkingCalendar.from_payload(inp.calendar), arrangements=doc, engine=inp.engine)
        self.status = "open"
        self.round = 1
        self.published_on: date | None = None
        self.cw.not_yet.update({"publish": "every partner must sign off the report first"})
        self.cw.fields.update(
            category=PROCESS, status="open", stage="Drafting", arrangements_version=inp.arrangements_version,
            aware_date=inp.period_start, report_due=inp.due_date or None, children=[], agencies=[],
            summary=f"Yearly report {self.period.label}: reporting period {self.period.words}",
            opened_by=inp.opened_by.user_ref, opened_at=inp.opened_at)

    # --- the process ---------------------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: YearlyReportInput) -> str:
        cw = self.cw
        if self.due is not None:
            when = f"to be published by {day_text(self.due)} ({inp.due_reason})"
        else:
            when = f"NO DUE DATE: {inp.due_reason}; set yearly_report.publish_by in the arrangements"
        cw.event("yearly_report_started", f"Yearly report {self.period.label} started: reporting period "
                                          f"{self.period.words}; {when}; arrangements v{inp.arrangements_version}",
                 actor=inp.opened_by.user_ref, data={"due_date": inp.due_date, "due_reason": inp.due_reason})
        first_draft_due = (cw.calendar.nth_working_day_before(self.due, self.steps["draft_working_days_before_due"])
                           if self.due else None)
        self._open_draft(first_draft_due)
        await cw.sync()
        while self.status == "open":
            await cw.wait_for_change_or_timer(lambda: self.status != "open")
            if cw.fire_due_timers():
                await cw.sync()
        if self.status == "published":
            await self._start_next_report()
        await cw.finish()
        return self.status

    def _people(self, role: str) -> dict:
        cw = self.cw
        return {"candidate_role": role, "candidate_label": cw.role_title(role),
                "candidate_users": cw.role_members(role)}

    def _reminder(self) -> int:
        return int(self.steps["reminder_working_days"])

    def _open_draft(self, due: date | None) -> None:
        first = self.round == 1
        self.cw.open_task("draft" if first else f"draft-{self.round}", "yearly_report_draft",
                          "Draft the yearly report" if first else "Revise the draft yearly report",
                          "yearly_report_draft.v1", due=due, reminder_working_days=self._reminder(),
                          **self._people(self.author))
        self.cw.fields["stage"] = "Drafting" if first else "Revising the draft"

    def _suffix(self) -> str:
        return "" if self.round == 1 else f"-{self.round}"

    def _after_draft(self) -> None:
        cw = self.cw
        if self.scrutineer:
            cw.open_task(f"scrutiny{self._suffix()}", "yearly_report_scrutiny", "Scrutinise the draft yearly report",
                         "yearly_report_scrutiny.v1",
                         due=cw.calendar.add_working_days(cw.today(), self.steps["scrutiny_working_days"]),
                         reminder_working_days=self._reminder(), **self._people(self.scrutineer))
            cw.fields["stage"] = "Independent scrutiny"
        else:
            self._open_signoffs()

    def _open_signoffs(self) -> None:
        cw, who = self.cw, SIGNERS[self.cfg["signoff"]]
        due = cw.calendar.add_working_days(cw.today(), self.steps["signoff_working_days"])
        for partner in self.inp.arrangements["safeguarding_partners"]:
            person = partner.get(who) or {}
            title = person.get("role_title", "Lead" if who == "lead" else "Delegate")
            label = f"{title}, {cw.agency_name(partner['id'])}"
            cw.open_task(f"signoff-{partner['id']}{self._suffix()}", "yearly_report_signoff",
                         f"Sign off the yearly report: {cw.agency_name(partner['id'])}", "yearly_report_signoff.v1",
                         candidate_role=f"partner:{partner['id']}", candidate_label=label,
                         candidate_users=[person["user_ref"]] if person.get("user_ref") else [], due=due,
                         reminder_working_days=self._reminder())
        cw.fields["stage"] = "Sign-off by the partners"

    def _send_back(self) -> None:
        """A revision: the next round's draft, due as long as a sign-off has."""
        cw = self.cw
        for other in cw.open_tasks():
            if other.type == "yearly_report_signoff":
                cw.cancel_task(other.key, "the draft went back to be revised")
        self.round += 1
        self._open_draft(cw.calendar.add_working_days(cw.today(), self.steps["signoff_working_days"]))

    # --- what completing each task does --------------------------------------------------------------------
    def _after(self, task: TaskRecord) -> str:
        cw, data = self.cw, task.data
        if task.type == "yearly_report_draft":
            self._after_draft()
            with_file = " (report file attached)" if data.get("report_file") else ""
            return f"{task.title}: draft ready on {long_date(data['drafted_on'])}{with_file}"
        if task.type == "yearly_report_scrutiny":
            if data["changes_needed"]:
                self._send_back()
                return f"The independent scrutineer asked for changes: {data['statement']}"
            self._open_signoffs()
            return f"Scrutinised on {long_date(data['reviewed_on'])}: {data['statement']}"
        if task.type == "yearly_report_signoff":
            if not data["agree"]:
                self._send_back()
                return f"{task.title}: NOT signed off; the draft goes back to be revised: {data.get('comments', '')}"
            if not any(t.type == "yearly_report_signoff" for t in cw.open_tasks()):
                cw.not_yet.pop("publish", None)
                cw.open_task("publish", "yearly_report_published", "Publish the yearly report",
                             "yearly_report_published.v1", due=self.due, reminder_working_days=self._reminder(),
                             **self._people(self.author))
                cw.fields["stage"] = "Publication"
            return f"{task.title}: signed off"
        if task.type == "yearly_report_published":
            return self._published(task, date.fromisoformat(data["published_on"]), data["url"])
        if task.type == "yearly_report_copy":
            if not any(t.type == "yearly_report_copy" for t in cw.open_tasks()):
                self._done()
            return f"{task.title}: sent on {long_date(data['sent_on'])}" + (
                f" (reference {data['reference']})" if data.get("reference") else "")
        raise rejected("invalid", f"unknown task type {task.type}")

    def _published(self, task: TaskRecord, published: date, url: str) -> str:
        cw = self.cw
        self.published_on = published
        late = self.due is not None and published > self.due
        task.days_late = cw.calendar.working_days_late(self.due, published) if late else None
        cw.fields.update(publication_date=published.isoformat(), published=True)
        recipients = self.cfg.get("send_copy_to") or []
        copies_due = cw.calendar.add_working_days(published, self.steps["copies_within_working_days"])
        for recipient in recipients:
            cw.open_task(f"copy-{recipient}", "yearly_report_copy", f"Send a copy to {RECIPIENTS[recipient]}",
                         "yearly_report_copy.v1", due=copies_due, **self._people(self.author))
        if recipients:
            cw.fields["stage"] = "Copies to " + " and ".join(RECIPIENTS[r] for r in recipients)
        else:
            self._done()
        timing = (f" ({plural(task.days_late or 0, 'working day', 'working days')} after the due date "
                  f"{day_text(self.due)})" if late
                  else f" (due {day_text(self.due)}: on time)" if self.due else "")
        return f"Published on {day_text(published)} at {url}{timing}"

    def _done(self) -> None:
        cw = self.cw
        self.status = "published"
        opens = self.period.opens_next
        cw.fields.update(status="closed", closed_at=workflow.now().isoformat(),
                         stage=f"Published; the {self.period.following().label} report opens on {day_text(opens)}")
        cw.event("case_closed", f"Yearly report {self.period.label} published and its copies sent; the report for "
                                f"{self.period.following().words} opens by itself on {day_text(opens)}")

    async def _start_next_report(self) -> None:
        """Wait for the next reporting period to end, then start its report (with the arrangements current then)."""
        cw = self.cw
        await cw.sync()
        opens = cw.calendar.instant(self.period.opens_next, NEXT_REPORT_HOUR)
        wait = opens - workflow.now()
        if wait > timedelta(0):
            await workflow.sleep(wait)
        following = self.period.following()
        result = await workflow.execute_activity(
            "start_next_yearly_report",
            {"partnership_id": cw.partnership_id, "period_start": following.start.isoformat(),
             "previous_published_on": self.published_on.isoformat() if self.published_on else "",
             "started_by_case": cw.case_id},
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=5), maximum_interval=timedelta(hours=1)))
        outcome, case_id = result.get("outcome"), result.get("case_id", "")
        if outcome == "started":
            message = f"The yearly report {following.label} was started: case {case_id}"
        elif outcome == "exists":
            message = f"The yearly report {following.label} had already been started: case {case_id}"
        else:
            message = f"The yearly report {following.label} could not be started: {result.get('why', outcome)}"
        cw.event("next_report", message, data={"case_id": case_id, "outcome": outcome})
        self.status = "closed"

    # --- rules that need the case ----------------------------------------------------------------------------
    def _check_rules(self, cmd: TaskCommand) -> None:
        """Dates not in the future, not before the reporting period began; copies not before publication."""
        today, fields = self.cw.today(), []
        for name in DATE_FIELDS:
            value = cmd.data.get(name)
            if not isinstance(value, str):
                continue
            day = date.fromisoformat(value)
            if day > today:
                fields.append({"path": f"/{name}", "value": value,
                               "message": f"the date cannot be in the future (today is {day_text(today)})"})
            elif day < self.period.start:
                fields.append({"path": f"/{name}", "value": value, "message": "the date cannot be before the "
                               f"reporting period began ({day_text(self.period.start)})"})
            elif name == "sent_on" and self.published_on and day < self.published_on:
                fields.append({"path": f"/{name}", "value": value, "message": "a copy cannot be sent before the "
                               f"report was published ({day_text(self.published_on)})"})
        blank = [name for name in ("statement", "comments") if isinstance(cmd.data.get(name), str)
                 and cmd.data[name] and not cmd.data[name].strip()]
        for name in blank:
            fields.append({"path": f"/{name}", "value": cmd.data[name],
                           "message": f"Enter your {'statement' if name == 'statement' else 'comments'}: "
                                      "spaces alone say nothing"})
        if fields:
            raise rejected("invalid", f"{plural(len(fields), 'problem', 'problems')} in the form", fields)

    # --- updates ---------------------------------------------------------------------------------------------
    @workflow.update
    async def complete_task(self, cmd: TaskCommand) -> TaskResult:
        task, event = self.cw.complete(cmd)
        event.message = self._after(task)
        await self.cw.sync()
        return TaskResult(task.key, task.status, self.status, event.message)

    @complete_task.validator
    def _validate_complete(self, cmd: TaskCommand) -> None:
        if self.status != "open":
            raise rejected("conflict", "this yearly report is published; its tasks are closed")
        self.cw.check_command(cmd, completing=True)
        self._check_rules(cmd)

