"""Fixtures for the SQL connector tests: connectors on the real PostgreSQL and MariaDB, and query builders."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from conftest import service_missing  # the top-level tests/conftest.py

from loomwork.connectors.base import ConnectorError
from loomwork.queries import Query, parse_sql_query

PG = {"host": "127.0.0.1", "port": 5432, "database": "test", "user": "postgres"}
MYSQL = {
    "host": os.environ.get("LOOMWORK_TEST_MYSQL_HOST", "127.0.0.1"),
    "port": int(os.environ.get("LOOMWORK_TEST_MYSQL_PORT", "3306")),
    "database": "test",
    "user": "root",
}
SECRET = "s3cr3t-PW-xyz"
INJECTIONS = ["1; DROP TABLE orders", "' OR '1'='1", "1 -- comment", "'); DROP TABLE x; --", "1' OR 1=1 #", "%s %%"]

MakeQuery = Callable[..., Query]


@pytest.fixture
def sql() -> MakeQuery:
    def make(text: str, timeout: float | None = None, name: str = "q") -> Query:
        head = "-- datasource: db\n" + (f"-- timeout: {timeout}\n" if timeout else "")
        return parse_sql_query(name, head + text)

    return make


@pytest.fixture
def table() -> str:
    return f"lw_t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def pg() -> AsyncIterator[Any]:
    from loomwork.connectors import postgres

    connector = postgres.create("pg", dict(PG), {}, None)
    try:
        await connector.test()
    except ConnectorError as exc:
        service_missing(f"PostgreSQL not reachable at {PG['host']}:{PG['port']}: {exc}")
    yield connector
    await connector.close()


@pytest.fixture
async def my() -> AsyncIterator[Any]:
    from loomwork.connectors import mysql

    connector = mysql.create("my", dict(MYSQL), {}, None)
    try:
        await connector.test()
    except ConnectorError as exc:
        service_missing(f"MariaDB/MySQL not reachable at {MYSQL['host']}:{MYSQL['port']}: {exc}")
    yield connector
    await connector.close()
