"""Group commit: every write the engine makes goes through one thread that commits them in batches.

Concurrent runs each need their step durable before they go on. Committing each alone costs one fsync per
step; here the writer thread takes everything queued since its last commit and commits it as one transaction,
so a hundred runs finishing a step at once cost one fsync. Results are handed back to the event loop in the
order the operations were submitted, which keeps each run's acks in order.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ..store import Notification, Store

log = logging.getLogger(__name__)

T = TypeVar("T")

#: A queued write: the operation, its arguments, the future for its result, and what to do in the writer
#: thread right after it committed (answer a worker without waking the event loop).
Then = Callable[[Any], None]
_Op = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]", Then | None]


class Database:
    """Async front of a :class:`Store`: batched writes on one thread, reads on a small pool."""

    def __init__(self, store: Store, *, max_batch: int = 512) -> None:
        self.store = store
        self._max_batch = max_batch
        self._queue: list[_Op] = []
        self._cond = threading.Condition()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._conn: Any = None
        #: (the engine's store listener, the same handler to call on the loop): the writer hands its own
        #: commits' notifications to the loop together with the results, one wake-up per batch.
        self.own_listener: tuple[Any, Callable[[list[Notification]], None]] | None = None
        self.batches = 0
        self.ops = 0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="loomwork-db-writer", daemon=True)
        self._thread.start()

    async def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    def submit(self, op: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        """Queue a write; the future resolves once it is committed (or fails)."""
        return self.submit_then(None, op, *args, **kwargs)

    def submit_then(self, then: Then | None, op: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        """Queue a write; once committed, ``then(result)`` runs on the writer thread, in commit order.

        ``then`` must be quick and thread-safe (sending a frame is); it is how answers reach workers in the
        order their writes committed. The future resolves afterwards on the event loop.
        """
        if kwargs:
            op = functools.partial(op, **kwargs)
        if self._loop is None:
            raise RuntimeError("Database.start() was not called")
        future: asyncio.Future[T] = self._loop.create_future()
        with self._cond:
            if self._closed:
                raise RuntimeError("the database writer is closed")
            self._queue.append((op, args, future, then))
            if len(self._queue) == 1:
                self._cond.notify()
        return future

    async def write(self, op: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self.submit(op, *args, **kwargs)

    async def read(self, op: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(self.store.read, op, *args)

    # -- the writer thread ----------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue and self._closed:
                    if self._conn is not None:
                        self._conn.close()
                    return
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
            self._commit(batch)

    def _commit(self, batch: list[_Op]) -> None:
        outcomes: list[tuple[asyncio.Future[Any], bool, Any]] = []
        notifications: list[Notification] = []
        exclude = self.own_listener[0] if self.own_listener else None
        try:
            if self._conn is None or self._conn.closed or self._conn.invalidated:
                self._conn = self.store.writer_connection()
            results, notifications = self.store.commit_batch(_merge_rows(batch), self._conn)
            self.store.publish(notifications, exclude=exclude)
            outcomes = [(fut, True, result) for (_, _, fut, _), result in zip(batch, results, strict=True)]
        except Exception:
            # One operation failed and took the batch with it: commit each alone so only it fails.
            if self._conn is not None and self._conn.invalidated:
                self._conn.close()
                self._conn = None
            for op, args, fut, _ in batch:
                try:
                    result, notes = self.store.commit_batch([(op, args)])
                    self.store.publish(notes, exclude=exclude)
                    notifications += notes
                    outcomes.append((fut, True, result[0]))
                except Exception as exc:
                    outcomes.append((fut, False, exc))
        self.batches += 1
        self.ops += len(batch)
        for (_, _, _, then), (_, ok, result) in zip(batch, outcomes, strict=True):
            if then is not None and ok:
                try:
                    then(result)
                except Exception:
                    log.exception("answering after a commit failed")
        loop = self._loop
        if loop is not None and not loop.is_closed():
            handler = self.own_listener[1] if self.own_listener and notifications else None
            loop.call_soon_threadsafe(_deliver, outcomes, handler, notifications)


def _merge_rows(batch: list[_Op]) -> list[tuple[Callable[..., Any], tuple[Any, ...]]]:
    """Fold every call of a row-appending op (``merge_rows = True``) into its first call: one executemany
    instead of one statement per step. Such ops only insert rows that no other op of the batch reads and
    return None, so a folded call becomes a no-op in its place and results stay aligned with the batch.
    """
    merged: dict[Any, list[Any]] = {}
    ops: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
    for op, args, _, _ in batch:
        if getattr(op, "merge_rows", False):
            if op in merged:
                merged[op].extend(args[0])
                ops.append((_noop, ()))
                continue
            merged[op] = rows = list(args[0])
            ops.append((op, (rows,)))
        else:
            ops.append((op, args))
    return ops


def _noop(tx: Any) -> None:
    return None


def _deliver(
    outcomes: list[tuple[asyncio.Future[Any], bool, Any]],
    handler: Callable[[list[Notification]], None] | None,
    notifications: list[Notification],
) -> None:
    for future, ok, value in outcomes:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
    # After the results: their callbacks are scheduled first, so a run's waiter sees its final state.
    if handler is not None:
        handler(notifications)
