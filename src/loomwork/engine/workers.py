"""Worker processes as the engine sees them: spawn, send, receive, notice death."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

from ..protocol import FrameProtocol, FrameWriter, connect

log = logging.getLogger(__name__)

#: Environment variables a worker never sees: user code must not reach the engine's database or keys.
_SCRUBBED_PREFIXES = ("LOOMWORK_DATABASE", "LOOMWORK_SECRET", "PG", "DATABASE_URL", "MYSQL", "REDIS_URL")


def worker_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}


class WorkerProcess:
    def __init__(
        self,
        index: int,
        on_message: Callable[[WorkerProcess, dict[str, Any]], None],
        on_exit: Callable[[WorkerProcess, str], None],
        *,
        memory_limit_mb: int | None = None,
        cpu_limit: float = 60.0,
    ) -> None:
        self._cpu_limit = cpu_limit
        self.index = index
        self._on_message = on_message
        self._on_exit = on_exit
        self._memory_limit_mb = memory_limit_mb
        self.loaded_versions: set[int] = set()
        self.runs: set[str] = set()
        self.process: asyncio.subprocess.Process | None = None
        self._connection: FrameProtocol | None = None
        self._writer: FrameWriter | None = None
        self._closed = asyncio.Event()
        self._exit_task: asyncio.Task[None] | None = None
        self.stopping = False

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    async def start(self) -> None:
        parent, child = socket.socketpair()
        args = [
            sys.executable,
            "-m",
            "loomwork.worker",
            "--fd",
            str(child.fileno()),
            "--cpu-limit",
            str(self._cpu_limit),
        ]
        self.process = await asyncio.create_subprocess_exec(
            *args,
            pass_fds=[child.fileno()],
            env=worker_environment(),
            stdin=asyncio.subprocess.DEVNULL,
            preexec_fn=self._limit_resources if self._memory_limit_mb else None,
        )
        child.close()
        self._connection = await connect(parent, lambda message: self._on_message(self, message), self._lost)
        self._writer = FrameWriter(parent)

    def _limit_resources(self) -> None:
        import resource

        if self._memory_limit_mb:
            limit = self._memory_limit_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    def send(self, message: dict[str, Any]) -> None:
        """Send a frame to the worker; safe from any thread (the writer thread answers steps directly)."""
        if self._writer is not None:
            self._writer.send(message)

    def _lost(self, exc: BaseException | None) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        if exc is not None and not isinstance(exc, ConnectionError):
            log.error("worker %s sent a bad frame: %s", self.index, exc)
        if self._writer is not None:
            self._writer.close()
        self._exit_task = asyncio.get_running_loop().create_task(self._reap())

    async def _reap(self) -> None:
        """The connection is gone: the process is dead or dying. Make sure, then report it."""
        cause = "connection closed"
        if self.process is not None:
            try:
                cause = _describe_exit(await asyncio.wait_for(self.process.wait(), timeout=2))
            except TimeoutError:
                self.process.kill()
                cause = _describe_exit(await self.process.wait())
        self._on_exit(self, cause)

    async def stop(self, timeout: float = 5.0) -> None:
        self.stopping = True
        self.send({"t": "stop"})
        if self.process is None:
            return
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), timeout)
        if self._connection is not None:
            self._connection.close()
        if self._writer is not None:
            self._writer.close()
        if self._exit_task is not None:
            await asyncio.gather(self._exit_task, return_exceptions=True)

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
