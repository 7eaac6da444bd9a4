"""The step journal: what each run did, keyed by (run, seq), and the order its outcomes were delivered."""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ..model import Step, StepKind, StepStatus
from .base import Tx, utcnow
from .rows import step_from_row
from .schema import steps


@dataclass(frozen=True, slots=True)
class StepRecord:
    """A finished effect step as the engine journals it."""

    run_id: str
    seq: int
    kind: StepKind
    name: str
    ok: bool
    input: Any
    result: Any
    attempts: int
    started_at: datetime
    finished_at: datetime
    order: int


@functools.cache
def _upsert_steps(dialect: str) -> Any:
    """Built once per dialect: building an upsert costs more than executing it."""
    insert = (postgresql if dialect == "postgresql" else sqlite).insert(steps)
    # A step re-executed after a crash has no row yet; the upsert only guards against a double delivery.
    return insert.on_conflict_do_update(
        index_elements=[steps.c.run_id, steps.c.seq],
        set_={
            "status": insert.excluded.status,
            "output": insert.excluded.output,
            "error": insert.excluded.error,
            "attempts": insert.excluded.attempts,
            "finished_at": insert.excluded.finished_at,
            "done_order": insert.excluded.done_order,
        },
    )


@functools.cache
def _insert_steps_if_absent(dialect: str) -> Any:
    return (postgresql if dialect == "postgresql" else sqlite).insert(steps).on_conflict_do_nothing()


def load_journal(tx: Tx, run_id: str) -> list[Step]:
    rows = tx.conn.execute(_LOAD_JOURNAL, {"b_run": run_id}).all()
    return [step_from_row(row) for row in rows]


def adopt_outcomes(tx: Tx, run_id: str, journal: list[Step]) -> tuple[list[Step], int]:
    """Give an order to outcomes that arrived while nobody was executing the run; return the last order.

    Outcomes written by others (a resolution, a timer, a child's end) carry no order until the node executing
    the run delivers them. Whoever claims the run fixes that order here, before replay, in arrival order.
    """
    last = max((s.done_order or 0 for s in journal), default=0)
    unordered = sorted(
        (s for s in journal if is_undelivered(s)),
        key=lambda s: (s.finished_at or utcnow(), s.seq),
    )
    if not unordered:
        return journal, last
    by_seq = {s.seq: s for s in journal}
    updates = []
    for step in unordered:
        last += 1
        updates.append({"b_run": run_id, "b_seq": step.seq, "b_order": last})
        by_seq[step.seq] = replace(step, done_order=last)
    tx.conn.execute(_SET_ORDER, updates)
    return [by_seq[seq] for seq in sorted(by_seq)], last


def is_detached_child(step: Step) -> bool:
    """``run_workflow(..., wait=False)`` journals a finished step that has no outcome to deliver."""
    return step.kind == StepKind.CHILD and isinstance(step.input, dict) and step.input.get("wait") is False


def is_undelivered(step: Step) -> bool:
    """A finished outcome that has not been handed to the workflow yet (it has no order)."""
    return (
        step.done_order is None
        and step.kind != StepKind.VALUE
        and step.status in (StepStatus.SUCCEEDED, StepStatus.FAILED)
        and not is_detached_child(step)
    )


_SET_ORDER = (
    steps.update()
    .where(
        steps.c.run_id == sa.bindparam("b_run"),
        steps.c.seq == sa.bindparam("b_seq"),
        steps.c.done_order.is_(None),
    )
    .values(done_order=sa.bindparam("b_order"))
)
_LOAD_JOURNAL = sa.select(steps).where(steps.c.run_id == sa.bindparam("b_run")).order_by(steps.c.seq)


def set_order(tx: Tx, run_id: str, seq: int, order: int) -> bool:
    result = tx.conn.execute(_SET_ORDER, {"b_run": run_id, "b_seq": seq, "b_order": order})
    return bool(result.rowcount)


def record_steps(tx: Tx, records: list[StepRecord]) -> None:
    """Journal finished effect steps (user steps, queries, http calls) in one statement."""
    if not records:
        return
    rows = [
        {
            "run_id": r.run_id,
            "seq": r.seq,
            "kind": r.kind.value,
            "name": r.name,
            "status": StepStatus.SUCCEEDED.value if r.ok else StepStatus.FAILED.value,
            "input": r.input,
            "output": r.result if r.ok else None,
            "error": None if r.ok else r.result,
            "handle": None,
            "attempts": r.attempts,
            "started_at": r.started_at,
            "finished_at": r.finished_at,
            "done_order": r.order,
            "wake_at": None,
        }
        for r in records
    ]
    statement = _upsert_steps(tx.dialect)
    tx.conn.execute(statement, rows)
    for run_id in {r.run_id for r in records}:
        tx.notify("step", run_id)


record_steps.merge_rows = True  # type: ignore[attr-defined]


def record_values(tx: Tx, run_id: str, values: list[tuple[int, str, Any]]) -> None:
    """Journal values the run produced itself (``now``, ``uuid``, ``random``, ``respond``)."""
    if not values:
        return
    now = utcnow()
    tx.conn.execute(
        _insert_steps_if_absent(tx.dialect),
        [
            {
                "run_id": run_id,
                "seq": seq,
                "kind": StepKind.VALUE.value,
                "name": name,
                "status": StepStatus.SUCCEEDED.value,
                "input": None,
                "output": value,
                "error": None,
                "handle": None,
                "attempts": 1,
                "started_at": now,
                "finished_at": now,
                "done_order": None,
                "wake_at": None,
            }
            for seq, name, value in values
        ],
    )
    tx.notify("step", run_id)
    if any(name == "respond" for _, name, _ in values):
        tx.notify("respond", run_id)  # a caller may be waiting for it (SPEC §4.4)


_RESPONSE_OF = (
    sa.select(steps.c.output)
    .where(
        steps.c.run_id == sa.bindparam("b_run"),
        steps.c.kind == StepKind.VALUE.value,
        steps.c.name == "respond",
    )
    .order_by(steps.c.seq)
    .limit(1)
)


def response_of(tx: Tx, run_id: str) -> Any:
    """What the run's first ``wf.respond`` recorded (``{status_code, body, headers}``), or ``None``."""
    row = tx.conn.execute(_RESPONSE_OF, {"b_run": run_id}).first()
    return None if row is None else row.output


def start_wait(
    tx: Tx,
    run_id: str,
    seq: int,
    kind: StepKind,
    name: str,
    *,
    input: Any = None,
    handle: Any = None,
    wake_at: datetime | None = None,
) -> None:
    """Journal a step that waits on something outside the run (a request, a timer, a child run)."""
    now = utcnow()
    tx.conn.execute(
        _insert_steps_if_absent(tx.dialect),
        dict(
            run_id=run_id,
            seq=seq,
            kind=kind.value,
            name=name,
            status=StepStatus.WAITING.value,
            input=input,
            output=None,
            error=None,
            handle=handle,
            attempts=1,
            started_at=now,
            finished_at=None,
            done_order=None,
            wake_at=wake_at,
        ),
    )
    tx.notify("step", run_id)
    if wake_at is not None:
        tx.notify("timer")


def get_step(tx: Tx, run_id: str, seq: int) -> Step | None:
    row = tx.conn.execute(sa.select(steps).where(steps.c.run_id == run_id, steps.c.seq == seq)).first()
    return None if row is None else step_from_row(row)


def record_detached_child(tx: Tx, run_id: str, seq: int, workflow: str, data: Any, handle: Any) -> None:
    """Journal ``run_workflow(..., wait=False)``: done at once, answered by the child's id alone."""
    now = utcnow()
    tx.conn.execute(
        _insert_steps_if_absent(tx.dialect),
        dict(
            run_id=run_id,
            seq=seq,
            kind=StepKind.CHILD.value,
            name=workflow,
            status=StepStatus.SUCCEEDED.value,
            input={"workflow": workflow, "data": data, "wait": False},
            output=handle,
            error=None,
            handle=handle,
            attempts=1,
            started_at=now,
            finished_at=now,
            done_order=None,
            wake_at=None,
        ),
    )
