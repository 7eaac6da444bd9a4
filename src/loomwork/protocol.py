"""The engine ⇄ worker protocol: length-prefixed JSON frames over a socket pair.

Engine to worker: ``load`` (a version's files), ``activate`` (a run and its journal), ``ack`` and ``outcome``
(answers to commands), ``drop`` (stop a run: cancelled or out of time), ``stop``.
Worker to engine: ``update`` (new commands and the run's state after it settled), ``step`` (a ``wf.step``
function finished), ``log`` (a log line from inside a step).

Frames are parsed by an ``asyncio.Protocol`` straight from the receive buffer: a stream reader's
``readexactly`` shifts its whole buffer per frame, which turns a burst of small frames quadratic.
"""

from __future__ import annotations

import asyncio
import socket
import struct
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
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(lambda: FrameProtocol(on_message, on_close), sock=sock)
    return protocol
