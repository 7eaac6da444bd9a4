"""A waiting run holds no process, thread or coroutine: park 10,000 runs on requests, resolve all, all finish."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import make_engine

from loomwork.model import RunStatus
from loomwork.store.schema import requests, runs
from loomwork.testing import wait_until

APPROVAL = """
from loomwork import wf

async def execute_workflow(data):
    decision = await wf.assign_request("approve", ["Approve", "Reject"], to_users=["ann@example.com"])
    return {"n": data["n"], "resolution": decision.resolution}
"""

RUNS = int(os.environ.get("LOOMWORK_SCALE_RUNS", "10000"))


def _count_by_status(tx: Any) -> dict[str, int]:
    rows = tx.conn.execute(sa.select(runs.c.status, sa.func.count()).group_by(runs.c.status))
    return {status: count for status, count in rows}


def _pending_request_ids(tx: Any) -> list[str]:
    return list(tx.conn.execute(sa.select(requests.c.id).where(requests.c.status == "pending")).scalars())


@pytest.mark.slow
async def test_ten_thousand_parked_runs_hold_nothing_then_all_finish(database_url: str, tmp_path: Path) -> None:
    async with make_engine(database_url, tmp_path, workers=2, max_active_runs=2000) as engine:
        await engine.deploy("approval", {"main.py": APPROVAL})
        threads_before = threading.active_count()
        await engine.start_runs("approval", [{"n": n} for n in range(RUNS)])

        async def all_parked() -> bool:
            return (await engine.db.read(_count_by_status)).get(RunStatus.WAITING.value, 0) == RUNS

        await wait_until(all_parked, timeout=240, interval=0.2, message=f"{RUNS} runs parked")

        # Nothing is held for a waiting run: not in the engine, not in a worker, not a thread.
        assert engine.dispatcher.active_count == 0
        assert engine.dispatcher.runs_in_workers == 0
        assert threading.active_count() <= threads_before + 2

        ids = await engine.db.read(_pending_request_ids)
        assert len(ids) == RUNS
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            await asyncio.gather(*(engine.resolve_request(i, "Approve", {}, actor="ann@example.com") for i in chunk))

        async def all_succeeded() -> bool:
            return (await engine.db.read(_count_by_status)).get(RunStatus.SUCCEEDED.value, 0) == RUNS

        await wait_until(all_succeeded, timeout=300, interval=0.2, message=f"{RUNS} runs succeeded")
        assert await engine.db.read(_count_by_status) == {RunStatus.SUCCEEDED.value: RUNS}
