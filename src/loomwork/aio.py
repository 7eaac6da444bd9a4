"""Small asyncio helpers the loops share."""

from __future__ import annotations

import asyncio
import contextlib


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds pass; True if it is set.

    Loops that are stopped by cancelling their task must use this rather than ``asyncio.wait_for``: on Python
    3.11, ``wait_for`` swallows a cancellation that arrives just as the awaited event is set, and the loop then
    runs on (gh-86296). ``asyncio.timeout`` awaits in the task itself, so a cancellation always propagates.
    """
    if event.is_set():
        return True
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()
    return event.is_set()
