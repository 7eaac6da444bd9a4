"""The pure replay core: a journal and outcomes go in, commands come out. No I/O happens here.

A :class:`RunMachine` drives one run's ``execute_workflow`` coroutine on a :class:`DeterministicLoop`. Each
``wf.*`` call takes the next step number. If the journal holds that number, the call must match it (same kind
and name) or the run fails with :class:`NonDeterminismError`; its recorded outcome is delivered at the same
point, relative to the other outcomes, as it was the first time (``done_order``). Steps past the end of the
journal become commands for the host to carry out; their outcomes come back through :meth:`deliver`.

Outcomes are only ever delivered when the loop is quiescent, one at a time, and acks (answers a command needs
before the workflow can go on: a request's id, a child's run id) before any outcome. Those two rules make the
order in which steps are *started* a function of the order of delivered outcomes alone, so replay is exact.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import enum
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import NonDeterminismError
from ..model import ErrorInfo, LogLevel, StepKind, StepStatus
from .commands import (
    CallEffect,
    Command,
    CreateRequest,
    EmitLog,
    RecordValue,
    RunStep,
    StartChild,
    StartSleep,
)
from .journal import JournalEntry
from .loop import DeterministicLoop

current_machine: contextvars.ContextVar[RunMachine] = contextvars.ContextVar("loomwork_run_machine")


class MachineState(enum.StrEnum):
    """Where a machine stands after it has run to quiescence."""

    BUSY = "busy"  # effects or acks are outstanding; the host keeps the run
    WAITING = "waiting"  # only waits (requests, sleeps, children) are outstanding; the run can be parked
    STUCK = "stuck"  # nothing is outstanding yet the workflow has not returned
    DONE = "done"  # the workflow returned or raised; see ``outcome``


@dataclass(frozen=True, slots=True)
class RunInfo:
    run_id: str
    workflow: str
    workspace: str
    trigger: str
    version: int


@dataclass(frozen=True, slots=True)
class Succeeded:
    output: Any


@dataclass(frozen=True, slots=True)
class Failed:
    error: ErrorInfo


Outcome = Succeeded | Failed

ErrorFactory = Callable[[StepKind, dict[str, Any]], BaseException]
ErrorFormatter = Callable[[BaseException], ErrorInfo]


class RunMachine:
    """Replays and continues one run. Not thread-safe; the host calls it from one thread."""

    def __init__(
        self,
        entry: Callable[[Any], Awaitable[Any]],
        data: Any,
        journal: list[JournalEntry],
        *,
        info: RunInfo,
        clock: Callable[[], datetime],
        rng: random.Random,
        error_for: ErrorFactory,
        format_error: ErrorFormatter,
    ) -> None:
        self.info = info
        self._entry = entry
        self._data = data
        self._clock = clock
        self._rng = rng
        self._error_for = error_for
        self._format_error = format_error
        self._loop = DeterministicLoop()  # type: ignore[abstract]
        self._recorded = {e.seq: e for e in journal}
        self._last_recorded_seq = max(self._recorded, default=0)
        self._replay_orders: collections.deque[tuple[int, int]] = collections.deque(
            sorted((e.done_order, e.seq) for e in journal if e.is_done and e.done_order is not None)
        )
        self.last_order = 0
        self._next_seq = 1
        self._outcomes: dict[int, tuple[asyncio.Future[Any], StepKind]] = {}
        self._ack_waiters: dict[int, asyncio.Future[Any]] = {}
        self._acks: dict[int, tuple[bool, Any]] = {}
        self._commands: list[Command] = []
        self._main: asyncio.Task[Any] | None = None
        self.outcome: Outcome | None = None
        self._diverged: NonDeterminismError | None = None

    # -- host interface -----------------------------------------------------------------------------------
    def start(self) -> list[Command]:
        """Start the workflow from the top; replays the journal and returns the first new commands."""
        ctx = contextvars.copy_context()
        ctx.run(current_machine.set, self)
        self._main = self._loop.create_task(self._run_entry(), context=ctx)
        self._settle()
        return self.take_commands()

    def deliver_ack(self, seq: int, ok: bool, value: Any) -> list[Command]:
        """The engine answered an acked command (request created, child started)."""
        if seq not in self._ack_waiters:
            raise ValueError(f"step {seq} is not waiting for an ack")
        self._acks[seq] = (ok, value)
        self._settle()
        return self.take_commands()

    def deliver(self, seq: int, order: int, ok: bool, value: Any) -> list[Command]:
        """An outcome arrived live; ``order`` is the journal position the engine gave it."""
        if order <= self.last_order:
            raise ValueError(f"outcome order {order} is not after {self.last_order}")
        self.last_order = order
        self._resolve(seq, ok, value)
        self._settle()
        return self.take_commands()

    def take_commands(self) -> list[Command]:
        commands, self._commands = self._commands, []
        return commands

    @property
    def state(self) -> MachineState:
        if self.outcome is not None:
            return MachineState.DONE
        if self._ack_waiters or any(not kind.is_wait for _, kind in self._outcomes.values()):
            return MachineState.BUSY
        return MachineState.WAITING if self._outcomes else MachineState.STUCK

    @property
    def awaiting_ack(self) -> bool:
        return bool(self._ack_waiters)

    @property
    def is_replaying(self) -> bool:
        """True while the workflow is still re-walking ground the journal already covers."""
        return bool(self._replay_orders) or self._next_seq <= self._last_recorded_seq

    def pending_steps(self) -> list[tuple[int, StepKind]]:
        return sorted((seq, kind) for seq, (_, kind) in self._outcomes.items())

    def close(self) -> None:
        if self._main is not None and not self._main.done():
            self._main.cancel()
            self._loop.run_until_quiescent()
        self._loop.close()

    # -- wf interface: each returns at once; futures resolve when outcomes are delivered -------------------
    def call_step(self, kind: StepKind, name: str, make: Callable[[int], Command]) -> asyncio.Future[Any]:
        """Start an effect step (user step, query, http call, sleep) and return its outcome future."""
        seq = self._take_seq(kind, name)
        future = self._loop.create_future()
        self._outcomes[seq] = (future, kind)
        recorded = self._recorded.get(seq)
        if recorded is None or (recorded.status == StepStatus.RUNNING and not kind.is_wait):
            # New ground, or a step that was in flight when the run stopped: run it (again).
            self._commands.append(make(seq))
        return future

    def call_acked(
        self, kind: StepKind, name: str, make: Callable[[int], Command], *, outcome: bool
    ) -> tuple[int, asyncio.Future[Any], asyncio.Future[Any] | None]:
        """Start a step that answers at once (ack) and, if ``outcome``, again when it finishes."""
        seq = self._take_seq(kind, name)
        ack = self._loop.create_future()
        self._ack_waiters[seq] = ack
        done: asyncio.Future[Any] | None = None
        if outcome:
            done = self._loop.create_future()
            self._outcomes[seq] = (done, kind)
        recorded = self._recorded.get(seq)
        if recorded is None or recorded.handle is None:
            self._commands.append(make(seq))
        else:
            self._acks[seq] = (True, recorded.handle)
        return seq, ack, done

    def record_value(self, name: str, produce: Callable[[], Any]) -> Any:
        """Return the journaled value of a ``now``/``uuid``/``random``-like call, producing it the first time."""
        seq = self._take_seq(StepKind.VALUE, name)
        recorded = self._recorded.get(seq)
        if recorded is not None and recorded.status == StepStatus.SUCCEEDED:
            return recorded.output
        value = produce()
        self._commands.append(RecordValue(seq, name, value))
        return value

    def now(self) -> datetime:
        return self._clock()

    def random_bits(self, bits: int) -> int:
        return self._rng.getrandbits(bits)

    def new_uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def emit_log(self, level: LogLevel, message: str, fields: dict[str, Any]) -> None:
        if self.is_replaying:
            return  # the first execution already recorded this line
        self._commands.append(EmitLog(level, message, fields, self._clock().isoformat()))

    def next_step_key(self) -> str:
        return f"{self.info.run_id}:{self._next_seq}"

    # -- internals ----------------------------------------------------------------------------------------
    def _take_seq(self, kind: StepKind, name: str) -> int:
        seq = self._next_seq
        self._next_seq += 1
        recorded = self._recorded.get(seq)
        if recorded is not None and (recorded.kind != kind or recorded.name != name):
            # Remembered as well as raised: the run fails even if workflow code catches it.
            self._diverged = NonDeterminismError(seq, recorded.describe(), f"{kind.value} {name!r}")
            raise self._diverged
        return seq

    async def _run_entry(self) -> Any:
        return await self._entry(self._data)

    def _resolve(self, seq: int, ok: bool, value: Any) -> None:
        entry = self._outcomes.pop(seq, None)
        if entry is None:
            raise ValueError(f"step {seq} has no outcome pending")
        future, kind = entry
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(self._error_for(kind, value))

    def _settle(self) -> None:
        """Run to quiescence, feeding acks and then recorded outcomes until only live ones are awaited."""
        while True:
            self._loop.run_until_quiescent()
            if self._diverged is not None and self.outcome is None:
                self._fail(self._diverged)
                return
            if self._finish_if_done():
                return
            ready_acks = sorted(seq for seq in self._ack_waiters if seq in self._acks)
            if ready_acks:
                seq = ready_acks[0]
                ok, value = self._acks.pop(seq)
                future = self._ack_waiters.pop(seq)
                if ok:
                    future.set_result(value)
                else:
                    self._outcomes.pop(seq, None)
                    future.set_exception(self._error_for(StepKind.REQUEST, value))
                continue
            if self._ack_waiters or not self._replay_orders:
                return
            order, seq = self._replay_orders[0]
            if seq not in self._outcomes:
                entry = self._recorded[seq]
                self._fail(
                    NonDeterminismError(
                        seq, entry.describe() + " (completed)", "no call reaching it before the run blocked"
                    )
                )
                return
            self._replay_orders.popleft()
            self.last_order = order
            entry = self._recorded[seq]
            succeeded = entry.status == StepStatus.SUCCEEDED
            self._resolve(seq, succeeded, entry.output if succeeded else entry.error)

    def _finish_if_done(self) -> bool:
        if self.outcome is not None:
            return True
        main = self._main
        if main is None or not main.done():
            return False
        unreached = [seq for seq in self._recorded if seq >= self._next_seq]
        exc = None if main.cancelled() else main.exception()
        if main.cancelled():
            self.outcome = Failed(ErrorInfo("RunCancelled", "the workflow's main task was cancelled"))
        elif unreached:
            # The journal holds a step this execution never called: the code changed under the run.
            entry = self._recorded[min(unreached)]
            done = entry.status in (StepStatus.SUCCEEDED, StepStatus.FAILED)
            recorded = entry.describe() + (" (completed)" if done else "")
            self.outcome = Failed(
                self._format_error(
                    NonDeterminismError(entry.seq, recorded, "no further step (the workflow ended first)")
                )
            )
        elif exc is not None:
            self.outcome = Failed(self._format_error(exc))
        else:
            self.outcome = Succeeded(main.result())
        return True

    def _fail(self, exc: BaseException) -> None:
        self.outcome = Failed(self._format_error(exc))
        self.close()


__all__ = [
    "CallEffect",
    "CreateRequest",
    "Failed",
    "MachineState",
    "RunInfo",
    "RunMachine",
    "RunStep",
    "StartChild",
    "StartSleep",
    "Succeeded",
    "current_machine",
]
