"""Replay recorded histories against today's workflow code: a change that would break a running case fails here.

Histories live in tests/histories/ (recorded by ``python -m tests.histories.record``). If this fails after
a workflow change, guard the change with ``workflow.patched(...)``; do not re-record the old files.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflows.registry import WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_there_are_histories_to_replay():
    assert len(HISTORIES) >= 3


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path):
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    result = await Replayer(workflows=WORKFLOWS).replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays_in_the_production_worker_sandbox(path: Path):
    """The worker passes the workflow modules through the sandbox (imported once): replay works there too."""
    from sgflow.worker import workflow_runner

    history = WorkflowHistory.from_json(path.stem, path.read_text())
    result = await Replayer(workflows=WORKFLOWS, workflow_runner=workflow_runner()).replay_workflow(
        history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


async def test_a_changed_workflow_is_caught(monkeypatch):
    """The replay test can fail: add a command (a timer) to every read-model write, and replay reports it."""
    from datetime import timedelta

    from temporalio import workflow
    from temporalio.worker import UnsandboxedWorkflowRunner

    from workflows.casework import Casework

    original = Casework.sync

    async def with_a_pause(self):
        await workflow.sleep(timedelta(seconds=1))
        await original(self)

    monkeypatch.setattr(Casework, "sync", with_a_pause)
    path = next(p for p in HISTORIES if p.stem == "incident_full_path")
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(workflows=WORKFLOWS, workflow_runner=UnsandboxedWorkflowRunner())  # sees the monkeypatch
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is not None and "Nondeterminism" in str(result.replay_failure)


def _started_input(stem: str) -> dict:
    import base64
    import json

    history = json.loads((Path(__file__).parent / "histories" / f"{stem}.json").read_text())
    payload = history["events"][0]["workflowExecutionStartedEventAttributes"]["input"]["payloads"][0]
    return json.loads(base64.b64decode(payload["data"]))


def test_the_engine_4_paths_are_recorded():
    """Issue 16's paths are protected by replay: started under engine 4, a care leaver's death (to the Secretary of
    State and Ofsted, with the age at the incident) and a cross-boundary case (the resident partnership's
    coordinators captured in the input), beside the whole path; the older recordings (engines 1 to 3) stay."""
    care_leaver = _started_input("engine4_incident_care_leaver_to_sos_and_ofsted")
    assert (care_leaver["engine"], care_leaver["category"], care_leaver["age_at_incident"]) == (
        4, "care_leaver_death_to_24", 19)
    cross = _started_input("engine4_incident_cross_boundary")
    assert cross["engine"] == 4 and cross["resident_partnership_id"] == "northmoor-and-eastholme"
    assert cross["resident_contributor"]["members"] == ["u-ne-business-manager", "u-ne-review-coordinator"]
    assert _started_input("engine4_incident_full_path")["engine"] == 4
    assert "age_at_incident" not in _started_input("engine3_incident_full_path")


def _published_plans(stem: str) -> list[list[str]]:
    """The step plans (their step types) each read-model write of a recorded history sent, in order."""
    import base64
    import json

    history = json.loads((Path(__file__).parent / "histories" / f"{stem}.json").read_text())
    plans = []
    for event in history["events"]:
        scheduled = event.get("activityTaskScheduledEventAttributes")
        if scheduled and scheduled["activityType"]["name"] == "sync_case":
            fields = json.loads(base64.b64decode(scheduled["input"]["payloads"][0]["data"]))["fields"]
            if "plan" in fields:
                plans.append([step["type"] for step in fields["plan"]])
    return plans


def test_the_engine_6_paths_are_recorded_with_their_step_plans():
    """Issue 18: started under engine 6, every process publishes its step plan (again when a decision changes it);
    the recordings from before it publish none."""
    assert _published_plans("engine6_incident_full_path")[0][0] == "notification_sent"
    assert _published_plans("engine6_ladder_urgent_withdrawn") == [["ladder_stage"] * 4]
    handed_back = _published_plans("engine6_lcspr_handed_back_and_published")
    assert handed_back[0] == ["lcspr_national_info", "lcspr_immediate_actions", "national_review_outcome"]
    assert handed_back[-1][-3:] == ["lcspr_prepublication", "lcspr_published", "lcspr_action"]
    assert _published_plans("engine6_lcspr_not_published_with_action")[-1][-2:] == ["lcspr_not_published",
                                                                                   "lcspr_action"]
    assert len(_published_plans("engine6_learning_round_table_with_action")) == 2  # again after the triage
    for stem in ("engine5_incident_late_steps_without_reminders", "engine5_ladder_names_the_overdue_step"):
        assert _started_input(stem)["engine"] == 5 and _published_plans(stem) == []
