"""``graphql`` datasources: a query and its variables POSTed to ``base_url`` + ``endpoint`` (default /graphql).

A query file::

    datasource = "catalog"
    query = '''
      query Product($id: ID!, $qty: Int!) { product(id: $id) { price(qty: $qty) } }
    '''
    variables = { id = "{{ params.id }}", qty = "{{ params.qty }}" }   # exact bindings keep their JSON type
    # operation_name = "Product"                                      # optional

The GraphQL text itself is never templated: values only travel as variables. The result is the response's
``{"data": ..., "errors": ...}`` (``errors`` null when there were none); errors with no data raise
:class:`ConnectorError` with their messages.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..queries import Query
from .base import ConnectorError
from .httpauth import HttpClient, HttpStatusError, display_url
from .templating import check_fields, render

_FIELDS = {"query", "variables", "operation_name"}


def _messages(errors: Any) -> str:
    if not isinstance(errors, list):
        return str(errors)
    return "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors)


class GraphqlConnector:
    def __init__(self, name: str, config: dict[str, Any], secrets: dict[str, str]) -> None:
        self.name = name
        self.http = HttpClient(name, "graphql", config, secrets)
        self.endpoint = self.http.url_for(str(config.get("endpoint") or "/graphql"))

    async def open(self) -> None:
        await self.http.open()

    async def test(self) -> str:
        """Asks for ``{ __typename }``; any HTTP answer from the endpoint counts as reachable."""
        response = await self.http.send(
            "POST",
            self.endpoint,
            headers={"Content-Type": "application/json"},
            content=b'{"query":"{ __typename }"}',
            allow_error_status=True,
        )
        server = response.headers.get("server")
        return f"HTTP {response.status_code} from {display_url(self.endpoint)}" + (f" ({server})" if server else "")

    async def execute(self, query: Query, params: dict[str, Any], idempotency_key: str) -> Any:
        spec = query.spec
        check_fields(query.name, "graphql", spec, _FIELDS, {"query"})
        variables = render(spec.get("variables") or {}, params, query.name)
        if not isinstance(variables, dict):
            raise ConnectorError(f"query {query.name!r}: variables must be a table")
        payload: dict[str, Any] = {"query": str(spec["query"]), "variables": variables}
        if spec.get("operation_name"):
            payload["operationName"] = str(spec["operation_name"])
        return await self.run(payload, idempotency_key=idempotency_key, timeout=query.timeout)

    async def run(
        self, payload: dict[str, Any], *, idempotency_key: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        content = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        response = await self.http.send(
            "POST", self.endpoint, headers=headers, content=content, timeout=timeout, allow_error_status=True
        )
        shown = f"POST {display_url(self.endpoint)}"
        ok = 200 <= response.status_code < 300
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or ("data" not in body and "errors" not in body):
            if not ok:
                excerpt = " ".join(response.text[:300].split())
                message = self.http.scrub(f"datasource {self.name!r}: {shown} returned HTTP {response.status_code}")
                raise HttpStatusError(
                    message + (f": {self.http.scrub(excerpt)}" if excerpt else ""), response.status_code
                )
            raise self.http.error(f"{shown} did not answer with a GraphQL response (data/errors)")
        data, errors = body.get("data"), body.get("errors")
        if errors and data is None:
            raise self.http.error(f"GraphQL errors: {_messages(errors)}")
        if not ok:
            # Servers often answer 400 with a GraphQL errors body: those messages are the useful part.
            detail = f": {_messages(errors)}" if errors else ""
            raise HttpStatusError(
                self.http.scrub(f"datasource {self.name!r}: {shown} returned HTTP {response.status_code}{detail}"),
                response.status_code,
            )
        return {"data": data, "errors": errors or None}

    async def close(self) -> None:
        await self.http.close()


def create(name: str, config: dict[str, Any], secrets: dict[str, str], base_dir: Path | None) -> GraphqlConnector:
    return GraphqlConnector(name, config, secrets)
