"""Commands the replay core emits: what the run asks the outside world to do next.

``RunStep`` is carried out by the worker host (it calls user code); every other command is carried out by the
engine, which holds the credentials. Commands are plain data except ``RunStep.call``, which never leaves the
worker process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..model import LogLevel, StepKind


@dataclass(frozen=True, slots=True)
class RunStep:
    """Call a user function (``wf.step``) and journal its result."""

    seq: int
    name: str
    input: Any
    call: Callable[[], Any] = field(repr=False)
    retries: int | None = None
    backoff: float | None = None


@dataclass(frozen=True, slots=True)
class CallEffect:
    """An engine-side effect: a saved query or an ad-hoc http call through a datasource."""

    seq: int
    kind: StepKind
    name: str
    input: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CreateRequest:
    """Create a request for people; the engine validates it and answers with its id (an ack)."""

    seq: int
    name: str
    spec: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StartChild:
    """Start a child run; the engine answers with its id (an ack) and, if awaited, its outcome later."""

    seq: int
    workflow: str
    data: Any
    wait: bool


@dataclass(frozen=True, slots=True)
class StartSleep:
    """Park this branch until ``wake_at`` (RFC 3339)."""

    seq: int
    wake_at: str


@dataclass(frozen=True, slots=True)
class RecordValue:
    """Journal a value the run produced itself (``now``, ``uuid``, ``random``, ``respond``)."""

    seq: int
    name: str
    value: Any


@dataclass(frozen=True, slots=True)
class EmitLog:
    level: LogLevel
    message: str
    fields: dict[str, Any]
    ts: str


Command = RunStep | CallEffect | CreateRequest | StartChild | StartSleep | RecordValue | EmitLog

#: Commands whose answer the workflow needs before it can go on, delivered as acks rather than outcomes.
ACKED = (CreateRequest, StartChild)
