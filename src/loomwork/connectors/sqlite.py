"""``sqlite`` datasources: a database file, queried with bound parameters in a thread.

One connection per datasource, used by one statement at a time (SQLite writes are serialised anyway), in
autocommit mode: each statement is its own transaction. ``busy_timeout`` is 10 s. Param values: str, int,
float, bool (0/1) and null are bound as themselves; dicts and lists are bound as JSON text (use SQLite's JSON
functions on them). A query's ``timeout`` interrupts the statement (``sqlite3.Connection.interrupt``) when it
expires, or when the caller cancels the call, so the connection is free for the next query at once.

Results: SQLite returns int, float, text, BLOB and NULL; BLOBs become base64 strings, non-finite floats strings
(see :mod:`loomwork.connectors.sqlvalues`). JSON stored as text comes back as text (``json_extract`` or the
workflow code may parse it).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from ..queries import Query, bind_sql
from .base import ConnectorError
from .sqlvalues import json_params, row_dicts

BUSY_TIMEOUT_MS = 10_000


class _Call:
    """One statement's progress, so a timeout interrupts that statement only."""

    __slots__ = ("cancelled", "running", "state")

    def __init__(self) -> None:
        self.state = threading.Lock()
        self.cancelled = False
        self.running = False


class SqliteConnector:
    def __init__(self, name: str, config: dict[str, Any], base_dir: Path | None = None) -> None:
        path = config.get("path")
        if not isinstance(path, str) or not path:
            raise ConnectorError(f"datasource {name!r}: sqlite needs config.path")
        self.name = name
        self.path = (base_dir / path) if base_dir is not None and not Path(path).is_absolute() else Path(path)
        self._create_from = config.get("create_from")
        self._base_dir = base_dir
        self._lock = threading.Lock()  # one statement at a time on the connection
        self._open_lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _error(self, message: object) -> ConnectorError:
        return ConnectorError(f"datasource {self.name!r}: {message}")

    async def open(self) -> None:
        await asyncio.to_thread(self._connect)

    def _connect(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is not None:
            return conn
        with self._open_lock:
            if self._conn is None:
                fresh = not self.path.exists()
                try:
                    conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                    if fresh and self._create_from:
                        script = Path(self._create_from)
                        if self._base_dir is not None and not script.is_absolute():
                            script = self._base_dir / script
                        conn.executescript(script.read_text(encoding="utf-8"))
                except (sqlite3.Error, OSError) as exc:
                    raise self._error(f"cannot open {self.path}: {exc}") from exc
                self._conn = conn
            return self._conn

    async def test(self) -> str:
        return await asyncio.to_thread(self._version)

    def _version(self) -> str:
        conn = self._connect()
        with self._lock:
            try:
                mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
        return f"SQLite {sqlite3.sqlite_version} ({mode})"

    async def execute(self, query: Query, params: dict[str, Any], idempotency_key: str) -> Any:
        sql, values = bind_sql(query, params)
        values = json_params(values, json.dumps)
        conn = await asyncio.to_thread(self._connect) if self._conn is None else self._conn
        call = _Call()
        run = asyncio.get_running_loop().run_in_executor(None, self._run, conn, call, sql, values)
        try:
            if query.timeout:
                async with asyncio.timeout(query.timeout):
                    return await asyncio.shield(run)
            return await asyncio.shield(run)
        except TimeoutError:
            await self._interrupt(conn, call, run)
            raise self._error(f"query {query.name!r} timed out after {query.timeout:g} s") from None
        except asyncio.CancelledError:
            await self._interrupt(conn, call, run)
            raise

    @staticmethod
    async def _interrupt(conn: sqlite3.Connection, call: _Call, run: asyncio.Future[Any]) -> None:
        """Stop this call's statement (never another's) and wait until its thread has let go of the connection."""
        while not run.done():
            with call.state:
                call.cancelled = True
                if call.running:
                    conn.interrupt()  # repeated: an interrupt landing just before the statement starts is lost
            await asyncio.wait((run,), timeout=0.05)
        if not run.cancelled():
            run.exception()  # retrieved: the interrupted statement's error is not the caller's

    def _run(self, conn: sqlite3.Connection, call: _Call, sql: str, values: list[Any]) -> Any:
        with self._lock:
            with call.state:
                if call.cancelled:
                    raise self._error("cancelled")
                call.running = True
            try:
                cursor = conn.execute(sql, values)
                if cursor.description is None:
                    return {"rowcount": cursor.rowcount}
                names = [column[0] for column in cursor.description]
                return row_dicts(names, cursor.fetchall())
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
            except (OverflowError, ValueError) as exc:  # e.g. an int beyond 64 bits, a NUL in text
                raise self._error(f"cannot bind a param: {exc}") from exc
            finally:
                with call.state:
                    call.running = False

    async def close(self) -> None:
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        with self._open_lock, self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def create(name: str, config: dict[str, Any], secrets: dict[str, str], base_dir: Path | None) -> SqliteConnector:
    return SqliteConnector(name, config, base_dir)
