"""Cron schedules: setting them (``Schedules``, developer role) and firing them (``Scheduler``, a loop).

Wiring (the server process)::

    scheduler = Scheduler(engine)
    await scheduler.start()      # after ``await engine.start()``
    ...
    await scheduler.stop()       # before ``await engine.stop()``

Any number of schedulers may run against one PostgreSQL database: every firing still becomes exactly one run
(see ``store/schedules.py``). On SQLite run one (the engine's file lock already allows one executing process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from ..aio import wait_event
from ..engine import Engine
from ..model import Role, Schedule
from ..store import schedules, utcnow
from .accounts import Access

log = logging.getLogger(__name__)


class Schedules:
    """Set and remove a workflow's schedule (developer role)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def set(
        self,
        access: Access,
        workflow: str,
        *,
        cron: str,
        timezone: str = "UTC",
        data: dict[str, Any] | None = None,
        enabled: bool = True,
    ) -> Schedule:
        access.require(Role.DEVELOPER)
        schedules.parse_cron(cron, timezone)  # a 422 before touching the database
        return await self.engine.db.write(
            schedules.set_schedule, access.workspace, workflow, cron, timezone, dict(data or {}), enabled, utcnow()
        )

    async def clear(self, access: Access, workflow: str) -> None:
        access.require(Role.DEVELOPER)
        await self.engine.db.write(schedules.clear_schedule, access.workspace, workflow)


class Scheduler:
    """Fires due schedules into queued runs, within a second of their time.

    ``start()`` spawns one task on the running event loop (call it after ``engine.start()``); ``stop()`` cancels
    it (call it before ``engine.stop()``). The loop sleeps until the earliest next firing, at most
    ``max_sleep`` seconds (a safety net for a lost notification), and wakes early on the ``schedule``
    notification that setting or removing a schedule publishes, on this node or any other (PostgreSQL).
    A firing missed while no scheduler ran is caught up on start if it is less than an hour old.
    """

    def __init__(self, engine: Engine, *, max_sleep: float = 30.0, batch: int = 100) -> None:
        self.engine = engine
        self.max_sleep = max_sleep
        self.batch = batch
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None

    async def start(self) -> None:
        if self._task is not None:
            return
        self._unsubscribe = self.engine.subscribe("schedule", self._on_change)
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="loomwork-scheduler")

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake(self) -> None:
        """Look at the schedules now."""
        self._wakeup.set()

    def _on_change(self, _payload: str) -> None:
        self._wakeup.set()

    async def _loop(self) -> None:
        while True:
            try:
                self._wakeup.clear()
                due = await self.engine.db.read(schedules.next_due)
                now = utcnow()
                if due is not None and due <= now:
                    fired = await self.engine.db.write(schedules.fire_due_schedules, now, self.batch)
                    if fired.runs:
                        log.info("schedules fired %d run(s)", len(fired.runs))
                    if fired.workflows == 0:
                        # Due rows locked by another scheduler (PostgreSQL): it is advancing them right now.
                        await self._sleep(0.1)
                    continue
                await self._sleep(self.max_sleep if due is None else (due - now).total_seconds())
            except Exception:  # the loop must outlive any one failure
                log.exception("firing schedules failed; retrying")
                await asyncio.sleep(1.0)

    async def _sleep(self, seconds: float) -> None:
        await wait_event(self._wakeup, min(max(seconds, 0.001), self.max_sleep))
