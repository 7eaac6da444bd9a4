"""The redis connector against the real Redis on this machine."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import service_missing

from loomwork.connectors.base import ConnectorError
from loomwork.connectors.redis import RedisConnector, create
from loomwork.queries import parse_toml_query

from .servers import free_port

HOST = os.environ.get("LOOMWORK_TEST_REDIS_HOST", "127.0.0.1")
PORT = int(os.environ.get("LOOMWORK_TEST_REDIS_PORT", "6379"))
URL = f"redis://{HOST}:{PORT}/0"
PASSWORD = "redis-SECRET-pw-77"


@pytest.fixture
async def rds() -> AsyncIterator[RedisConnector]:
    connector = create("cache", {}, {"url": URL}, None)
    try:
        await connector.test()
    except ConnectorError as exc:
        service_missing(f"Redis not reachable at {HOST}:{PORT}: {exc}")
    yield connector
    await connector.close()


@pytest.fixture
def prefix() -> str:
    return f"lw_test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
async def cleanup(rds: RedisConnector, prefix: str) -> AsyncIterator[None]:
    yield
    keys = await rds._run("KEYS", prefix + "*")
    if keys:
        await rds._run("DEL", *[k.decode() for k in keys])


def q(command: str, timeout: float | None = None) -> Any:
    return parse_toml_query(
        "q", f'datasource = "cache"\ncommand = {command}' + (f"\ntimeout = {timeout}" if timeout else "")
    )


async def test_set_get_with_bound_arguments(rds: RedisConnector, prefix: str, cleanup: None) -> None:
    put = q('["SET", "{{ params.p }}order:{{ params.id }}", "{{ params.value }}"]')
    assert await rds.execute(put, {"p": prefix, "id": 7, "value": "shipped ✓"}, "k") is True
    got = await rds.execute(q('["GET", "{{ params.p }}order:{{ params.id }}"]'), {"p": prefix, "id": 7}, "k")
    assert got == "shipped ✓"
    assert await rds.execute(q('["GET", "{{ params.p }}missing"]'), {"p": prefix}, "k") is None
    assert await rds.execute(q('["INCRBY", "{{ params.p }}n", "{{ params.by }}"]'), {"p": prefix, "by": 5}, "k") == 5


async def test_injection_like_values_stay_one_argument(rds: RedisConnector, prefix: str, cleanup: None) -> None:
    sentinel = prefix + "sentinel"
    await rds._run("SET", sentinel, "still here")
    evil = ["x\r\nFLUSHALL\r\n", "*1\r\n$8\r\nFLUSHALL\r\n", "a b c", '"quoted" \\ back', "\x00nul"]
    for index, value in enumerate(evil):
        key = f"{prefix}evil:{index}"
        await rds.execute(q('["SET", "{{ params.key }}", "{{ params.value }}"]'), {"key": key, "value": value}, "k")
        assert await rds.execute(q('["GET", "{{ params.key }}"]'), {"key": key}, "k") == value
    assert await rds.execute(q('["GET", "{{ params.key }}"]'), {"key": sentinel}, "k") == "still here"
    assert await rds.execute(q('["STRLEN", "{{ params.key }}"]'), {"key": f"{prefix}evil:0"}, "k") == len(evil[0])


async def test_replies_become_json(rds: RedisConnector, prefix: str, cleanup: None) -> None:
    key = prefix + "list"
    await rds.execute(
        q('["RPUSH", "{{ params.k }}", "a", "{{ params.n }}", "{{ params.obj }}"]'),
        {"k": key, "n": 2, "obj": {"x": [1]}},
        "k",
    )
    assert await rds.execute(q('["LRANGE", "{{ params.k }}", "0", "-1"]'), {"k": key}, "k") == ["a", "2", '{"x":[1]}']
    hkey = prefix + "hash"
    await rds._run("HSET", hkey, "f1", "v1", "f2", "v2")
    assert await rds.execute(q('["HGETALL", "{{ params.k }}"]'), {"k": hkey}, "k") == {"f1": "v1", "f2": "v2"}
    bkey = prefix + "bin"
    await rds._run("SET", bkey, b"\xff\xfe\x00")  # type: ignore[arg-type]
    assert await rds.execute(q('["GET", "{{ params.k }}"]'), {"k": bkey}, "k") == "//4A"  # base64: not UTF-8


async def test_command_errors_are_connector_errors(rds: RedisConnector, prefix: str, cleanup: None) -> None:
    key = prefix + "s"
    await rds._run("SET", key, "text")
    with pytest.raises(ConnectorError, match="WRONGTYPE"):
        await rds.execute(q('["LPUSH", "{{ params.k }}", "x"]'), {"k": key}, "k")
    with pytest.raises(ConnectorError, match="unknown command"):
        await rds.execute(q('["NOSUCHCOMMAND"]'), {}, "k")
    with pytest.raises(Exception, match="non-empty list"):
        await rds.execute(q("[]"), {}, "k")


async def test_timeout(rds: RedisConnector, prefix: str) -> None:
    started = time.monotonic()
    with pytest.raises(ConnectorError, match=r"timed out after 0\.3 s"):
        await rds.execute(q('["BLPOP", "{{ params.k }}", "5"]', timeout=0.3), {"k": prefix + "never"}, "k")
    assert time.monotonic() - started < 3
    assert await rds.execute(q('["PING"]'), {}, "k") is True  # the connector still works afterwards


async def test_connection_refused_is_clear_and_secret_free() -> None:
    port = free_port()
    connector = create("cache", {"timeout": 2}, {"url": f"redis://:{PASSWORD}@127.0.0.1:{port}/0"}, None)
    try:
        with pytest.raises(ConnectorError, match=f"redis at redis://:\\*\\*\\*@127.0.0.1:{port}/0") as info:
            await connector.execute(q('["PING"]'), {}, "k")
        assert PASSWORD not in str(info.value)
        assert info.value.__cause__ is None
    finally:
        await connector.close()


async def test_wrong_password(rds: RedisConnector) -> None:
    user = f"lw_test_{uuid.uuid4().hex[:10]}"
    try:
        await rds._run("ACL", "SETUSER", user, "on", f">{PASSWORD}", "~lw_test:*", "+@all")
    except ConnectorError as exc:
        pytest.skip(f"this Redis does not allow ACL SETUSER: {exc}")
    try:
        good = create("cache", {}, {"url": f"redis://{user}:{PASSWORD}@{HOST}:{PORT}/0"}, None)
        assert (await good.test()).startswith("Redis ")
        await good.close()
        bad = create("cache", {}, {"url": f"redis://{user}:{PASSWORD}x@{HOST}:{PORT}/0"}, None)
        with pytest.raises(ConnectorError, match=r"invalid username-password pair|WRONGPASS") as info:
            await bad.execute(q('["PING"]'), {}, "k")
        assert PASSWORD not in str(info.value)
        assert f"redis://{user}:***@" in str(info.value)
        await bad.close()
    finally:
        await rds._run("ACL", "DELUSER", user)


async def test_test_reports_version(rds: RedisConnector) -> None:
    version = await rds.test()
    assert version.startswith("Redis ")
    assert version.split()[1][0].isdigit()


def test_url_is_required() -> None:
    with pytest.raises(ConnectorError, match="needs the secret url"):
        create("cache", {}, {}, None)
    with pytest.raises(ConnectorError, match="must start with redis://"):
        create("cache", {}, {"url": "http://x"}, None)
