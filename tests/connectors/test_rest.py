"""The rest connector against a real local HTTP server (uvicorn in a thread)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import unquote

import pytest

from loomwork.connectors.base import ConnectorError
from loomwork.connectors.rest import RestConnector, create
from loomwork.errors import StepError
from loomwork.queries import parse_toml_query

from .servers import HttpServer, free_port

TOKEN = "tok-SECRET-9f8e7d"


@pytest.fixture(scope="module")
def server() -> Iterator[HttpServer]:
    running = HttpServer().start()
    yield running
    running.stop()


@pytest.fixture
async def api(server: HttpServer) -> AsyncIterator[RestConnector]:
    connector = create("api", {"base_url": server.url, "headers": {"X-Default": "d"}}, {}, None)
    yield connector
    await connector.close()


def q(text: str) -> Any:
    return parse_toml_query("q", 'datasource = "api"\n' + text)


async def test_get_with_path_and_query_encoding(api: RestConnector) -> None:
    query = q('path = "/echo/items/{{ params.id }}"\nquery = { search = "{{ params.s }}", n = "{{ params.n }}" }')
    result = await api.execute(query, {"id": "a/b c?d#é", "s": "x&y=z ü", "n": 3}, "run1:4")
    assert result["status"] == 200
    assert result["headers"]["content-type"] == "application/json"
    echo = result["body"]
    assert echo["method"] == "GET"
    assert echo["raw_path"] == "/echo/items/a%2Fb%20c%3Fd%23%C3%A9"  # one segment, nothing interpreted
    assert unquote(echo["raw_path"].rsplit("/", 1)[1]) == "a/b c?d#é"
    assert echo["query"] == {"search": ["x&y=z ü"], "n": ["3"]}
    assert echo["headers"]["idempotency-key"] == "run1:4"
    assert echo["headers"]["x-default"] == "d"


async def test_mixed_path_text_and_list_query_values(api: RestConnector) -> None:
    query = q(
        'path = "/echo/u/{{ params.user.name }}/orders?since={{ params.since }}"\n'
        'query = { tag = ["a", "{{ params.t }}"] }'
    )
    result = await api.execute(
        query, {"user": {"name": "Zoë Ö"}, "since": "2024-01-01T00:00:00+02:00", "t": "b c"}, "k"
    )
    echo = result["body"]
    assert echo["raw_path"] == "/echo/u/Zo%C3%AB%20%C3%96/orders"
    assert echo["query"] == {"since": ["2024-01-01T00:00:00+02:00"], "tag": ["a", "b c"]}


async def test_json_body_table_keeps_types(api: RestConnector) -> None:
    query = q(
        'method = "POST"\npath = "/echo"\n'
        'body = { amount = "{{ params.amount }}", ok = "{{ params.ok }}", items = "{{ params.items }}",'
        ' none = "{{ params.none }}", note = "refund {{ params.id }}", fixed = 7, nested = { id = "{{ params.id }}" } }'
    )
    params = {"amount": 12.5, "ok": True, "items": [1, {"a": "b"}], "none": None, "id": 42}
    result = await api.execute(query, params, "k")
    echo = result["body"]
    assert echo["method"] == "POST"
    assert echo["headers"]["content-type"] == "application/json"
    assert json.loads(echo["body"]) == {
        "amount": 12.5,
        "ok": True,
        "items": [1, {"a": "b"}],
        "none": None,
        "note": "refund 42",
        "fixed": 7,
        "nested": {"id": 42},
    }


async def test_string_body_is_a_json_template(api: RestConnector) -> None:
    query = q(
        'method = "PUT"\npath = "/echo"\n'
        """body = '{"name": {{ params.name }}, "n": {{ params.n }}, "tags": {{ params.tags }}}'"""
    )
    result = await api.execute(query, {"name": 'quote " and \\ and }}', "n": 5, "tags": ["x"]}, "k")
    echo = result["body"]
    assert echo["headers"]["content-type"] == "application/json"
    assert json.loads(echo["body"]) == {"name": 'quote " and \\ and }}', "n": 5, "tags": ["x"]}


async def test_text_response_and_headers_lowercased(api: RestConnector) -> None:
    result = await api.execute(q('path = "/text"'), {}, "k")
    assert result == {"status": 200, "headers": result["headers"], "body": "héllo"}
    assert result["headers"]["x-custom"] == "yes"
    assert all(name == name.lower() for name in result["headers"])


async def test_non_2xx_fails_unless_allowed(api: RestConnector) -> None:
    with pytest.raises(ConnectorError) as info:
        await api.execute(q('path = "/status/404"'), {}, "k")
    assert "HTTP 404" in str(info.value)
    assert "status 404 answered" in str(info.value)
    assert getattr(info.value, "status", None) == 404
    result = await api.execute(q('path = "/status/503"\nallow_error_status = true'), {}, "k")
    assert result["status"] == 503
    assert result["body"] == "status 503 answered"


async def test_missing_param_names_it(api: RestConnector) -> None:
    with pytest.raises(StepError, match=r"query 'q': missing param params\.order\.id"):
        await api.execute(q('path = "/echo/{{ params.order.id }}"'), {"order": {}}, "k")


async def test_unknown_field_is_a_clear_error(api: RestConnector) -> None:
    with pytest.raises(StepError, match="unknown rest field"):
        await api.execute(q('methd = "GET"'), {}, "k")


async def test_absolute_path_refused(api: RestConnector) -> None:
    with pytest.raises(ConnectorError, match="relative to the base_url"):
        await api.request("GET", "http://evil.example/x")


@pytest.mark.parametrize(
    ("config", "secrets", "header", "expected"),
    [
        ({"auth_kind": "bearer"}, {"token": TOKEN}, "authorization", f"Bearer {TOKEN}"),
        (
            {"auth_kind": "basic"},
            {"username": "ann", "password": "pw:é"},
            "authorization",
            "Basic " + base64.b64encode("ann:pw:é".encode()).decode(),
        ),
        ({"auth_kind": "api_key"}, {"api_key": TOKEN}, "x-api-key", TOKEN),
        ({"auth_kind": "api_key", "api_key_header": "X-Token"}, {"api_key": TOKEN}, "x-token", TOKEN),
    ],
)
async def test_auth_kinds(
    server: HttpServer, config: dict[str, Any], secrets: dict[str, str], header: str, expected: str
) -> None:
    connector = create("api", {"base_url": server.url, **config}, secrets, None)
    try:
        result = await connector.execute(q('path = "/echo"'), {}, "k")
        assert result["body"]["headers"][header] == expected
    finally:
        await connector.close()


def test_auth_kind_needs_its_secret() -> None:
    with pytest.raises(ConnectorError, match="needs the secret"):
        create("api", {"base_url": "http://x", "auth_kind": "bearer"}, {}, None)
    with pytest.raises(ConnectorError, match="auth_kind must be one of"):
        create("api", {"base_url": "http://x", "auth_kind": "oauth"}, {}, None)


async def test_secrets_never_in_errors(server: HttpServer) -> None:
    connector = create("api", {"base_url": server.url, "auth_kind": "bearer"}, {"token": TOKEN}, None)
    try:
        with pytest.raises(ConnectorError) as info:
            await connector.execute(q('path = "/status/401"\nquery = { echo_auth = "1" }'), {}, "k")
        assert "HTTP 401" in str(info.value)
        assert "answered for ***" in str(info.value)  # the server echoed the token back; it is scrubbed
        assert TOKEN not in str(info.value)
        assert info.value.__cause__ is None
    finally:
        await connector.close()


async def test_connection_refused_is_clear_and_secret_free() -> None:
    port = free_port()
    connector = create(
        "api", {"base_url": f"http://127.0.0.1:{port}/v1", "auth_kind": "bearer"}, {"token": TOKEN}, None
    )
    try:
        with pytest.raises(ConnectorError) as info:
            await connector.execute(q('path = "/x"'), {}, "k")
        message = str(info.value)
        assert f"GET http://127.0.0.1:{port}/v1/x failed: ConnectError" in message
        assert TOKEN not in message
        with pytest.raises(ConnectorError, match="ConnectError"):
            await connector.test()
    finally:
        await connector.close()


async def test_timeout(api: RestConnector) -> None:
    started = time.monotonic()
    with pytest.raises(ConnectorError, match=r"timed out after 0\.3 s"):
        await api.execute(parse_toml_query("q", 'datasource = "api"\npath = "/slow"\ntimeout = 0.3'), {}, "k")
    assert time.monotonic() - started < 2.5


async def test_config_timeout(server: HttpServer) -> None:
    connector = create("api", {"base_url": server.url, "timeout": 0.2}, {}, None)
    try:
        with pytest.raises(ConnectorError, match=r"timed out after 0\.2 s"):
            await connector.request("GET", "/slow", query={"s": 3})
    finally:
        await connector.close()


async def test_request_for_wf_http(api: RestConnector) -> None:
    result = await api.request(
        "post",
        "/echo/raw%20path",
        query={"a": 1, "b": [True, None]},
        headers={"X-Call": "1"},
        body={"x": [1, 2.5, None, "é"]},
        idempotency_key="run9:2",
    )
    echo = result["body"]
    assert echo["method"] == "POST"
    assert echo["raw_path"] == "/echo/raw%20path"
    assert echo["query"] == {"a": ["1"], "b": ["true", ""]}
    assert echo["headers"]["idempotency-key"] == "run9:2"
    assert echo["headers"]["x-call"] == "1"
    assert json.loads(echo["body"]) == {"x": [1, 2.5, None, "é"]}
    text = await api.request(
        "POST", "/echo", body="plain words", headers={"Idempotency-Key": "mine"}, idempotency_key="k"
    )
    assert text["body"]["headers"]["content-type"].startswith("text/plain")
    assert text["body"]["headers"]["idempotency-key"] == "mine"
    assert text["body"]["body"] == "plain words"


async def test_header_injection_refused(api: RestConnector) -> None:
    with pytest.raises(ConnectorError):
        await api.execute(q('path = "/echo"\nheaders = { X-A = "{{ params.v }}" }'), {"v": "a\r\nX-Evil: 1"}, "k")


async def test_test_reports_reachable(server: HttpServer) -> None:
    connector = create("api", {"base_url": server.url + "/status/418"}, {}, None)
    try:
        assert (await connector.test()).startswith(f"HTTP 418 from {server.url}/status/418")
    finally:
        await connector.close()


def test_templating_exact_and_mixed_bindings() -> None:
    from loomwork.connectors.templating import render, render_string

    params = {"a": 1, "b": [1, "x"], "s": "a b/c", "t": True, "n": None}
    assert render("{{ params.b }}", params, "q") == [1, "x"]
    assert render("  {{params.a}} ", params, "q") == 1
    assert render("{{ params.a }} {{ params.a }}", params, "q") == "1 1"  # two bindings: text, not a value
    assert render({"k": ["{{ params.t }}", "n={{ params.n }}"]}, params, "q") == {"k": [True, "n="]}
    assert render_string("/x/{{ params.s }}", params, "q", mode="url") == "/x/a%20b%2Fc"
    assert render_string('{"v": {{ params.b }}, "s": {{ params.s }}}', params, "q", mode="json") == (
        '{"v": [1, "x"], "s": "a b/c"}'
    )
    assert render_string("list={{ params.b }} t={{ params.t }}", params, "q") == 'list=[1,"x"] t=true'
