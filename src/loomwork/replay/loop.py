"""A deterministic asyncio event loop for workflow bodies.

Workflow code is plain asyncio (``asyncio.gather``, tasks, futures), but it must take the same path every time
it is replayed. A real event loop cannot promise that: its ready queue is fed by I/O and wall-clock timers. This
loop has neither. It runs ready callbacks in FIFO order until none are left (quiescence) and then returns control
to the caller, which decides what to deliver next. Timers are refused: time passes only through ``wf.sleep``.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
from asyncio import events
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

_T = TypeVar("_T")


class WallClockUseError(RuntimeError):
    """Workflow code used an asyncio timer, which cannot be replayed."""

    def __init__(self) -> None:
        super().__init__(
            "workflow code used an asyncio timer (asyncio.sleep, wait_for, timeout); "
            "use await wf.sleep(...) for durable waits"
        )


class DeterministicLoop(asyncio.AbstractEventLoop):
    """Runs callbacks in the order they were scheduled, with no I/O and no timers."""

    def __init__(self) -> None:
        self._ready: collections.deque[asyncio.Handle] = collections.deque()
        self._closed = False
        self._exception_handler: Any = None
        self.unhandled: list[BaseException] = []

    # -- driving -----------------------------------------------------------------------------------------
    def run_until_quiescent(self) -> None:
        """Run every ready callback, including those they schedule, then return."""
        previous = events._get_running_loop()
        events._set_running_loop(self)
        try:
            while self._ready:
                handle = self._ready.popleft()
                if not handle._cancelled:
                    handle._run()
        finally:
            events._set_running_loop(previous)

    # -- the parts of AbstractEventLoop that tasks and futures use -----------------------------------------
    def call_soon(  # type: ignore[override]
        self, callback: Callable[..., object], *args: Any, context: contextvars.Context | None = None
    ) -> asyncio.Handle:
        handle = asyncio.Handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def call_soon_threadsafe(  # type: ignore[override]
        self, callback: Callable[..., object], *args: Any, context: contextvars.Context | None = None
    ) -> asyncio.Handle:
        raise RuntimeError("workflow code may not use threads to reach its event loop")

    def call_later(  # type: ignore[override]
        self, delay: float, callback: Callable[..., object], *args: Any, **kw: Any
    ) -> Any:
        raise WallClockUseError()

    def call_at(  # type: ignore[override]
        self, when: float, callback: Callable[..., object], *args: Any, **kw: Any
    ) -> Any:
        raise WallClockUseError()

    def time(self) -> float:
        raise WallClockUseError()

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self)

    def create_task(
        self,
        coro: Coroutine[Any, Any, _T] | Generator[Any, None, _T],
        *,
        name: str | None = None,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[_T]:
        return asyncio.Task(coro, loop=self, name=name, context=context)

    def get_debug(self) -> bool:
        return False

    def is_running(self) -> bool:
        return events._get_running_loop() is self

    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._ready.clear()
        self._closed = True

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, BaseException):
            self.unhandled.append(exc)

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        self.default_exception_handler(context)

    def get_exception_handler(self) -> Any:
        return self._exception_handler

    def set_exception_handler(self, handler: Any) -> None:
        self._exception_handler = handler

    def _timer_handle_cancelled(self, handle: Any) -> None:  # pragma: no cover - timers are refused
        pass
