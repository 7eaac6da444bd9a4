"""Counts for ``/metrics``: a handful of cheap queries over all workspaces, read in one transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from ..model import RequestStatus
from .base import Tx, as_utc
from .schema import requests, runs, steps, workflows


@dataclass(slots=True)
class Stats:
    runs_by_status: dict[str, int] = field(default_factory=dict)
    requests_pending: int = 0
    schedules_enabled: int = 0
    #: ``(kind, seconds)`` of finished steps of recent runs, newest runs first.
    step_durations: list[tuple[str, float]] = field(default_factory=list)


def run_id_floor(since: datetime) -> str:
    """The smallest run id (a UUIDv7, ordered by creation time) a run created at ``since`` can have."""
    ms = f"{int(since.timestamp() * 1000) & ((1 << 48) - 1):012x}"
    return f"{ms[:8]}-{ms[8:]}-0000-0000-000000000000"


def snapshot(tx: Tx, recent_since: datetime, step_limit: int = 10_000) -> Stats:
    """Runs by status, pending requests, enabled schedules, and step durations of runs created since then.

    The step sample is a range scan of the steps' primary key (run ids are time-ordered), so its cost does not
    grow with history.
    """
    stats = Stats()
    for status, count in tx.conn.execute(sa.select(runs.c.status, sa.func.count()).group_by(runs.c.status)).all():
        stats.runs_by_status[status] = int(count)
    stats.requests_pending = int(
        tx.conn.execute(
            sa.select(sa.func.count()).select_from(requests).where(requests.c.status == RequestStatus.PENDING.value)
        ).scalar_one()
    )
    stats.schedules_enabled = int(
        tx.conn.execute(
            sa.select(sa.func.count())
            .select_from(workflows)
            .where(sa.literal_column("workflows.schedule_enabled"), workflows.c.schedule_next_at.is_not(None))
        ).scalar_one()
    )
    rows = tx.conn.execute(
        sa.select(steps.c.kind, steps.c.started_at, steps.c.finished_at)
        .where(
            steps.c.run_id >= run_id_floor(recent_since),
            steps.c.started_at.is_not(None),
            steps.c.finished_at.is_not(None),
        )
        .order_by(steps.c.run_id.desc())
        .limit(step_limit)
    ).all()
    for kind, started, finished in rows:
        start, end = as_utc(started), as_utc(finished)
        if start is not None and end is not None:
            stats.step_durations.append((kind, max((end - start).total_seconds(), 0.0)))
    return stats
