"""Loomwork side of the side-by-side benchmark (workloads a to e, see bench/README.md).

    .venv/bin/python bench/loomwork_bench.py --synchronous FULL --workloads a,b,c,d,e

Prints one JSON object on its last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from loomwork.engine import Engine, EngineConfig
from loomwork.model import RunStatus

SEQUENTIAL = """
from loomwork import wf

def inc(x):
    return x + 1

async def execute_workflow(data):
    x = 0
    for _ in range(data["steps"]):
        x = await wf.step(inc, x)
    return x
"""

THREE_STEPS = """
from loomwork import wf

def inc(x):
    return x + 1

async def execute_workflow(data):
    x = await wf.step(inc, 0)
    x = await wf.step(inc, x)
    return await wf.step(inc, x)
"""

APPROVAL = """
from loomwork import wf

def inc(x):
    return x + 1

async def execute_workflow(data):
    decision = await wf.assign_request("approve", ["Approve", "Reject"], to_users=["ann@example.com"])
    return await wf.step(inc, 1 if decision.resolution == "Approve" else 0)
"""

RECOVERY = """
from loomwork import wf

def inc(x):
    return x + 1

async def execute_workflow(data):
    x = await wf.step(inc, 0)
    await wf.sleep(1)
    return await wf.step(inc, x)
"""


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def threads_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def config(data_dir: Path, sync: str, database_url: str | None = None, workers: int = 1) -> EngineConfig:
    return EngineConfig(
        data_dir=data_dir,
        database_url=database_url,
        workers=workers,
        sqlite_synchronous=sync,
        max_active_runs=5000,
        secret_key=b"bench",
    )


async def wait_all(engine: Engine, run_ids: list[str], timeout: float) -> float:
    start = time.perf_counter()
    done = await engine.wait_for_runs(run_ids, timeout)
    failed = [r for r in done if r.status != RunStatus.SUCCEEDED]
    if failed:
        raise RuntimeError(f"{len(failed)} runs did not succeed, e.g. {failed[0].status} {failed[0].error}")
    return time.perf_counter() - start


async def workload_a(root: Path, sync: str, repeats: int) -> dict[str, Any]:
    samples = []
    async with Engine(config(root / "a", sync)) as engine:
        await engine.deploy("seq", {"main.py": SEQUENTIAL})
        warm = await engine.start_run("seq", {"steps": 5})
        await engine.wait_for_run(warm.id, 30)
        for _ in range(repeats):
            t0 = time.perf_counter()
            run = await engine.start_run("seq", {"steps": 40})
            done = await engine.wait_for_run(run.id, 60)
            elapsed = time.perf_counter() - t0
            if done.status != RunStatus.SUCCEEDED or done.output != 40:
                raise RuntimeError(f"run failed: {done.status} {done.error}")
            samples.append(elapsed / 40 * 1000)
    return {"median": statistics.median(samples), "unit": "ms/step", "samples": samples}


async def workload_b(root: Path, sync: str, repeats: int, runs: int) -> dict[str, Any]:
    samples = []
    async with Engine(config(root / "b", sync, workers=2)) as engine:
        await engine.deploy("three", {"main.py": THREE_STEPS})
        warm = await engine.start_runs("three", [{} for _ in range(50)])
        await wait_all(engine, [r.id for r in warm], 60)
        for _ in range(repeats):
            t0 = time.perf_counter()
            started = await engine.start_runs("three", [{} for _ in range(runs)])
            await wait_all(engine, [r.id for r in started], 300)
            samples.append(runs / (time.perf_counter() - t0))
        batches, ops = engine.db.batches, engine.db.ops
    return {
        "median": statistics.median(samples),
        "unit": "runs/s",
        "samples": samples,
        "notes": f"{ops / max(batches, 1):.1f} writes per commit on average",
    }


async def workload_c(root: Path, sync: str, samples_n: int) -> dict[str, Any]:
    samples = []
    async with Engine(config(root / "c", sync)) as engine:
        await engine.deploy("approval", {"main.py": APPROVAL})
        for _ in range(samples_n):
            run = await engine.start_run("approval", {})
            while True:
                requests = await engine.list_run_requests(run.id)
                current = await engine.get_run(run.id)
                if requests and current.status == RunStatus.WAITING:
                    break
                await asyncio.sleep(0.005)
            finished = asyncio.ensure_future(engine.wait_for_run(run.id, 30))
            await asyncio.sleep(0.01)  # let the waiter register
            await engine.resolve_request(requests[0].id, "Approve", {}, actor="ann@example.com")
            t0 = time.perf_counter()
            done = await finished
            samples.append((time.perf_counter() - t0) * 1000)
            if done.output != 2:
                raise RuntimeError(f"unexpected output {done.output}")
    return {
        "median": statistics.median(samples),
        "unit": "ms",
        "samples": samples,
        "p90": statistics.quantiles(samples, n=10)[-1],
    }


async def workload_d(root: Path, sync: str, runs: int) -> dict[str, Any]:
    async with Engine(config(root / "d", sync, workers=2)) as engine:
        await engine.deploy("approval", {"main.py": APPROVAL})
        warm = await engine.start_runs("approval", [{} for _ in range(20)])
        await _park(engine, [r.id for r in warm], 60)
        await _resolve_all(engine, [r.id for r in warm])
        pids = [os.getpid(), *engine.dispatcher.worker_pids]
        idle = sum(rss_kb(p) for p in pids)
        idle_threads = threads_of(os.getpid())
        t0 = time.perf_counter()
        started = await engine.start_runs("approval", [{} for _ in range(runs)])
        ids = [r.id for r in started]
        await _park(engine, ids, 600)
        park_s = time.perf_counter() - t0
        parked = sum(rss_kb(p) for p in pids)
        parked_threads = threads_of(os.getpid())
        active_in_memory = engine.dispatcher.active_count
        t1 = time.perf_counter()
        await _resolve_all(engine, ids)
        resume_s = time.perf_counter() - t1
    return {
        "median": (parked - idle) / 1024,
        "unit": "MB above idle",
        "idle_mb": idle / 1024,
        "parked_mb": parked / 1024,
        "per_run_kb": (parked - idle) / runs,
        "threads_idle": idle_threads,
        "threads_parked": parked_threads,
        "runs_held_in_memory_while_parked": active_in_memory,
        "park_seconds": park_s,
        "resolve_all_and_finish_seconds": resume_s,
    }


async def _park(engine: Engine, ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    from loomwork.store import runs as run_ops

    while True:
        statuses = await engine.db.read(_statuses, ids)
        if all(s == RunStatus.WAITING.value for s in statuses):
            return
        if time.monotonic() > deadline:
            raise RuntimeError("runs did not park in time")
        await asyncio.sleep(0.05)
    _ = run_ops


def _statuses(tx: Any, ids: list[str]) -> list[str]:
    import sqlalchemy as sa

    from loomwork.store.schema import runs

    out: list[str] = []
    for i in range(0, len(ids), 500):
        out += list(tx.conn.execute(sa.select(runs.c.status).where(runs.c.id.in_(ids[i : i + 500]))).scalars())
    return out


async def _resolve_all(engine: Engine, ids: list[str]) -> None:
    import sqlalchemy as sa

    from loomwork.store.schema import requests

    def request_ids(tx: Any) -> list[str]:
        out: list[str] = []
        for i in range(0, len(ids), 500):
            out += list(
                tx.conn.execute(sa.select(requests.c.id).where(requests.c.run_id.in_(ids[i : i + 500]))).scalars()
            )
        return out

    req_ids = await engine.db.read(request_ids)
    await asyncio.gather(*(engine.resolve_request(r, "Approve", {}, actor="ann@example.com") for r in req_ids))
    await wait_all(engine, ids, 600)


def workload_e(root: Path, sync: str, runs: int) -> dict[str, Any]:
    """Kill -9 a process holding ``runs`` in-flight runs; time a fresh process until all finish."""
    data_dir = root / "e"
    script = Path(__file__).resolve()
    child = subprocess.Popen(
        [sys.executable, str(script), "--recovery-child", str(data_dir), "--synchronous", sync, "--runs", str(runs)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith("IN-FLIGHT"):
            break
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    t0 = time.perf_counter()
    restart = subprocess.run(
        [sys.executable, str(script), "--recovery-finish", str(data_dir), "--synchronous", sync, "--runs", str(runs)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    elapsed = time.perf_counter() - t0
    if restart.returncode != 0:
        raise RuntimeError(restart.stderr[-2000:])
    detail = json.loads(restart.stdout.strip().splitlines()[-1])
    return {
        "median": elapsed,
        "unit": "s",
        "finished": detail["finished"],
        "notes": "process start to all runs finished; includes the runs' remaining 1 s durable sleep",
    }


async def recovery_child(data_dir: Path, sync: str, runs: int) -> None:
    engine = Engine(config(data_dir, sync, workers=2))
    await engine.start()
    await engine.deploy("recovery", {"main.py": RECOVERY})
    started = await engine.start_runs("recovery", [{} for _ in range(runs)])
    ids = [r.id for r in started]

    def first_steps(tx: Any) -> int:
        import sqlalchemy as sa

        from loomwork.store.schema import steps

        return int(tx.conn.execute(sa.select(sa.func.count()).select_from(steps).where(steps.c.seq == 1)).scalar_one())

    from loomwork.testing import wait_until

    async def all_started() -> bool:
        return await engine.db.read(first_steps) >= len(ids)

    await wait_until(all_started, timeout=300, interval=0.01, message="every run past its first step")
    print("IN-FLIGHT", flush=True)
    await asyncio.sleep(3600)


async def recovery_finish(data_dir: Path, sync: str, runs: int) -> None:
    async with Engine(config(data_dir, sync, workers=2)) as engine:
        import sqlalchemy as sa

        from loomwork.store.schema import runs as runs_table

        def all_ids(tx: Any) -> list[str]:
            return list(tx.conn.execute(sa.select(runs_table.c.id)).scalars())

        ids = await engine.db.read(all_ids)
        await wait_all(engine, ids, 240)
        print(json.dumps({"finished": len(ids)}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--synchronous", default="FULL")
    parser.add_argument("--workloads", default="a,b,c,d,e")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--recovery-child", type=Path)
    parser.add_argument("--recovery-finish", type=Path)
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args()
    if args.recovery_child:
        asyncio.run(recovery_child(args.recovery_child, args.synchronous, args.runs))
        return
    if args.recovery_finish:
        asyncio.run(recovery_finish(args.recovery_finish, args.synchronous, args.runs))
        return
    quick = args.quick
    results: dict[str, Any] = {"peer": "loomwork", "synchronous": args.synchronous}
    with tempfile.TemporaryDirectory(prefix="loomwork-bench-") as tmp:
        root = Path(tmp)
        chosen = args.workloads.split(",")
        if "a" in chosen:
            results["a"] = asyncio.run(workload_a(root, args.synchronous, 3 if quick else 7))
        if "b" in chosen:
            results["b"] = asyncio.run(workload_b(root, args.synchronous, 1 if quick else 3, 200 if quick else 1000))
        if "c" in chosen:
            results["c"] = asyncio.run(workload_c(root, args.synchronous, 10 if quick else 50))
        if "d" in chosen:
            results["d"] = asyncio.run(workload_d(root, args.synchronous, 1000 if quick else 10000))
        if "e" in chosen:
            results["e"] = workload_e(root, args.synchronous, 200 if quick else 1000)
    print(json.dumps(results))


if __name__ == "__main__":
    _ = threading
    main()
