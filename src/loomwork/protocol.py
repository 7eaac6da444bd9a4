"""The engine ⇄ worker protocol: length-prefixed JSON frames over a socket pair.

Engine to worker: ``load`` (a version's files), ``activate`` (a run and its journal), ``ack`` and ``outcome``
(answers to commands), ``drop`` (stop a run: cancelled or out of time), ``stop``.
Worker to engine: ``update`` (new commands and the run's state after it settled), ``step`` (a ``wf.step``
function finished), ``log`` (a log line from inside a step).

Frames are read by an ``asyncio.Protocol`` straight from the receive
buffer (a stream reader's ``readexactly`` shifts its whole buffer per frame, which turns a burst of frames
quadratic) and written by a :class:`FrameWriter` that any thread may call: a step finished on a thread, or a
commit on the engine's writer thread, goes out at once instead of first waking an event loop, and on this kind
of machine a wake-up costs as much as the work itself.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

import orjson

_HEADER = struct.Struct(">I")
MAX_FRAME = 256 * 1024 * 1024

OnMessage = Callable[[dict[str, Any]], None]
OnClose = Callable[[BaseException | None], None]


class ProtocolError(Exception):
    """The peer sent something that is not a frame."""


def encode(message: dict[str, Any]) -> bytes:
    body = orjson.dumps(message, default=_fallback, option=orjson.OPT_NON_STR_KEYS)
    return _HEADER.pack(len(body)) + body


def _fallback(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


class FrameProtocol(asyncio.Protocol):
    def __init__(self, on_message: OnMessage, on_close: OnClose) -> None:
        self._on_message = on_message
        self._on_close = on_close
        self._buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        offset = 0
        size = len(buffer)
        try:
            while size - offset >= 4:
                (length,) = _HEADER.unpack_from(buffer, offset)
                if length > MAX_FRAME:
                    raise ProtocolError(f"frame of {length} bytes is over the limit")
                end = offset + 4 + length
                if end > size:
                    break
                message = orjson.loads(memoryview(buffer)[offset + 4 : end])
                offset = end
                if not isinstance(message, dict):
                    raise ProtocolError("a frame must hold a JSON object")
                self._on_message(message)
        except (ProtocolError, orjson.JSONDecodeError) as exc:
            if self.transport is not None:
                self.transport.close()
            self._on_close(exc)
            return
        finally:
            del buffer[:offset]

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_close(exc)

    def send(self, message: dict[str, Any]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode(message))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect(sock: socket.socket, on_message: OnMessage, on_close: OnClose) -> FrameProtocol:
    """Read frames from ``sock`` on the running loop."""
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(lambda: FrameProtocol(on_message, on_close), sock=sock)
    return protocol


class FrameWriter:
    """Writes frames to a socket the event loop reads from; safe to call from any thread.

    It writes through its own descriptor (a ``dup``), under a lock, so frames never interleave. The socket is
    non-blocking (the loop set it so); a full buffer is waited out here, off the loop's books.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = socket.socket(fileno=os.dup(sock.fileno()))
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
        self._lock = threading.Lock()
        self.closed = False

    def send(self, message: dict[str, Any]) -> None:
        """Send one frame. Raises ``TypeError`` for a message that is not JSON; a closed peer is ignored
        (the reading side notices and reports it)."""
        data = memoryview(encode(message))
        with self._lock:
            if self.closed:
                return
            try:
                while data:
                    try:
                        sent = self._sock.send(data)
                    except BlockingIOError:
                        select.select([], [self._sock], [], 1.0)
                        continue
                    data = data[sent:]
            except OSError:
                self.closed = True

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._sock.close()
