"""``redis`` datasources: a query runs one command, each list element a bound argument.

Secret ``url`` (``redis://[[user]:password@]host:port/db``, ``rediss://`` for TLS); config ``timeout`` (seconds
per command, default 10). A query file::

    datasource = "cache"
    command = ["SET", "order:{{ params.id }}", "{{ params.status }}", "EX", "3600"]

Each element is rendered on its own and sent as one argument, so a value holding spaces or ``\\r\\n`` stays one
argument: it can never become a second command. Replies become JSON: bytes → UTF-8 text (base64 when not valid
UTF-8), arrays → lists, maps → objects, integers, null.
"""

from __future__ import annotations

import asyncio
import base64
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from ..queries import Query
from .base import ConnectorError
from .httpauth import Scrubber, display_url
from .templating import as_text, check_fields, render

if TYPE_CHECKING:
    import redis.asyncio as aioredis


def to_json(value: Any) -> Any:
    """A redis reply as JSON-serialisable data."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(value).decode("ascii")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {as_text(to_json(k)): to_json(v) for k, v in value.items()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


class RedisConnector:
    def __init__(self, name: str, config: dict[str, Any], secrets: dict[str, str]) -> None:
        url = secrets.get("url")
        if not url:
            raise ConnectorError(f"datasource {name!r}: redis needs the secret url")
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConnectorError(f"datasource {name!r}: the redis url must start with redis://, rediss:// or unix://")
        self.name = name
        self._url = url
        self.timeout = float(config.get("timeout") or 10)
        password = urlsplit(url).password
        self._scrub = Scrubber([url, *([password, unquote(password)] if password else [])])
        self._shown = self._scrub(display_url(url))
        self._client: aioredis.Redis | None = None

    def _get_client(self) -> aioredis.Redis:
        if self._client is None:
            import redis.asyncio as aioredis

            try:
                self._client = aioredis.Redis.from_url(
                    self._url,
                    socket_timeout=self.timeout,
                    socket_connect_timeout=self.timeout,
                    decode_responses=False,
                )
            except ValueError as exc:
                raise self._error(exc) from None
        return self._client

    def _error(self, exc: BaseException) -> ConnectorError:
        detail = str(exc) or type(exc).__name__
        return ConnectorError(self._scrub(f"datasource {self.name!r}: redis at {self._shown}: {detail}"))

    async def _run(self, *args: str, timeout: float | None = None) -> Any:
        import redis.exceptions

        client = self._get_client()
        try:
            if timeout:
                async with asyncio.timeout(timeout):
                    return await client.execute_command(*args)  # type: ignore[no-untyped-call]
            return await client.execute_command(*args)  # type: ignore[no-untyped-call]
        except (redis.exceptions.TimeoutError, TimeoutError):
            raise self._error(TimeoutError(f"{args[0]} timed out after {timeout or self.timeout:g} s")) from None
        except (redis.exceptions.RedisError, OSError) as exc:
            raise self._error(exc) from None

    async def open(self) -> None:
        self._get_client()

    async def test(self) -> str:
        info = await self._run("INFO", "server")
        version = info.get("redis_version") if isinstance(info, dict) else None
        return f"Redis {to_json(version) or 'unknown version'} at {self._shown}"

    async def execute(self, query: Query, params: dict[str, Any], idempotency_key: str) -> Any:
        spec = query.spec
        check_fields(query.name, "redis", spec, {"command"}, {"command"})
        command = spec["command"]
        if not isinstance(command, list) or not command:
            raise ConnectorError(f'query {query.name!r}: command must be a non-empty list, e.g. ["GET", "key"]')
        args = [as_text(render(part, params, query.name)) for part in command]
        return to_json(await self._run(*args, timeout=query.timeout))

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


def create(name: str, config: dict[str, Any], secrets: dict[str, str], base_dir: Path | None) -> RedisConnector:
    return RedisConnector(name, config, secrets)
