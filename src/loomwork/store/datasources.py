"""Datasources of a workspace: kind, config (JSON) and secrets, which arrive here already sealed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..errors import Conflict, NotFound
from .base import Tx, as_utc, utcnow
from .schema import datasources


@dataclass(frozen=True, slots=True)
class DatasourceRow:
    workspace: str
    name: str
    kind: str
    config: dict[str, Any]
    sealed_secrets: str | None
    secret_names: tuple[str, ...]
    created_at: datetime
    updated_at: datetime


def _row(row: Any) -> DatasourceRow:
    return DatasourceRow(
        workspace=row.workspace,
        name=row.name,
        kind=row.kind,
        config=dict(row.config or {}),
        sealed_secrets=row.secrets,
        secret_names=tuple(row.secret_names or ()),
        created_at=as_utc(row.created_at),  # type: ignore[arg-type]
        updated_at=as_utc(row.updated_at),  # type: ignore[arg-type]
    )


def _where(workspace: str, name: str) -> Any:
    return sa.and_(datasources.c.workspace == workspace, datasources.c.name == name)


def get_datasource(tx: Tx, workspace: str, name: str) -> DatasourceRow:
    row = tx.conn.execute(sa.select(datasources).where(_where(workspace, name))).first()
    if row is None:
        raise NotFound(f"datasource {name!r} not found in workspace {workspace!r}")
    return _row(row)


def find_datasource(tx: Tx, workspace: str, name: str) -> DatasourceRow | None:
    row = tx.conn.execute(sa.select(datasources).where(_where(workspace, name))).first()
    return None if row is None else _row(row)


def list_datasources(tx: Tx, workspace: str) -> list[DatasourceRow]:
    rows = tx.conn.execute(
        sa.select(datasources).where(datasources.c.workspace == workspace).order_by(datasources.c.name)
    ).all()
    return [_row(r) for r in rows]


def create_datasource(
    tx: Tx,
    workspace: str,
    name: str,
    kind: str,
    config: dict[str, Any],
    sealed_secrets: str | None,
    secret_names: list[str],
) -> DatasourceRow:
    if find_datasource(tx, workspace, name) is not None:
        raise Conflict(f"datasource {name!r} already exists in workspace {workspace!r}")
    now = utcnow()
    tx.conn.execute(
        datasources.insert().values(
            workspace=workspace,
            name=name,
            kind=kind,
            config=config,
            secrets=sealed_secrets,
            secret_names=sorted(secret_names),
            created_at=now,
            updated_at=now,
        )
    )
    tx.notify("datasource", f"{workspace}/{name}")
    return get_datasource(tx, workspace, name)


def update_datasource(
    tx: Tx,
    workspace: str,
    name: str,
    *,
    config: dict[str, Any] | None,
    sealed_secrets: str | None,
    secret_names: list[str] | None,
) -> DatasourceRow:
    get_datasource(tx, workspace, name)
    values: dict[str, Any] = {"updated_at": utcnow()}
    if config is not None:
        values["config"] = config
    if secret_names is not None:
        values["secrets"] = sealed_secrets
        values["secret_names"] = sorted(secret_names)
    tx.conn.execute(datasources.update().where(_where(workspace, name)).values(**values))
    tx.notify("datasource", f"{workspace}/{name}")
    return get_datasource(tx, workspace, name)


def delete_datasource(tx: Tx, workspace: str, name: str) -> None:
    if not tx.conn.execute(datasources.delete().where(_where(workspace, name))).rowcount:
        raise NotFound(f"datasource {name!r} not found in workspace {workspace!r}")
    tx.notify("datasource", f"{workspace}/{name}")


def all_sealed(tx: Tx) -> list[tuple[str, str, str]]:
    """``(workspace, name, sealed)`` of every datasource with secrets (for re-sealing after a key rotation)."""
    rows = tx.conn.execute(
        sa.select(datasources.c.workspace, datasources.c.name, datasources.c.secrets).where(
            datasources.c.secrets.is_not(None)
        )
    ).all()
    return [(r.workspace, r.name, r.secrets) for r in rows]


def set_sealed(tx: Tx, workspace: str, name: str, sealed: str) -> None:
    tx.conn.execute(datasources.update().where(_where(workspace, name)).values(secrets=sealed))
