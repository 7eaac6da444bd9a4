"""``loomwork run DIR``: run a workflow folder on an embedded engine, showing each step as it happens."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .aio import wait_event
from .datasources import DatasourceEffects
from .engine import Engine, EngineConfig
from .engine.effects import EffectExecutor
from .errors import WorkflowFolderError
from .folder import NAME_PATTERN, read_folder
from .model import Request, RequestStatus, Run, RunStatus, Step, StepStatus, Trigger
from .store import Notification

Ask = Callable[[Request], str]
Echo = Callable[[str], None]


@dataclass(slots=True)
class LocalRunOptions:
    folder: Path
    data: Any
    resolutions: dict[str, str] = field(default_factory=dict)
    state_dir: Path | None = None
    workers: int = 1
    ask: Ask | None = None
    effects: EffectExecutor | None = None
    timeout: float | None = None
    datasources: Path | None = None


async def run_folder(options: LocalRunOptions, echo: Echo) -> Run:
    """Deploy ``folder`` (and its sibling workflow folders, for child runs), run it, follow it to the end."""
    folder = options.folder.resolve()
    name = folder.name.lower().replace(" ", "-")
    if not NAME_PATTERN.match(name):
        raise WorkflowFolderError(f"folder name {folder.name!r} is not a valid workflow name ([a-z0-9][a-z0-9-_]*)")
    files = read_folder(folder)
    with contextlib.ExitStack() as stack:
        state_dir = options.state_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="loomwork-run-")))
        config = EngineConfig(data_dir=state_dir, workers=options.workers)
        effects = options.effects
        datasources = options.datasources or _find_datasources(folder)
        if effects is None and datasources is not None:
            echo(f"  datasources from {datasources}")
            loaded = DatasourceEffects.from_file(datasources, mail_dir=state_dir / "mail")
            for sink in loaded.mail_sinks:
                echo(f"  mail sink on {sink.host}:{sink.port}: messages kept in {sink.folder}")
            effects = loaded
        async with Engine(config, effects=effects) as engine:
            for sibling in sorted(folder.parent.iterdir()):
                if sibling != folder and (sibling / "main.py").is_file() and NAME_PATTERN.match(sibling.name):
                    with contextlib.suppress(WorkflowFolderError):
                        await engine.deploy(sibling.name, read_folder(sibling))
            version = await engine.deploy(name, files)
            run = await engine.start_run(name, options.data, trigger=Trigger.LOCAL, version=version)
            echo(f"▶ run {run.id} of {name} v{version.number}")
            return await _follow(engine, run, options, echo)


def _find_datasources(folder: Path) -> Path | None:
    for candidate in (folder / "datasources.toml", folder.parent / "datasources.toml"):
        if candidate.is_file():
            return candidate
    return None


async def _follow(engine: Engine, run: Run, options: LocalRunOptions, echo: Echo) -> Run:
    changed = asyncio.Event()

    def on_commit(notifications: list[Notification]) -> None:
        if any(payload in (run.id, "*") for _, payload in notifications):
            loop.call_soon_threadsafe(changed.set)

    loop = asyncio.get_running_loop()
    engine.store.add_listener(on_commit)
    shown_steps: dict[int, StepStatus] = {}
    last_log = 0
    asked: set[str] = set()
    deadline = None if options.timeout is None else loop.time() + options.timeout
    try:
        while True:
            for step in await engine.list_steps(run.id):
                if shown_steps.get(step.seq) != step.status:
                    shown_steps[step.seq] = step.status
                    echo(_describe_step(step))
            for line in await engine.read_logs(run.id, after=last_log):
                last_log = line.seq
                fields = " ".join(f"{k}={v!r}" for k, v in line.fields.items() if k != "stream")
                echo(f"  │ {line.ts:%H:%M:%S} {line.level.value:<7} {line.message} {fields}".rstrip())
            current = await engine.get_run(run.id)
            if current.status.is_final:
                return current
            if current.status == RunStatus.WAITING:
                for request in await engine.list_run_requests(run.id):
                    if request.status == RequestStatus.PENDING and request.id not in asked:
                        asked.add(request.id)
                        resolution = await _choose(request, options, echo)
                        await engine.resolve_request(request.id, resolution, {}, actor="local", admin=True)
                        echo(f"  ✔ request {request.request_name!r} resolved: {resolution}")
            changed.clear()
            wait = 1.0 if deadline is None else min(1.0, deadline - loop.time())
            if wait <= 0:
                where = engine.config.data_dir
                echo(f"■ still {current.status.value} after {options.timeout} s; the run goes on in {where}")
                return current
            await wait_event(changed, wait)
    finally:
        engine.store.remove_listener(on_commit)


async def _choose(request: Request, options: LocalRunOptions, echo: Echo) -> str:
    echo(f"  ? request {request.request_name!r}: {request.message}")
    echo(f"    resolutions: {', '.join(request.resolutions)}")
    assignees = [*request.to_users, *(f"group:{g}" for g in request.to_groups)]
    echo(f"    assigned to: {', '.join(assignees)} (not checked in local runs)")
    if request.metadata:
        echo(f"    metadata: {json.dumps(request.metadata, default=str)}")
    if request.request_name in options.resolutions:
        choice = options.resolutions[request.request_name]
        if choice not in request.resolutions:
            raise WorkflowFolderError(
                f"--resolve {request.request_name}={choice}: not one of {list(request.resolutions)}"
            )
        return choice
    if options.ask is None:
        raise WorkflowFolderError(
            f"the run waits on request {request.request_name!r} and there is no terminal to ask: "
            f"pass --resolve {request.request_name}=RESOLUTION"
        )
    return await asyncio.to_thread(options.ask, request)


_ICONS = {StepStatus.RUNNING: "…", StepStatus.WAITING: "⏸", StepStatus.SUCCEEDED: "✔", StepStatus.FAILED: "✘"}


def _describe_step(step: Step) -> str:
    text = f"  {_ICONS[step.status]} step {step.seq} {step.kind.value} {step.name}"
    if step.status == StepStatus.SUCCEEDED and step.output is not None:
        shown = json.dumps(step.output, default=str)
        text += f" → {shown if len(shown) <= 120 else shown[:117] + '...'}"
    if step.status == StepStatus.FAILED and step.error is not None:
        text += f" ✘ {step.error.type}: {step.error.message}"
    if step.attempts > 1:
        text += f" (attempts: {step.attempts})"
    return text


def print_outcome(run: Run, echo: Echo) -> int:
    if run.status == RunStatus.SUCCEEDED:
        echo(f"■ succeeded\n{json.dumps(run.output, indent=2, default=str)}")
        return 0
    if run.error is not None:
        echo(f"■ {run.status.value}: {run.error.type}: {run.error.message}")
        if run.error.traceback:
            echo(run.error.traceback.rstrip())
    else:
        echo(f"■ {run.status.value}")
    return 1 if run.status.is_final else 3
