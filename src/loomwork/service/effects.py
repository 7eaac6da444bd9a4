"""Queries and ``wf.http`` calls carried out by the engine through the workspace's datasources.

Workflow code never sees a credential (SPEC §3.5): the worker sends the query's name and params; this executor,
in the engine's process, finds the datasource of the run's workspace, opens its secrets and runs the query.
Connectors (and their connection pools) are kept per datasource and closed when it changes or is deleted:
the store publishes a ``datasource`` notification, which reaches every node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import orjson

from ..connectors.base import Connector
from ..connectors.registry import create_connector
from ..datasources import run_query, send_http
from ..engine import Engine
from ..engine.effects import EffectCall, EffectExecutor
from ..errors import StepError
from ..model import StepKind
from ..queries import find_query
from ..sealing import SecretBox
from ..store import datasources as store

log = logging.getLogger(__name__)

SECRETS_PURPOSE = "datasource-secrets"


def secret_box(engine: Engine) -> SecretBox:
    return SecretBox(engine.secret_key, SECRETS_PURPOSE, engine.config.previous_secret_keys)


class WorkspaceEffects:
    """The engine's :class:`EffectExecutor` in a server: datasources from the database, per workspace.

    ``fallback`` (a ``datasources.toml`` executor, for the demo and local set-ups) serves names the workspace
    does not define.
    """

    def __init__(self, engine: Engine, *, fallback: EffectExecutor | None = None) -> None:
        self.engine = engine
        self.box = secret_box(engine)
        self.base_dir: Path = engine.config.data_dir
        self.fallback = fallback
        self._connectors: dict[tuple[str, str], Connector] = {}
        self._opening: dict[tuple[str, str], asyncio.Lock] = {}
        self._closing: set[asyncio.Task[None]] = set()
        engine.subscribe("datasource", self._changed)

    async def connector(self, workspace: str, name: str) -> Connector | None:
        key = (workspace, name)
        connector = self._connectors.get(key)
        if connector is not None:
            return connector
        lock = self._opening.setdefault(key, asyncio.Lock())
        async with lock:
            connector = self._connectors.get(key)
            if connector is None:
                row = await self.engine.db.read(store.find_datasource, workspace, name)
                if row is None:
                    return None
                secrets = orjson.loads(self.box.unseal(row.sealed_secrets)) if row.sealed_secrets else {}
                connector = create_connector(name, row.kind, row.config, secrets, self.base_dir)
                self._connectors[key] = connector
            return connector

    def _changed(self, payload: str) -> None:
        if payload == "*":
            stale = list(self._connectors)
        else:
            workspace, _, name = payload.partition("/")
            stale = [(workspace, name)] if (workspace, name) in self._connectors else []
        for key in stale:
            connector = self._connectors.pop(key)
            task = asyncio.get_running_loop().create_task(self._close(connector))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _close(connector: Connector) -> None:
        try:
            await connector.close()
        except Exception:
            log.exception("closing a datasource connection failed")

    async def execute(self, call: EffectCall) -> Any:
        if call.kind == StepKind.QUERY:
            query = find_query(call.files, call.name)
            connector = await self.connector(call.workspace, query.datasource)
            if connector is None:
                if self.fallback is not None:
                    return await self.fallback.execute(call)
                raise StepError(
                    f"query {call.name!r} uses datasource {query.datasource!r}, which does not exist in "
                    f"workspace {call.workspace!r}",
                    error_type="DatasourceError",
                )
            return await run_query(connector, query, dict(call.input.get("params") or {}), call.idempotency_key)
        if call.kind == StepKind.HTTP:
            name = str(call.input.get("datasource", ""))
            connector = await self.connector(call.workspace, name)
            if connector is None and self.fallback is not None:
                return await self.fallback.execute(call)
            return await send_http(connector, call)
        raise StepError(f"{call.kind.value} is not an engine-side effect")

    async def close(self) -> None:
        connectors, self._connectors = list(self._connectors.values()), {}
        for connector in connectors:
            await self._close(connector)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        if self.fallback is not None:
            with contextlib.suppress(Exception):
                await self.fallback.close()
