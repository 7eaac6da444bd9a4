"""Runs end to end through real worker processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import textwrap
from pathlib import Path

from conftest import make_engine

from loomwork.engine import Engine
from loomwork.model import RunStatus, StepKind, StepStatus
from loomwork.testing import run_source


def src(code: str) -> str:
    return textwrap.dedent(code).lstrip()


async def test_steps_run_and_are_journaled_in_order(engine: Engine) -> None:
    run = await run_source(
        engine,
        src(
            """
            import asyncio
            from loomwork import wf

            def add(x, y):
                return x + y

            async def double(x):
                return 2 * x

            async def execute_workflow(data):
                a = await wf.step(add, 1, 2)
                b, c = await asyncio.gather(wf.step(double, a), wf.step(add, a, 10, name="plus-ten"))
                return {"a": a, "b": b, "c": c}
            """
        ),
    )
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output == {"a": 3, "b": 6, "c": 13}
    steps = await engine.list_steps(run.id)
    assert [(s.seq, s.kind, s.name, s.status) for s in steps] == [
        (1, StepKind.STEP, "add", StepStatus.SUCCEEDED),
        (2, StepKind.STEP, "double", StepStatus.SUCCEEDED),
        (3, StepKind.STEP, "plus-ten", StepStatus.SUCCEEDED),
    ]
    assert steps[0].input == {"args": [1, 2], "kwargs": {}}
    assert sorted(s.done_order for s in steps if s.done_order) == [1, 2, 3]


async def test_exception_fails_the_run_with_a_traceback_of_user_files_only(engine: Engine) -> None:
    run = await run_source(
        engine,
        src(
            """
            from loomwork import wf
            import helpers

            async def execute_workflow(data):
                await wf.step(lambda: 1, name="ok")
                helpers.explode(data["why"])
            """
        ),
        {"why": "boom"},
        files={"helpers.py": "def explode(why):\n    raise ValueError(why)\n"},
    )
    assert run.status == RunStatus.FAILED
    assert run.error is not None
    assert run.error.type == "ValueError"
    assert run.error.message == "boom"
    assert 'File "main.py", line 6, in execute_workflow' in run.error.traceback
    assert 'File "helpers.py", line 2, in explode' in run.error.traceback
    assert "loomwork/" not in run.error.traceback  # engine frames are not the user's business


async def test_logs_and_prints_are_captured_once_even_across_replay(engine: Engine) -> None:
    run = await run_source(
        engine,
        src(
            """
            from loomwork import wf

            async def execute_workflow(data):
                wf.log.info("before sleep", n=1)
                print("printed", 42)
                await wf.sleep(0.05)
                wf.log.warning("after sleep")
                return "done"
            """
        ),
    )
    assert run.status == RunStatus.SUCCEEDED, run.error
    lines = await engine.read_logs(run.id)
    assert [(line.level.value, line.message) for line in lines] == [
        ("info", "before sleep"),
        ("info", "printed 42"),
        ("warning", "after sleep"),
    ]
    assert lines[0].fields == {"n": 1}


async def test_values_are_recorded_and_replayed(engine: Engine) -> None:
    run = await run_source(
        engine,
        src(
            """
            from loomwork import wf

            async def execute_workflow(data):
                first = (wf.now().isoformat(), wf.uuid(), wf.random())
                await wf.sleep(0.05)   # parks the run: what follows runs in a replay
                again = (wf.now().isoformat(), wf.uuid(), wf.random())
                return {"first": first, "again": again, "key": wf.step_key(), "run": wf.run_id}
            """
        ),
    )
    assert run.status == RunStatus.SUCCEEDED, run.error
    out = run.output
    assert out["run"] == run.id
    assert out["key"] == f"{run.id}:8"
    steps = await engine.list_steps(run.id)
    recorded = [s.output for s in steps if s.kind == StepKind.VALUE]
    assert recorded[:3] == out["first"]
    assert recorded[3:] == out["again"]
    assert out["first"][1] != out["again"][1]


async def test_non_json_return_value_fails_clearly(engine: Engine) -> None:
    run = await run_source(engine, "async def execute_workflow(data):\n    return object()\n")
    assert run.status == RunStatus.FAILED
    assert run.error is not None and "not JSON-serialisable" in run.error.message


async def test_asyncio_sleep_in_workflow_code_fails_with_advice(engine: Engine) -> None:
    run = await run_source(engine, "import asyncio\n\nasync def execute_workflow(data):\n    await asyncio.sleep(1)\n")
    assert run.status == RunStatus.FAILED
    assert run.error is not None and "wf.sleep" in run.error.message


async def test_workflow_code_that_never_yields_fails_alone(tmp_path: Path, database_url: str) -> None:
    async with make_engine(database_url, tmp_path, run_cpu_limit=1.0) as engine:
        hog = await engine.deploy(
            "hog", {"main.py": "async def execute_workflow(data):\n    while True:\n        pass\n"}
        )
        fine = await engine.deploy(
            "fine",
            {
                "main.py": src(
                    """
            from loomwork import wf

            async def execute_workflow(data):
                await wf.sleep(0.1)
                return "ok"
            """
                )
            },
        )
        looping = await engine.start_run("hog", {}, version=hog)
        other = await engine.start_run("fine", {}, version=fine)
        done = await engine.wait_for_run(looping.id, 20)
        assert done.status == RunStatus.FAILED
        assert done.error is not None and done.error.type == "ResourceLimitExceeded"
        assert "without awaiting" in done.error.message
        assert (await engine.wait_for_run(other.id, 20)).status == RunStatus.SUCCEEDED
