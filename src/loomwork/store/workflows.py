"""Workflow drafts (what the editor edits) and their webhook settings; deployed versions live in ``versions``."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..errors import Conflict, NotFound
from ..model import RunStatus, Schedule, Workflow
from .base import Tx, as_utc, utcnow
from .schema import requests, runs, workflow_versions, workflows

_ACTIVE = [RunStatus.QUEUED.value, RunStatus.RUNNING.value, RunStatus.WAITING.value]


def _deployed_numbers() -> Any:
    return (
        sa.select(sa.func.max(workflow_versions.c.number))
        .where(
            workflow_versions.c.workspace == workflows.c.workspace,
            workflow_versions.c.workflow == workflows.c.name,
            workflow_versions.c.number > 0,  # test snapshots of drafts have numbers <= 0
        )
        .scalar_subquery()
        .label("deployed_version")
    )


def _workflow(row: Any) -> Workflow:
    schedule = None
    if row.schedule_cron is not None:
        schedule = Schedule(
            cron=row.schedule_cron,
            timezone=row.schedule_timezone or "UTC",
            data=row.schedule_data,
            enabled=bool(row.schedule_enabled),
            next_fire_at=as_utc(row.schedule_next_at),
        )
    return Workflow(
        workspace=row.workspace,
        name=row.name,
        description=row.description,
        files=dict(row.files or {}),
        created_at=as_utc(row.created_at),  # type: ignore[arg-type]
        updated_at=as_utc(row.updated_at),  # type: ignore[arg-type]
        deployed_version=row.deployed_version,
        webhook_id=row.webhook_id,
        hmac_enabled=row.webhook_hmac_secret is not None,
        schedule=schedule,
    )


def _select() -> Any:
    return sa.select(workflows, _deployed_numbers())


def get_workflow(tx: Tx, workspace: str, name: str) -> Workflow:
    row = tx.conn.execute(_select().where(workflows.c.workspace == workspace, workflows.c.name == name)).first()
    if row is None:
        raise NotFound(f"workflow {name!r} not found in workspace {workspace!r}")
    return _workflow(row)


def list_workflows(tx: Tx, workspace: str) -> list[Workflow]:
    rows = tx.conn.execute(_select().where(workflows.c.workspace == workspace).order_by(workflows.c.name)).all()
    return [_workflow(r) for r in rows]


def list_workflows_page(tx: Tx, workspace: str, limit: int, after: str | None = None) -> list[Workflow]:
    """Workflows by name without their files (for lists); ``after`` continues after that name."""
    columns = [c for c in workflows.c if c.name != "files"]
    query = sa.select(*columns, sa.null().label("files"), _deployed_numbers()).where(workflows.c.workspace == workspace)
    if after is not None:
        query = query.where(workflows.c.name > after)
    rows = tx.conn.execute(query.order_by(workflows.c.name).limit(limit)).all()
    return [_workflow(r) for r in rows]


def last_run_statuses(tx: Tx, workspace: str) -> dict[str, str]:
    """The status of each workflow's newest run (for lists)."""
    newest = (
        sa.select(runs.c.workflow, sa.func.max(runs.c.created_at).label("created_at"))
        .where(runs.c.workspace == workspace)
        .group_by(runs.c.workflow)
        .subquery()
    )
    rows = tx.conn.execute(
        sa.select(runs.c.workflow, runs.c.status).join(
            newest,
            sa.and_(
                runs.c.workflow == newest.c.workflow,
                runs.c.created_at == newest.c.created_at,
                runs.c.workspace == workspace,
            ),
        )
    ).all()
    return {r.workflow: r.status for r in rows}


def create_workflow(tx: Tx, workspace: str, name: str, description: str, files: dict[str, str]) -> Workflow:
    exists = tx.conn.execute(
        sa.select(workflows.c.name).where(workflows.c.workspace == workspace, workflows.c.name == name)
    ).first()
    if exists is not None:
        raise Conflict(f"workflow {name!r} already exists in workspace {workspace!r}")
    now = utcnow()
    tx.conn.execute(
        workflows.insert().values(
            workspace=workspace,
            name=name,
            description=description,
            files=files,
            created_at=now,
            updated_at=now,
            schedule_enabled=False,
        )
    )
    return get_workflow(tx, workspace, name)


def update_workflow(
    tx: Tx,
    workspace: str,
    name: str,
    *,
    new_name: str | None = None,
    description: str | None = None,
    files: dict[str, str] | None = None,
) -> Workflow:
    current = get_workflow(tx, workspace, name)
    values: dict[str, Any] = {"updated_at": utcnow()}
    if description is not None:
        values["description"] = description
    if files is not None:
        values["files"] = files
    if new_name is not None and new_name != name:
        _rename(tx, workspace, name, new_name)
        values["name"] = new_name
    tx.conn.execute(
        workflows.update().where(workflows.c.workspace == workspace, workflows.c.name == name).values(**values)
    )
    return get_workflow(tx, workspace, values.get("name", current.name))


def _rename(tx: Tx, workspace: str, old: str, new: str) -> None:
    taken = tx.conn.execute(
        sa.select(workflows.c.name).where(workflows.c.workspace == workspace, workflows.c.name == new)
    ).first()
    if taken is not None:
        raise Conflict(f"workflow {new!r} already exists in workspace {workspace!r}")
    _refuse_if_active(tx, workspace, old, "renamed")
    for table in (workflow_versions, runs, requests):
        tx.conn.execute(
            table.update().where(table.c.workspace == workspace, table.c.workflow == old).values(workflow=new)
        )


def _refuse_if_active(tx: Tx, workspace: str, name: str, what: str) -> None:
    active = tx.conn.execute(
        sa.select(sa.func.count())
        .select_from(runs)
        .where(runs.c.workspace == workspace, runs.c.workflow == name, runs.c.status.in_(_ACTIVE))
    ).scalar_one()
    if active:
        raise Conflict(
            f"workflow {name!r} has {active} run(s) in progress and cannot be {what}; cancel them or let them finish"
        )


def delete_workflow(tx: Tx, workspace: str, name: str) -> None:
    """Delete the workflow, its versions and its run history. Refused while runs are in progress."""
    get_workflow(tx, workspace, name)
    _refuse_if_active(tx, workspace, name, "deleted")
    tx.conn.execute(runs.delete().where(runs.c.workspace == workspace, runs.c.workflow == name))
    tx.conn.execute(
        workflow_versions.delete().where(
            workflow_versions.c.workspace == workspace, workflow_versions.c.workflow == name
        )
    )
    tx.conn.execute(workflows.delete().where(workflows.c.workspace == workspace, workflows.c.name == name))


def put_file(tx: Tx, workspace: str, name: str, path: str, text: str | None) -> Workflow:
    """Write one draft file (``text=None`` deletes it)."""
    files = dict(get_workflow(tx, workspace, name).files)
    if text is None:
        if path not in files:
            raise NotFound(f"workflow {name!r} has no file {path!r}")
        del files[path]
    else:
        files[path] = text
    return update_workflow(tx, workspace, name, files=files)


# -- webhooks --------------------------------------------------------------------------------------------------
def set_webhook(
    tx: Tx, workspace: str, name: str, webhook_id: str, token_hash: str, hmac_secret: str | None
) -> Workflow:
    get_workflow(tx, workspace, name)
    tx.conn.execute(
        workflows.update()
        .where(workflows.c.workspace == workspace, workflows.c.name == name)
        .values(webhook_id=webhook_id, webhook_token_hash=token_hash, webhook_hmac_secret=hmac_secret)
    )
    return get_workflow(tx, workspace, name)


def clear_webhook(tx: Tx, workspace: str, name: str) -> None:
    get_workflow(tx, workspace, name)
    tx.conn.execute(
        workflows.update()
        .where(workflows.c.workspace == workspace, workflows.c.name == name)
        .values(webhook_id=None, webhook_token_hash=None, webhook_hmac_secret=None)
    )


_HOOK_LOOKUP = (
    sa.select(
        workflows.c.workspace,
        workflows.c.name,
        workflows.c.webhook_token_hash,
        workflows.c.webhook_hmac_secret,
    )
    .where(workflows.c.webhook_id == sa.bindparam("webhook_id"))
    .limit(1)
)


def webhook_target(tx: Tx, webhook_id: str) -> tuple[str, str, str, str | None] | None:
    """``(workspace, workflow, token_hash, hmac_secret)`` for an enabled webhook id, else ``None``."""
    row = tx.conn.execute(_HOOK_LOOKUP, {"webhook_id": webhook_id}).first()
    if row is None or row.webhook_token_hash is None:
        return None
    return row.workspace, row.name, row.webhook_token_hash, row.webhook_hmac_secret


def all_sealed_hmac_secrets(tx: Tx) -> list[tuple[str, str, str]]:
    """``(workspace, workflow, sealed)`` of every webhook HMAC secret (for re-sealing after a key rotation)."""
    rows = tx.conn.execute(
        sa.select(workflows.c.workspace, workflows.c.name, workflows.c.webhook_hmac_secret).where(
            workflows.c.webhook_hmac_secret.is_not(None)
        )
    ).all()
    return [(r.workspace, r.name, r.webhook_hmac_secret) for r in rows]


def set_sealed_hmac_secret(tx: Tx, workspace: str, name: str, sealed: str) -> None:
    tx.conn.execute(
        workflows.update()
        .where(workflows.c.workspace == workspace, workflows.c.name == name)
        .values(webhook_hmac_secret=sealed)
    )
