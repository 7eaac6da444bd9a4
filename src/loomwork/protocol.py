"""The engine ⇄ worker protocol: length-prefixed JSON frames over a socket pair.

Engine to worker: ``load`` (a version's files), ``activate`` (a run and its journal), ``ack`` and ``outcome``
(answers to commands), ``drop`` (stop a run: cancelled or out of time), ``stop``.
Worker to engine: ``update`` (new commands and the run's state after it settled), ``step`` (a ``wf.step``
function finished), ``log`` (a log line from inside a step), ``busy`` (watchdog: a run hogs the CPU).
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import orjson

_HEADER = struct.Struct(">I")
MAX_FRAME = 256 * 1024 * 1024


class ProtocolError(Exception):
    """The peer sent something that is not a frame."""


def encode(message: dict[str, Any]) -> bytes:
    body = orjson.dumps(message, default=_fallback, option=orjson.OPT_NON_STR_KEYS)
    return _HEADER.pack(len(body)) + body


def _fallback(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next message, or None when the peer closed the connection."""
    try:
        header = await reader.readexactly(_HEADER.size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_FRAME:
        raise ProtocolError(f"frame of {size} bytes is over the limit")
    try:
        body = await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    message = orjson.loads(body)
    if not isinstance(message, dict):
        raise ProtocolError("a frame must hold a JSON object")
    return message
