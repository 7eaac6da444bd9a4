"""The postgres connector against the real PostgreSQL: types, bound params, errors, timeouts, pooling."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import datetime
from typing import Any

import pytest

from loomwork.connectors import postgres
from loomwork.connectors.base import ConnectorError

from .conftest import INJECTIONS, PG, SECRET, MakeQuery


async def test_version(pg: Any) -> None:
    assert (await pg.test()).startswith("PostgreSQL ")


async def test_type_round_trips(pg: Any, sql: MakeQuery, table: str) -> None:
    await pg.execute(
        sql(
            f"CREATE TABLE {table} (id bigint PRIMARY KEY, amount numeric(12,2), big numeric, ratio float8,"
            " ok boolean, day date, at timestamp, at_tz timestamptz, doc json, docb jsonb, raw bytea,"
            " label text, uid uuid, nums int[], tags text[], span interval, note text)"
        ),
        {},
        "k",
    )
    try:
        inserted = await pg.execute(
            sql(
                f"INSERT INTO {table} VALUES ({{{{ params.id }}}}, {{{{ params.amount }}}},"
                " 123456789012345678901234567890, {{ params.ratio }}, {{ params.ok }}, {{ params.day }},"
                " {{ params.at }}, {{ params.at_tz }},"
                " {{ params.doc }}, {{ params.docb }}, decode('00ff10', 'hex'), {{ params.label }},"
                " {{ params.uid }}, {{ params.nums }}, {{ params.tags }}, '1 day 02:30:00.5', {{ params.note }})"
            ),
            {
                "id": 9007199254740993,  # beyond float precision: must stay exact
                "amount": "1234567890.10",
                "ratio": 0.1,
                "ok": True,
                "day": "2024-02-29",
                "at": "2024-05-01 12:30:00.123456",
                "at_tz": "2024-05-01T12:30:00+02:00",
                "doc": {"a": [1, 2, {"b": None}], "s": "ü"},
                "docb": [{"x": 1}, [2]],
                "label": "emoji 😀 CJK 漢字 ÄÖ",
                "uid": "6f1c2a1e-8f4b-4a7e-9c1d-2b3a4c5d6e7f",
                "nums": [1, 2, 3],
                "tags": ["a", "b'c"],
                "note": None,
            },
            "k",
        )
        assert inserted == {"rowcount": 1}
        rows = await pg.execute(
            sql(f"SELECT *, at_tz AT TIME ZONE 'UTC' AS at_utc, 10::numeric AS whole FROM {table}"), {}, "k"
        )
        row = rows[0]
        json.dumps(rows)  # JSON-serialisable as is
        assert row["id"] == 9007199254740993
        assert row["amount"] == "1234567890.10"
        assert row["big"] == 123456789012345678901234567890
        assert row["whole"] == 10
        assert row["ratio"] == 0.1
        assert row["ok"] is True
        assert row["day"] == "2024-02-29"
        assert row["at"] == "2024-05-01T12:30:00.123456"
        assert row["at_utc"] == "2024-05-01T10:30:00"
        at_tz = row["at_tz"]  # RFC 3339 with the session's offset, same instant
        assert at_tz[10] == "T" and at_tz[-6] in "+-" and at_tz[-3] == ":"
        assert datetime.fromisoformat(at_tz) == datetime.fromisoformat("2024-05-01T12:30:00+02:00")
        assert row["doc"] == {"a": [1, 2, {"b": None}], "s": "ü"}
        assert row["docb"] == [{"x": 1}, [2]]
        assert base64.b64decode(row["raw"]) == b"\x00\xff\x10"
        assert row["label"] == "emoji 😀 CJK 漢字 ÄÖ"
        assert row["uid"] == "6f1c2a1e-8f4b-4a7e-9c1d-2b3a4c5d6e7f"
        assert row["nums"] == [1, 2, 3]
        assert row["tags"] == ["a", "b'c"]
        assert row["span"] == "P1DT2H30M0.5S"
        assert row["note"] is None
    finally:
        await pg.execute(sql(f"DROP TABLE IF EXISTS {table}"), {}, "k")


async def test_timestamptz_keeps_the_instant(pg: Any, sql: MakeQuery) -> None:
    rows = await pg.execute(
        sql("SELECT {{ params.t }}::timestamptz AS t, 'NaN'::float8 AS nan, '-Infinity'::float8 AS ninf"),
        {"t": "2024-05-01T12:30:00+02:00"},
        "k",
    )
    assert datetime.fromisoformat(rows[0]["t"]) == datetime.fromisoformat("2024-05-01T10:30:00+00:00")
    assert rows[0]["nan"] == "NaN"
    assert rows[0]["ninf"] == "-Infinity"


async def test_list_params_bind_as_arrays(pg: Any, sql: MakeQuery) -> None:
    rows = await pg.execute(
        sql("SELECT g AS n FROM generate_series(1, 5) g WHERE g = ANY({{ params.ids }}) ORDER BY g"),
        {"ids": [2, 4]},
        "k",
    )
    assert rows == [{"n": 2}, {"n": 4}]


async def test_injection_through_params_is_bound(pg: Any, sql: MakeQuery, table: str) -> None:
    await pg.execute(sql(f"CREATE TABLE {table} (id int, note text)"), {}, "k")
    try:
        await pg.execute(sql(f"INSERT INTO {table} VALUES (1, 'first')"), {}, "k")
        for payload in INJECTIONS:
            found = await pg.execute(sql(f"SELECT * FROM {table} WHERE note = {{{{ params.v }}}}"), {"v": payload}, "k")
            assert found == []
            found = await pg.execute(
                sql(f"SELECT * FROM {table} WHERE id::text = {{{{ params.v }}}}"), {"v": payload}, "k"
            )
            assert found == []
            stored = await pg.execute(
                sql(f"INSERT INTO {table} VALUES (2, {{{{ params.v }}}}) RETURNING note"), {"v": payload}, "k"
            )
            assert stored == [{"note": payload}]
        count = await pg.execute(sql(f"SELECT count(*) AS n FROM {table}"), {}, "k")
        assert count == [{"n": 1 + len(INJECTIONS)}]
    finally:
        await pg.execute(sql(f"DROP TABLE IF EXISTS {table}"), {}, "k")


async def test_literal_percent_with_and_without_params(pg: Any, sql: MakeQuery) -> None:
    rows = await pg.execute(sql("SELECT 'a%b' AS s, {{ params.x }}::text AS x, 5 % 3 AS m"), {"x": "%s%%"}, "k")
    assert rows == [{"s": "a%b", "x": "%s%%", "m": 2}]
    assert await pg.execute(sql("SELECT 'a%b' AS s, 5 % 3 AS m"), {}, "k") == [{"s": "a%b", "m": 2}]


async def test_rowcount_and_each_call_is_one_transaction(pg: Any, sql: MakeQuery, table: str) -> None:
    await pg.execute(sql(f"CREATE TABLE {table} (id int)"), {}, "k")
    try:
        assert await pg.execute(sql(f"INSERT INTO {table} SELECT generate_series(1, 3)"), {}, "k") == {"rowcount": 3}
        assert await pg.execute(sql(f"UPDATE {table} SET id = id + 10 WHERE id > 1"), {}, "k") == {"rowcount": 2}
        with pytest.raises(ConnectorError, match="division by zero"):
            await pg.execute(sql(f"INSERT INTO {table} VALUES (99); SELECT 1/0"), {}, "k")
        with pytest.raises(ConnectorError, match="division by zero"):
            await pg.execute(sql(f"INSERT INTO {table} VALUES (98); SELECT 1/0", timeout=5), {}, "k")
        assert await pg.execute(sql(f"SELECT count(*) AS n FROM {table}"), {}, "k") == [{"n": 3}]
        # several statements without bindings: the last result is returned
        assert await pg.execute(
            sql(f"DELETE FROM {table} WHERE id = 1; SELECT count(*) AS n FROM {table}"), {}, "k"
        ) == [{"n": 2}]
    finally:
        await pg.execute(sql(f"DROP TABLE IF EXISTS {table}"), {}, "k")


async def test_syntax_error_keeps_the_server_message(pg: Any, sql: MakeQuery) -> None:
    with pytest.raises(ConnectorError, match='syntax error at or near "SELEC"'):
        await pg.execute(sql("SELEC 1"), {}, "k")
    assert await pg.execute(sql("SELECT 1 AS ok"), {}, "k") == [{"ok": 1}]


async def test_missing_param_names_it(pg: Any, sql: MakeQuery) -> None:
    with pytest.raises(Exception, match=r"missing param params\.nope"):
        await pg.execute(sql("SELECT {{ params.nope }}"), {}, "k")


async def test_query_timeout_is_enforced_and_the_pool_stays_usable(pg: Any, sql: MakeQuery) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConnectorError, match=r"timed out after 0\.5 s"):
        await pg.execute(sql("SELECT pg_sleep(10)", timeout=0.5), {}, "k")
    assert loop.time() - started < 5
    assert await pg.execute(sql("SELECT 1 AS ok"), {}, "k") == [{"ok": 1}]
    # the server did not keep the statement running
    running = await pg.execute(
        sql("SELECT count(*) AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(10)' AND state = 'active'"),
        {},
        "k",
    )
    assert running == [{"n": 0}]


async def test_caller_cancellation_cancels_server_side(pg: Any, sql: MakeQuery) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(pg.execute(sql("SELECT pg_sleep(10.5)"), {}, "k"), 0.3)
    assert await pg.execute(sql("SELECT 2 AS ok"), {}, "k") == [{"ok": 2}]
    running = await pg.execute(
        sql("SELECT count(*) AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(10.5)' AND state = 'active'"),
        {},
        "k",
    )
    assert running == [{"n": 0}]


async def test_concurrent_queries_share_the_pool(pg: Any, sql: MakeQuery) -> None:
    results = await asyncio.gather(
        *(pg.execute(sql("SELECT {{ params.i }}::int AS i, pg_sleep(0.05)::text"), {"i": i}, "k") for i in range(12))
    )
    assert [r[0]["i"] for r in results] == list(range(12))


def _assert_secret_absent(error: BaseException) -> None:
    assert SECRET not in str(error)
    assert SECRET not in repr(error)
    assert SECRET not in str(getattr(error, "args", ""))


@pytest.mark.parametrize(
    ("config", "secrets", "expected"),
    [
        ({**PG, "port": 1}, {"password": SECRET}, "port 1 failed"),
        ({**PG, "user": "lw_no_such_user"}, {"password": SECRET}, 'role "lw_no_such_user" does not exist'),
        ({**PG, "database": "lw_no_such_db"}, {"password": SECRET}, 'database "lw_no_such_db" does not exist'),
        ({}, {"url": f"postgresql://lw_no_such_user:{SECRET}@127.0.0.1:5432/test"}, "lw_no_such_user"),
    ],
)
async def test_connection_failures_are_clear_and_secret_free(
    config: dict[str, Any], secrets: dict[str, str], expected: str, sql: MakeQuery, pg: Any
) -> None:
    connector = postgres.create("bad", config, secrets, None)
    try:
        with pytest.raises(ConnectorError, match=expected) as raised:
            await connector.test()
        _assert_secret_absent(raised.value)
        with pytest.raises(ConnectorError, match=expected) as raised:
            await asyncio.wait_for(connector.execute(sql("SELECT 1"), {}, "k"), 20)
        _assert_secret_absent(raised.value)
    finally:
        await connector.close()


async def test_secret_is_scrubbed_from_server_messages(sql: MakeQuery, pg: Any) -> None:
    connector = postgres.create("pg", dict(PG), {"password": SECRET}, None)
    try:
        with pytest.raises(ConnectorError, match="invalid input syntax") as raised:
            await connector.execute(sql(f"SELECT '{SECRET}'::int"), {}, "k")
        _assert_secret_absent(raised.value)
    finally:
        await connector.close()


async def test_url_secret_connects(sql: MakeQuery, pg: Any) -> None:
    connector = postgres.create("pg", {}, {"url": "postgresql://postgres@127.0.0.1:5432/test"}, None)
    try:
        assert await connector.execute(sql("SELECT current_database() AS db"), {}, "k") == [{"db": "test"}]
    finally:
        await connector.close()


async def test_close_then_execute_reopens(pg: Any, sql: MakeQuery) -> None:
    assert await pg.execute(sql("SELECT 1 AS a"), {}, "k") == [{"a": 1}]
    await pg.close()
    assert await pg.execute(sql("SELECT 2 AS a"), {}, "k") == [{"a": 2}]
