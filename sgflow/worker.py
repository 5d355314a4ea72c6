"""``sgflow worker``: the Temporal worker that runs every workflow and activity, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from safeguarding.heap import freeze_startup_objects
from safeguarding.settings import Settings

log = logging.getLogger("sgflow.worker")

# The sandbox re-imports a workflow's modules for every new workflow run (and for every replay into the
# cache): our workflow modules are deterministic and have no import-time side effects, so they are imported
# once and passed through, as the safeguarding modules they use already are. The sandbox's runtime
# restrictions still guard the workflows in the tests (their workers and the replay tests use the default,
# strict sandbox, which re-imports everything).
ACTIVITY_SLOTS = 32  # activities at once, one executor thread each (room for slow SMTP deliveries besides syncs)
PASSTHROUGH = ("workflows", "safeguarding", "jsonschema", "referencing", "rpds")


def workflow_runner(*also: str) -> SandboxedWorkflowRunner:
    """The workflow sandbox of our worker (``also``: more modules to pass through, e.g. a benchmark's own)."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH, *also))


def build_worker(client, settings: Settings, engine, executor: ThreadPoolExecutor) -> Worker:
    from activities import build_activities
    from workflows.registry import WORKFLOWS

    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        workflow_runner=workflow_runner(),
        activities=build_activities(engine, settings),
        activity_executor=executor,
        max_concurrent_activities=ACTIVITY_SLOTS,
        graceful_shutdown_timeout=timedelta(seconds=30),  # in-flight activities finish (compose allows 60 s)
    )


async def run_worker(settings: Settings) -> None:
    from safeguarding.db import get_engine, require_current
    from safeguarding.temporal_connection import connect

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    engine = get_engine()
    require_current(engine)
    client = await connect(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with ThreadPoolExecutor(max_workers=ACTIVITY_SLOTS, thread_name_prefix="activity") as executor:
        async with build_worker(client, settings, engine, executor):
            freeze_startup_objects()
            log.info("worker polling task queue %r on %s", settings.task_queue, settings.temporal_address)
            await stop.wait()
            log.info("shutting down: finishing in-flight tasks")
    log.info("worker stopped")
