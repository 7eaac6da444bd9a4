"""Entry point of a worker process: ``python -m loomwork.worker --fd N``.

The engine starts it with one end of a socket pair and an environment scrubbed of database URLs and keys.
``print`` and ``wf.log`` inside workflow code become lines of the run's log.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..model import LogLevel
from ..protocol import FrameWriter, connect
from ..replay import current_machine
from ..wf import current_log_sink
from .host import Host


class _CapturedStream(io.TextIOBase):
    """Routes ``print`` from workflow code into the log of the run that printed."""

    def __init__(self, fallback: Any) -> None:
        self._fallback = fallback
        self._pending: dict[int, str] = {}

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        sink = current_log_sink.get(None)
        machine = current_machine.get(None)
        if sink is None and machine is None:
            return int(self._fallback.write(text))
        key = id(sink) if sink is not None else id(machine)
        buffered = self._pending.get(key, "") + text
        *lines, rest = buffered.split("\n")
        self._pending[key] = rest
        for line in lines:
            if sink is not None:
                sink(LogLevel.INFO, line, {"stream": "print"})
            elif machine is not None:
                machine.emit_log(LogLevel.INFO, line, {"stream": "print"})
        return len(text)

    def flush(self) -> None:
        self._fallback.flush()


async def serve(fd: int, cpu_limit: float) -> None:
    code_root = Path(tempfile.mkdtemp(prefix=f"loomwork-worker-{os.getpid()}-"))
    done = asyncio.Event()
    host: Host | None = None

    def on_message(message: dict[str, Any]) -> None:
        if message.get("t") == "stop":
            done.set()
        elif host is not None:
            host.handle(message)

    def on_close(exc: BaseException | None) -> None:
        done.set()  # the engine is gone: nothing to do without it

    sock = socket.socket(fileno=fd)
    connection = await connect(sock, on_message, on_close)
    writer = FrameWriter(sock)
    host = Host(writer.send, code_root, cpu_limit=cpu_limit)
    try:
        await done.wait()
    finally:
        host.close()
        writer.close()
        connection.close()
        shutil.rmtree(code_root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="loomwork-worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--cpu-limit", type=float, default=60.0)
    args = parser.parse_args()
    # The engine decides when a worker stops; Ctrl-C in a terminal reaches the engine, which stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.stdout = _CapturedStream(sys.__stderr__)
    asyncio.run(serve(args.fd, args.cpu_limit))
