"""LISTEN/NOTIFY on PostgreSQL: how nodes learn of new runs, outcomes and timers without polling."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import psycopg

from ..store import Notification, parse_notify_payload

log = logging.getLogger(__name__)


class PostgresListener:
    def __init__(self, url: str, on_notifications: Callable[[list[Notification]], None]) -> None:
        self._url = url.replace("postgresql+psycopg://", "postgresql://", 1)
        self._on_notifications = on_notifications
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._listen(), name="loomwork-listen")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout=10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(self._task, return_exceptions=True), timeout=5)

    async def _listen(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._url, autocommit=True) as conn:
                    await conn.execute("LISTEN loomwork")
                    self._ready.set()
                    # Anything may have happened while we were not listening.
                    self._on_notifications([("queued", ""), ("timer", ""), ("outcome", "*")])
                    while True:
                        # Close the generator ourselves, also when cancelled: left suspended, it keeps the
                        # connection's lock and closing the connection then waits for it forever.
                        notifies = conn.notifies(timeout=5.0)
                        try:
                            async for notify in notifies:
                                self._on_notifications(parse_notify_payload(notify.payload))
                        finally:
                            await notifies.aclose()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("LISTEN connection lost; reconnecting")
                await asyncio.sleep(1.0)
