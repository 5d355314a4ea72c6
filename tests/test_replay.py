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
