"""Helpers for testing workflows and Loomwork itself: engines on a throwaway store, waiting on conditions.

async with engine_for_tests(tmp_path) as engine:
    run = await run_source(engine, "async def execute_workflow(data):\\n    return 1\\n")
    assert run.output == 1
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from .engine import Directory, Engine, EngineConfig
from .engine.effects import EffectExecutor
from .model import Run, Trigger

T = TypeVar("T")

__all__ = ["engine_for_tests", "run_source", "wait_until"]


@contextlib.asynccontextmanager
async def engine_for_tests(
    data_dir: Path,
    *,
    database_url: str | None = None,
    workers: int = 1,
    directory: Directory | None = None,
    effects: EffectExecutor | None = None,
    **settings: Any,
) -> AsyncIterator[Engine]:
    """A started engine on ``database_url`` (default: SQLite in ``data_dir``), stopped on exit."""
    config = EngineConfig(
        data_dir=data_dir, database_url=database_url, workers=workers, secret_key=b"test-secret", **settings
    )
    engine = Engine(config, directory=directory, effects=effects)
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()


async def run_source(
    engine: Engine,
    main_py: str,
    data: Any = None,
    *,
    workflow: str = "wf-under-test",
    files: dict[str, str] | None = None,
    timeout: float = 30.0,
    trigger: Trigger = Trigger.API,
) -> Run:
    """Deploy ``main_py`` (plus ``files``) as ``workflow``, run it with ``data`` and wait for it to end."""
    version = await engine.deploy(workflow, {"main.py": main_py, **(files or {})})
    run = await engine.start_run(workflow, data if data is not None else {}, version=version, trigger=trigger)
    return await engine.wait_for_run(run.id, timeout)


async def wait_until(
    condition: Callable[[], Awaitable[T] | T],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str = "condition",
) -> T:
    """Return the first truthy value of ``condition()``; fail with ``TimeoutError`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{message} not met within {timeout} s")
        await asyncio.sleep(interval)
