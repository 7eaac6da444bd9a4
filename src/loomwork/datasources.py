"""Carrying out query and http steps through configured datasources (the engine's ``EffectExecutor``).

Local runs read datasources from a ``datasources.toml`` beside the workflow folders::

    [shop_db]
    kind = "sqlite"
    path = "shop.db"              # relative to the file
    create_from = "shop.sql"      # optional: a script that creates the database if the file is missing
"""

from __future__ import annotations

import asyncio
import socket
import tomllib
from pathlib import Path
from typing import Any

from .connectors.base import Connector, ConnectorError
from .connectors.registry import KINDS, create_connector
from .engine.effects import EffectCall
from .errors import LoomworkError, StepError, WorkflowFolderError
from .mailsink import MailSink
from .model import StepKind
from .queries import Query, find_query


def connector_for(name: str, kind: str, fields: dict[str, Any], base_dir: Path | None) -> Connector:
    """A connector from one ``datasources.toml`` table: the kind's secret fields are split from its config."""
    if kind not in KINDS:
        raise ConnectorError(f"datasource {name!r}: unknown kind {kind!r} (kinds: {', '.join(KINDS)})")
    secret_names = {f.name for f in KINDS[kind].secrets}
    config = {k: v for k, v in fields.items() if k not in secret_names}
    secrets = {k: str(v) for k, v in fields.items() if k in secret_names}
    return create_connector(name, kind, config, secrets, base_dir)


def read_datasources_file(path: Path) -> dict[str, dict[str, Any]]:
    """``datasources.toml``: one table per datasource, each with ``kind`` and the kind's fields."""
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise WorkflowFolderError(f"{path}: {exc}") from exc
    for name, entry in table.items():
        if not isinstance(entry, dict) or "kind" not in entry:
            raise WorkflowFolderError(f'{path}: [{name}] needs kind = "..."')
    return table


def start_mail_sinks(table: dict[str, dict[str, Any]], folder: Path) -> list[MailSink]:
    """Start a :class:`MailSink` for each smtp datasource with ``sink = true`` (on a free port if its own is
    taken, which is then written back into the table). Removes the ``sink`` keys."""
    sinks = []
    for entry in table.values():
        if entry.pop("sink", False) and entry.get("kind") == "smtp":
            host = str(entry.get("host", "127.0.0.1"))
            port = int(entry.get("port", 2525))
            if not _port_free(host, port):
                port = _free_port(host)
            sink = MailSink(folder, host, port)
            sink.start()
            entry["port"] = port
            entry.setdefault("tls", "none")
            sinks.append(sink)
    return sinks


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class DatasourceEffects:
    def __init__(self, connectors: dict[str, Connector], sinks: list[MailSink] | None = None) -> None:
        self._connectors = connectors
        self._sinks = sinks or []

    @classmethod
    def from_file(cls, path: Path, *, mail_dir: Path | None = None) -> DatasourceEffects:
        """Connectors for a ``datasources.toml``; with ``mail_dir``, ``sink = true`` smtp datasources get a
        local :class:`MailSink` keeping their messages there (without it, ``sink`` is ignored)."""
        table = read_datasources_file(path)
        sinks = start_mail_sinks(table, mail_dir) if mail_dir is not None else []
        connectors: dict[str, Connector] = {}
        for name, entry in table.items():
            config = {k: v for k, v in entry.items() if k not in ("kind", "sink")}
            try:
                connectors[name] = connector_for(name, str(entry["kind"]), config, path.parent)
            except (ConnectorError, LoomworkError) as exc:
                for sink in sinks:
                    sink.stop()
                raise WorkflowFolderError(f"{path}: {exc}") from exc
        return cls(connectors, sinks)

    @property
    def mail_sinks(self) -> list[MailSink]:
        return list(self._sinks)

    async def execute(self, call: EffectCall) -> Any:
        if call.kind == StepKind.HTTP:
            return await send_http(self._connectors.get(str(call.input.get("datasource"))), call)
        if call.kind != StepKind.QUERY:
            raise StepError(f"{call.kind.value} is not an engine-side effect")
        query = find_query(call.files, call.name)
        connector = self._connectors.get(query.datasource)
        if connector is None:
            raise StepError(
                f"query {call.name!r} uses datasource {query.datasource!r}, which is not configured",
                error_type="DatasourceError",
            )
        return await run_query(connector, query, call.input.get("params", {}), call.idempotency_key)

    async def close(self) -> None:
        for connector in self._connectors.values():
            await connector.close()
        for sink in self._sinks:
            sink.stop()


async def run_query(connector: Connector, query: Query, params: dict[str, Any], idempotency_key: str) -> Any:
    """Execute a saved query with its timeout, retrying ``query.retries`` times with doubling backoff."""
    attempts = query.retries + 1
    for attempt in range(1, attempts + 1):
        try:
            run = connector.execute(query, params, idempotency_key)
            return await (asyncio.wait_for(run, query.timeout) if query.timeout else run)
        except TimeoutError:
            error: StepError = ConnectorError(f"query {query.name!r} timed out after {query.timeout:g} s")
        except ConnectorError as exc:
            if 400 <= getattr(exc, "status", 500) < 500:
                raise  # the request itself is wrong: sending it again cannot help
            error = exc
        if attempt == attempts:
            raise error
        await asyncio.sleep(0.1 * 2 ** (attempt - 1))
    raise AssertionError("unreachable")  # pragma: no cover


async def send_http(connector: Connector | None, call: EffectCall) -> Any:
    """A ``wf.http`` call through a ``rest`` datasource (the request dict is what ``wf.http`` journaled)."""
    request = dict(call.input)
    name = str(request.pop("datasource", ""))
    if connector is None:
        raise StepError(f"wf.http: datasource {name!r} does not exist here", error_type="DatasourceError")
    send = getattr(connector, "request", None)
    if send is None:
        raise StepError(f"wf.http needs a rest datasource; {name!r} is not one", error_type="DatasourceError")
    return await send(
        str(request.get("method", "GET")),
        str(request.get("path", "/")),
        query=request.get("query") or {},
        headers=request.get("headers") or {},
        body=request.get("body"),
        allow_error_status=bool(request.get("allow_error_status")),
        timeout=request.get("timeout"),
        idempotency_key=call.idempotency_key,
    )
