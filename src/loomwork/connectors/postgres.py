"""``postgres`` datasources: psycopg 3 (async) behind a ``psycopg_pool.AsyncConnectionPool`` per datasource.

Connection: config ``host``, ``port``, ``database``, ``user`` and ``options`` (libpq parameters such as
``sslmode``, ``connect_timeout`` (default 10 s), ``application_name``) with the secret ``password``; or the secret
``url`` holding a whole ``postgresql://`` URL (config fields given beside it override the URL's).
The pool holds 0 to ``pool_size`` (default 5) connections, opened lazily on first use.

Each query runs as one transaction, committed on success and rolled back on error. A query with a ``timeout``
runs with ``SET LOCAL statement_timeout`` so the server stops it too; the caller's asyncio timeout cancels the
call as well (psycopg then cancels the statement server-side and the connection stays usable).

Bindings become server-side bound parameters (``%s``; a literal ``%`` in the SQL is escaped first). Param
values: str, int, float, bool and null are bound as themselves; a list of scalars binds as an array (so
``id = ANY({{ params.ids }})`` works); a dict, or a list holding dicts or lists, binds as ``jsonb`` — to store a
flat list in a json column write ``to_jsonb({{ params.tags }})``. A query without bindings is sent as written
(several statements allowed; the last result is returned). Result values are converted by
:mod:`loomwork.connectors.sqlvalues`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from ..queries import Query
from .base import ConnectorError
from .sqlvalues import Scrubber, bind_format_sql, row_dicts

DEFAULT_CONNECT_TIMEOUT = 10
#: How long a query waits for a free connection when the pool is busy.
POOL_WAIT = 30.0


def _param(value: Any) -> Any:
    if isinstance(value, dict):
        return Jsonb(value)
    if isinstance(value, list) and any(isinstance(item, dict | list) for item in value):
        return Jsonb(value)
    return value


def _connection_class(on_error: Callable[[BaseException], None]) -> type[psycopg.AsyncConnection[Any]]:
    """A connection class reporting failed connects, which the pool itself only logs and retries."""

    class _Connection(psycopg.AsyncConnection[Any]):
        @classmethod
        async def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:
            try:
                return await super().connect(conninfo, **kwargs)
            except Exception as exc:
                on_error(exc)
                raise

    return _Connection


class PostgresConnector:
    def __init__(self, name: str, config: dict[str, Any], secrets: dict[str, str]) -> None:
        self.name = name
        self._scrub = Scrubber(secrets)
        self._conninfo = secrets.get("url", "")
        kwargs: dict[str, Any] = {}
        for field, key in (("host", "host"), ("port", "port"), ("database", "dbname"), ("user", "user")):
            if config.get(field) is not None:
                kwargs[key] = config[field]
        options = config.get("options") or {}
        if not isinstance(options, dict):
            raise ConnectorError(f"datasource {name!r}: config.options must be a table")
        kwargs.update(options)
        if secrets.get("password"):
            kwargs["password"] = secrets["password"]
        if "connect_timeout" not in kwargs and "connect_timeout=" not in self._conninfo:
            kwargs["connect_timeout"] = DEFAULT_CONNECT_TIMEOUT
        kwargs["autocommit"] = True
        self._kwargs = kwargs
        self._pool_size = int(config.get("pool_size") or 5)
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._failed: asyncio.Future[BaseException] | None = None

    def _error(self, message: object) -> ConnectorError:
        return ConnectorError(self._scrub(f"datasource {self.name!r}: {message}"))

    def _connect_failed(self, exc: BaseException) -> None:
        if self._failed is not None and not self._failed.done():
            self._failed.set_result(exc)

    async def open(self) -> None:
        await self._get_pool()

    async def _get_pool(self) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
        if self._pool is None:
            pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
                self._conninfo,
                kwargs=self._kwargs,
                connection_class=_connection_class(self._connect_failed),
                min_size=0,
                max_size=self._pool_size,
                open=False,
                name=f"loomwork-{self.name}",
                timeout=POOL_WAIT,
                # Give up reconnecting quickly: a caller that needs a connection starts a new attempt anyway.
                reconnect_timeout=1.0,
            )
            await pool.open()
            self._pool = pool
        return self._pool

    async def _getconn(self) -> psycopg.AsyncConnection[Any]:
        """A connection from the pool; a failed connect is reported at once with the driver's message."""
        pool = await self._get_pool()
        try:
            if pool.get_stats().get("pool_available", 0):
                return await pool.getconn()
            loop = asyncio.get_running_loop()
            if self._failed is None or self._failed.done():
                self._failed = loop.create_future()
            failed = self._failed
            getter = asyncio.ensure_future(pool.getconn())
            try:
                await asyncio.wait((getter, failed), return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not getter.done():
                    getter.cancel()
                    with contextlib.suppress(BaseException):
                        conn = await getter  # handed over while being cancelled: give it back
                        await pool.putconn(conn)
            if getter.done() and not getter.cancelled() and getter.exception() is None:
                return getter.result()
            if getter.done() and not getter.cancelled():
                raise getter.exception()  # type: ignore[misc]
            raise self._error(failed.result())
        except PoolTimeout as exc:
            raise self._error(f"no free connection within {POOL_WAIT:g} s (pool_size {self._pool_size})") from exc
        except PoolClosed as exc:
            raise self._error("the datasource was closed") from exc
        except psycopg.Error as exc:
            raise self._error(exc) from exc

    async def test(self) -> str:
        try:
            conn = await psycopg.AsyncConnection.connect(self._conninfo, **self._kwargs)
        except psycopg.Error as exc:
            raise self._error(exc) from exc
        try:
            cursor = await conn.execute("SELECT version()")
            row = await cursor.fetchone()
            return str(row[0]) if row else "PostgreSQL"
        except psycopg.Error as exc:
            raise self._error(exc) from exc
        finally:
            await conn.close()

    async def execute(self, query: Query, params: dict[str, Any], idempotency_key: str) -> Any:
        sql, values = bind_format_sql(query, params)
        bound = [_param(value) for value in values] if values else None
        if query.timeout:
            try:
                async with asyncio.timeout(query.timeout):
                    return await self._run(sql, bound, query.timeout)
            except TimeoutError:
                raise self._timed_out(query) from None
            except pg_errors.QueryCanceled as exc:
                if "statement timeout" in str(exc):
                    raise self._timed_out(query) from None
                raise self._error(exc) from exc
        return await self._run(sql, bound, None)

    def _timed_out(self, query: Query) -> ConnectorError:
        return self._error(f"query {query.name!r} timed out after {query.timeout:g} s")

    async def _run(self, sql: str, values: list[Any] | None, timeout: float | None) -> Any:
        conn = await self._getconn()
        pool = self._pool
        try:
            if timeout is None:
                return await self._statement(conn, sql, values)
            async with conn.transaction():
                await conn.execute("SELECT set_config('statement_timeout', %s, true)", [f"{int(timeout * 1000)}ms"])
                return await self._statement(conn, sql, values)
        except pg_errors.QueryCanceled:
            raise
        except psycopg.Error as exc:
            raise self._error(exc) from exc
        finally:
            if pool is not None:
                await pool.putconn(conn)

    async def _statement(self, conn: psycopg.AsyncConnection[Any], sql: str, values: list[Any] | None) -> Any:
        cursor = conn.cursor()
        await cursor.execute(sql, values)
        while cursor.nextset():  # several statements (no bindings): the last result counts
            pass
        if cursor.description is None:
            return {"rowcount": cursor.rowcount}
        names = [column.name for column in cursor.description]
        return row_dicts(names, await cursor.fetchall())

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()


def create(name: str, config: dict[str, Any], secrets: dict[str, str], base_dir: Path | None) -> PostgresConnector:
    return PostgresConnector(name, config, secrets)
