"""Durable timers: sleeps, request deadlines and run time limits, all read from the tables they belong to."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from ..model import ErrorInfo, RunStatus, StepKind, StepStatus
from .base import Tx, as_utc
from .requests import expire_requests, next_request_expiry
from .runs import cancel_children, finish_run, wake_run
from .schema import runs, steps
from .versions import time_limit

_ACTIVE = (RunStatus.QUEUED.value, RunStatus.RUNNING.value, RunStatus.WAITING.value)


def next_due(tx: Tx) -> datetime | None:
    """The earliest instant at which some timer fires, or None."""
    candidates = [
        tx.conn.execute(
            sa.select(sa.func.min(steps.c.wake_at)).where(
                steps.c.status == StepStatus.WAITING.value, steps.c.wake_at.is_not(None)
            )
        ).scalar_one_or_none(),
        next_request_expiry(tx),
        tx.conn.execute(
            sa.select(sa.func.min(runs.c.deadline_at)).where(
                runs.c.status.in_(_ACTIVE), runs.c.deadline_at.is_not(None)
            )
        ).scalar_one_or_none(),
    ]
    due = [as_utc(c) for c in candidates if c is not None]
    return min(due) if due else None  # type: ignore[type-var]


def fire_due(tx: Tx, now: datetime, limit: int = 500) -> int:
    """Fire every timer due at ``now``. Idempotent: each firing is a conditional update."""
    fired = 0
    woken = tx.conn.execute(
        steps.update()
        .where(
            steps.c.status == StepStatus.WAITING.value,
            steps.c.kind == StepKind.SLEEP.value,
            steps.c.wake_at.is_not(None),
            steps.c.wake_at <= now,
        )
        .values(status=StepStatus.SUCCEEDED.value, finished_at=now, wake_at=None)
        .returning(steps.c.run_id)
    ).scalars()
    for run_id in sorted(set(woken)):
        wake_run(tx, run_id)
        tx.notify("step", run_id)
        fired += 1
    fired += expire_requests(tx, now, limit)
    overdue = tx.conn.execute(
        sa.select(runs.c.id, runs.c.version_id, runs.c.created_at, runs.c.deadline_at)
        .where(runs.c.status.in_(_ACTIVE), runs.c.deadline_at.is_not(None), runs.c.deadline_at <= now)
        .limit(limit)
    ).all()
    for row in overdue:
        # From the version, not from created_at: a retried run's deadline counts from its retry.
        limit_s = time_limit(tx, row.version_id)
        if limit_s is None:
            limit_s = (as_utc(row.deadline_at) - as_utc(row.created_at)).total_seconds()  # type: ignore[operator]
        error = ErrorInfo(
            "ResourceLimitExceeded",
            f"the run exceeded its time limit of {limit_s:g} s (workflow.toml timeout)",
        )
        if finish_run(tx, row.id, RunStatus.FAILED, error=error):
            tx.notify("cancel", row.id)
            cancel_children(tx, row.id)
            fired += 1
    return fired
