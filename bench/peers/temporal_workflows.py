"""Workflow and activity definitions for temporal_bench.py.

Kept in their own module, as the Temporal Python SDK recommends, so the workflow
sandbox re-imports only this small file.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow

ACT_TIMEOUT = timedelta(seconds=30)

# Incremented by activities (activities run outside the workflow sandbox, in the
# worker process itself).
COUNTERS = {"first": 0, "last": 0}


@activity.defn
async def inc(x: int) -> int:
    return x + 1


@activity.defn
async def inc_first(x: int) -> int:
    COUNTERS["first"] += 1
    return x + 1


@activity.defn
async def inc_last(x: int) -> int:
    COUNTERS["last"] += 1
    return x + 1


@workflow.defn
class SeqActivities:
    """n sequential (remote) activities."""

    @workflow.run
    async def run(self, n: int) -> int:
        x = 0
        for _ in range(n):
            x = await workflow.execute_activity(inc, x, start_to_close_timeout=ACT_TIMEOUT)
        return x


@workflow.defn
class SeqLocalActivities:
    """n sequential local activities."""

    @workflow.run
    async def run(self, n: int) -> int:
        x = 0
        for _ in range(n):
            x = await workflow.execute_local_activity(inc, x, start_to_close_timeout=ACT_TIMEOUT)
        return x


@workflow.defn
class ThreeActivities:
    @workflow.run
    async def run(self, x: int) -> int:
        for _ in range(3):
            x = await workflow.execute_activity(inc, x, start_to_close_timeout=ACT_TIMEOUT)
        return x


@workflow.defn
class WaitSignal:
    """Waits for the `go` signal; then returns (or runs one activity first)."""

    def __init__(self) -> None:
        self.value: int | None = None

    @workflow.signal
    def go(self, value: int) -> None:
        self.value = value

    @workflow.run
    async def run(self, with_activity: bool) -> int:
        await workflow.wait_condition(lambda: self.value is not None)
        assert self.value is not None
        if with_activity:
            return await workflow.execute_activity(inc, self.value, start_to_close_timeout=ACT_TIMEOUT)
        return self.value + 1


@workflow.defn
class Recover:
    """activity; durable timer until a common wall-clock time; activity."""

    @workflow.run
    async def run(self, x: int, wake_at: float) -> int:
        x = await workflow.execute_activity(inc_first, x, start_to_close_timeout=ACT_TIMEOUT)
        delay = wake_at - workflow.now().timestamp()
        if delay > 0:
            await asyncio.sleep(delay)  # a durable server-side timer inside a workflow
        x = await workflow.execute_activity(inc_last, x, start_to_close_timeout=ACT_TIMEOUT)
        return x


ALL_WORKFLOWS = [SeqActivities, SeqLocalActivities, ThreeActivities, WaitSignal, Recover]
ALL_ACTIVITIES = [inc, inc_first, inc_last]
