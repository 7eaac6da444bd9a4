"""A run's life (SPEC §1, §2, §3.2, §3.4): step retries, failure, time limit, cancel, retry, sleep, child runs.

Every test runs on SQLite and on PostgreSQL, through real worker processes. Step functions run in the worker
process, so they report what they did through files in ``tmp_path``.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from loomwork import Conflict, RunStatus, StepKind, StepStatus
from loomwork.engine import Engine
from loomwork.model import Run, Trigger
from loomwork.testing import wait_until

#: Step functions the workflows below import (``from teststeps import ...``).
TESTSTEPS = """
    import os, time

    def flaky(path, failures):
        with open(path, "a") as f:
            f.write(f"{time.time()}\\n")
        with open(path) as f:
            attempt = len(f.read().splitlines())
        if attempt <= failures:
            raise ConnectionError(f"attempt {attempt} failed")
        return attempt

    def wait_for_gate(path, started=None):
        if started:
            open(started, "w").close()
        deadline = time.monotonic() + 20
        while not os.path.exists(path):
            if time.monotonic() > deadline:
                raise TimeoutError("the gate never opened")
            time.sleep(0.01)
        return "open"
    """


def src(code: str) -> str:
    return textwrap.dedent(code).lstrip()


async def start(
    engine: Engine,
    code: str,
    data: Any = None,
    *,
    workflow: str = "life",
    files: dict[str, str] | None = None,
) -> Run:
    version = await engine.deploy(workflow, {"main.py": src(code), "teststeps.py": src(TESTSTEPS), **(files or {})})
    return await engine.start_run(workflow, data if data is not None else {}, version=version)


async def finished(engine: Engine, run_id: str, timeout: float = 10.0) -> Run:
    run = await engine.wait_for_run(run_id, timeout)
    assert run.status.is_final, f"run {run_id} is still {run.status.value} after {timeout} s"
    return run


async def status_is(engine: Engine, run_id: str, status: RunStatus) -> Run:
    async def check() -> Run | None:
        run = await engine.get_run(run_id)
        return run if run.status == status else None

    return await wait_until(check, timeout=10, message=f"run {run_id} {status.value}")


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# -- step retries ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["step arguments", "workflow.toml"])
async def test_step_is_retried_with_exponential_backoff(engine: Engine, tmp_path: Path, policy: str) -> None:
    attempts_file = tmp_path / "attempts"
    if policy == "step arguments":
        call, files = "wf.step(flaky, data['path'], 2, retries=2, backoff=0.05)", {}
    else:
        call, files = "wf.step(flaky, data['path'], 2)", {"workflow.toml": "[retry]\nattempts = 3\nbackoff = 0.05\n"}
    run = await start(
        engine,
        f"""
        from loomwork import wf
        from teststeps import flaky

        async def execute_workflow(data):
            return await {call}
        """,
        {"path": str(attempts_file)},
        files=files,
    )
    run = await finished(engine, run.id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output == 3
    times = [float(t) for t in lines(attempts_file)]
    assert len(times) == 3  # two failures, one success, and nothing more
    # backoff 0.05 s, doubled each try: 0.05 s then 0.1 s between attempts
    assert times[1] - times[0] >= 0.045, times
    assert times[2] - times[1] >= 0.095, times
    (step,) = await engine.list_steps(run.id)
    assert (step.kind, step.name, step.status, step.attempts) == (StepKind.STEP, "flaky", StepStatus.SUCCEEDED, 3)
    assert step.output == 3
    warnings = [line for line in await engine.read_logs(run.id) if line.level.value == "warning"]
    assert [(w.message, w.fields.get("attempt")) for w in warnings] == [
        ("step 'flaky' failed, retrying", 1),
        ("step 'flaky' failed, retrying", 2),
    ]


async def test_without_a_retry_policy_a_step_runs_once(engine: Engine, tmp_path: Path) -> None:
    attempts_file = tmp_path / "attempts"
    run = await start(
        engine,
        """
        from loomwork import wf
        from teststeps import flaky

        async def execute_workflow(data):
            return await wf.step(flaky, data["path"], 1)
        """,
        {"path": str(attempts_file)},
    )
    run = await finished(engine, run.id)
    assert run.status == RunStatus.FAILED
    assert run.error is not None
    assert run.error.type == "ConnectionError"
    assert len(lines(attempts_file)) == 1


async def test_a_step_that_keeps_failing_fails_the_run_with_its_error(engine: Engine, tmp_path: Path) -> None:
    attempts_file = tmp_path / "attempts"
    run = await start(
        engine,
        """
        from loomwork import wf

        def charge(path):
            with open(path, "a") as f:
                f.write("x\\n")
            with open(path) as f:
                n = len(f.read().splitlines())
            raise ValueError(f"card declined on attempt {n}")

        async def execute_workflow(data):
            await wf.step(lambda: "ok", name="before")
            await wf.step(charge, data["path"], retries=1, backoff=0.01)
            return "unreachable"
        """,
        {"path": str(attempts_file)},
    )
    run = await finished(engine, run.id)
    assert run.status == RunStatus.FAILED
    assert run.error is not None
    assert run.error.type == "ValueError"
    assert run.error.message == "card declined on attempt 2"  # the last attempt's error
    assert 'File "main.py", line 12, in execute_workflow' in run.error.traceback
    assert "card declined" in run.error.traceback
    assert len(lines(attempts_file)) == 2
    before, charge = await engine.list_steps(run.id)
    assert before.status == StepStatus.SUCCEEDED
    assert (charge.name, charge.status, charge.attempts) == ("charge", StepStatus.FAILED, 2)
    assert charge.error is not None
    assert (charge.error.type, charge.error.message) == ("ValueError", "card declined on attempt 2")


# -- run time limit --------------------------------------------------------------------------------------------
async def test_run_timeout_from_workflow_toml_fails_the_run(engine: Engine, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    limit = {"workflow.toml": 'timeout = "1s"\n'}
    sleeping = await start(
        engine,
        """
        from loomwork import wf

        async def execute_workflow(data):
            await wf.sleep(30)
            return "unreachable"
        """,
        workflow="sleeper",
        files=limit,
    )
    busy = await start(
        engine,
        """
        from loomwork import wf
        from teststeps import wait_for_gate

        async def execute_workflow(data):
            await wf.step(wait_for_gate, data["gate"])
            return "unreachable"
        """,
        {"gate": str(gate)},
        workflow="busy",
        files=limit,
    )
    try:
        runs = [await finished(engine, sleeping.id, timeout=5), await finished(engine, busy.id, timeout=5)]
    finally:
        gate.touch()
    for run in runs:  # parked on a sleep, or busy in a step: either way the limit ends it
        assert run.status == RunStatus.FAILED, run.workflow
        assert run.error is not None
        assert run.error.type == "ResourceLimitExceeded", run.workflow
        assert "time limit of 1 s" in run.error.message
        assert run.finished_at is not None
        took = run.finished_at - run.created_at
        assert timedelta(seconds=1) <= took < timedelta(seconds=2.5), (run.workflow, took)


# -- cancel ----------------------------------------------------------------------------------------------------
async def test_cancel_a_running_run(engine: Engine, tmp_path: Path) -> None:
    started, gate, after = tmp_path / "started", tmp_path / "gate", tmp_path / "after"
    run = await start(
        engine,
        """
        from loomwork import wf
        from teststeps import wait_for_gate

        def after(path):
            open(path, "w").close()

        async def execute_workflow(data):
            await wf.step(wait_for_gate, data["gate"], data["started"])
            await wf.step(after, data["after"])
            return "unreachable"
        """,
        {"gate": str(gate), "started": str(started), "after": str(after)},
    )
    try:
        await wait_until(started.exists, message="the slow step started")
        assert (await engine.get_run(run.id)).status == RunStatus.RUNNING
        cancelled = await engine.cancel_run(run.id)
    finally:
        gate.touch()
    assert cancelled.status == RunStatus.CANCELLED
    assert cancelled.error is not None
    assert cancelled.error.type == "RunCancelled"
    # The blocked step has been let go; a later run through the same worker proves the engine moved on.
    other = await start(engine, "async def execute_workflow(data):\n    return 'next'\n", workflow="other")
    other = await finished(engine, other.id)
    assert other.output == "next"
    run = await engine.get_run(run.id)
    assert run.status == RunStatus.CANCELLED
    assert not after.exists()  # nothing after the cancelled step ran
    assert all(s.status != StepStatus.SUCCEEDED for s in await engine.list_steps(run.id))
    with pytest.raises(Conflict):
        await engine.cancel_run(run.id)


async def test_cancel_a_waiting_run(engine: Engine) -> None:
    run = await start(
        engine,
        """
        from loomwork import wf

        async def execute_workflow(data):
            await wf.sleep(30)
            return "unreachable"
        """,
    )
    await status_is(engine, run.id, RunStatus.WAITING)
    cancelled = await engine.cancel_run(run.id)
    assert cancelled.status == RunStatus.CANCELLED
    assert cancelled.finished_at is not None
    run = await finished(engine, run.id)
    assert run.status == RunStatus.CANCELLED
    assert run.output is None


# -- retry from the failed step --------------------------------------------------------------------------------
RETRYABLE = """
    import os
    from loomwork import wf

    def record(path, name):
        with open(path, "a") as f:
            f.write(name + "\\n")
        return name

    def third(path, flag):
        record(path, "third")
        if os.path.exists(flag):
            raise RuntimeError("the flag is up")
        return "third"

    async def execute_workflow(data):
        a = await wf.step(record, data["counter"], "first")
        b = await wf.step(record, data["counter"], "second")
        c = await wf.step(third, data["counter"], data["flag"])
        return [a, b, c, wf.run_id]
    """


async def test_retry_a_failed_run_from_its_failed_step(engine: Engine, tmp_path: Path) -> None:
    counter, flag = tmp_path / "counter", tmp_path / "flag"
    flag.touch()
    run = await start(engine, RETRYABLE, {"counter": str(counter), "flag": str(flag)})
    failed = await finished(engine, run.id)
    assert failed.status == RunStatus.FAILED
    assert failed.error is not None
    assert (failed.error.type, failed.error.message) == ("RuntimeError", "the flag is up")
    assert lines(counter) == ["first", "second", "third"]

    flag.unlink()
    retried = await engine.retry_run(run.id)
    assert retried.id == run.id
    assert retried.status == RunStatus.QUEUED
    assert retried.error is None
    done = await finished(engine, run.id)
    assert done.id == run.id
    assert done.status == RunStatus.SUCCEEDED, done.error
    assert done.output == ["first", "second", "third", run.id]
    assert done.error is None
    assert lines(counter) == ["first", "second", "third", "third"]  # steps 1 and 2 ran exactly once
    steps = await engine.list_steps(run.id)
    assert [(s.seq, s.name, s.status) for s in steps] == [
        (1, "record", StepStatus.SUCCEEDED),
        (2, "record", StepStatus.SUCCEEDED),
        (3, "third", StepStatus.SUCCEEDED),
    ]
    with pytest.raises(Conflict):  # it succeeded now
        await engine.retry_run(run.id)


async def test_only_failed_runs_can_be_retried(engine: Engine) -> None:
    ok = await start(engine, "async def execute_workflow(data):\n    return 1\n")
    assert (await finished(engine, ok.id)).status == RunStatus.SUCCEEDED
    with pytest.raises(Conflict, match="only failed runs can be retried"):
        await engine.retry_run(ok.id)

    waiting = await start(
        engine, "from loomwork import wf\n\nasync def execute_workflow(data):\n    await wf.sleep(30)\n"
    )
    await status_is(engine, waiting.id, RunStatus.WAITING)
    with pytest.raises(Conflict):
        await engine.retry_run(waiting.id)
    await engine.cancel_run(waiting.id)
    with pytest.raises(Conflict):
        await engine.retry_run(waiting.id)
    assert (await engine.get_run(waiting.id)).status == RunStatus.CANCELLED


# -- durable sleep ---------------------------------------------------------------------------------------------
async def test_sleep_wakes_within_a_second_of_its_time(engine: Engine) -> None:
    run = await start(
        engine,
        """
        from loomwork import wf

        async def execute_workflow(data):
            before = wf.now()
            await wf.sleep(1)
            return {"before": before.isoformat(), "after": wf.now().isoformat()}
        """,
    )
    await status_is(engine, run.id, RunStatus.WAITING)  # the sleep holds no process
    run = await finished(engine, run.id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    sleep = next(s for s in await engine.list_steps(run.id) if s.kind == StepKind.SLEEP)
    wake_at = datetime.fromisoformat(sleep.input["until"])
    before = datetime.fromisoformat(run.output["before"])
    after = datetime.fromisoformat(run.output["after"])
    assert timedelta(seconds=1) <= wake_at - before < timedelta(seconds=1.1)
    assert sleep.status == StepStatus.SUCCEEDED
    assert sleep.finished_at is not None
    assert timedelta(0) <= sleep.finished_at - wake_at < timedelta(seconds=1), sleep.finished_at - wake_at
    assert timedelta(0) <= after - wake_at < timedelta(seconds=1), after - wake_at


# -- child runs ------------------------------------------------------------------------------------------------
CHILD = """
    from loomwork import wf
    from teststeps import wait_for_gate

    async def execute_workflow(data):
        if data.get("gate"):
            await wf.step(wait_for_gate, data["gate"])
        if data.get("fail"):
            raise ValueError(f"child refused {data['x']}")
        return {"doubled": data["x"] * 2, "trigger": wf.trigger, "run_id": wf.run_id}
    """


@pytest.fixture
async def child(engine: Engine) -> None:
    await engine.deploy("child", {"main.py": src(CHILD), "teststeps.py": src(TESTSTEPS)})


@pytest.mark.usefixtures("child")
async def test_child_run_returns_its_output(engine: Engine) -> None:
    run = await start(
        engine,
        """
        from loomwork import wf

        async def execute_workflow(data):
            return await wf.run_workflow("child", {"x": data["x"]})
        """,
        {"x": 21},
    )
    run = await finished(engine, run.id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output["doubled"] == 42
    assert run.output["trigger"] == "child"
    (step,) = await engine.list_steps(run.id)
    assert (step.kind, step.name, step.status) == (StepKind.CHILD, "child", StepStatus.SUCCEEDED)
    child_run = await engine.get_run(run.output["run_id"])
    assert child_run.status == RunStatus.SUCCEEDED
    assert child_run.trigger == Trigger.CHILD
    assert child_run.workflow == "child"
    assert child_run.parent_run_id == run.id
    assert child_run.input == {"x": 21}


@pytest.mark.usefixtures("child")
async def test_child_run_without_waiting_returns_its_id(engine: Engine, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    run = await start(
        engine,
        """
        from loomwork import wf

        async def execute_workflow(data):
            child_id = await wf.run_workflow("child", {"x": 5, "gate": data["gate"]}, wait=False)
            return {"child_id": child_id}
        """,
        {"gate": str(gate)},
    )
    try:
        run = await finished(engine, run.id)
        assert run.status == RunStatus.SUCCEEDED, run.error
        child_id = run.output["child_id"]
        assert isinstance(child_id, str)
        assert child_id != run.id
        # The parent is done while its child still waits at the gate: it did not wait for it.
        assert not (await engine.get_run(child_id)).status.is_final
    finally:
        gate.touch()
    child_run = await finished(engine, child_id)
    assert child_run.status == RunStatus.SUCCEEDED, child_run.error
    assert child_run.output["doubled"] == 10
    assert child_run.trigger == Trigger.CHILD


@pytest.mark.usefixtures("child")
async def test_failing_child_raises_child_run_failed_in_the_parent(engine: Engine) -> None:
    code = """
        from loomwork import wf, ChildRunFailed

        async def execute_workflow(data):
            if data["catch"]:
                try:
                    await wf.run_workflow("child", {"x": 7, "fail": True})
                except ChildRunFailed as exc:
                    return {"type": type(exc).__name__, "run_id": exc.run_id, "status": exc.status,
                            "message": str(exc)}
            await wf.run_workflow("child", {"x": 8, "fail": True})
            return "unreachable"
        """
    caught = await start(engine, code, {"catch": True})
    uncaught = await engine.start_run("life", {"catch": False})
    caught = await finished(engine, caught.id)
    assert caught.status == RunStatus.SUCCEEDED, caught.error
    assert caught.output["type"] == "ChildRunFailed"
    assert caught.output["status"] == "failed"
    assert "child refused 7" in caught.output["message"]
    child_run = await engine.get_run(caught.output["run_id"])
    assert child_run.status == RunStatus.FAILED
    assert child_run.parent_run_id == caught.id
    assert child_run.error is not None
    assert child_run.error.type == "ValueError"

    uncaught = await finished(engine, uncaught.id)
    assert uncaught.status == RunStatus.FAILED
    assert uncaught.error is not None
    assert uncaught.error.type == "ChildRunFailed"
    assert "child refused 8" in uncaught.error.message


async def test_child_of_an_unknown_workflow_fails_clearly(engine: Engine) -> None:
    run = await start(
        engine,
        """
        from loomwork import wf

        async def execute_workflow(data):
            return await wf.run_workflow("no-such-workflow", {})
        """,
    )
    run = await finished(engine, run.id)
    assert run.status == RunStatus.FAILED
    assert run.error is not None
    assert "no-such-workflow" in run.error.message


@pytest.mark.usefixtures("child")
async def test_cancelling_a_parent_cancels_the_child_it_waits_for(engine: Engine, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    run = await start(
        engine,
        """
        from loomwork import wf

        async def execute_workflow(data):
            return await wf.run_workflow("child", {"x": 1, "gate": data["gate"]})
        """,
        {"gate": str(gate)},
    )
    try:

        async def child_started() -> str | None:
            steps = await engine.list_steps(run.id)
            return steps[0].handle["run_id"] if steps and steps[0].handle else None

        child_id = await wait_until(child_started, message="child run started")
        await status_is(engine, run.id, RunStatus.WAITING)
        await engine.cancel_run(run.id)
    finally:
        gate.touch()
    assert (await finished(engine, run.id)).status == RunStatus.CANCELLED
    assert (await finished(engine, child_id)).status == RunStatus.CANCELLED


async def test_retry_after_the_time_limit_passed_gets_a_fresh_limit(engine: Engine, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    flag.touch()
    run = await start(
        engine,
        """
        import os
        from loomwork import wf

        def check(flag):
            if os.path.exists(flag):
                raise RuntimeError("the flag is up")
            return "ok"

        async def execute_workflow(data):
            await wf.step(check, data["flag"])
            await wf.sleep(0.2)
            return "done"
        """,
        {"flag": str(flag)},
        files={"workflow.toml": 'timeout = "1s"\n'},
    )
    failed = await finished(engine, run.id)
    assert failed.error is not None
    assert failed.error.type == "RuntimeError"
    # Retried later than the first attempt's limit would have allowed: the retry gets the limit afresh.
    await wait_until(lambda: datetime.now(UTC) > run.created_at + timedelta(seconds=1.2), message="limit passed")
    flag.unlink()
    await engine.retry_run(run.id)
    done = await finished(engine, run.id)
    assert done.status == RunStatus.SUCCEEDED, done.error
    assert done.output == "done"


async def test_a_retried_run_keeps_its_time_limit(engine: Engine) -> None:
    run = await start(
        engine,
        """
        from loomwork import wf

        async def execute_workflow(data):
            await wf.sleep(30)
            return "unreachable"
        """,
        files={"workflow.toml": 'timeout = "1s"\n'},
    )
    first = await finished(engine, run.id, timeout=5)
    assert first.error is not None
    assert first.error.type == "ResourceLimitExceeded"
    retried = await engine.retry_run(run.id)
    again = await finished(engine, run.id, timeout=5)
    assert again.status == RunStatus.FAILED
    assert again.error is not None
    assert again.error.type == "ResourceLimitExceeded"
    assert "time limit of 1 s" in again.error.message  # the limit, not the time since the run was created
    assert again.finished_at is not None
    assert first.finished_at is not None
    assert timedelta(seconds=1) <= again.finished_at - first.finished_at < timedelta(seconds=3)
    assert retried.id == run.id
