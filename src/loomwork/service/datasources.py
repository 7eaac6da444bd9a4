"""Datasource management and the editor's "Run query": who may do what, and secrets kept write-only.

Secrets are sealed (``loomwork.sealing``) before they reach the store and are never returned: reads show the
config and the *names* of the secrets that are set. ``PATCH`` merges secrets: a name with a string sets it, a
name with ``null`` removes it, names not sent stay as they are.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from ..connectors.base import ConnectorError
from ..connectors.registry import create_connector, spec_of
from ..datasources import run_query
from ..engine import Engine
from ..errors import NotFound, StepError, WorkflowFolderError
from ..folder import check_name
from ..model import Role
from ..queries import find_query
from ..store import datasources as store
from ..store import workflows as drafts
from .accounts import Access
from .effects import WorkspaceEffects, secret_box

TEST_TIMEOUT = 15.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of a connection test or an editor query run: never raises for the datasource's own errors."""

    ok: bool
    elapsed_ms: float
    result: Any = None
    error: dict[str, str] | None = None


class Datasources:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.db = engine.db
        self.box = secret_box(engine)

    # -- reading ---------------------------------------------------------------------------------------------
    async def list(self, access: Access) -> list[store.DatasourceRow]:
        return await self.db.read(store.list_datasources, access.workspace)

    async def get(self, access: Access, name: str) -> store.DatasourceRow:
        return await self.db.read(store.get_datasource, access.workspace, name)

    # -- changing --------------------------------------------------------------------------------------------
    async def create(
        self, access: Access, name: str, kind: str, config: Mapping[str, Any], secrets: Mapping[str, Any]
    ) -> store.DatasourceRow:
        access.require(Role.DEVELOPER)
        check_name(name, "datasource name")
        spec = spec_of(kind)
        clean_config, clean_secrets = spec.check(name, config, {k: v for k, v in secrets.items() if v is not None})
        spec.check_required_secrets(name, clean_secrets)
        sealed = self._seal(clean_secrets)
        return await self.db.write(
            store.create_datasource, access.workspace, name, kind, clean_config, sealed, list(clean_secrets)
        )

    async def update(
        self,
        access: Access,
        name: str,
        *,
        config: Mapping[str, Any] | None = None,
        secrets: Mapping[str, Any] | None = None,
    ) -> store.DatasourceRow:
        access.require(Role.DEVELOPER)
        current = await self.db.read(store.get_datasource, access.workspace, name)
        spec = spec_of(current.kind)
        new_config = None
        if config is not None:
            new_config, _ = spec.check(name, config, {})
        sealed: str | None = None
        names: list[str] | None = None
        if secrets is not None:
            merged = self._open(current.sealed_secrets)
            _, given = spec.check(name, {}, {k: v for k, v in secrets.items() if v is not None})
            merged.update(given)
            for key, value in secrets.items():
                if value is None:
                    merged.pop(key, None)
            spec.check_required_secrets(name, merged)
            sealed, names = self._seal(merged), list(merged)
        return await self.db.write(
            store.update_datasource,
            access.workspace,
            name,
            config=new_config,
            sealed_secrets=sealed,
            secret_names=names,
        )

    async def delete(self, access: Access, name: str) -> None:
        access.require(Role.DEVELOPER)
        await self.db.write(store.delete_datasource, access.workspace, name)

    # -- trying ----------------------------------------------------------------------------------------------
    async def test(self, access: Access, name: str) -> Outcome:
        """Connect with the stored settings and report the server's version, or the error."""
        access.require(Role.DEVELOPER)
        row = await self.db.read(store.get_datasource, access.workspace, name)
        connector = create_connector(
            name, row.kind, row.config, self._open(row.sealed_secrets), self.engine.config.data_dir
        )
        started = time.perf_counter()
        try:
            version = await asyncio.wait_for(connector.test(), TEST_TIMEOUT)
            return Outcome(True, _ms(started), result=version)
        except TimeoutError:
            return Outcome(False, _ms(started), error=_error("Timeout", f"no answer within {TEST_TIMEOUT:g} s"))
        except (ConnectorError, StepError) as exc:
            return Outcome(False, _ms(started), error=_error(exc.error_type, str(exc)))
        finally:
            await connector.close()

    async def run_query(self, access: Access, workflow: str, query_name: str, params: dict[str, Any]) -> Outcome:
        """Run one query of the draft with ``params`` through the workspace's datasources (the editor's button)."""
        access.require(Role.DEVELOPER)
        draft = await self.db.read(drafts.get_workflow, access.workspace, workflow)
        try:
            query = find_query(draft.files, query_name)
        except WorkflowFolderError as exc:
            return Outcome(False, 0.0, error=_error("QueryError", str(exc)))
        except StepError as exc:
            if exc.error_type == "QueryError":
                raise NotFound(str(exc)) from exc
            raise
        effects = self.engine.effects
        if not isinstance(effects, WorkspaceEffects):
            return Outcome(False, 0.0, error=_error("DatasourceError", "this server has no datasources"))
        started = time.perf_counter()
        try:
            connector = await effects.connector(access.workspace, query.datasource)
            if connector is None:
                message = f"datasource {query.datasource!r} does not exist in workspace {access.workspace!r}"
                return Outcome(False, _ms(started), error=_error("DatasourceError", message))
            result = await run_query(connector, query, params, f"editor:{workflow}:{query_name}")
            return Outcome(True, _ms(started), result=result)
        except StepError as exc:
            return Outcome(False, _ms(started), error=_error(exc.error_type, str(exc)))

    # -- secrets ---------------------------------------------------------------------------------------------
    def _seal(self, secrets: dict[str, str]) -> str | None:
        return self.box.seal(orjson.dumps(secrets)) if secrets else None

    def _open(self, sealed: str | None) -> dict[str, str]:
        if not sealed:
            return {}
        value: dict[str, str] = orjson.loads(self.box.unseal(sealed))
        return value


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _error(kind: str, message: str) -> dict[str, str]:
    return {"type": kind, "message": message}
