"""The mysql connector against the real MariaDB (or MySQL): types, bound params, errors, timeouts, pooling."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from loomwork.connectors import mysql
from loomwork.connectors.base import ConnectorError

from .conftest import INJECTIONS, MYSQL, SECRET, MakeQuery


async def test_version(my: Any) -> None:
    version = await my.test()
    assert "MariaDB" in version or version.startswith("MySQL ")


async def test_type_round_trips(my: Any, sql: MakeQuery, table: str) -> None:
    await my.execute(
        sql(
            f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, amount DECIMAL(12,2), big DECIMAL(40,0), ratio DOUBLE,"
            " ok BOOLEAN, day DATE, at DATETIME(6), at_ts TIMESTAMP(6) NULL, doc JSON, raw BLOB, label TEXT,"
            " flag BIT(1), span TIME(6), note VARCHAR(20)) CHARACTER SET utf8mb4"
        ),
        {},
        "k",
    )
    try:
        inserted = await my.execute(
            sql(
                f"INSERT INTO {table} VALUES ({{{{ params.id }}}}, {{{{ params.amount }}}},"
                " 1234567890123456789012345678901234567890, {{ params.ratio }}, {{ params.ok }}, {{ params.day }},"
                " {{ params.at }}, {{ params.at }}, {{ params.doc }}, X'00FF10', {{ params.label }}, b'1',"
                " '-25:00:01.5', {{ params.note }})"
            ),
            {
                "id": 9007199254740993,
                "amount": "1234567890.10",
                "ratio": 0.1,
                "ok": True,
                "day": "2024-02-29",
                "at": "2024-05-01 12:30:00.123456",
                "doc": {"a": [1, 2, {"b": None}], "s": "ü"},
                "label": "emoji 😀 CJK 漢字 ÄÖ",
                "note": None,
            },
            "k",
        )
        assert inserted == {"rowcount": 1}
        rows = await my.execute(sql(f"SELECT *, 10 AS whole, CAST(2.50 AS DECIMAL(4,2)) AS dec2 FROM {table}"), {}, "k")
        row = rows[0]
        json.dumps(rows)
        assert row["id"] == 9007199254740993
        assert row["amount"] == "1234567890.10"
        assert row["big"] == 1234567890123456789012345678901234567890
        assert row["whole"] == 10
        assert row["dec2"] == "2.50"
        assert row["ratio"] == 0.1
        assert row["ok"] == 1  # BOOLEAN is TINYINT(1)
        assert row["day"] == "2024-02-29"
        assert row["at"] == "2024-05-01T12:30:00.123456"  # DATETIME: no zone
        assert row["at_ts"] == "2024-05-01T12:30:00.123456+00:00"  # TIMESTAMP: UTC session
        assert row["doc"] == {"a": [1, 2, {"b": None}], "s": "ü"}
        assert base64.b64decode(row["raw"]) == b"\x00\xff\x10"
        assert row["label"] == "emoji 😀 CJK 漢字 ÄÖ"
        assert row["flag"] == 1
        assert row["span"] == "-25:00:01.500000"
        assert row["note"] is None
    finally:
        await my.execute(sql(f"DROP TABLE IF EXISTS {table}"), {}, "k")


async def test_injection_through_params_is_bound(my: Any, sql: MakeQuery, table: str) -> None:
    await my.execute(sql(f"CREATE TABLE {table} (id INT, note TEXT) CHARACTER SET utf8mb4"), {}, "k")
    try:
        await my.execute(sql(f"INSERT INTO {table} VALUES (1, 'first')"), {}, "k")
        for payload in [*INJECTIONS, "\\'; DROP TABLE x; --", "\\"]:
            assert (
                await my.execute(sql(f"SELECT * FROM {table} WHERE note = {{{{ params.v }}}}"), {"v": payload}, "k")
                == []
            )
            assert (
                await my.execute(
                    sql(f"SELECT * FROM {table} WHERE id = {{{{ params.v }}}} AND id = 2"), {"v": payload}, "k"
                )
                == []
            )
            await my.execute(sql(f"INSERT INTO {table} VALUES (2, {{{{ params.v }}}})"), {"v": payload}, "k")
            stored = await my.execute(sql(f"SELECT note FROM {table} WHERE id = 2"), {}, "k")
            assert stored == [{"note": payload}]
            await my.execute(sql(f"DELETE FROM {table} WHERE id = 2"), {}, "k")
        assert await my.execute(sql(f"SELECT id, note FROM {table}"), {}, "k") == [{"id": 1, "note": "first"}]
    finally:
        await my.execute(sql(f"DROP TABLE IF EXISTS {table}"), {}, "k")


async def test_literal_percent_and_json_params(my: Any, sql: MakeQuery) -> None:
    rows = await my.execute(
        sql("SELECT 'a%b' AS s, {{ params.x }} AS x, 5 % 3 AS m, JSON_EXTRACT({{ params.d }}, '$.k[1]') AS k"),
        {"x": "%s%%", "d": {"k": [1, "two"]}},
        "k",
    )
    assert rows == [{"s": "a%b", "x": "%s%%", "m": 2, "k": '"two"'}]
    assert await my.execute(sql("SELECT 'a%b' AS s"), {}, "k") == [{"s": "a%b"}]


async def test_rowcount_and_autocommit(my: Any, sql: MakeQuery, table: str) -> None:
    await my.execute(sql(f"CREATE TABLE {table} (id INT)"), {}, "k")
    try:
        assert await my.execute(sql(f"INSERT INTO {table} VALUES (1), (2), (3)"), {}, "k") == {"rowcount": 3}
        assert await my.execute(sql(f"UPDATE {table} SET id = id + 10 WHERE id > 1"), {}, "k") == {"rowcount": 2}
        other = mysql.create("my2", dict(MYSQL), {}, None)  # another session sees it: committed
        try:
            assert await other.execute(sql(f"SELECT COUNT(*) AS n FROM {table}"), {}, "k") == [{"n": 3}]
        finally:
            await other.close()
    finally:
        await my.execute(sql(f"DROP TABLE IF EXISTS {table}"), {}, "k")


async def test_syntax_error_keeps_the_server_message(my: Any, sql: MakeQuery) -> None:
    with pytest.raises(ConnectorError, match=r"\(1064\).*near 'SELEC 1'"):
        await my.execute(sql("SELEC 1"), {}, "k")
    assert await my.execute(sql("SELECT 1 AS ok"), {}, "k") == [{"ok": 1}]


async def _running(my: Any, sql: MakeQuery, text: str) -> Any:
    return await my.execute(
        sql("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO LIKE {{ params.q }}"),
        {"q": f"%{text}%"},
        "k",
    )


async def _wait_not_running(my: Any, sql: MakeQuery, text: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while await _running(my, sql, text) != [{"n": 1}]:  # the PROCESSLIST query itself matches once
        assert loop.time() < deadline, f"{text} still running on the server"
        await asyncio.sleep(0.05)


async def test_query_timeout_and_the_pool_stays_usable(my: Any, sql: MakeQuery) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConnectorError, match=r"timed out after 0\.5 s"):
        await my.execute(sql("SELECT SLEEP(10.25)", timeout=0.5), {}, "k")
    assert loop.time() - started < 5
    assert await my.execute(sql("SELECT 1 AS ok"), {}, "k") == [{"ok": 1}]
    await _wait_not_running(my, sql, "SLEEP(10.25)")


async def test_caller_cancellation_kills_the_statement(my: Any, sql: MakeQuery) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(my.execute(sql("SELECT SLEEP(10.5)"), {}, "k"), 0.3)
    assert await my.execute(sql("SELECT 2 AS ok"), {}, "k") == [{"ok": 2}]
    await _wait_not_running(my, sql, "SLEEP(10.5)")


async def test_concurrent_queries_share_the_pool(my: Any, sql: MakeQuery) -> None:
    results = await asyncio.gather(
        *(my.execute(sql("SELECT {{ params.i }} AS i, SLEEP(0.05) AS s"), {"i": i}, "k") for i in range(12))
    )
    assert [r[0]["i"] for r in results] == list(range(12))


def _assert_secret_absent(error: BaseException) -> None:
    assert SECRET not in str(error)
    assert SECRET not in repr(error)
    assert SECRET not in str(getattr(error, "args", ""))


@pytest.mark.parametrize(
    ("config", "secrets", "expected"),
    [
        ({**MYSQL, "port": 1}, {"password": SECRET}, r"\(2003\) Can't connect"),
        ({**MYSQL}, {"password": SECRET}, r"\(1045\) Access denied"),
        ({**MYSQL, "database": "lw_no_such_db"}, {}, r"\(1049\) Unknown database 'lw_no_such_db'"),
        ({}, {"url": f"mysql://root:{SECRET}@{MYSQL['host']}:{MYSQL['port']}/test"}, r"\(1045\) Access denied"),
    ],
)
async def test_connection_failures_are_clear_and_secret_free(
    config: dict[str, Any], secrets: dict[str, str], expected: str, sql: MakeQuery, my: Any
) -> None:
    connector = mysql.create("bad", config, secrets, None)
    try:
        with pytest.raises(ConnectorError, match=expected) as raised:
            await connector.test()
        _assert_secret_absent(raised.value)
        with pytest.raises(ConnectorError, match=expected) as raised:
            await asyncio.wait_for(connector.execute(sql("SELECT 1"), {}, "k"), 20)
        _assert_secret_absent(raised.value)
    finally:
        await connector.close()


async def test_secret_is_scrubbed_from_server_messages(sql: MakeQuery, my: Any) -> None:
    connector = mysql.create("my", dict(MYSQL), {"password": ""}, None)
    connector._scrub = type(connector._scrub)({"password": SECRET})  # an empty password connects; scrub anyway
    try:
        with pytest.raises(ConnectorError, match="1064") as raised:
            await connector.execute(sql(f"SELECT '{SECRET}' FROM"), {}, "k")
        _assert_secret_absent(raised.value)
    finally:
        await connector.close()


async def test_url_secret_and_unknown_option(sql: MakeQuery, my: Any) -> None:
    connector = mysql.create("my", {}, {"url": f"mysql://root@{MYSQL['host']}:{MYSQL['port']}/test"}, None)
    try:
        assert await connector.execute(sql("SELECT DATABASE() AS db"), {}, "k") == [{"db": "test"}]
    finally:
        await connector.close()
    with pytest.raises(ConnectorError, match="unknown mysql option"):
        mysql.create("my", {**MYSQL, "options": {"bogus": 1}}, {}, None)


async def test_close_then_execute_reopens(my: Any, sql: MakeQuery) -> None:
    assert await my.execute(sql("SELECT 1 AS a"), {}, "k") == [{"a": 1}]
    await my.close()
    assert await my.execute(sql("SELECT 2 AS a"), {}, "k") == [{"a": 2}]
