"""``mysql`` datasources (MySQL and MariaDB): aiomysql, one connection pool per datasource.

Why aiomysql: it is pure Python on top of PyMySQL (the reference pure-Python MySQL protocol implementation), so
it installs from a small wheel on every platform and Python version with no compiler or C library, speaks to
MySQL and MariaDB alike, and is maintained by aio-libs. ``asyncmy`` is faster on large result sets but ships a
compiled extension per Python version; a query step's cost is dominated by the network round trip either way.

Connection: config ``host``, ``port`` (3306), ``database``, ``user`` and ``options`` (``connect_timeout``
(default 10 s), ``charset`` (``utf8mb4``), ``sql_mode``, ``ssl`` (true: verify with the system CAs),
``time_zone`` (``+00:00``)) with the secret ``password``; or the secret ``url``
(``mysql://user:pass@host:port/db``; config fields given beside it override the URL's). The pool holds 0 to
``pool_size`` (default 5) connections, opened lazily.

Every statement autocommits. Sessions run with ``time_zone = '+00:00'``, so ``TIMESTAMP`` values come back as
UTC RFC 3339 strings (``...+00:00``) while ``DATETIME`` values, which carry no zone, come back naive.
Bindings are ``%s`` params escaped by the driver (a literal ``%`` in the SQL is escaped first); dict and list
params are sent as JSON text. ``JSON`` columns are parsed, on MariaDB too (where JSON is ``LONGTEXT`` with a
``json_valid`` check, found once per table). ``BIT`` → int, ``TIME`` → ``"HH:MM:SS[.ffffff]"``; booleans are
``TINYINT`` (0/1) in MySQL. Other values are converted by :mod:`loomwork.connectors.sqlvalues`.

Timeouts: a query's ``timeout`` is enforced by the server on MariaDB (``SET STATEMENT max_statement_time``) and
by asyncio everywhere; when asyncio gives up, the connection is dropped from the pool and the statement is
killed from another connection (``KILL``), so the server does not go on running it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import re
import ssl as ssl_module
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomysql  # type: ignore[import-untyped]
import pymysql  # type: ignore[import-untyped]

from ..queries import Query
from .base import ConnectorError
from .sqlvalues import Scrubber, bind_format_sql, json_params, to_json

DEFAULT_CONNECT_TIMEOUT = 10
_OPTIONS = ("connect_timeout", "charset", "sql_mode", "ssl", "time_zone")
_JSON, _TIMESTAMP, _TIME, _BIT = 245, 7, 11, 16
_TEXT_TYPES = frozenset({249, 250, 251, 252, 253, 254})  # tiny/medium/long/blob, var_string, string
_BINARY_CHARSET = 63
_TIMEOUT_ERRORS = frozenset({1969, 3024})  # MariaDB max_statement_time, MySQL max_execution_time
_JSON_CHECK = re.compile(r"^json_valid\(`((?:[^`]|``)+)`\)$", re.IGNORECASE)
_JSON_CACHE_SECONDS = 60.0


class _Cursor(aiomysql.Cursor):  # type: ignore[misc]
    """A cursor that does not turn server warnings into Python warnings (nor ask for them: no extra round trip)."""

    async def _show_warnings(self, conn: Any) -> None:
        return None


def _parse_url(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme not in ("mysql", "mariadb", "mysql+aiomysql", "mysql+pymysql"):
        raise ValueError("the url secret must start with mysql://")
    out: dict[str, Any] = {}
    if parts.hostname:
        out["host"] = parts.hostname
    if parts.port:
        out["port"] = parts.port
    if parts.username:
        out["user"] = unquote(parts.username)
    if parts.password is not None:
        out["password"] = unquote(parts.password)
    if parts.path.strip("/"):
        out["db"] = unquote(parts.path.strip("/"))
    return out


def _time_text(value: dt.timedelta) -> str:
    sign = "-" if value < dt.timedelta(0) else ""
    total = abs(value)
    hours, rest = divmod(total.days * 86400 + total.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    frac = f".{total.microseconds:06d}" if total.microseconds else ""
    return f"{sign}{hours:02d}:{minutes:02d}:{seconds:02d}{frac}"


def _convert(value: Any, type_code: int, is_json: bool) -> Any:
    if value is None:
        return None
    if is_json and isinstance(value, str | bytes):
        return to_json(json.loads(value))
    if type_code == _TIMESTAMP and isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC).isoformat()
    if type_code == _TIME and isinstance(value, dt.timedelta):
        return _time_text(value)
    if type_code == _BIT and isinstance(value, bytes):
        return int.from_bytes(value, "big")
    return to_json(value)


class MysqlConnector:
    def __init__(self, name: str, config: dict[str, Any], secrets: dict[str, str]) -> None:
        self.name = name
        self._scrub = Scrubber(secrets)
        kwargs: dict[str, Any] = {"port": 3306, "charset": "utf8mb4", "connect_timeout": DEFAULT_CONNECT_TIMEOUT}
        if secrets.get("url"):
            try:
                kwargs.update(_parse_url(secrets["url"]))
            except ValueError as exc:
                raise self._error(f"bad url secret: {exc}") from None
        for field, key in (("host", "host"), ("port", "port"), ("database", "db"), ("user", "user")):
            if config.get(field) is not None:
                kwargs[key] = config[field]
        if secrets.get("password"):
            kwargs["password"] = secrets["password"]
        options = dict(config.get("options") or {})
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise self._error(f"unknown mysql option(s) {', '.join(unknown)} (allowed: {', '.join(_OPTIONS)})")
        time_zone = str(options.pop("time_zone", "+00:00"))
        if not re.fullmatch(r"[+-]\d{2}:\d{2}|[A-Za-z_/]+|SYSTEM", time_zone):
            raise self._error(f"bad time_zone option {time_zone!r}")
        self._utc = time_zone in ("+00:00", "-00:00", "UTC")
        if options.pop("ssl", False):
            kwargs["ssl"] = ssl_module.create_default_context()
        kwargs.update(options)
        kwargs["init_command"] = f"SET time_zone = '{time_zone}'"
        kwargs["autocommit"] = True
        kwargs.setdefault("host", "127.0.0.1")
        self._kwargs = kwargs
        self._pool_size = int(config.get("pool_size") or 5)
        self._pool: Any = None
        self._pool_lock = asyncio.Lock()
        self._mariadb: bool | None = None
        self._json_columns: dict[tuple[str, str], tuple[float, frozenset[str]]] = {}
        self._background: set[asyncio.Task[None]] = set()

    def _error(self, message: object) -> ConnectorError:
        text = message
        if isinstance(message, pymysql.err.MySQLError) and len(message.args) == 2:
            text = f"({message.args[0]}) {message.args[1]}"
        return ConnectorError(self._scrub(f"datasource {self.name!r}: {text}"))

    async def open(self) -> None:
        await self._get_pool()

    async def _get_pool(self) -> Any:
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    self._pool = await aiomysql.create_pool(minsize=0, maxsize=self._pool_size, **self._kwargs)
        return self._pool

    async def _connect(self) -> Any:
        try:
            return await aiomysql.connect(**self._kwargs)
        except (pymysql.err.MySQLError, OSError) as exc:
            raise self._error(exc) from exc

    async def test(self) -> str:
        conn = await self._connect()
        try:
            async with conn.cursor(_Cursor) as cursor:
                await cursor.execute("SELECT VERSION()")
                row = await cursor.fetchone()
            version = str(row[0]) if row else ""
            return version if "mariadb" in version.lower() else f"MySQL {version}"
        except pymysql.err.MySQLError as exc:
            raise self._error(exc) from exc
        finally:
            conn.close()

    async def execute(self, query: Query, params: dict[str, Any], idempotency_key: str) -> Any:
        sql, values = bind_format_sql(query, params)
        args = json_params(values, json.dumps) if values else None
        pool = await self._get_pool()
        try:
            conn = await pool.acquire()
        except (pymysql.err.MySQLError, OSError) as exc:
            raise self._error(exc) from exc
        except RuntimeError as exc:  # the pool is closing
            raise self._error(exc) from exc
        healthy = False
        try:
            if query.timeout:
                if self._mariadb is None:
                    self._mariadb = "mariadb" in conn.get_server_info().lower()
                if self._mariadb:
                    sql = f"SET STATEMENT max_statement_time={query.timeout:g} FOR {sql}"
                async with asyncio.timeout(query.timeout):
                    result = await self._statement(conn, sql, args)
            else:
                result = await self._statement(conn, sql, args)
            healthy = True
            return result
        except TimeoutError:
            raise self._timed_out(query) from None
        except pymysql.err.MySQLError as exc:
            code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
            healthy = 1000 <= code < 2000  # the server answered with an error; 2xxx are client/connection errors
            if code in _TIMEOUT_ERRORS:
                raise self._timed_out(query) from None
            raise self._error(exc) from exc
        finally:
            if not healthy:
                self._abandon(conn)
            pool.release(conn)

    def _timed_out(self, query: Query) -> ConnectorError:
        return self._error(f"query {query.name!r} timed out after {query.timeout:g} s")

    def _abandon(self, conn: Any) -> None:
        """Drop a connection in an unknown state; kill what it may still be running on the server."""
        try:
            thread_id = int(conn.thread_id())
        except (AttributeError, IndexError, TypeError):
            thread_id = 0
        conn.close()
        if thread_id:
            task = asyncio.get_running_loop().create_task(self._kill(thread_id))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _kill(self, thread_id: int) -> None:
        with contextlib.suppress(Exception):
            conn = await aiomysql.connect(**self._kwargs)
            try:
                async with conn.cursor(_Cursor) as cursor:
                    await cursor.execute(f"KILL {int(thread_id)}")
            finally:
                conn.close()

    async def _statement(self, conn: Any, sql: str, args: list[Any] | None) -> Any:
        async with conn.cursor(_Cursor) as cursor:
            await cursor.execute(sql, args)
            if cursor.description is None:
                return {"rowcount": cursor.rowcount}
            rows = await cursor.fetchall()
            fields = cursor._result.fields if cursor._result is not None else []
            json_flags = await self._json_flags(conn, fields)
            names = [d[0] for d in cursor.description]
            types = [d[1] for d in cursor.description]
            if not self._utc:
                types = [0 if t == _TIMESTAMP else t for t in types]
            plan = list(zip(names, types, json_flags, strict=True))
            return [
                {name: _convert(value, code, is_json) for (name, code, is_json), value in zip(plan, row, strict=True)}
                for row in rows
            ]

    async def _json_flags(self, conn: Any, fields: list[Any]) -> list[bool]:
        """Which result columns hold JSON: MySQL says so; on MariaDB, a text column of a table with json_valid."""
        flags = [field.type_code == _JSON for field in fields]
        for index, field in enumerate(fields):
            if (
                field.type_code in _TEXT_TYPES
                and field.charsetnr != _BINARY_CHARSET
                and getattr(field, "org_table", "")
                and getattr(field, "db", "")
            ):
                db = field.db.decode() if isinstance(field.db, bytes) else str(field.db)
                columns = await self._table_json_columns(conn, db, field.org_table)
                flags[index] = field.org_name in columns
        return flags

    async def _table_json_columns(self, conn: Any, db: str, table: str) -> frozenset[str]:
        key = (db, table)
        cached = self._json_columns.get(key)
        now = time.monotonic()
        if cached is not None and now - cached[0] < _JSON_CACHE_SECONDS:
            return cached[1]
        columns: set[str] = set()
        if self._mariadb is None:
            self._mariadb = "mariadb" in conn.get_server_info().lower()
        if self._mariadb:
            async with conn.cursor(_Cursor) as cursor:
                await cursor.execute(
                    "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS"
                    " WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s",
                    (db, table),
                )
                for (clause,) in await cursor.fetchall():
                    match = _JSON_CHECK.match(str(clause).strip())
                    if match:
                        columns.add(match.group(1).replace("``", "`"))
        found = frozenset(columns)
        self._json_columns[key] = (now, found)
        return found

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
            await pool.wait_closed()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


def create(name: str, config: dict[str, Any], secrets: dict[str, str], base_dir: Path | None) -> MysqlConnector:
    return MysqlConnector(name, config, secrets)
