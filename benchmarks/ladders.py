"""1,000 concurrent escalation ladders on the embedded dev server, run to timeout: errors, time, memory.

The dev server cannot skip time, so each ladder is raised with a date far enough in the past that every
stage's deadline has passed: each climbs every stage by timer, tells the business unit and finally the
independent scrutineer, exactly as a real ladder nobody answers would, only at once.

    python benchmarks/ladders.py [--ladders 1000] [--concurrency 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlmodel import Session, func, select  # noqa: E402
from temporalio.common import SearchAttributeKey  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from safeguarding.accounts import Principal  # noqa: E402
from safeguarding.binaries import temporal_cli  # noqa: E402
from safeguarding.case_commands import start_case  # noqa: E402
from safeguarding.db import make_engine, upgrade  # noqa: E402
from safeguarding.intake import EscalationIn, ladder_input  # noqa: E402
from safeguarding.tables import Case, User  # noqa: E402
from safeguarding.temporal_connection import SEARCH_ATTRIBUTES  # noqa: E402
from safeguarding.versions import document_of, get_version  # noqa: E402
from sgflow.seed import seed_demo  # noqa: E402
from workflows.ladder import EscalationLadder, ladder_workflow_id  # noqa: E402


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def main(args) -> None:
    tmp = Path(tempfile.mkdtemp())
    db_url = f"sqlite:///{tmp / 'bench.db'}"
    engine = make_engine(db_url)
    upgrade(engine)
    list(seed_demo(engine))
    with Session(engine) as session:
        version = get_version(session, "riverford-and-vale")
        raiser = Principal.of(session.exec(select(User).where(User.user_ref == "u-rv-social-worker")).one())
    doc = document_of(version)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_cli()), dev_server_log_level="error",
        search_attributes=[SearchAttributeKey.for_keyword(n) for n in SEARCH_ATTRIBUTES])
    queue = f"bench-{uuid.uuid4().hex[:6]}"
    worker = subprocess.Popen([sys.executable, "-m", "sgflow", "worker"], stdout=subprocess.DEVNULL,
                              stderr=open(tmp / "worker.log", "w"),  # noqa: SIM115
                              env={**os.environ, "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
                                   "DATABASE_URL": db_url, "SGFLOW_TASK_QUEUE": queue,
                                   "SGFLOW_SECRET_KEY": "bench", "SGFLOW_DATA_DIR": str(tmp)})
    try:
        body = EscalationIn(subject="Benchmark disagreement", agencies=["riverford-council"], issue_type="threshold")
        raised = datetime.combine(date(2026, 3, 2), datetime.min.time(), tzinfo=UTC)
        gate = asyncio.Semaphore(args.concurrency)
        errors: list[str] = []

        async def one(i: int) -> None:
            reference = f"B{i:05d}"
            async with gate:
                try:
                    await start_case(env.client, EscalationLadder.run, EscalationLadder.opened,
                                     ladder_input(doc, version.number, body, raiser, reference, raised),
                                     case_id=ladder_workflow_id("riverford-and-vale", reference), task_queue=queue,
                                     partnership_id="riverford-and-vale", process="escalation", reference=reference,
                                     what="escalation")
                except Exception as exc:  # counted and reported, never hidden
                    errors.append(f"{reference}: {type(exc).__name__}: {exc}")

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(args.ladders)))
        opened = time.perf_counter() - started

        def at_last_stage() -> int:
            with Session(engine) as session:
                return session.exec(select(func.count()).select_from(Case).where(
                    Case.process == "escalation", Case.current_stage == 4, Case.timeouts == 4)).one()

        while at_last_stage() < args.ladders - len(errors) and time.perf_counter() - started < args.timeout:
            await asyncio.sleep(1)
        total = time.perf_counter() - started
        done = at_last_stage()
        print(f"ladders: {args.ladders}, concurrency: {args.concurrency}")
        print(f"opened (started and in the read model): {opened:.1f} s, {args.ladders / opened:.1f} ladders/s")
        print(f"all four stages timed out, scrutineer told: {done} of {args.ladders} after {total:.1f} s")
        print(f"errors: {len(errors)}" + ("".join(f"\n  {e}" for e in errors[:10])))
        print(f"worker peak RSS: {peak_rss_mb(worker.pid):.0f} MB")
    finally:
        worker.terminate()
        worker.wait(60)
        await env.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ladders", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=900, help="give up waiting after this many seconds")
    asyncio.run(main(parser.parse_args()))
    # as sgflow's own CLI does: leave without interpreter finalisation, which the Temporal SDK's native runtime
    # can abort ("PyGILState_Release") while its threads are torn down
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
