"""The worker host: runs the replay core for many runs at once and calls ``wf.step`` functions.

It keeps a run only while the run has effects in flight. As soon as a run waits only on people, timers or
children, the host reports it and forgets it: no coroutine, thread or memory is held for a waiting run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import logging
import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ..errors import WorkflowFolderError
from ..model import ErrorInfo, LogLevel
from ..replay import (
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
from ..wf import current_log_sink, current_step_key, error_for
from .loader import LoadedVersion, load_version
from .watchdog import Watchdog

log = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], None]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class HostedRun:
    run_id: str
    machine: RunMachine
    version: LoadedVersion
    deferred: list[dict[str, Any]] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class Host:
    def __init__(self, send: Send, code_root: Path, *, threads: int = 32, cpu_limit: float = 60.0) -> None:
        self._send = send
        self._watchdog = Watchdog(cpu_limit)
        self._code_root = code_root
        self._versions: dict[int, LoadedVersion] = {}
        self._runs: dict[str, HostedRun] = {}
        self._executor = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="loomwork-step")
        self._rng = random.SystemRandom()

    @property
    def active_runs(self) -> int:
        return len(self._runs)

    def handle(self, message: dict[str, Any]) -> None:
        kind = message["t"]
        if kind == "load":
            self._load(message)
        elif kind == "activate":
            self._activate(message)
        elif kind == "outcome":
            self._outcome(message)
        elif kind == "ack":
            self._ack(message)
        elif kind == "drop":
            self._drop(message["run_id"])
        else:
            log.warning("worker got an unknown message %r", kind)

    def close(self) -> None:
        self._watchdog.stop()
        for run_id in list(self._runs):
            self._drop(run_id)
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- messages -------------------------------------------------------------------------------------------
    def _load(self, message: dict[str, Any]) -> None:
        version_id = int(message["version_id"])
        if version_id in self._versions:
            return
        try:
            self._versions[version_id] = load_version(version_id, message["files"], self._code_root)
        except WorkflowFolderError as exc:
            self._send({"t": "load_failed", "version_id": version_id, "error": str(exc)})

    def _activate(self, message: dict[str, Any]) -> None:
        run_id = message["run_id"]
        version = self._versions.get(int(message["version_id"]))
        if version is None:
            self._finish(run_id, Failed(_load_error(message["version_id"])), [])
            return
        info = RunInfo(**message["info"])
        machine = RunMachine(
            version.entry,
            message["input"],
            [JournalEntry.from_json(e) for e in message["journal"]],
            info=info,
            clock=_utcnow,
            rng=random.Random(self._rng.getrandbits(64)),
            error_for=error_for,
            format_error=version.format_error,
        )
        hosted = HostedRun(run_id, machine, version)
        self._runs[run_id] = hosted
        self._advance(hosted, machine.start)

    def _outcome(self, message: dict[str, Any]) -> None:
        hosted = self._runs.get(message["run_id"])
        if hosted is None:
            return
        if hosted.machine.awaiting_ack:
            hosted.deferred.append(message)  # acks first: see the replay core's ordering rule
            return
        self._advance(
            hosted,
            functools.partial(
                hosted.machine.deliver, message["seq"], message["order"], message["ok"], message["value"]
            ),
        )

    def _ack(self, message: dict[str, Any]) -> None:
        hosted = self._runs.get(message["run_id"])
        if hosted is None:
            return
        self._advance(
            hosted,
            functools.partial(hosted.machine.deliver_ack, message["seq"], message["ok"], message["value"]),
        )
        while hosted.run_id in self._runs and hosted.deferred and not hosted.machine.awaiting_ack:
            self._outcome(hosted.deferred.pop(0))

    def _drop(self, run_id: str) -> None:
        hosted = self._runs.pop(run_id, None)
        if hosted is None:
            return
        for task in hosted.tasks:
            task.cancel()
        hosted.machine.close()

    # -- driving a machine ----------------------------------------------------------------------------------
    def _advance(self, hosted: HostedRun, step: Callable[[], list[Command]]) -> None:
        self._watchdog.enter(hosted.run_id)
        try:
            commands = step()
        except Exception as exc:  # a bug in the host or core must fail the run, not the worker
            log.exception("replay core failed for run %s", hosted.run_id)
            self._finish(hosted.run_id, Failed(hosted.version.format_error(exc)), [])
            return
        finally:
            self._watchdog.leave()
        wire: list[dict[str, Any]] = []
        for command in commands:
            if isinstance(command, RunStep):
                if inspect.iscoroutinefunction(getattr(command.call, "func", command.call)):
                    task = asyncio.get_running_loop().create_task(self._run_step(hosted, command))
                    hosted.tasks.add(task)
                    task.add_done_callback(hosted.tasks.discard)
                else:
                    # A sync function runs on a thread, which also reports the result: the event loop is
                    # not woken for it (each wake-up costs as much as the step itself).
                    loop = asyncio.get_running_loop()
                    self._executor.submit(self._run_sync_step, loop, hosted, command)
            else:
                wire.append(_to_wire(command))
        machine = hosted.machine
        state = machine.state
        if state == MachineState.BUSY:
            if wire:
                self._send_update(hosted.run_id, wire, "busy", machine.last_order)
            return
        if state == MachineState.DONE:
            outcome = machine.outcome
            if outcome is None:  # pragma: no cover - DONE implies an outcome
                outcome = Failed(hosted.version.format_error(RuntimeError("run ended without an outcome")))
            self._finish(hosted.run_id, outcome, wire)
            return
        self._runs.pop(hosted.run_id, None)
        machine.close()
        self._send_update(hosted.run_id, wire, state.value, machine.last_order)

    def _finish(self, run_id: str, outcome: Succeeded | Failed, wire: list[dict[str, Any]]) -> None:
        hosted = self._runs.pop(run_id, None)
        if hosted is not None:
            hosted.machine.close()
        if isinstance(outcome, Succeeded):
            result: dict[str, Any] = {"ok": True, "output": outcome.output}
            try:
                orjson.dumps(outcome.output)
            except TypeError as exc:
                result = {
                    "ok": False,
                    "error": {
                        "type": "TypeError",
                        "message": f"the workflow's return value is not JSON-serialisable: {exc}",
                        "traceback": "",
                    },
                }
        else:
            result = {"ok": False, "error": outcome.error.to_json()}
        self._send({"t": "update", "run_id": run_id, "cmds": wire, "state": "done", "outcome": result})

    def _send_update(self, run_id: str, wire: list[dict[str, Any]], state: str, last_order: int) -> None:
        message = {"t": "update", "run_id": run_id, "cmds": wire, "state": state, "last_order": last_order}
        try:
            self._send(message)
        except TypeError as exc:
            error = {
                "type": "TypeError",
                "message": f"a wf call got a value that is not JSON-serialisable: {exc}",
            }
            self._drop(run_id)
            self._send(
                {
                    "t": "update",
                    "run_id": run_id,
                    "cmds": [],
                    "state": "done",
                    "outcome": {"ok": False, "error": error},
                }
            )

    # -- wf.step functions ----------------------------------------------------------------------------------
    async def _run_step(self, hosted: HostedRun, command: RunStep) -> None:
        settings = hosted.version.settings
        tries = command.retries + 1 if command.retries is not None else settings.retry_attempts
        backoff = command.backoff if command.backoff is not None else settings.retry_backoff
        started = _utcnow()
        key = f"{hosted.run_id}:{command.seq}"
        attempt = 0
        while True:
            attempt += 1
            ok, value = await self._call_once(hosted.run_id, key, command.call, hosted.version.directory)
            if ok or attempt >= tries:
                break
            self._log(
                hosted.run_id,
                LogLevel.WARNING,
                f"step {command.name!r} failed, retrying",
                {"attempt": attempt, "error": value["message"]},
            )
            await asyncio.sleep(backoff * (2 ** (attempt - 1)))
        if self._runs.get(hosted.run_id) is not hosted:
            return
        self._send_step(hosted, command, ok, value, attempt, started)

    def _run_sync_step(self, loop: asyncio.AbstractEventLoop, hosted: HostedRun, command: RunStep) -> None:
        settings = hosted.version.settings
        tries = command.retries + 1 if command.retries is not None else settings.retry_attempts
        backoff = command.backoff if command.backoff is not None else settings.retry_backoff
        started = _utcnow()
        key = f"{hosted.run_id}:{command.seq}"
        step_key_token = current_step_key.set(key)
        sink_token = current_log_sink.set(functools.partial(self._log, hosted.run_id))
        attempt = 0
        try:
            while True:
                attempt += 1
                ok, value = self._call_sync(loop, command.call, hosted.version.directory)
                if ok or attempt >= tries or self._runs.get(hosted.run_id) is not hosted:
                    break
                self._log(
                    hosted.run_id,
                    LogLevel.WARNING,
                    f"step {command.name!r} failed, retrying",
                    {"attempt": attempt, "error": value["message"]},
                )
                time.sleep(backoff * (2 ** (attempt - 1)))
        finally:
            current_step_key.reset(step_key_token)
            current_log_sink.reset(sink_token)
        if self._runs.get(hosted.run_id) is hosted:
            self._send_step(hosted, command, ok, value, attempt, started)

    def _call_sync(self, loop: asyncio.AbstractEventLoop, call: Callable[[], Any], root: Path) -> tuple[bool, Any]:
        try:
            result = call()
            if inspect.isawaitable(result):
                result = asyncio.run_coroutine_threadsafe(_awaited(result), loop).result()
        except Exception as exc:
            return False, _error_json(exc, root)
        return _json_checked(result)

    def _send_step(
        self, hosted: HostedRun, command: RunStep, ok: bool, value: Any, attempts: int, started: datetime
    ) -> None:
        self._send(
            {
                "t": "step",
                "run_id": hosted.run_id,
                "seq": command.seq,
                "name": command.name,
                "ok": ok,
                "input": _jsonable(command.input),
                "result": value,
                "attempts": attempts,
                "started_at": started.isoformat(),
                "finished_at": _utcnow().isoformat(),
            }
        )

    async def _call_once(self, run_id: str, key: str, call: Callable[[], Any], root: Path) -> tuple[bool, Any]:
        """One try of an async step function, on the worker's loop with the step's context."""
        ctx = contextvars.copy_context()
        ctx.run(current_step_key.set, key)
        ctx.run(current_log_sink.set, functools.partial(self._log, run_id))
        try:
            result = await asyncio.get_running_loop().create_task(call(), context=ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return False, _error_json(exc, root)
        return _json_checked(result)

    def _log(self, run_id: str, level: LogLevel, message: str, fields: dict[str, Any]) -> None:
        self._send(
            {
                "t": "log",
                "run_id": run_id,
                "level": level.value,
                "message": message,
                "fields": _jsonable(fields),
                "ts": _utcnow().isoformat(),
            }
        )

    def log_print(self, run_id: str, text: str) -> None:
        self._log(run_id, LogLevel.INFO, text, {"stream": "stdout"})


def _json_checked(result: Any) -> tuple[bool, Any]:
    try:
        orjson.dumps(result)
    except TypeError as exc:
        return False, {"type": "TypeError", "message": f"step result is not JSON-serialisable: {exc}"}
    return True, result


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _error_json(exc: BaseException, root: Path) -> dict[str, Any]:
    """A step's failure with a traceback of the workflow's own files only, named relative to its folder."""
    prefix = str(root) + "/"
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__) if frame.filename.startswith(prefix)]
    for frame in frames:
        frame.filename = frame.filename[len(prefix) :]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join([*lines, *traceback.format_exception_only(exc)]),
    }


def _load_error(version_id: Any) -> ErrorInfo:
    return ErrorInfo("WorkflowFolderError", f"workflow version {version_id} could not be loaded in the worker")


def _jsonable(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value, default=repr, option=orjson.OPT_NON_STR_KEYS))


def _to_wire(command: Command) -> dict[str, Any]:
    if isinstance(command, CallEffect):
        return {
            "c": "effect",
            "seq": command.seq,
            "kind": command.kind.value,
            "name": command.name,
            "input": command.input,
        }
    if isinstance(command, CreateRequest):
        return {"c": "request", "seq": command.seq, "name": command.name, "spec": command.spec}
    if isinstance(command, StartChild):
        return {
            "c": "child",
            "seq": command.seq,
            "workflow": command.workflow,
            "data": command.data,
            "wait": command.wait,
        }
    if isinstance(command, StartSleep):
        return {"c": "sleep", "seq": command.seq, "wake_at": command.wake_at}
    if isinstance(command, RecordValue):
        return {"c": "value", "seq": command.seq, "name": command.name, "value": command.value}
    if isinstance(command, EmitLog):
        return {
            "c": "log",
            "level": command.level.value,
            "message": command.message,
            "fields": _jsonable(command.fields),
            "ts": command.ts,
        }
    raise TypeError(f"unknown command {command!r}")
