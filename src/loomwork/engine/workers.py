"""Worker processes as the engine sees them: spawn, send, receive, notice death."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

from ..protocol import encode, read_frame

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
    ) -> None:
        self.index = index
        self._on_message = on_message
        self._on_exit = on_exit
        self._memory_limit_mb = memory_limit_mb
        self.loaded_versions: set[int] = set()
        self.runs: set[str] = set()
        self.process: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self.stopping = False

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    async def start(self) -> None:
        parent, child = socket.socketpair()
        args = [sys.executable, "-m", "loomwork.worker", "--fd", str(child.fileno())]
        self.process = await asyncio.create_subprocess_exec(
            *args,
            pass_fds=[child.fileno()],
            env=worker_environment(),
            stdin=asyncio.subprocess.DEVNULL,
            preexec_fn=self._limit_resources if self._memory_limit_mb else None,
        )
        child.close()
        reader, self._writer = await asyncio.open_unix_connection(sock=parent, limit=64 * 1024 * 1024)
        self._reader_task = asyncio.get_running_loop().create_task(self._read(reader))

    def _limit_resources(self) -> None:
        import resource

        if self._memory_limit_mb:
            limit = self._memory_limit_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    def send(self, message: dict[str, Any]) -> None:
        if self._writer is None or self._writer.is_closing():
            return
        self._writer.write(encode(message))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        cause = "connection closed"
        try:
            while True:
                message = await read_frame(reader)
                if message is None:
                    break
                self._on_message(self, message)
        except Exception as exc:  # a broken frame means a broken worker: treat like a crash
            log.exception("worker %s sent a bad frame", self.index)
            cause = f"protocol error: {exc}"
        finally:
            if self.process is not None:
                try:
                    code = await asyncio.wait_for(self.process.wait(), timeout=2)
                    cause = _describe_exit(code)
                except TimeoutError:
                    self.process.kill()
            if self._writer is not None:
                self._writer.close()
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
            await self.process.wait()
        if self._reader_task is not None:
            await asyncio.gather(self._reader_task, return_exceptions=True)

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
