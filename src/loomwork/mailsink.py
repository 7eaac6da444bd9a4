"""A local SMTP sink for the examples: accepts every message and keeps it as a ``.eml`` file.

``loomwork demo`` and ``loomwork run`` start one for each ``smtp`` datasource of a ``datasources.toml`` that
sets ``sink = true``, on that datasource's host and port, so the examples send real mail over SMTP without a
mail server. Not for production: it accepts anything from anyone on that address.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class _Handler:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._counter = itertools.count(1)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{next(self._counter):04d}.eml"
        content = envelope.original_content or envelope.content
        (self.folder / name).write_bytes(content if isinstance(content, bytes) else str(content).encode())
        return "250 Message accepted for delivery"


class MailSink:
    """An SMTP server in a thread of this process; ``start()``/``stop()``."""

    def __init__(self, folder: Path, host: str = "127.0.0.1", port: int = 2525) -> None:
        self.folder = folder
        self.host = host
        self.port = port
        self._controller = Controller(_Handler(folder), hostname=host, port=port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def messages(self) -> list[Path]:
        return sorted(self.folder.glob("*.eml")) if self.folder.is_dir() else []
