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
    now = utcnow()
    version_id = tx.conn.execute(
        workflow_versions.insert()
        .values(workspace=workspace, workflow=workflow, number=number, files=files, created_at=now)
        .returning(workflow_versions.c.id)
    ).scalar_one()
    return WorkflowVersion(version_id, workspace, workflow, number, dict(files), now)


def latest_version(tx: Tx, workspace: str, workflow: str) -> WorkflowVersion | None:
    row = tx.conn.execute(
        sa.select(workflow_versions)
        .where(workflow_versions.c.workspace == workspace, workflow_versions.c.workflow == workflow)
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
