"""Claiming runs for execution, with everything a worker needs to replay them, in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..model import ErrorInfo, Run, RunStatus, Step, WorkflowVersion
from .base import Tx
from .journal import adopt_outcomes, is_undelivered, load_journal
from .rows import step_from_row
from .runs import claim_runs, finish_run, release_run
from .schema import runs, steps
from .versions import get_version


@dataclass(frozen=True, slots=True)
class ClaimedRun:
    run: Run
    journal: list[Step]
    last_order: int
    version: WorkflowVersion | None  # None when the caller said it already has it


def claim_for_execution(tx: Tx, node_id: str, limit: int, known_versions: frozenset[int]) -> list[ClaimedRun]:
    claimed = claim_runs(tx, node_id, limit)
    if not claimed:
        return []
    journals: dict[str, list[Step]] = {run.id: [] for run in claimed}
    rows = tx.conn.execute(
        sa.select(steps).where(steps.c.run_id.in_(list(journals))).order_by(steps.c.run_id, steps.c.seq)
    )
    for row in rows:
        journals[row.run_id].append(step_from_row(row))
    versions: dict[int, WorkflowVersion] = {}
    result = []
    for run in claimed:
        journal, last = adopt_outcomes(tx, run.id, journals[run.id])
        version = None
        if run.version_id not in known_versions:
            version = versions.get(run.version_id) or get_version(tx, run.version_id)
            versions[run.version_id] = version
        result.append(ClaimedRun(run, journal, last, version))
    return result


def unordered_outcomes(tx: Tx, run_id: str) -> list[Step]:
    """Outcomes that arrived for a run while it executes, not yet delivered to it."""
    return [s for s in load_journal(tx, run_id) if is_undelivered(s)]


def release_after_crash(tx: Tx, run_id: str, node_id: str, max_crashes: int, cause: str) -> bool:
    """Requeue a run whose worker died; fail it if that keeps happening. Returns True if it was failed."""
    release_run(tx, run_id, node_id, crashed=True)
    crashes = tx.conn.execute(sa.select(runs.c.crashes).where(runs.c.id == run_id)).scalar_one_or_none()
    if crashes is None or crashes < max_crashes:
        return False
    error = ErrorInfo(
        "WorkerCrashed",
        f"the worker process running this run died {crashes} times ({cause}); "
        "the run probably crashes it (memory limit, native code, os._exit)",
    )
    return finish_run(tx, run_id, RunStatus.FAILED, error=error) is not None


def journal_json(step: Step) -> dict[str, Any]:
    return {
        "seq": step.seq,
        "kind": step.kind.value,
        "name": step.name,
        "status": step.status.value,
        "output": step.output,
        "error": step.error_detail,
        "done_order": step.done_order,
        "handle": step.handle,
    }
