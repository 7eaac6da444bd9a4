"""The replay core on its own: recorded journals of real runs in, commands and outcomes out.

No engine, database or process is involved; every test here runs in milliseconds. The journals under
``fixtures/journals/`` were recorded from real runs by ``fixtures/record_journals.py``; each file says how it
was obtained and what replaying it must give.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from loomwork import wf
from loomwork.errors import NonDeterminismError
from loomwork.model import ErrorInfo, LogLevel, StepKind
from loomwork.replay import (
    CallEffect,
    Command,
    CreateRequest,
    EmitLog,
    Failed,
    JournalEntry,
    MachineState,
    RecordValue,
    RunInfo,
    RunMachine,
    RunStep,
    StartChild,
    StartSleep,
    Succeeded,
)
from loomwork.replay.loop import DeterministicLoop, WallClockUseError

FIXTURES = Path(__file__).parent / "fixtures" / "journals"
FIXTURE_NAMES = sorted(path.stem for path in FIXTURES.glob("*.json"))

#: What the clock says during these tests; ``record_journals.REPLAY_TEST_CLOCK`` is the same instant.
TEST_CLOCK = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)


def load(name: str) -> dict[str, Any]:
    fixture: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return fixture


def entry_point(source: str) -> Callable[[Any], Any]:
    namespace: dict[str, Any] = {"__name__": "replayed_main"}
    exec(compile(source, "main.py", "exec"), namespace)
    entry: Callable[[Any], Any] = namespace["execute_workflow"]
    return entry


def format_error(exc: BaseException) -> ErrorInfo:
    """The shape of the worker's formatter, without tracebacks: a step's error keeps the step's error type."""
    error_type = getattr(exc, "error_type", None) or type(exc).__name__
    return ErrorInfo(str(error_type), str(exc))


@dataclass
class Replay:
    machine: RunMachine
    commands: list[Command] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def deliver(self, seq: int, ok: bool, value: Any) -> list[Command]:
        new = self.machine.deliver(seq, self.machine.last_order + 1, ok, value)
        self.commands += new
        return new

    @property
    def outcome(self) -> Succeeded | Failed | None:
        return self.machine.outcome


def start(
    fixture: dict[str, Any],
    *,
    journal: list[dict[str, Any]] | None = None,
    source: str | None = None,
    clock: datetime = TEST_CLOCK,
    seed: int = 1234,
) -> Replay:
    errors: list[BaseException] = []

    def recording_format_error(exc: BaseException) -> ErrorInfo:
        errors.append(exc)
        return format_error(exc)

    machine = RunMachine(
        entry_point(source if source is not None else fixture["source"]),
        fixture["input"],
        [JournalEntry.from_json(e) for e in (fixture["journal"] if journal is None else journal)],
        info=RunInfo(
            run_id=fixture["run_id"], workflow=fixture["workflow"], workspace="default", trigger="api", version=1
        ),
        clock=lambda: clock,
        rng=random.Random(seed),
        error_for=wf.error_for,
        format_error=recording_format_error,
    )
    replay = Replay(machine, errors=errors)
    replay.commands += machine.start()
    return replay


def replay_fixture(fixture: dict[str, Any], **kwargs: Any) -> Replay:
    """Start the machine on the fixture's journal, then deliver its live outcomes one by one."""
    replay = start(fixture, **kwargs)
    for outcome in fixture["deliver"]:
        replay.deliver(outcome["seq"], outcome["ok"], outcome["value"])
    return replay


def describe(command: Command) -> dict[str, Any]:
    """A command as fixtures spell it: its type, step number and name."""
    if isinstance(command, EmitLog):
        return {"type": "EmitLog", "message": command.message, "level": command.level.value}
    out: dict[str, Any] = {"type": type(command).__name__, "seq": command.seq}
    if isinstance(command, RunStep | CreateRequest | RecordValue):
        out["name"] = command.name
    elif isinstance(command, CallEffect):
        out["name"] = command.name
        out["kind"] = command.kind.value
    elif isinstance(command, StartChild):
        out["name"] = command.workflow
    elif not isinstance(command, StartSleep):  # pragma: no cover - a new command type needs a line here
        raise TypeError(f"unknown command {command!r}")
    return out


# -- the recorded journals ----------------------------------------------------------------------------------
def test_the_recorded_scenarios_are_all_there() -> None:
    """Guards against a fixture silently disappearing (the parametrized test would just shrink)."""
    assert set(FIXTURE_NAMES) >= {
        "sequential_steps",
        "gather_out_of_order",
        "gather_crash_with_one_branch_in_flight",
        "request_parked",
        "request_resolved",
        "sleep_parked",
        "sleep_done",
        "values_replayed",
        "values_after_crash",
        "step_missing_after_crash",
        "step_running_after_crash",
        "step_failed_caught",
        "step_failed_uncaught",
        "logs_replayed",
        "logs_after_crash",
        "nondeterminism_renamed_step",
        "nondeterminism_reordered_steps",
        "nondeterminism_kind_changed",
        "nondeterminism_step_never_reached",
        "nondeterminism_branch_removed",
        "nondeterminism_caught_by_workflow",
    }


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_replaying_a_recorded_journal(name: str) -> None:
    fixture = load(name)
    expect = fixture["expect"]
    replay = replay_fixture(fixture)
    try:
        assert replay.machine.state == MachineState(expect["state"])
        if "commands" in expect:
            assert [describe(c) for c in replay.commands] == expect["commands"]
        if "output" in expect:
            assert replay.outcome == Succeeded(expect["output"])
        if "error_type" in expect:
            assert isinstance(replay.outcome, Failed), replay.outcome
            assert replay.outcome.error.type == expect["error_type"]
        if "error_message" in expect:
            assert isinstance(replay.outcome, Failed)
            assert replay.outcome.error.message == expect["error_message"]
        if expect.get("error_type") == "NonDeterminismError":
            (error,) = [e for e in replay.errors if isinstance(e, NonDeterminismError)]
            assert error.seq == expect["seq"]
            assert error.recorded == expect["recorded"]
            if "new" in expect:
                assert error.new == expect["new"]
            # The message names the step number, the recorded step and the new one.
            assert isinstance(replay.outcome, Failed)
            message = replay.outcome.error.message
            assert f"step {expect['seq']}:" in message
            assert expect["recorded"] in message
            assert expect.get("new", "") in message
    finally:
        replay.machine.close()


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_journals_round_trip_through_journal_entry(name: str) -> None:
    for entry in load(name)["journal"]:
        assert JournalEntry.from_json(entry).to_json() == entry


def test_replay_numbers_concurrent_steps_by_delivery_order_not_start_order() -> None:
    fixture = load("gather_out_of_order")
    journal = fixture["journal"]
    assert [e["name"] for e in journal] == ["first-slow", "first-fast", "second-fast", "second-slow"]
    assert [e["done_order"] for e in journal] != sorted(e["done_order"] for e in journal)

    # Had the outcomes come back in start order, the slow branch would have taken seq 3: the same journal
    # delivered in that order no longer matches the code, which proves replay honours done_order.
    in_start_order = copy.deepcopy(journal)
    for order, entry in enumerate(in_start_order, start=1):
        entry["done_order"] = order
    replay = start(fixture, journal=in_start_order)
    assert isinstance(replay.outcome, Failed)
    (error,) = replay.errors
    assert isinstance(error, NonDeterminismError)
    assert (error.seq, error.recorded, error.new) == (3, "step 'second-fast'", "step 'second-slow'")


def test_a_step_in_flight_at_a_crash_is_run_again_with_the_same_call() -> None:
    fixture = load("step_missing_after_crash")
    replay = start(fixture)
    (command,) = replay.commands
    assert isinstance(command, RunStep)
    assert (command.seq, command.name, command.input) == (3, "double", {"args": [12, 12], "kwargs": {}})
    assert replay.machine.state == MachineState.BUSY
    assert replay.machine.next_step_key() == f"{fixture['run_id']}:4"
    recorded = load("sequential_steps")["journal"][2]["output"]
    assert command.call() == recorded  # the same function with the same arguments
    replay.deliver(3, True, command.call())
    assert replay.outcome == Succeeded(load("sequential_steps")["expect"]["output"])


@pytest.mark.parametrize(("name", "kind"), [("request_parked", StepKind.REQUEST), ("sleep_parked", StepKind.SLEEP)])
def test_a_parked_run_replays_to_waiting_without_starting_its_wait_again(name: str, kind: StepKind) -> None:
    replay = start(load(name))
    try:
        assert replay.commands == []
        assert replay.machine.state == MachineState.WAITING
        assert [k for _, k in replay.machine.pending_steps()] == [kind]
    finally:
        replay.machine.close()


def test_values_come_from_the_journal_whatever_the_clock_and_rng_say() -> None:
    fixture = load("values_replayed")
    recorded = [e["output"] for e in fixture["journal"] if e["kind"] == "value"]
    outputs = []
    for clock, seed in [(TEST_CLOCK, 1), (datetime(2030, 1, 1, tzinfo=UTC), 2)]:
        replay = start(fixture, clock=clock, seed=seed)
        assert not any(isinstance(c, RecordValue) for c in replay.commands)
        assert isinstance(replay.outcome, Succeeded)
        outputs.append(replay.outcome.output)
    assert outputs[0] == outputs[1] == fixture["expect"]["output"]
    out = outputs[0]
    assert recorded == [out["now"], out["uuid"], out["random"], out["later"]]


def test_values_past_the_journal_come_from_the_injected_clock() -> None:
    fixture = load("values_after_crash")
    replay = replay_fixture(fixture)
    values = [c for c in replay.commands if isinstance(c, RecordValue)]
    assert [(v.seq, v.name, v.value) for v in values] == [(5, "now", TEST_CLOCK.isoformat())]
    assert isinstance(replay.outcome, Succeeded)
    assert replay.outcome.output["key"] == f"{fixture['run_id']}:4"


def test_a_failed_step_raises_step_error_with_the_recorded_type_and_message() -> None:
    fixture = load("step_failed_caught")
    (entry,) = fixture["journal"]
    assert entry["status"] == "failed"
    replay = start(fixture)
    assert replay.outcome == Succeeded({"caught": entry["error"]["type"], "message": entry["error"]["message"]})


def test_logs_are_emitted_live_and_not_again_on_replay() -> None:
    fixture = load("logs_replayed")
    live = start(fixture, journal=[])
    assert [describe(c) for c in live.commands] == [
        {"type": "EmitLog", "message": "starting", "level": "info"},
        {"type": "RunStep", "seq": 1, "name": "add"},
    ]
    (log_line,) = [c for c in live.commands if isinstance(c, EmitLog)]
    assert (log_line.level, log_line.fields, log_line.ts) == (LogLevel.INFO, {"x": 1}, TEST_CLOCK.isoformat())
    live.machine.close()

    replayed = start(fixture)
    assert replayed.commands == []
    assert replayed.outcome == Succeeded(fixture["expect"]["output"])


def test_the_live_path_journals_what_replay_expects() -> None:
    """Run the recorded workflow from an empty journal, calling its steps: same steps, same output."""
    fixture = load("sequential_steps")
    replay = start(fixture, journal=[])
    seen = []
    while replay.outcome is None:
        (command,) = replay.commands
        replay.commands = []
        assert isinstance(command, RunStep)
        seen.append((command.seq, command.name))
        replay.deliver(command.seq, True, command.call())
    assert seen == [(e["seq"], e["name"]) for e in fixture["journal"]]
    assert replay.outcome == Succeeded(fixture["expect"]["output"])


def test_non_determinism_fails_the_run_even_when_the_workflow_swallows_it() -> None:
    fixture = load("nondeterminism_caught_by_workflow")
    assert "except Exception" in fixture["source"]
    replay = start(fixture)
    assert isinstance(replay.outcome, Failed)
    assert replay.outcome.error.type == "NonDeterminismError"
    assert replay.machine.state == MachineState.DONE


# -- the host interface -------------------------------------------------------------------------------------
def test_outcomes_must_arrive_in_increasing_order() -> None:
    fixture = load("sequential_steps")
    replay = start(fixture, journal=[])
    replay.machine.deliver(1, 5, True, 2)
    with pytest.raises(ValueError, match="order 5 is not after 5"):
        replay.machine.deliver(2, 5, True, 12)
    with pytest.raises(ValueError, match="step 9 has no outcome pending"):
        replay.machine.deliver(9, 6, True, None)
    with pytest.raises(ValueError, match="step 2 is not waiting for an ack"):
        replay.machine.deliver_ack(2, True, {})
    replay.machine.close()


def test_a_workflow_awaiting_nothing_durable_is_stuck() -> None:
    source = (
        "import asyncio\n\nasync def execute_workflow(data):\n    await asyncio.get_running_loop().create_future()\n"
    )
    replay = start(load("sequential_steps"), journal=[], source=source)
    assert replay.machine.state == MachineState.STUCK
    replay.machine.close()


# -- the deterministic event loop ---------------------------------------------------------------------------
def test_asyncio_sleep_in_workflow_code_fails_the_run_with_advice() -> None:
    source = "import asyncio\n\nasync def execute_workflow(data):\n    await asyncio.sleep(1)\n"
    replay = start(load("sequential_steps"), journal=[], source=source)
    assert isinstance(replay.outcome, Failed)
    assert replay.outcome.error.type == "WallClockUseError"
    assert "use await wf.sleep(...)" in replay.outcome.error.message


def run_on_loop(loop: DeterministicLoop, coro: Any) -> asyncio.Task[Any]:
    task = loop.create_task(coro)
    loop.run_until_quiescent()
    return task


@pytest.mark.parametrize(
    "wall_clock_use",
    [
        lambda: asyncio.sleep(0.5),
        lambda: asyncio.wait_for(asyncio.get_running_loop().create_future(), 1),
    ],
    ids=["sleep", "wait_for"],
)
def test_the_loop_refuses_timers(wall_clock_use: Callable[[], Any]) -> None:
    loop = DeterministicLoop()  # type: ignore[abstract]

    async def body() -> None:
        await wall_clock_use()

    task = run_on_loop(loop, body())
    assert task.done()
    assert isinstance(task.exception(), WallClockUseError)
    loop.close()


def test_asyncio_sleep_reports_a_clear_error() -> None:
    loop = DeterministicLoop()  # type: ignore[abstract]
    task = run_on_loop(loop, asyncio.sleep(3))
    error = task.exception()
    assert isinstance(error, WallClockUseError)
    assert "asyncio.sleep" in str(error)
    assert "wf.sleep" in str(error)
    with pytest.raises(WallClockUseError):
        loop.time()
    loop.close()


def test_tasks_and_gather_run_in_schedule_order_until_quiescent() -> None:
    loop = DeterministicLoop()  # type: ignore[abstract]
    first, second = loop.create_future(), loop.create_future()
    trace: list[str] = []

    async def branch(name: str, future: asyncio.Future[int]) -> int:
        trace.append(f"start {name}")
        assert asyncio.get_running_loop() is loop
        value = await future
        await asyncio.sleep(0)  # a bare yield needs no timer
        trace.append(f"end {name}")
        return value * 10

    async def main() -> list[int]:
        inner = asyncio.ensure_future(branch("c", loop.create_future()))
        inner.cancel()
        return list(await asyncio.gather(branch("a", first), branch("b", second)))

    task = run_on_loop(loop, main())
    assert trace == ["start a", "start b"]
    assert not task.done()
    second.set_result(2)
    loop.run_until_quiescent()
    assert trace == ["start a", "start b", "end b"]
    first.set_result(1)
    loop.run_until_quiescent()
    assert task.result() == [10, 20]
    assert not loop.is_running()
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()  # the loop is only "running" inside run_until_quiescent
    loop.close()
    assert loop.is_closed()


def test_the_loop_refuses_callbacks_from_other_threads() -> None:
    loop = DeterministicLoop()  # type: ignore[abstract]
    with pytest.raises(RuntimeError, match="threads"):
        loop.call_soon_threadsafe(print)
    loop.close()
