"""A Loomwork engine in a process of its own, for the crash tests to ``kill -9`` (see ``test_crash.py``).

    python tests/crash_harness.py --database-url URL --data-dir DIR [--start N --mode MODE --counter DB ...]

With ``--start N`` it deploys the crash workflow and starts N runs; without, it just executes what the store
holds (a restart). It exits once every run in the store has ended. Progress goes to stdout, one line each:

    WORKERS <pid> <pid> ...   the engine's worker processes
    RUN <run id>              a run it started
    READY                     the engine is up (and the runs are stored)
    DONE                      every run has ended; the engine stops
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from loomwork.engine import Engine, EngineConfig
from loomwork.store import Tx
from loomwork.store.schema import runs

WORKFLOW = "crash-test"

#: The workflow under test. Every step writes one row into the ``effects`` table of a separate SQLite file
#: (``counter``), keyed by (run_id, n), with the step's idempotency key and the pid that executed it.
MAIN_PY = '''
import os
import sqlite3
import time

from loomwork import wf


def effect(counter, run_id, n, gate=None, note=None):
    """The side effect: one counter row per execution; then, with a gate, block until the file exists."""
    key = wf.step_key()
    conn = sqlite3.connect(counter, timeout=30, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "INSERT INTO effects (run_id, n, key, pid, at) VALUES (?, ?, ?, ?, ?)",
            (run_id, n, key, os.getpid(), time.time()),
        )
    finally:
        conn.close()
    if gate:
        deadline = time.monotonic() + 60
        while not os.path.exists(gate):
            if time.monotonic() > deadline:
                raise TimeoutError(f"gate {gate} never opened")
            time.sleep(0.01)
    return {"n": n, "key": key, "note": note}


async def execute_workflow(data):
    counter, mode, run_id = data["counter"], data["mode"], wf.run_id
    results = [await wf.step(effect, counter, run_id, 1, name="effect-1")]
    if mode == "block":
        results.append(await wf.step(effect, counter, run_id, 2, data["gate"], name="effect-2"))
        results.append(await wf.step(effect, counter, run_id, 3, name="effect-3"))
    elif mode == "chain":
        for n in range(2, data["steps"] + 1):
            results.append(await wf.step(effect, counter, run_id, n, name=f"effect-{n}"))
    elif mode == "sleep":
        await wf.sleep(data["sleep"])
        results.append(await wf.step(effect, counter, run_id, 2, name="effect-2"))
    elif mode == "request":
        decision = await wf.assign_request(
            "crash-approval", ["Approve", "Reject"], message=f"run {data['i']}", to_users=["ann@example.com"]
        )
        results.append(
            await wf.step(effect, counter, run_id, 2, note=decision.resolution, name="effect-2")
        )
        return {"i": data["i"], "results": results, "resolution": decision.resolution,
                "payload": decision.payload, "resolved_by": decision.resolved_by}
    else:
        raise ValueError(f"unknown mode {mode!r}")
    return {"i": data["i"], "results": results}
'''


def _active_runs(tx: Tx) -> tuple[int, int]:
    active = tx.conn.execute(
        sa.select(sa.func.count()).where(runs.c.status.in_(("queued", "running", "waiting")))
    ).scalar_one()
    total = tx.conn.execute(sa.select(sa.func.count()).select_from(runs)).scalar_one()
    return int(active), int(total)


def say(line: str) -> None:
    print(line, flush=True)


async def main(args: argparse.Namespace) -> None:
    config = EngineConfig(
        data_dir=Path(args.data_dir),
        database_url=args.database_url,
        workers=args.workers,
        heartbeat_interval=0.5,
        node_timeout=2.0,
        secret_key=b"test-secret",
    )
    engine = Engine(config)
    await engine.start()
    try:
        say("WORKERS " + " ".join(str(pid) for pid in engine.dispatcher.worker_pids))
        if args.start:
            await engine.deploy(WORKFLOW, {"main.py": MAIN_PY})
            inputs: list[dict[str, Any]] = [
                {
                    "i": i,
                    "mode": args.mode,
                    "counter": args.counter,
                    "gate": args.gate,
                    "steps": args.steps,
                    "sleep": args.sleep,
                }
                for i in range(args.start)
            ]
            for run in await engine.start_runs(WORKFLOW, inputs):
                say(f"RUN {run.id}")
        say("READY")
        while True:
            active, total = await engine.db.read(_active_runs)
            if total and not active:
                break
            await asyncio.sleep(0.1)
        say("DONE")
    finally:
        await engine.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--start", type=int, default=0, help="deploy the workflow and start this many runs")
    parser.add_argument("--mode", default="block", choices=["block", "chain", "sleep", "request"])
    parser.add_argument("--counter", default="")
    parser.add_argument("--gate", default="")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--sleep", type=float, default=2.0)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main(parser.parse_args()))
