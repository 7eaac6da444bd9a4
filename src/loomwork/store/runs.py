"""Run operations: create, claim, park, wake, finish, cancel, retry, recover."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ..errors import Conflict, NotFound
from ..model import ErrorInfo, RequestStatus, Run, RunStatus, StepKind, StepStatus, Trigger
from .base import Tx, utcnow
from .rows import new_run_id, run_from_row
from .schema import nodes, requests, runs, steps
from .versions import time_limit

_ACTIVE = (RunStatus.QUEUED.value, RunStatus.RUNNING.value, RunStatus.WAITING.value)
_INSERT_RUN = runs.insert()


@dataclass(frozen=True, slots=True)
class NewRun:
    workspace: str
    workflow: str
    version_id: int
    version: int
    input: Any
    trigger: Trigger
    test: bool = False
    idempotency_key: str | None = None
    parent_run_id: str | None = None
    parent_seq: int | None = None
    timeout: float | None = None
    run_id: str | None = None


def _run_values(new: NewRun, now: datetime) -> dict[str, Any]:
    return {
        "id": new.run_id or new_run_id(),
        "workspace": new.workspace,
        "workflow": new.workflow,
        "version_id": new.version_id,
        "version": new.version,
        "status": RunStatus.QUEUED.value,
        "trigger": new.trigger.value,
        "test": new.test,
        "input": new.input,
        "created_at": now,
        "deadline_at": now + timedelta(seconds=new.timeout) if new.timeout else None,
        "parent_run_id": new.parent_run_id,
        "parent_seq": new.parent_seq,
        "idempotency_key": new.idempotency_key,
        "attempts": 0,
        "crashes": 0,
    }


def _queued_run(new: NewRun, values: dict[str, Any]) -> Run:
    return Run(
        id=values["id"],
        workspace=new.workspace,
        workflow=new.workflow,
        version=new.version,
        version_id=new.version_id,
        status=RunStatus.QUEUED,
        trigger=new.trigger,
        test=new.test,
        input=new.input,
        output=None,
        error=None,
        created_at=values["created_at"],
        started_at=None,
        finished_at=None,
        parent_run_id=new.parent_run_id,
        parent_seq=new.parent_seq,
    )


def create_run(tx: Tx, new: NewRun) -> tuple[Run, bool]:
    """Store a queued run. With an idempotency key seen before, return that run instead (``False``)."""
    values = _run_values(new, utcnow())
    if new.idempotency_key is None:
        tx.conn.execute(_INSERT_RUN, values)
    else:
        insert = (postgresql if tx.is_postgres else sqlite).insert(runs).values(**values)
        inserted = tx.conn.execute(insert.on_conflict_do_nothing().returning(runs.c.id)).first()
        if inserted is None:
            existing = tx.conn.execute(
                sa.select(runs).where(
                    runs.c.workspace == new.workspace,
                    runs.c.workflow == new.workflow,
                    runs.c.idempotency_key == new.idempotency_key,
                )
            ).one()
            return run_from_row(existing), False
    tx.notify("queued")
    if values["deadline_at"] is not None:
        tx.notify("timer")
    return _queued_run(new, values), True


def create_runs(tx: Tx, batch: list[NewRun]) -> list[Run]:
    """Store many queued runs (no idempotency keys) with one statement."""
    if any(new.idempotency_key is not None for new in batch):
        return [create_run(tx, new)[0] for new in batch]
    now = utcnow()
    rows = [_run_values(new, now) for new in batch]
    if rows:
        tx.conn.execute(_INSERT_RUN, rows)
        tx.notify("queued")
        if any(row["deadline_at"] is not None for row in rows):
            tx.notify("timer")
    return [_queued_run(new, row) for new, row in zip(batch, rows, strict=True)]


def get_run(tx: Tx, run_id: str, workspace: str | None = None) -> Run:
    query = sa.select(runs).where(runs.c.id == run_id)
    if workspace is not None:
        query = query.where(runs.c.workspace == workspace)
    row = tx.conn.execute(query).first()
    if row is None:
        raise NotFound(f"run {run_id} not found")
    return run_from_row(row)


@functools.cache
def _claim_statement(dialect: str) -> Any:
    pick = (
        sa.select(runs.c.id)
        .where(runs.c.status == RunStatus.QUEUED.value)
        .order_by(runs.c.created_at)
        .limit(sa.bindparam("b_limit"))
    )
    if dialect == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    return (
        runs.update()
        .where(runs.c.id.in_(pick.scalar_subquery()))
        .values(
            status=RunStatus.RUNNING.value,
            node_id=sa.bindparam("b_node"),
            started_at=sa.func.coalesce(runs.c.started_at, sa.bindparam("b_now", type_=runs.c.started_at.type)),
            attempts=runs.c.attempts + 1,
        )
        .returning(*runs.c)
    )


def get_runs(tx: Tx, run_ids: list[str]) -> list[Run]:
    """The runs with these ids that exist, in no particular order."""
    found: list[Run] = []
    for start in range(0, len(run_ids), 500):
        chunk = run_ids[start : start + 500]
        found += [run_from_row(row) for row in tx.conn.execute(sa.select(runs).where(runs.c.id.in_(chunk)))]
    return found


def claim_runs(tx: Tx, node_id: str, limit: int) -> list[Run]:
    """Take up to ``limit`` queued runs, oldest first, for this node. Concurrent claimers never share a run."""
    claimed = tx.conn.execute(
        _claim_statement(tx.dialect), {"b_limit": limit, "b_node": node_id, "b_now": utcnow()}
    ).all()
    result = [run_from_row(row) for row in claimed]
    result.sort(key=lambda r: r.created_at)
    return result


_LOCK_RUN = sa.select(runs.c.status, runs.c.node_id).where(runs.c.id == sa.bindparam("b_id"))
_LOCK_RUN_FOR_UPDATE = _LOCK_RUN.with_for_update()


def lock_run(tx: Tx, run_id: str) -> Any:
    """Read the run's row, locking it on Postgres so that wake-ups and parking serialise."""
    return tx.conn.execute(_LOCK_RUN_FOR_UPDATE if tx.is_postgres else _LOCK_RUN, {"b_id": run_id}).first()


def wake_run(tx: Tx, run_id: str) -> None:
    """An outcome arrived for ``run_id``: queue it if parked, tell its node if it is executing."""
    row = lock_run(tx, run_id)
    if row is None:
        return
    if row.status == RunStatus.WAITING.value:
        tx.conn.execute(_QUEUE_RUN, {"b_id": run_id})
        tx.notify("queued")
    elif row.status == RunStatus.RUNNING.value:
        tx.notify("outcome", run_id)


_PARK_RUN = (
    runs.update()
    .where(
        runs.c.id == sa.bindparam("b_id"),
        runs.c.node_id == sa.bindparam("b_node"),
        runs.c.status == RunStatus.RUNNING.value,
    )
    .values(status=RunStatus.WAITING.value, node_id=None)
)
_QUEUE_RUN = runs.update().where(runs.c.id == sa.bindparam("b_id")).values(status=RunStatus.QUEUED.value, node_id=None)
_UNDELIVERED_OUTCOME = sa.select(steps.c.seq, steps.c.kind, steps.c.input).where(
    steps.c.run_id == sa.bindparam("b_id"),
    steps.c.done_order.is_(None),
    steps.c.kind != StepKind.VALUE.value,
    steps.c.status.in_((StepStatus.SUCCEEDED.value, StepStatus.FAILED.value)),
)


def park_run(tx: Tx, run_id: str, node_id: str) -> bool:
    """Mark a run waiting, unless an outcome it waits for already arrived (then it is queued again)."""
    result = tx.conn.execute(_PARK_RUN, {"b_id": run_id, "b_node": node_id})
    if result.rowcount == 0:
        return False
    for row in tx.conn.execute(_UNDELIVERED_OUTCOME, {"b_id": run_id}):
        detached = row.kind == StepKind.CHILD.value and isinstance(row.input, dict) and row.input.get("wait") is False
        if not detached:
            tx.conn.execute(_QUEUE_RUN, {"b_id": run_id})
            tx.notify("queued")
            return False
    return True


def release_run(tx: Tx, run_id: str, node_id: str, *, crashed: bool) -> None:
    """Hand a run back to the queue (shutdown, or its worker process died)."""
    values: dict[str, Any] = {"status": RunStatus.QUEUED.value, "node_id": None}
    if crashed:
        values["crashes"] = runs.c.crashes + 1
    tx.conn.execute(
        runs.update()
        .where(runs.c.id == run_id, runs.c.node_id == node_id, runs.c.status == RunStatus.RUNNING.value)
        .values(**values)
    )
    tx.notify("queued")


def crash_count(tx: Tx, run_id: str) -> int:
    return int(tx.conn.execute(sa.select(runs.c.crashes).where(runs.c.id == run_id)).scalar_one())


_FINISH_VALUES = {
    "status": sa.bindparam("b_status"),
    "output": sa.bindparam("b_output", type_=runs.c.output.type),
    "error": sa.bindparam("b_error", type_=runs.c.error.type),
    "finished_at": sa.bindparam("b_now", type_=runs.c.finished_at.type),
    "node_id": None,
}
_FINISH_RUN = (
    runs.update()
    .where(runs.c.id == sa.bindparam("b_id"), runs.c.status.in_(_ACTIVE))
    .values(**_FINISH_VALUES)
    .returning(*runs.c)
)
_FINISH_OWN_RUN = (
    runs.update()
    .where(
        runs.c.id == sa.bindparam("b_id"),
        runs.c.status.in_(_ACTIVE),
        runs.c.node_id == sa.bindparam("b_node"),
    )
    .values(**_FINISH_VALUES)
    .returning(*runs.c)
)
_CANCEL_PENDING_REQUESTS = (
    requests.update()
    .where(requests.c.run_id == sa.bindparam("b_id"), requests.c.status == RequestStatus.PENDING.value)
    .values(status=RequestStatus.CANCELLED.value)
)


def finish_run(
    tx: Tx,
    run_id: str,
    status: RunStatus,
    *,
    output: Any = None,
    error: ErrorInfo | None = None,
    node_id: str | None = None,
) -> Run | None:
    """Record a run's end and return it as it now is; None if it had already ended (e.g. cancelled)."""
    now = utcnow()
    params = {
        "b_id": run_id,
        "b_node": node_id,
        "b_status": status.value,
        "b_output": output,
        "b_error": error.to_json() if error else None,
        "b_now": now,
    }
    statement = _FINISH_RUN if node_id is None else _FINISH_OWN_RUN
    result = tx.conn.execute(statement, params).first()
    if result is None:
        return None
    tx.conn.execute(_CANCEL_PENDING_REQUESTS, {"b_id": run_id})
    tx.notify("finished", run_id)
    if result.parent_run_id is not None:
        _complete_parent_step(tx, result.parent_run_id, result.parent_seq, run_id, status, output, error, now)
    return run_from_row(result)


def _complete_parent_step(
    tx: Tx,
    parent_id: str,
    seq: int,
    child_id: str,
    status: RunStatus,
    output: Any,
    error: ErrorInfo | None,
    now: datetime,
) -> None:
    ok = status == RunStatus.SUCCEEDED
    failure = {
        "type": "ChildRunFailed",
        "run_id": child_id,
        "status": status.value,
        "message": error.message if error else status.value,
    }
    updated = tx.conn.execute(
        steps.update()
        .where(steps.c.run_id == parent_id, steps.c.seq == seq, steps.c.status == StepStatus.WAITING.value)
        .values(
            status=StepStatus.SUCCEEDED.value if ok else StepStatus.FAILED.value,
            output=output if ok else None,
            error=None if ok else failure,
            finished_at=now,
        )
    )
    if updated.rowcount:
        wake_run(tx, parent_id)


def cancel_run(tx: Tx, run_id: str, workspace: str | None = None) -> Run:
    """Cancel a queued, running or waiting run (and its children); its pending requests are cancelled."""
    run = get_run(tx, run_id, workspace)
    if run.status.is_final:
        raise Conflict(f"run {run_id} already ended ({run.status.value}); only active runs can be cancelled")
    finish_run(tx, run_id, RunStatus.CANCELLED, error=ErrorInfo("RunCancelled", "the run was cancelled"))
    tx.notify("cancel", run_id)
    cancel_children(tx, run_id)
    return get_run(tx, run_id)


def cancel_children(tx: Tx, run_id: str) -> None:
    """A parent that ended early takes the children it was waiting for with it."""
    children = tx.conn.execute(
        sa.select(runs.c.id).where(runs.c.parent_run_id == run_id, runs.c.status.in_(_ACTIVE))
    ).scalars()
    for child in list(children):
        cancel_run(tx, child)


def retry_run(tx: Tx, run_id: str, workspace: str | None = None) -> Run:
    """Queue a failed run again from its failed step: completed steps keep their results."""
    run = get_run(tx, run_id, workspace)
    if run.status != RunStatus.FAILED:
        raise Conflict(f"run {run_id} is {run.status.value}; only failed runs can be retried")
    failed = list(
        tx.conn.execute(
            sa.select(steps.c.seq).where(steps.c.run_id == run_id, steps.c.status == StepStatus.FAILED.value)
        ).scalars()
    )
    if failed:
        tx.conn.execute(steps.delete().where(steps.c.run_id == run_id, steps.c.seq.in_(failed)))
        tx.conn.execute(requests.delete().where(requests.c.run_id == run_id, requests.c.seq.in_(failed)))
    # The time limit counts from the retry: the first attempt's deadline may long have passed.
    limit = time_limit(tx, run.version_id)
    deadline = utcnow() + timedelta(seconds=limit) if limit else None
    tx.conn.execute(
        runs.update()
        .where(runs.c.id == run_id)
        .values(
            status=RunStatus.QUEUED.value,
            error=None,
            output=None,
            finished_at=None,
            node_id=None,
            crashes=0,
            deadline_at=deadline,
        )
    )
    tx.notify("queued")
    if deadline is not None:
        tx.notify("timer")
    return get_run(tx, run_id)


def requeue_orphans(tx: Tx, stale_before: datetime, *, all_but: str | None = None) -> int:
    """Queue again every running run whose node stopped heart-beating (or every node's but ``all_but``)."""
    alive = sa.select(nodes.c.id).where(nodes.c.heartbeat_at >= stale_before)
    if all_but is not None:
        alive = sa.select(sa.literal(all_but))
    result = tx.conn.execute(
        runs.update()
        .where(
            runs.c.status == RunStatus.RUNNING.value,
            sa.or_(runs.c.node_id.is_(None), runs.c.node_id.not_in(alive.scalar_subquery())),
        )
        .values(status=RunStatus.QUEUED.value, node_id=None)
    )
    if result.rowcount:
        tx.notify("queued")
    return int(result.rowcount)


def run_status(tx: Tx, run_id: str) -> RunStatus:
    value = tx.conn.execute(sa.select(runs.c.status).where(runs.c.id == run_id)).scalar_one_or_none()
    if value is None:
        raise NotFound(f"run {run_id} not found")
    return RunStatus(value)
