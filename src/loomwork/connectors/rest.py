"""``rest`` datasources: calls to one HTTP API (``base_url``), from ``queries/NAME.toml`` and from ``wf.http``.

A query file::

    datasource = "shop_api"
    method = "POST"                         # default GET
    path = "/orders/{{ params.id }}/refund" # bindings percent-encoded (``/`` too)
    query = { reason = "{{ params.reason }}" }
    headers = { X-Team = "support" }
    body = { amount = "{{ params.amount }}", note = "refund {{ params.id }}" }   # table -> JSON, types kept
    # body = '{"amount": {{ params.amount }}}'   # or a string: a template of JSON text, bindings JSON-encoded
    allow_error_status = false

Every call carries ``Idempotency-Key: <run_id>:<seq>`` (a header of the query or call may override it). The
result is ``{"status", "headers", "body"}``; a non-2xx answer raises unless ``allow_error_status``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..queries import Query
from .base import ConnectorError
from .httpauth import HttpClient, display_url, response_result
from .templating import as_text, check_fields, render, render_string

_FIELDS = {"method", "path", "query", "headers", "body", "allow_error_status"}
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def _query_params(query: dict[str, Any] | None) -> dict[str, str | list[str]]:
    params: dict[str, str | list[str]] = {}
    for key, value in (query or {}).items():
        params[str(key)] = [as_text(v) for v in value] if isinstance(value, list) else as_text(value)
    return params


def _encode_body(body: Any, headers: dict[str, str]) -> bytes | None:
    """A value from code or a rendered table: strings as text, anything else as JSON; sets Content-Type."""
    if body is None:
        return None
    has_type = any(k.lower() == "content-type" for k in headers)
    if isinstance(body, str):
        if not has_type:
            try:
                json.loads(body)
                headers["Content-Type"] = "application/json"
            except ValueError:
                headers["Content-Type"] = "text/plain; charset=utf-8"
        return body.encode()
    if not has_type:
        headers["Content-Type"] = "application/json"
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


class RestConnector:
    def __init__(self, name: str, config: dict[str, Any], secrets: dict[str, str]) -> None:
        self.name = name
        self.http = HttpClient(name, "rest", config, secrets)

    async def open(self) -> None:
        await self.http.open()

    async def test(self) -> str:
        """Any HTTP answer from ``base_url`` counts as reachable."""
        response = await self.http.send("GET", self.http.base_url, allow_error_status=True)
        server = response.headers.get("server")
        return f"HTTP {response.status_code} from {display_url(self.http.base_url)}" + (
            f" ({server})" if server else ""
        )

    async def execute(self, query: Query, params: dict[str, Any], idempotency_key: str) -> Any:
        spec = query.spec
        check_fields(query.name, "rest", spec, _FIELDS, set())
        method = render_string(str(spec.get("method", "GET")), params, query.name)
        path = render_string(str(spec.get("path", "")), params, query.name, mode="url")
        rendered_query = render(spec.get("query") or {}, params, query.name)
        headers = render(spec.get("headers") or {}, params, query.name)
        if not isinstance(rendered_query, dict) or not isinstance(headers, dict):
            raise ConnectorError(f"query {query.name!r}: query and headers must be tables")
        body = spec.get("body")
        if isinstance(body, str):
            body = render_string(body, params, query.name, mode="json")
        elif body is not None:
            body = render(body, params, query.name)
        return await self.request(
            method,
            path,
            query=rendered_query,
            headers={str(k): as_text(v) for k, v in headers.items()},
            body=body,
            allow_error_status=bool(spec.get("allow_error_status", False)),
            timeout=query.timeout,
            idempotency_key=idempotency_key,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        body: Any = None,
        allow_error_status: bool = False,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """One call to ``base_url + path`` (the path is used as given: encode values in it yourself).

        ``body``: a string is sent as it is, anything else as JSON. The result is ``{"status", "headers",
        "body"}``; a non-2xx status raises :class:`ConnectorError` unless ``allow_error_status``.
        """
        verb = method.strip().upper()
        if verb not in _METHODS:
            raise ConnectorError(f"datasource {self.name!r}: unsupported HTTP method {method!r}")
        sent = {str(k): as_text(v) for k, v in (headers or {}).items()}
        if idempotency_key and not any(k.lower() == "idempotency-key" for k in sent):
            sent["Idempotency-Key"] = idempotency_key
        content = _encode_body(body, sent)
        response = await self.http.send(
            verb,
            self.http.url_for(path),
            params=_query_params(query) or None,
            headers=sent,
            content=content,
            timeout=timeout,
            allow_error_status=allow_error_status,
        )
        return response_result(response)

    async def close(self) -> None:
        await self.http.close()


def create(name: str, config: dict[str, Any], secrets: dict[str, str], base_dir: Path | None) -> RestConnector:
    return RestConnector(name, config, secrets)
