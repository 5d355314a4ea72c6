"""A local child safeguarding practice review (LCSPR), from the decision to published learning and done actions.

Started by the incident workflow when the rapid review decided on a review, or when the national Panel
said it will hold a national review. In the national case the local process starts *suspended*: the
partnership supplies information to the national review and keeps the rapid review's immediate actions
under review, until the Panel hands the case back (the local review then starts) or completes its review.

Local steps, as human tasks: terms of reference, reviewer commissioned, family engagement, progress checks
every N weeks (regulation 14) until the final report, the draft, the final report (a PDF or Word file),
sign-off by each partner, the publication decision, then either the pre-publication copy to the bodies in
``lcspr.pre_publication.copy_to`` (N working days before the planned date, counted by the calendar's rule)
and the publication, or not publishing: reasons (required when ``if_not_published.require_reasons``), an
improvements summary (when ``publish_improvements_summary``) and the notice to the bodies in
``if_not_published.notify``. Each notice sent is a ``notice_sent`` event naming its recipients, which the
national Panel's view shows as received when the Panel is one of them. The report is due N calendar months
after the decision (clamped or rolled as configured); when a national review hands the case back, the clock
restarts at hand-back or keeps the rapid review's decision date, as ``report_due_after_hand_back`` says
(default: restart). Recommendations become actions,
each with an owning agency and a due date; the case closes when publication is settled and every action is
done or formally closed with a reason. Overdue steps and actions go up the overdue ladder.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from safeguarding.calendar import WorkingCalendar
    from safeguarding.case_records import (
        NATIONAL_PANEL,
        ActionCommand,
        LcsprInput,
        TaskCommand,
        TaskRecord,
        TaskResult,
    )
    from safeguarding.wording import long_date, plural

from workflows.casework import Casework, TaskUpdates, iso_day, rejected

PROCESS = "lcspr"
STEP_DEFAULTS = {
    "terms_of_reference_working_days": 20,
    "reviewer_commissioned_working_days": 30,
    "signoff_working_days": 15,
    "publication_decision_working_days": 10,
}
NOT_SIGNED_OFF = "every partner must sign off the final report first"
NOTICES_PATCH = "notices-from-config"  # cases from before it named the Panel and the Secretary of State whatever
RECIPIENTS = {"national_panel": "the national Panel", "secretary_of_state": "the Secretary of State"}


def recipients_text(ids: list[str]) -> str:
    """"the national Panel and the Secretary of State": the configured recipients, in words."""
    names = [RECIPIENTS.get(i, i.replace("_", " ")) for i in ids]
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def lcspr_workflow_id(partnership_id: str, reference: str) -> str:
    return f"{PROCESS}-{partnership_id}-{reference}"


@workflow.defn(name="LocalReview")
class LocalReview(TaskUpdates):
    @workflow.init
    def __init__(self, inp: LcsprInput) -> None:
        self.inp = inp
        doc = inp.arrangements
        self.cfg = doc["lcspr"]
        self.steps = {**STEP_DEFAULTS, **(self.cfg.get("step_deadlines") or {})}
        self.cw = Casework(
            case_id=workflow.info().workflow_id,
            partnership_id=inp.partnership_id,
            case_ref=inp.reference,
            process=PROCESS,
            calendar=WorkingCalendar.from_payload(inp.calendar),
            arrangements=doc,
            engine=inp.engine,
        )
        self.status = "suspended" if inp.national_review else "open"
        self.decision = date.fromisoformat(inp.decision_date)
        self.report_due: date | None = None
        self.next_check: date | None = None
        self.checks = 0
        self.publication_settled = False
        self.planned: date | None = None
        self.publication: str | None = None  # the publication decision, once made: "yes" or the next step's title
        self.cw.not_yet.update(
            {k: NOT_SIGNED_OFF for k in ("publication-plan", "prepublication", "published", "not-published")}
        )
        self.cw.fields.update(
            category=inp.category or "lcspr",
            status=self.status,
            stage="",
            arrangements_version=inp.arrangements_version,
            aware_date=inp.decision_date,
            parent_case_id=inp.parent_case_id,
            opened_by="system",
            opened_at=inp.opened_at,
            children=[],
            agencies=[],
            summary="",
        )

    @workflow.run
    async def run(self, inp: LcsprInput) -> str:
        cw = self.cw
        if inp.national_review:
            cw.publish_plan(self._plan())
            cw.event(
                "national_review",
                "The national Panel holds a national review: the local process is "
                "suspended while the partnership supplies information",
            )
            self._open_national_tasks()
        else:
            self._start_local(self.decision, self.decision)
        await cw.sync()
        while self.status in ("open", "suspended"):
            await cw.wait_for_change_or_timer(
                lambda: self.status not in ("open", "suspended"), also_at=self._next_check_at()
            )
            fired = cw.fire_due_timers()
            if self._progress_check_due():
                fired = True
            if fired:
                await cw.sync()
        await cw.finish()
        return self.status

    # --- the two paths ---
    def _open_national_tasks(self) -> None:
        cw, role = self.cw, self.inp.arrangements["rapid_review"]["coordinator_role"]
        today = cw.today()
        cw.open_task(
            "national-info",
            "lcspr_national_info",
            "Supply information to the national review",
            "lcspr_national_info.v1",
            candidate_role=role,
            candidate_label=cw.role_title(role),
            candidate_users=cw.role_members(role),
            due=cw.calendar.add_working_days(today, 20),
        )
        cw.open_task(
            "immediate-actions",
            "lcspr_immediate_actions",
            "Keep the immediate safeguarding actions under review",
            "lcspr_immediate_actions.v1",
            candidate_role=role,
            candidate_label=cw.role_title(role),
            candidate_users=cw.role_members(role),
            due=None,
        )
        cw.open_task(
            "national-review",
            "national_review_outcome",
            "Record the national review's outcome",
            "national_review_outcome.v1",
            candidate_role=NATIONAL_PANEL,
            candidate_label="the national Panel",
            candidate_users=[],
            due=None,
        )
        cw.fields["stage"] = "Suspended: national review"

    def _start_local(self, decision: date, clock_from: date, why: str = "") -> None:
        """The local review starts on ``decision`` (its steps count from it); the final report is due N calendar
        months after ``clock_from`` (the same day, unless a hand-back keeps the rapid review's decision)."""
        cw, role = self.cw, self.cfg["reviewer_commissioning_role"]
        self.status = "open"
        self.decision = decision
        due = self.cfg["report_due"]
        self.report_due = cw.calendar.add_months(clock_from, due["value"])
        cw.fields.update(
            status="open",
            aware_date=clock_from.isoformat(),
            report_due=self.report_due.isoformat(),
            stage="Review: terms of reference and commissioning",
        )
        cw.event(
            "lcspr_started",
            f"Local review started: decision {long_date(clock_from)}, final report due "
            f"{long_date(self.report_due)} ({plural(due['value'], 'calendar month', 'calendar months')}{why})",
        )
        people = {
            "candidate_role": role,
            "candidate_label": cw.role_title(role),
            "candidate_users": cw.role_members(role),
        }
        cw.open_task(
            "terms",
            "lcspr_terms",
            "Agree the terms of reference",
            "lcspr_terms.v1",
            due=cw.calendar.add_working_days(decision, self.steps["terms_of_reference_working_days"]),
            **people,
        )
        cw.open_task(
            "reviewer",
            "lcspr_reviewer",
            "Commission the reviewer",
            "lcspr_reviewer.v1",
            due=cw.calendar.add_working_days(decision, self.steps["reviewer_commissioned_working_days"]),
            **people,
        )
        cw.open_task(
            "family", "lcspr_family", "Record family engagement", "lcspr_family.v1", due=self.report_due, **people
        )
        cw.not_yet.update(
            {
                "draft": "the reviewer must be commissioned first",
                "final-report": "the reviewer must be commissioned first",
            }
        )
        self.next_check = decision + timedelta(weeks=self.cfg["progress_checks"]["every"])
        cw.publish_plan(self._plan())

    def _plan(self) -> list[dict[str, Any]]:
        """The steps, in order (engine 6): the national review's, then (once the review is local) the local
        review's; the publication decision settles which steps follow it."""
        steps = []
        if self.inp.national_review:
            steps += [{"type": "lcspr_national_info", "title": "Supply information to the national review"},
                      {"type": "lcspr_immediate_actions",
                       "title": "Keep the immediate safeguarding actions under review"},
                      {"type": "national_review_outcome", "title": "Record the national review’s outcome"}]
        if self.report_due is not None:  # the local review has started
            every = self.cfg["progress_checks"]["every"]
            steps += [{"type": "lcspr_terms", "title": "Agree the terms of reference"},
                      {"type": "lcspr_reviewer", "title": "Commission the reviewer"},
                      {"type": "lcspr_family", "title": "Record family engagement"},
                      {"type": "lcspr_progress", "title": f"Progress checks, every {plural(every, 'week', 'weeks')}"},
                      {"type": "lcspr_draft", "title": "Record the draft report received"},
                      {"type": "lcspr_final_report", "title": "Accept the final report"},
                      {"type": "partner_signoff", "title": "Partner sign-off of the final report"},
                      {"type": "lcspr_recommendations", "title": "Record the recommendations and their actions"},
                      {"type": "lcspr_publication_plan", "title": "Decide on publication"}]
            if self.publication is None:
                steps.append({"type": "lcspr_publication",
                              "title": "Publish the report, or send notice of not publishing"})
            elif self.publication == "yes":
                copy_to = recipients_text(self.cfg["pre_publication"]["copy_to"])
                steps += [{"type": "lcspr_prepublication", "title": f"Send the pre-publication copy to {copy_to}"},
                          {"type": "lcspr_published", "title": "Record publication"}]
            elif self.publication:
                steps.append({"type": "lcspr_not_published", "title": self.publication})
            steps.append({"type": "lcspr_action", "title": "Actions from the recommendations"})
        return [{**step, "applies": True} for step in steps]

    # --- progress checks: every N weeks until the final report is accepted ---
    def _next_check_at(self) -> datetime | None:
        if self.next_check is None or self.status != "open":
            return None
        return self.cw.calendar.instant(self.next_check, datetime.min.time().replace(hour=8))

    def _progress_check_due(self) -> bool:
        at = self._next_check_at()
        if at is None or workflow.now() < at:
            return False
        cw, role = self.cw, self.cfg["reviewer_commissioning_role"]
        self.checks += 1
        opened_on = self.next_check
        cw.open_task(
            f"progress-{self.checks}",
            "lcspr_progress",
            f"Progress check {self.checks}",
            "lcspr_progress.v1",
            candidate_role=role,
            candidate_label=cw.role_title(role),
            candidate_users=cw.role_members(role),
            due=cw.calendar.add_working_days(opened_on, 5),
        )
        self.next_check = opened_on + timedelta(weeks=self.cfg["progress_checks"]["every"])
        return True

    # --- what completing each step does ---
    def _after(self, task: TaskRecord) -> str:
        cw, data = self.cw, task.data
        role = self.cfg["reviewer_commissioning_role"]
        people = {
            "candidate_role": role,
            "candidate_label": cw.role_title(role),
            "candidate_users": cw.role_members(role),
        }
        kind = task.type
        if kind == "lcspr_reviewer":
            cw.not_yet.pop("draft", None)
            cw.not_yet.pop("final-report", None)
            cw.open_task(
                "draft", "lcspr_draft", "Record the draft report received", "lcspr_draft.v1", due=None, **people
            )
            cw.open_task(
                "final-report",
                "lcspr_final_report",
                "Accept the final report",
                "lcspr_final_report.v1",
                due=self.report_due,
                **people,
            )
            cw.fields["stage"] = "Review: in progress"
            return f"Reviewer commissioned on {long_date(data['commissioned_on'])}"
        if kind == "lcspr_final_report":
            self.next_check = None  # monitoring ends with the final report
            accepted = date.fromisoformat(data["accepted_on"])
            signoff_due = cw.calendar.add_working_days(accepted, self.steps["signoff_working_days"])
            for partner in self.inp.arrangements["rapid_review"]["signoff_required_from"]:
                prole, label, users = cw.agency_candidates(partner)
                cw.open_task(
                    f"signoff-{partner}",
                    "partner_signoff",
                    f"Sign off the final report: {cw.agency_name(partner)}",
                    "partner_signoff.v1",
                    candidate_role=prole,
                    candidate_label=label,
                    candidate_users=users,
                    due=signoff_due,
                )
            cw.open_task(
                "recommendations",
                "lcspr_recommendations",
                "Record the recommendations and their actions",
                "lcspr_recommendations.v1",
                due=signoff_due,
                **people,
            )
            cw.fields["stage"] = "Final report: partner sign-off"
            late = accepted > self.report_due if self.report_due else False
            return f"Final report accepted on {long_date(accepted)}" + (" (after its due date)" if late else "")
        if kind == "partner_signoff":
            if not data["agree"]:
                return f"{task.title}: NOT signed off: {data.get('comments', '')}"
            if not any(t.type == "partner_signoff" and t.status == "open" for t in cw.tasks.values()):
                for key in ("publication-plan",):
                    cw.not_yet.pop(key, None)
                cw.open_task(
                    "publication-plan",
                    "lcspr_publication_plan",
                    "Decide on publication",
                    "lcspr_publication_plan.v2" if cw.has(NOTICES_PATCH, since=3) else "lcspr_publication_plan.v1",
                    due=cw.calendar.add_working_days(cw.today(), self.steps["publication_decision_working_days"]),
                    **people,
                )
                cw.fields["stage"] = "Publication decision"
            return f"{task.title}: signed off"
        if kind == "lcspr_publication_plan":
            if data["publish"] == "yes":
                planned = date.fromisoformat(data["planned_publication_date"])
                copy_by = cw.calendar.nth_working_day_before(planned, self.cfg["pre_publication"]["notice"]["value"])
                cw.not_yet.pop("prepublication", None)
                cw.not_yet.update(
                    {
                        "published": "the pre-publication copy must be sent first",
                        "not-published": "the partners decided to publish",
                    }
                )
                title = "Send the pre-publication copy to the Panel and the Secretary of State"
                if cw.has(NOTICES_PATCH, since=3):
                    copy_to = self.cfg["pre_publication"]["copy_to"]
                    title = f"Send the pre-publication copy to {recipients_text(copy_to)}"
                cw.open_task(
                    "prepublication",
                    "lcspr_prepublication",
                    title,
                    "lcspr_prepublication.v1",
                    due=copy_by,
                    **people,
                )
                cw.fields.update(publication_date=planned.isoformat(), stage="Pre-publication")
                self.planned = planned
                self.publication = "yes"
                cw.publish_plan(self._plan())
                return f"To be published on {long_date(planned)}; the copy is due by {long_date(copy_by)}"
            cw.not_yet.pop("not-published", None)
            cw.not_yet.update({k: "the partners decided not to publish" for k in ("prepublication", "published")})
            due = cw.calendar.add_working_days(cw.today(), self.steps["publication_decision_working_days"])
            reasons = (data.get("reasons") or "").strip()
            said = f"Not to be published. Reasons: {reasons}" if reasons else "Not to be published (no reasons given)"
            if not cw.has(NOTICES_PATCH, since=3):
                cw.open_task("not-published", "lcspr_not_published", "Send notice of not publishing",
                             "lcspr_not_published.v1", due=due, **people)
                cw.fields["stage"] = "Not published: notice"
                return said
            rules = self.cfg["if_not_published"]
            notify, summary = rules.get("notify") or [], rules.get("publish_improvements_summary", False)
            if notify:
                title = f"Send notice of not publishing to {recipients_text(notify)}"
            elif summary:
                title = "Record where the improvements summary is published"
            else:  # the arrangements ask for neither a notice nor a summary: publication is settled
                self.publication_settled = True
                self.publication = ""
                cw.publish_plan(self._plan())
                cw.fields.update(published=False, stage="Actions")
                self._maybe_close()
                return said + "; the arrangements ask for no notice and no improvements summary"
            cw.open_task("not-published", "lcspr_not_published", title, "lcspr_not_published.v2", due=due, **people)
            self.publication = title
            cw.publish_plan(self._plan())
            cw.fields["stage"] = "Not published: notice"
            return said
        if kind == "lcspr_prepublication":
            cw.not_yet.pop("published", None)
            cw.open_task(
                "published", "lcspr_published", "Record publication", "lcspr_published.v1", due=self.planned, **people
            )
            if not cw.has(NOTICES_PATCH, since=3):
                return f"Pre-publication copy sent on {long_date(data['sent_on'])}"
            copy_to = list(self.cfg["pre_publication"]["copy_to"])
            self._notice("pre_publication_copy", copy_to, data["sent_on"])
            return f"Pre-publication copy sent on {long_date(data['sent_on'])} to {recipients_text(copy_to)}"
        if kind in ("lcspr_published", "lcspr_not_published"):
            self.publication_settled = True
            cw.fields["published"] = kind == "lcspr_published"
            cw.fields["stage"] = "Actions"
            self._maybe_close()
            if kind == "lcspr_published":
                return "Published at " + data["url"]
            if task.form == "lcspr_not_published.v1":
                return "Notice of not publishing sent"
            notify = list(self.cfg["if_not_published"].get("notify") or [])
            said = []
            if notify:
                self._notice("not_published", notify, data["notice_sent_on"])
                said.append(f"Notice of not publishing sent on {long_date(data['notice_sent_on'])} "
                            f"to {recipients_text(notify)}")
            if data.get("summary_url"):
                said.append(f"{'the ' if said else 'The '}improvements summary is published at {data['summary_url']}")
            return "; ".join(said) or "Not published"
        if kind == "lcspr_recommendations":
            self._maybe_close()
            return "Recommendations recorded"
        if kind == "lcspr_action":
            self._maybe_close()
            return f"{task.title}: {data['outcome']}" + (
                f" ({data.get('reason')})" if data["outcome"] == "closed" else ""
            )
        if kind == "national_review_outcome":
            if data["outcome"] == "handed_back":
                for other in cw.open_tasks():
                    if other.key in ("national-info",):
                        cw.cancel_task(other.key, "the case was handed back for a local review")
                today = cw.today()
                if self.cfg.get("report_due_after_hand_back", "restart") == "keep":
                    self._start_local(today, date.fromisoformat(self.inp.decision_date),
                                      f" from the rapid review's decision, kept through the national review; "
                                      f"handed back {long_date(today)}")
                else:
                    self._start_local(today, today, ", restarted when the national review handed the case back")
                return "The Panel handed the case back for a local review"
            self._close("closed", "The national review is complete")
            return "The national review is complete"
        return f"{task.title} recorded"

    def _notice(self, notice: str, recipients: list[str], sent_on: str) -> None:
        """A notice the law requires, sent: its kind, recipients and date (read by the national Panel's view)."""
        what = "Pre-publication copy" if notice == "pre_publication_copy" else "Notice of not publishing"
        self.cw.event("notice_sent", f"{what} sent on {long_date(sent_on)} to {recipients_text(recipients)}",
                      data={"notice": notice, "recipients": recipients, "sent_on": sent_on})

    def _maybe_close(self) -> None:
        recs = self.cw.tasks.get("recommendations")
        open_actions = [t for t in self.cw.open_tasks() if t.type == "lcspr_action"]
        if self.publication_settled and recs is not None and recs.status == "done" and not open_actions:
            self._close("closed", "Published or settled, and every action done or closed")

    def _close(self, status: str, why: str) -> None:
        for task in self.cw.open_tasks():
            self.cw.cancel_task(task.key, "the review closed")
        self.status = status
        self.cw.fields.update(status=status, stage=why, closed_at=workflow.now().isoformat())
        self.cw.event("case_closed", f"Review closed: {why}")

    def _rule_problems(self, cmd: TaskCommand) -> list[dict[str, Any]]:
        """Rules that need the case: dates not in the future; the publication date leaves time for the copy. A
        value that is not a date is left to the form's schema (reported with these, in one round)."""
        cw, today, fields = self.cw, self.cw.today(), []
        for name in (
            "agreed_on",
            "commissioned_on",
            "received_on",
            "accepted_on",
            "sent_on",
            "published_on",
            "notice_sent_on",
            "supplied_on",
            "reviewed_on",
        ):
            value = cmd.data.get(name)
            if isinstance(value, str) and iso_day(value) is not None and iso_day(value) > today:
                fields.append(
                    {
                        "path": f"/{name}",
                        "value": value,
                        "message": f"the date cannot be in the future (today is {long_date(today)})",
                    }
                )
        planned = cmd.data.get("planned_publication_date")
        if cmd.data.get("publish") == "yes" and isinstance(planned, str):
            notice = self.cfg["pre_publication"]["notice"]["value"]
            earliest = today + timedelta(days=1)
            while cw.calendar.nth_working_day_before(earliest, notice) < today:
                earliest += timedelta(days=1)
            if iso_day(planned) is not None and iso_day(planned) < earliest:
                fields.append(
                    {
                        "path": "/planned_publication_date",
                        "value": planned,
                        "message": "too soon: the Panel and the Secretary of State must have the report "
                        f"{plural(notice, 'working day', 'working days')} before publication; the earliest "
                        f"publication date is {long_date(earliest)}",
                    }
                )
        return fields + self._notice_rules(cmd)

    def _notice_rules(self, cmd: TaskCommand) -> list[dict[str, Any]]:
        """What ``if_not_published`` asks for: reasons, the improvements summary, the notice's date. Text of only
        spaces is never a reason or a summary. Forms before v2 required both texts whatever the arrangements."""
        task, data, fields = self.cw.tasks[cmd.task_key], cmd.data, []
        rules = self.cfg["if_not_published"]

        def need(name: str, required: bool, message: str) -> None:
            value = data.get(name)
            if isinstance(value, str) and value and not value.strip():
                fields.append({"path": f"/{name}", "value": value,
                               "message": f"{message}: spaces alone are not enough"})
            elif required and not (isinstance(value, str) and value.strip()):
                fields.append({"path": f"/{name}", "value": value, "message": message})

        if task.type == "lcspr_publication_plan" and data.get("publish") == "no":
            v1 = task.form == "lcspr_publication_plan.v1"
            need("reasons", v1 or rules["require_reasons"], "Enter the reasons for not publishing")
            need("improvements_summary", v1 or rules["publish_improvements_summary"],
                 "Enter the summary of improvements to publish")
        if task.form == "lcspr_not_published.v2":
            notify = rules.get("notify") or []
            if notify and not data.get("notice_sent_on"):
                fields.append({"path": "/notice_sent_on", "value": None,
                               "message": f"Enter the date the notice was sent to {recipients_text(notify)}"})
            if rules["publish_improvements_summary"] and not data.get("summary_url"):
                fields.append({"path": "/summary_url", "value": None,
                               "message": "Enter the web address where the improvements summary is published"})
        return fields

    # --- updates ---
    @workflow.update
    async def complete_task(self, cmd: TaskCommand) -> TaskResult:
        task, event = self.cw.complete(cmd)
        event.message = self._after(task)
        await self.cw.sync()
        return TaskResult(task.key, task.status, self.status, event.message)

    @complete_task.validator
    def _validate_complete(self, cmd: TaskCommand) -> None:
        if self.status not in ("open", "suspended"):
            raise rejected("conflict", f"this review is {self.status}; its tasks are closed")
        # every problem in one round (issue 17.4): the form's schema with the rules the case knows
        fields: list[dict[str, Any]] = []
        try:
            self.cw.check_command(cmd, completing=True)
        except ApplicationError as exc:
            if exc.type != "invalid":
                raise
            fields = list((exc.details[0] if exc.details else {}).get("fields") or [])
        taken = {f.get("path") for f in fields}
        fields += [f for f in self._rule_problems(cmd) if f["path"] not in taken]
        if fields:
            raise rejected("invalid", f"{plural(len(fields), 'problem', 'problems')} in the form", fields)

    @workflow.update
    async def add_action(self, cmd: ActionCommand) -> TaskResult:
        task = self.cw.add_action(cmd, "lcspr_action")
        await self.cw.sync()
        return TaskResult(task.key, task.status, self.status, "action added")

    @add_action.validator
    def _validate_action(self, cmd: ActionCommand) -> None:
        if self.status != "open":
            raise rejected("conflict", f"this review is {self.status}; actions cannot be added")
        if "recommendations" not in self.cw.tasks:
            raise rejected("conflict", "actions come from the final report's recommendations: accept the report first")
        self.cw.check_action(cmd, self.cfg["reviewer_commissioning_role"])
