"""Engine settings. Defaults are documented in ``docs/configuration.md``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class EngineConfig:
    data_dir: Path = field(default_factory=lambda: Path(".loomwork"))
    database_url: str | None = None  # None: embedded SQLite in data_dir
    workers: int = field(default_factory=lambda: max(1, min(4, os.cpu_count() or 1)))
    max_active_runs: int = 2000
    sqlite_synchronous: str = "FULL"
    heartbeat_interval: float = 2.0
    node_timeout: float = 10.0
    max_crashes: int = 3
    worker_memory_mb: int | None = None
    run_cpu_limit: float = 60.0  # seconds workflow code may run without awaiting
    public_url: str = "http://127.0.0.1:8080"
    secret_key: bytes = b""
    previous_secret_keys: tuple[bytes, ...] = ()  # still open secrets sealed before a key rotation
    execute: bool = True  # False: an API-only node that never claims runs

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'loomwork.db').resolve()}"
