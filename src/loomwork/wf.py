"""The author API: everything a workflow does that must survive a restart goes through ``wf``.

    from loomwork import wf

    async def execute_workflow(data):
        order = (await wf.queries.get_order.run(order_id=data["order_id"]))[0]
        decision = await wf.assign_request("refund", ["Approve", "Reject"], to_groups=["finance"])
        return {"approved": decision.resolution == "Approve"}

Every call below takes the next step number of the run and is journaled; on replay it returns the recorded
result instead of acting again. See ``docs/execution-model.md``.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from .errors import ChildRunFailed, InvalidRequest, RequestTimeout, RunCancelled, StepError, WorkflowError
from .model import Decision, LogLevel, StepKind
from .replay import CallEffect, CreateRequest, RunMachine, RunStep, StartChild, StartSleep, current_machine

# ``run_id``, ``workflow`` and ``trigger`` are public too, but read from the running run on access (module
# ``__getattr__``); listing them here would make ``from loomwork.wf import *`` fail outside a run.
__all__ = [
    "Decision",
    "RequestHandle",
    "assign_request",
    "create_request",
    "days",
    "first",
    "hours",
    "http",
    "log",
    "minutes",
    "now",
    "queries",
    "random",
    "respond",
    "run_workflow",
    "seconds",
    "sleep",
    "step",
    "step_key",
    "uuid",
]

T = TypeVar("T")

#: Set by the worker host while it runs a ``wf.step`` function: that step's idempotency key.
current_step_key: contextvars.ContextVar[str] = contextvars.ContextVar("loomwork_step_key")


def _machine(call: str) -> RunMachine:
    try:
        return current_machine.get()
    except LookupError:
        raise WorkflowError(
            f"wf.{call}() can only be called from workflow code while a run executes "
            "(inside execute_workflow or functions it awaits), not from a wf.step function or at import time"
        ) from None


# -- identity ---------------------------------------------------------------------------------------------
def __getattr__(name: str) -> Any:
    if name in ("run_id", "workflow", "trigger", "workspace"):
        return getattr(_machine(name).info, name)
    raise AttributeError(f"module 'loomwork.wf' has no attribute {name!r}")


def step_key() -> str:
    """The idempotency key ``"{run_id}:{seq}"`` of the step being executed (or, in workflow code, the next)."""
    key = current_step_key.get(None)
    if key is not None:
        return key
    return _machine("step_key").next_step_key()


# -- durations --------------------------------------------------------------------------------------------
def days(n: float) -> timedelta:
    return timedelta(days=n)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


def _as_seconds(value: float | timedelta, what: str) -> float:
    if isinstance(value, timedelta):
        total = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        total = float(value)
    else:
        raise TypeError(f"{what} must be a number of seconds or a timedelta, not {type(value).__name__}")
    if total < 0:
        raise ValueError(f"{what} must not be negative (got {total} s)")
    return total


# -- values -----------------------------------------------------------------------------------------------
def now() -> datetime:
    """The current time (UTC), journaled: a replay sees the same instant."""
    machine = _machine("now")
    return datetime.fromisoformat(machine.record_value("now", lambda: machine.now().isoformat()))


def uuid() -> str:
    """A random UUID4 string, journaled."""
    machine = _machine("uuid")
    return str(machine.record_value("uuid", machine.new_uuid))


def random() -> float:
    """A random float in [0, 1), journaled."""
    machine = _machine("random")
    return float(machine.record_value("random", lambda: machine.random_bits(53) / (1 << 53)))


def respond(status_code: int = 200, body: Any = None, headers: dict[str, str] | None = None) -> None:
    """Answer a caller waiting on the trigger now; the run goes on. Journaled, so it is sent once."""
    if not isinstance(status_code, int) or not 100 <= status_code <= 599:
        raise ValueError(f"status_code must be an HTTP status between 100 and 599, got {status_code!r}")
    value = {"status_code": status_code, "body": body, "headers": dict(headers or {})}
    _machine("respond").record_value("respond", lambda: value)


# -- effects ----------------------------------------------------------------------------------------------
async def step(
    fn: Callable[..., Any],
    *args: Any,
    name: str | None = None,
    retries: int | None = None,
    backoff: float | None = None,
    **kwargs: Any,
) -> Any:
    """Run ``fn(*args, **kwargs)`` (sync or async) once, journal its result, retry it on failure.

    ``retries`` and ``backoff`` (seconds, doubled each try) override the workflow's ``[retry]`` defaults.
    The result must be JSON-serialisable.
    """
    if not callable(fn):
        raise TypeError(f"wf.step needs a function, got {type(fn).__name__}")
    if retries is not None and (not isinstance(retries, int) or retries < 0):
        raise ValueError(f"retries must be a non-negative integer, got {retries!r}")
    step_name = name or getattr(fn, "__qualname__", None) or repr(fn)
    call = functools.partial(fn, *args, **kwargs)
    recorded_input = {"args": list(args), "kwargs": kwargs}
    machine = _machine("step")
    future = machine.call_step(
        StepKind.STEP,
        step_name,
        lambda seq: RunStep(seq, step_name, recorded_input, call, retries, backoff),
    )
    return await future


class _Query:
    def __init__(self, name: str) -> None:
        self.name = name

    async def run(self, **params: Any) -> Any:
        """Run the saved query ``queries/<name>.*`` with these params; one journaled step."""
        machine = _machine("queries")
        future = machine.call_step(
            StepKind.QUERY,
            self.name,
            lambda seq: CallEffect(seq, StepKind.QUERY, self.name, {"params": params}),
        )
        return await future

    def __repr__(self) -> str:
        return f"<query {self.name!r}>"


class _Queries:
    """``wf.queries.NAME`` and ``wf.queries["NAME"]``: the workflow's saved queries."""

    def __getattr__(self, name: str) -> _Query:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Query(name)

    def __getitem__(self, name: str) -> _Query:
        return _Query(name)


queries = _Queries()


async def http(
    datasource: str,
    method: str,
    path: str,
    *,
    query: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    body: Any = None,
    allow_error_status: bool = False,
    timeout: float | None = None,
) -> Any:
    """An ad-hoc call through a ``rest`` datasource; one journaled step carried out by the engine."""
    request = {
        "datasource": datasource,
        "method": method.upper(),
        "path": path,
        "query": query or {},
        "headers": headers or {},
        "body": body,
        "allow_error_status": allow_error_status,
        "timeout": timeout,
    }
    step_name = f"{method.upper()} {datasource}:{path}"
    future = _machine("http").call_step(
        StepKind.HTTP, step_name, lambda seq: CallEffect(seq, StepKind.HTTP, step_name, request)
    )
    return await future


async def sleep(duration: float | timedelta) -> None:
    """Park this branch durably; the run holds no process while it sleeps."""
    machine = _machine("sleep")
    wake_at = (machine.now() + timedelta(seconds=_as_seconds(duration, "sleep duration"))).isoformat()
    await machine.call_step(StepKind.SLEEP, "sleep", lambda seq: StartSleep(seq, wake_at))


async def run_workflow(name: str, data: Any = None, wait: bool = True) -> Any:
    """Start a child run of the latest deployed version of ``name``.

    With ``wait=True`` returns the child's output (or raises ``ChildRunFailed``); otherwise its run id.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("run_workflow needs a workflow name")
    machine = _machine("run_workflow")
    _, ack, done = machine.call_acked(StepKind.CHILD, name, lambda seq: StartChild(seq, name, data, wait), outcome=wait)
    child_id = (await ack)["run_id"]
    if done is None:
        return child_id
    return await done


# -- people -----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RequestHandle:
    """A created request. ``await handle.wait()`` returns its :class:`Decision`."""

    id: str
    request_name: str
    resolve_links: dict[str, str]
    _outcome: asyncio.Future[Any]

    async def wait(self) -> Decision:
        """Wait for the decision; a resolution that arrived earlier is returned at once."""
        return _decision(await asyncio.shield(self._outcome))


def _decision(value: dict[str, Any]) -> Decision:
    return Decision(
        request_id=value["request_id"],
        resolution=value["resolution"],
        payload=dict(value.get("payload") or {}),
        resolved_by=value.get("resolved_by") or "",
        resolved_at=datetime.fromisoformat(value["resolved_at"]),
        workflow_run_id=value["workflow_run_id"],
    )


def _request_spec(
    request_name: Any,
    resolutions: Any,
    message: Any,
    to_users: Any,
    to_groups: Any,
    metadata: Any,
    timeout: Any,
    on_timeout: Any,
    links: bool,
) -> dict[str, Any]:
    """Check what can be checked without the database; membership is checked by the engine."""
    if not isinstance(request_name, str) or not request_name.strip():
        raise InvalidRequest("request_name must be a non-empty string")
    if isinstance(resolutions, str) or not isinstance(resolutions, Iterable):
        raise InvalidRequest(f"request {request_name!r}: resolutions must be a list of strings")
    resolution_list = list(resolutions)
    if not resolution_list:
        raise InvalidRequest(f"request {request_name!r}: resolutions must not be empty")
    if not all(isinstance(r, str) and r.strip() for r in resolution_list):
        raise InvalidRequest(f"request {request_name!r}: every resolution must be a non-empty string")
    if len(set(resolution_list)) != len(resolution_list):
        raise InvalidRequest(f"request {request_name!r}: resolutions must be unique, got {resolution_list}")
    users = _names(to_users, "to_users", request_name)
    groups = _names(to_groups, "to_groups", request_name)
    if not users and not groups:
        raise InvalidRequest(
            f"request {request_name!r} has no assignee: give to_users and/or to_groups, or nobody could ever resolve it"
        )
    if not isinstance(message, str):
        raise InvalidRequest(f"request {request_name!r}: message must be a string")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidRequest(f"request {request_name!r}: metadata must be a dict")
    timeout_s = None if timeout is None else _as_seconds(timeout, "timeout")
    if timeout_s is not None and timeout_s <= 0:
        raise InvalidRequest(f"request {request_name!r}: timeout must be positive")
    if on_timeout is not None:
        if timeout_s is None:
            raise InvalidRequest(f"request {request_name!r}: on_timeout needs a timeout")
        if on_timeout not in resolution_list:
            raise InvalidRequest(f"request {request_name!r}: on_timeout {on_timeout!r} is not one of {resolution_list}")
    return {
        "message": message,
        "resolutions": resolution_list,
        "to_users": users,
        "to_groups": groups,
        "metadata": metadata or {},
        "timeout": timeout_s,
        "on_timeout": on_timeout,
        "links": bool(links),
    }


def _names(value: Any, what: str, request_name: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    names = list(value or ())
    if not all(isinstance(n, str) and n.strip() for n in names):
        raise InvalidRequest(f"request {request_name!r}: {what} must be a list of non-empty strings")
    return names


async def create_request(
    request_name: str,
    resolutions: Iterable[str],
    *,
    message: str = "",
    to_users: Iterable[str] = (),
    to_groups: Iterable[str] = (),
    metadata: dict[str, Any] | None = None,
    timeout: float | timedelta | None = None,
    on_timeout: str | None = None,
    links: bool = False,
) -> RequestHandle:
    """Create a request without waiting for it; ``await handle.wait()`` later (an early resolution is kept)."""
    spec = _request_spec(request_name, resolutions, message, to_users, to_groups, metadata, timeout, on_timeout, links)
    machine = _machine("create_request")
    _, ack, done = machine.call_acked(
        StepKind.REQUEST, request_name, lambda seq: CreateRequest(seq, request_name, spec), outcome=True
    )
    handle = await ack
    if done is None:  # call_acked(outcome=True) always returns a future
        raise RuntimeError("request step has no outcome future")
    return RequestHandle(handle["request_id"], request_name, dict(handle.get("resolve_links") or {}), done)


async def assign_request(
    request_name: str,
    resolutions: Iterable[str],
    *,
    message: str = "",
    to_users: Iterable[str] = (),
    to_groups: Iterable[str] = (),
    metadata: dict[str, Any] | None = None,
    timeout: float | timedelta | None = None,
    on_timeout: str | None = None,
) -> Decision:
    """Ask people to decide, park the run until one of them does, and return the :class:`Decision`."""
    handle = await create_request(
        request_name,
        resolutions,
        message=message,
        to_users=to_users,
        to_groups=to_groups,
        metadata=metadata,
        timeout=timeout,
        on_timeout=on_timeout,
    )
    return await handle.wait()


async def first(*awaitables: Awaitable[T]) -> T:
    """Return the result of whichever awaitable finishes first (ties go to the earlier argument)."""
    if not awaitables:
        raise ValueError("wf.first needs at least one awaitable")
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    winner = next(t for t in tasks if t.done())
    for task in tasks:
        if task is not winner:
            task.cancel()
    return winner.result()


# -- logs -------------------------------------------------------------------------------------------------
class _Log:
    """``wf.log.info("message", key=value)``: structured lines in the run's log."""

    def _emit(self, level: LogLevel, message: str, fields: dict[str, Any]) -> None:
        emit = current_log_sink.get(None)
        if emit is not None:
            emit(level, str(message), fields)
            return
        _machine("log").emit_log(level, str(message), fields)

    def debug(self, message: str, **fields: Any) -> None:
        self._emit(LogLevel.DEBUG, message, fields)

    def info(self, message: str, **fields: Any) -> None:
        self._emit(LogLevel.INFO, message, fields)

    def warning(self, message: str, **fields: Any) -> None:
        self._emit(LogLevel.WARNING, message, fields)

    def error(self, message: str, **fields: Any) -> None:
        self._emit(LogLevel.ERROR, message, fields)


#: Set by the worker host inside ``wf.step`` functions, whose logs bypass the replay core.
current_log_sink: contextvars.ContextVar[Callable[[LogLevel, str, dict[str, Any]], None]] = contextvars.ContextVar(
    "loomwork_log_sink"
)

log = _Log()


# -- outcomes back into exceptions (used by the worker host) ----------------------------------------------
def error_for(kind: StepKind, info: dict[str, Any]) -> BaseException:
    """Rebuild the exception a failed step raises in workflow code, the same live and on replay."""
    error_type = str(info.get("type", "StepError"))
    message = str(info.get("message", ""))
    if error_type == "RequestTimeout":
        return RequestTimeout(str(info.get("request_id", "")), str(info.get("request_name", "")))
    if error_type == "InvalidRequest":
        return InvalidRequest(message)
    if error_type == "RunCancelled":
        return RunCancelled(message)
    if kind == StepKind.CHILD and error_type == "ChildRunFailed":
        return ChildRunFailed(str(info.get("run_id", "")), str(info.get("status", "failed")), message)
    error = StepError(message, error_type=error_type)
    error.remote_traceback = str(info.get("traceback", ""))  # type: ignore[attr-defined]
    return error
