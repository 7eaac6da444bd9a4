"""The graphql connector against a real local GraphQL server (graphql-core behind Starlette/uvicorn)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from loomwork.connectors.base import ConnectorError
from loomwork.connectors.graphql import GraphqlConnector, create
from loomwork.queries import parse_toml_query

from .servers import HttpServer, free_port

TOKEN = "gql-SECRET-token-123"

ECHO = """
datasource = "gql"
query = '''
  query Echo($id: ID!, $qty: Int!, $tags: [String!], $flag: Boolean, $price: Float, $note: String) {
    echo(id: $id, qty: $qty, tags: $tags, flag: $flag, price: $price, note: $note) {
      id qty qtyType tags flag price note
    }
  }
'''

[variables]
id = "{{ params.id }}"
qty = "{{ params.qty }}"
tags = "{{ params.tags }}"
flag = "{{ params.flag }}"
price = "{{ params.price }}"
note = "order {{ params.id }}: {{ params.note }}"
"""


@pytest.fixture(scope="module")
def server() -> Iterator[HttpServer]:
    running = HttpServer().start()
    yield running
    running.stop()


@pytest.fixture
async def gql(server: HttpServer) -> AsyncIterator[GraphqlConnector]:
    connector = create("gql", {"base_url": server.url, "auth_kind": "bearer"}, {"token": TOKEN}, None)
    yield connector
    await connector.close()


def q(text: str) -> Any:
    return parse_toml_query("q", text)


async def test_variables_bound_with_types(gql: GraphqlConnector) -> None:
    params = {"id": "A-1", "qty": 3, "tags": ["x", "y z"], "flag": False, "price": 9.75, "note": 'he said "hi"'}
    result = await gql.execute(q(ECHO), params, "run:1")
    assert result == {
        "data": {
            "echo": {
                "id": "A-1",
                "qty": 3,
                "qtyType": "int",  # arrived as a JSON number, not as the text "3"
                "tags": ["x", "y z"],
                "flag": False,
                "price": 9.75,
                "note": 'order A-1: he said "hi"',
            }
        },
        "errors": None,
    }


async def test_wrong_variable_type_is_the_servers_error(gql: GraphqlConnector) -> None:
    params = {"id": "A-1", "qty": "three", "tags": None, "flag": None, "price": None, "note": ""}
    with pytest.raises(
        ConnectorError,
        match=r"GraphQL errors: Variable '\$qty' has invalid value: Int cannot represent non-integer value",
    ):
        await gql.execute(q(ECHO), params, "k")


async def test_errors_without_data_fail(gql: GraphqlConnector) -> None:
    with pytest.raises(ConnectorError, match="GraphQL errors: Cannot query field 'nope' on type 'Query'"):
        await gql.execute(q('datasource = "gql"\nquery = "{ nope }"'), {}, "k")
    with pytest.raises(ConnectorError, match="GraphQL errors: Must provide operation name"):
        await gql.execute(q('datasource = "gql"\nquery = "query A { partial } query B { __typename }"'), {}, "k")


async def test_operation_name_picks_the_operation(gql: GraphqlConnector) -> None:
    text = 'datasource = "gql"\nquery = "query A { partial } query B { __typename }"\noperation_name = "B"'
    assert await gql.execute(q(text), {}, "k") == {"data": {"__typename": "Query"}, "errors": None}


async def test_partial_data_is_returned_with_its_errors(gql: GraphqlConnector) -> None:
    result = await gql.execute(q('datasource = "gql"\nquery = "{ partial boom }"'), {}, "k")
    assert result["data"] == {"partial": None, "boom": None}
    assert sorted(e["message"] for e in result["errors"]) == ["boom", "partial failure"]


async def test_auth_and_idempotency_headers_sent(server: HttpServer) -> None:
    connector = create(
        "gql", {"base_url": server.url, "endpoint": "/graphql?debug=1", "auth_kind": "bearer"}, {"token": TOKEN}, None
    )
    try:
        response = await connector.http.send(
            "POST",
            connector.endpoint,
            headers={"Content-Type": "application/json"},
            content=b'{"query": "{ partial }"}',
        )
        assert response.json()["echo_headers"]["authorization"] == f"Bearer {TOKEN}"
        assert (await connector.run({"query": "{ __typename }"}, idempotency_key="r:7"))["data"] == {
            "__typename": "Query"
        }
    finally:
        await connector.close()


async def test_missing_param_and_no_query_field(gql: GraphqlConnector) -> None:
    with pytest.raises(Exception, match=r"missing param params\.id"):
        await gql.execute(q(ECHO), {}, "k")
    with pytest.raises(Exception, match="a graphql query needs query"):
        await gql.execute(q('datasource = "gql"\nvariables = {}'), {}, "k")


async def test_not_graphql_endpoint(server: HttpServer) -> None:
    connector = create("gql", {"base_url": server.url, "endpoint": "/status/404"}, {}, None)
    try:
        with pytest.raises(ConnectorError, match="returned HTTP 404"):
            await connector.execute(q('datasource = "gql"\nquery = "{ x }"'), {}, "k")
        assert (await connector.test()).startswith("HTTP 404 from")
    finally:
        await connector.close()


async def test_connection_refused_and_test(server: HttpServer) -> None:
    connector = create(
        "gql", {"base_url": f"http://127.0.0.1:{free_port()}", "auth_kind": "api_key"}, {"api_key": TOKEN}, None
    )
    try:
        with pytest.raises(ConnectorError, match="ConnectError") as info:
            await connector.execute(q('datasource = "gql"\nquery = "{ x }"'), {}, "k")
        assert TOKEN not in str(info.value)
    finally:
        await connector.close()
    ok = create("gql", {"base_url": server.url}, {}, None)
    try:
        assert (await ok.test()).startswith(f"HTTP 200 from {server.url}/graphql")
    finally:
        await ok.close()
