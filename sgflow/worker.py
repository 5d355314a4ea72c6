"""``sgflow worker``: the Temporal worker that runs every workflow and activity, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio.worker import Worker

from safeguarding.settings import Settings

log = logging.getLogger("sgflow.worker")


def build_worker(client, settings: Settings, engine, executor: ThreadPoolExecutor) -> Worker:
    from activities import build_activities
    from workflows.registry import WORKFLOWS

    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=build_activities(engine, settings),
        activity_executor=executor,
        max_concurrent_activities=32,
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
    with ThreadPoolExecutor(max_workers=32, thread_name_prefix="activity") as executor:
        async with build_worker(client, settings, engine, executor):
            log.info("worker polling task queue %r on %s", settings.task_queue, settings.temporal_address)
            await stop.wait()
            log.info("shutting down: finishing in-flight tasks")
    log.info("worker stopped")
