"""Deployed workflow versions: immutable, numbered per workflow; runs are pinned to one."""

from __future__ import annotations

import sqlalchemy as sa

from ..errors import NotFound, WorkflowFolderError
from ..folder import parse_settings
from ..model import WorkflowVersion
from .base import Tx, utcnow
from .rows import version_from_row
from .schema import workflow_versions


def deploy_version(tx: Tx, workspace: str, workflow: str, files: dict[str, str]) -> WorkflowVersion:
    """Store a new version. Deploying files identical to the latest version returns that version."""
    latest = latest_version(tx, workspace, workflow)
    if latest is not None and latest.files == files:
        return latest
    number = 1 if latest is None else latest.number + 1
    return _insert_version(tx, workspace, workflow, number, files)


def _insert_version(tx: Tx, workspace: str, workflow: str, number: int, files: dict[str, str]) -> WorkflowVersion:
    now = utcnow()
    version_id = tx.conn.execute(
        workflow_versions.insert()
        .values(workspace=workspace, workflow=workflow, number=number, files=files, created_at=now)
        .returning(workflow_versions.c.id)
    ).scalar_one()
    return WorkflowVersion(version_id, workspace, workflow, number, dict(files), now)


def latest_version(tx: Tx, workspace: str, workflow: str) -> WorkflowVersion | None:
    """The newest deployed version (numbers > 0; test snapshots of drafts have numbers <= 0)."""
    row = tx.conn.execute(
        sa.select(workflow_versions)
        .where(
            workflow_versions.c.workspace == workspace,
            workflow_versions.c.workflow == workflow,
            workflow_versions.c.number > 0,
        )
        .order_by(workflow_versions.c.number.desc())
        .limit(1)
    ).first()
    return None if row is None else version_from_row(row)


def get_version(tx: Tx, version_id: int) -> WorkflowVersion:
    row = tx.conn.execute(sa.select(workflow_versions).where(workflow_versions.c.id == version_id)).first()
    if row is None:
        raise NotFound(f"workflow version {version_id} not found")
    return version_from_row(row)


def time_limit(tx: Tx, version_id: int) -> float | None:
    """The run time limit in seconds that this version's ``workflow.toml`` sets (``timeout``), if any."""
    files = tx.conn.execute(
        sa.select(workflow_versions.c.files).where(workflow_versions.c.id == version_id)
    ).scalar_one_or_none()
    try:
        return parse_settings((files or {}).get("workflow.toml")).timeout
    except WorkflowFolderError:  # checked at deploy; a timer must never trip over it
        return None


def list_versions(
    tx: Tx, workspace: str, workflow: str, limit: int, before: int | None = None
) -> list[WorkflowVersion]:
    """Deployed versions, newest first; ``before`` continues a listing after that number."""
    query = sa.select(workflow_versions).where(
        workflow_versions.c.workspace == workspace,
        workflow_versions.c.workflow == workflow,
        workflow_versions.c.number > 0,
    )
    if before is not None:
        query = query.where(workflow_versions.c.number < before)
    rows = tx.conn.execute(query.order_by(workflow_versions.c.number.desc()).limit(limit)).all()
    return [version_from_row(row) for row in rows]


def version_by_number(tx: Tx, workspace: str, workflow: str, number: int) -> WorkflowVersion:
    row = tx.conn.execute(
        sa.select(workflow_versions).where(
            workflow_versions.c.workspace == workspace,
            workflow_versions.c.workflow == workflow,
            workflow_versions.c.number == number,
            workflow_versions.c.number > 0,
        )
    ).first()
    if row is None:
        raise NotFound(f"workflow {workflow!r} has no version {number}")
    return version_from_row(row)


# -- for triggers ----------------------------------------------------------------------------------------------
_LATEST_DEPLOYED_REF = (
    sa.select(workflow_versions.c.id, workflow_versions.c.number)
    .where(
        workflow_versions.c.workspace == sa.bindparam("b_ws"),
        workflow_versions.c.workflow == sa.bindparam("b_wf"),
        workflow_versions.c.number > 0,
    )
    .order_by(workflow_versions.c.number.desc())
    .limit(1)
)


def latest_deployed_ref(tx: Tx, workspace: str, workflow: str) -> tuple[int, int] | None:
    """``(version id, number)`` of the newest deployed version, without its files (the trigger's hot path)."""
    row = tx.conn.execute(_LATEST_DEPLOYED_REF, {"b_ws": workspace, "b_wf": workflow}).first()
    return None if row is None else (row.id, row.number)


def snapshot_version(tx: Tx, workspace: str, workflow: str, files: dict[str, str]) -> WorkflowVersion:
    """Freeze a draft for a test run as a version numbered -1, -2, ... (the newest is reused if identical).

    Snapshots are versions like any other to the engine (a run is pinned to one), but every listing of
    deployed versions and ``latest_version`` skip numbers <= 0.
    """
    row = tx.conn.execute(
        sa.select(workflow_versions)
        .where(
            workflow_versions.c.workspace == workspace,
            workflow_versions.c.workflow == workflow,
            workflow_versions.c.number < 0,
        )
        .order_by(workflow_versions.c.number.asc())
        .limit(1)
    ).first()
    newest = None if row is None else version_from_row(row)
    if newest is not None and newest.files == files:
        return newest
    number = -1 if newest is None else newest.number - 1
    return _insert_version(tx, workspace, workflow, number, files)
