"""``sqlite`` datasources: a database file, queried with bound parameters in a thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

from ..queries import Query, bind_sql
from .base import ConnectorError


class SqliteConnector:
    def __init__(self, name: str, config: dict[str, Any], base_dir: Path | None = None) -> None:
        path = config.get("path")
        if not isinstance(path, str) or not path:
            raise ConnectorError(f"datasource {name!r}: sqlite needs config.path")
        self.name = name
        self.path = (base_dir / path) if base_dir is not None and not Path(path).is_absolute() else Path(path)
        self._create_from = config.get("create_from")
        self._base_dir = base_dir
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        await asyncio.to_thread(self._connect)

    def _connect(self) -> sqlite3.Connection:
        with self._lock:
            if self._conn is None:
                fresh = not self.path.exists()
                try:
                    conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                    conn.row_factory = sqlite3.Row
                    conn.execute("PRAGMA busy_timeout=10000")
                    if fresh and self._create_from:
                        script = Path(self._create_from)
                        if self._base_dir is not None and not script.is_absolute():
                            script = self._base_dir / script
                        conn.executescript(script.read_text(encoding="utf-8"))
                except (sqlite3.Error, OSError) as exc:
                    raise ConnectorError(f"datasource {self.name!r}: cannot open {self.path}: {exc}") from exc
                self._conn = conn
            return self._conn

    async def test(self) -> str:
        conn = await asyncio.to_thread(self._connect)
        return f"SQLite {sqlite3.sqlite_version} ({conn.execute('PRAGMA journal_mode').fetchone()[0]})"

    async def execute(self, query: Query, params: dict[str, Any], idempotency_key: str) -> Any:
        sql, values = bind_sql(query, params)
        return await asyncio.to_thread(self._run, sql, values)

    def _run(self, sql: str, values: list[Any]) -> Any:
        conn = self._connect()
        with self._lock:
            try:
                cursor = conn.execute(sql, values)
                if cursor.description is None:
                    return {"rowcount": cursor.rowcount}
                return [dict(row) for row in cursor.fetchall()]
            except sqlite3.Error as exc:
                raise ConnectorError(f"datasource {self.name!r}: {exc}") from exc

    async def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def create(name: str, config: dict[str, Any], secrets: dict[str, str], base_dir: Path | None) -> SqliteConnector:
    return SqliteConnector(name, config, base_dir)
