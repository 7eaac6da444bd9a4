"""The sqlite connector: types, bound params, injection, errors, timeouts that interrupt the statement."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from loomwork.connectors import sqlite
from loomwork.connectors.base import ConnectorError

from .conftest import INJECTIONS, MakeQuery

#: A statement that runs for minutes unless interrupted.
SLOW = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) AS n FROM c"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Any]:
    connector = sqlite.create("db", {"path": "shop.db"}, {}, tmp_path)
    await connector.open()
    yield connector
    await connector.close()


async def test_version_and_relative_path(db: Any, tmp_path: Path) -> None:
    assert (await db.test()).startswith("SQLite 3.")
    assert (tmp_path / "shop.db").exists()


async def test_type_round_trips(db: Any, sql: MakeQuery) -> None:
    await db.execute(
        sql("CREATE TABLE t (id INTEGER, amount REAL, label TEXT, raw BLOB, doc TEXT, ok INTEGER)"), {}, "k"
    )
    params = {"id": 2**63 - 1, "amount": 10.5, "label": "emoji 😀 CJK 漢字", "doc": {"a": [1, None]}, "ok": True}
    inserted = await db.execute(
        sql(
            "INSERT INTO t VALUES ({{ params.id }}, {{ params.amount }}, {{ params.label }}, X'00FF10',"
            " {{ params.doc }}, {{ params.ok }})"
        ),
        params,
        "k",
    )
    assert inserted == {"rowcount": 1}
    rows = await db.execute(sql("SELECT *, NULL AS empty, json_extract(doc, '$.a[0]') AS first FROM t"), {}, "k")
    json.dumps(rows)
    row = rows[0]
    assert row["id"] == 2**63 - 1
    assert row["amount"] == 10.5
    assert row["label"] == "emoji 😀 CJK 漢字"
    assert base64.b64decode(row["raw"]) == b"\x00\xff\x10"
    assert json.loads(row["doc"]) == {"a": [1, None]}
    assert row["ok"] == 1
    assert row["empty"] is None
    assert row["first"] == 1


async def test_injection_through_params_is_bound(db: Any, sql: MakeQuery) -> None:
    await db.execute(sql("CREATE TABLE orders (id INTEGER, note TEXT)"), {}, "k")
    await db.execute(sql("INSERT INTO orders VALUES (1, 'first')"), {}, "k")
    for payload in INJECTIONS:
        assert await db.execute(sql("SELECT * FROM orders WHERE id = {{ params.v }}"), {"v": payload}, "k") == []
        assert await db.execute(sql("SELECT * FROM orders WHERE note = {{ params.v }}"), {"v": payload}, "k") == []
        await db.execute(sql("INSERT INTO orders VALUES (2, {{ params.v }})"), {"v": payload}, "k")
        assert await db.execute(sql("SELECT note FROM orders WHERE id = 2"), {}, "k") == [{"note": payload}]
        await db.execute(sql("DELETE FROM orders WHERE id = 2"), {}, "k")
    assert await db.execute(sql("SELECT * FROM orders"), {}, "k") == [{"id": 1, "note": "first"}]


async def test_errors_keep_the_driver_message(db: Any, sql: MakeQuery) -> None:
    with pytest.raises(ConnectorError, match='near "SELEC": syntax error'):
        await db.execute(sql("SELEC 1"), {}, "k")
    with pytest.raises(ConnectorError, match="no such table: nope"):
        await db.execute(sql("SELECT * FROM nope"), {}, "k")
    with pytest.raises(ConnectorError, match="cannot bind a param"):
        await db.execute(sql("SELECT {{ params.huge }}"), {"huge": 2**70}, "k")


async def test_cannot_open_is_a_connector_error(tmp_path: Path, sql: MakeQuery) -> None:
    connector = sqlite.create("db", {"path": str(tmp_path / "missing-dir" / "x.db")}, {}, None)
    with pytest.raises(ConnectorError, match="cannot open"):
        await connector.execute(sql("SELECT 1"), {}, "k")


async def test_timeout_interrupts_the_statement(db: Any, sql: MakeQuery) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConnectorError, match=r"timed out after 0\.3 s"):
        await db.execute(sql(SLOW, timeout=0.3), {}, "k")
    assert loop.time() - started < 3
    # the connection is free at once: the statement was interrupted, not left running in its thread
    assert await asyncio.wait_for(db.execute(sql("SELECT 1 AS ok"), {}, "k"), 2) == [{"ok": 1}]


async def test_caller_cancellation_interrupts_the_statement(db: Any, sql: MakeQuery) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(db.execute(sql(SLOW), {}, "k"), 0.3)
    assert await asyncio.wait_for(db.execute(sql("SELECT 2 AS ok"), {}, "k"), 2) == [{"ok": 2}]


async def test_timeout_of_a_queued_call_does_not_interrupt_the_running_one(db: Any, sql: MakeQuery) -> None:
    await db.execute(sql("CREATE TABLE n (x)"), {}, "k")
    busy = asyncio.ensure_future(
        db.execute(
            sql(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 3000000)"
                " SELECT max(x) AS m FROM c"
            ),
            {},
            "k",
        )
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not db._lock.locked():  # wait until it holds the connection
        assert loop.time() < deadline
        await asyncio.sleep(0.001)
    with pytest.raises(ConnectorError, match="timed out"):
        await db.execute(sql("SELECT 1", timeout=0.01), {}, "k")
    assert await busy == [{"m": 3000000}]


async def test_close_then_execute_reopens(db: Any, sql: MakeQuery) -> None:
    await db.execute(sql("CREATE TABLE k (v)"), {}, "k")
    await db.close()
    assert await db.execute(sql("SELECT count(*) AS n FROM k"), {}, "k") == [{"n": 0}]
