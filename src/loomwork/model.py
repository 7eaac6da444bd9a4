"""Value objects and state enums shared by every layer.

Each state machine has exactly one enum here; the database backs it with a ``CHECK`` constraint built from
the same enum, and the API and CLI print its values.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in _FINAL_RUN_STATUSES


_FINAL_RUN_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})


class Trigger(enum.StrEnum):
    API = "api"
    WEBHOOK = "webhook"
    SCHEDULE = "schedule"
    TEST = "test"
    RETRY = "retry"
    CHILD = "child"
    LOCAL = "local"


class StepKind(enum.StrEnum):
    QUERY = "query"
    STEP = "step"
    HTTP = "http"
    REQUEST = "request"
    SLEEP = "sleep"
    VALUE = "value"
    CHILD = "child"

    @property
    def is_wait(self) -> bool:
        """A wait parks the run without holding a process; the others are effects in flight."""
        return self in (StepKind.REQUEST, StepKind.SLEEP, StepKind.CHILD)


class StepStatus(enum.StrEnum):
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class RequestStatus(enum.StrEnum):
    PENDING = "pending"
    RESOLVED = "resolved"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Role(enum.StrEnum):
    """A member's role in a workspace; each role may do everything the roles below it may (docs/security.md)."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    DEVELOPER = "developer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _ROLE_RANK[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_ROLE_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.DEVELOPER: 2, Role.ADMIN: 3}


class LogLevel(enum.StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """A failure as recorded: exception type, message and a traceback of the user's own files."""

    type: str
    message: str
    traceback: str = ""

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message, "traceback": self.traceback}

    @classmethod
    def from_json(cls, value: dict[str, Any] | None) -> ErrorInfo | None:
        if value is None:
            return None
        return cls(str(value.get("type", "")), str(value.get("message", "")), str(value.get("traceback", "")))


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of a request, as ``assign_request`` and ``req.wait()`` return it."""

    request_id: str
    resolution: str
    payload: dict[str, Any]
    resolved_by: str
    resolved_at: datetime
    workflow_run_id: str


@dataclass(frozen=True, slots=True)
class Run:
    id: str
    workspace: str
    workflow: str
    version: int
    version_id: int
    status: RunStatus
    trigger: Trigger
    test: bool
    input: Any
    output: Any
    error: ErrorInfo | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    parent_run_id: str | None = None
    parent_seq: int | None = None
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class Step:
    run_id: str
    seq: int
    kind: StepKind
    name: str
    status: StepStatus
    input: Any
    output: Any
    error: ErrorInfo | None
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    done_order: int | None = None
    wake_at: datetime | None = None
    handle: Any = None
    error_detail: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Request:
    id: str
    workspace: str
    workflow: str
    run_id: str
    seq: int
    request_name: str
    message: str
    resolutions: tuple[str, ...]
    metadata: dict[str, Any]
    to_users: tuple[str, ...]
    to_groups: tuple[str, ...]
    status: RequestStatus
    created_at: datetime
    expires_at: datetime | None
    on_timeout: str | None
    resolution: str | None
    payload: dict[str, Any] | None
    resolved_by: str | None
    resolved_at: datetime | None

    def decision(self) -> Decision | None:
        if self.resolution is None or self.resolved_at is None:
            return None
        return Decision(
            request_id=self.id,
            resolution=self.resolution,
            payload=dict(self.payload or {}),
            resolved_by=self.resolved_by or "",
            resolved_at=self.resolved_at,
            workflow_run_id=self.run_id,
        )


@dataclass(frozen=True, slots=True)
class LogLine:
    run_id: str
    seq: int
    ts: datetime
    level: LogLevel
    message: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WorkflowVersion:
    id: int
    workspace: str
    workflow: str
    number: int
    files: dict[str, str]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class User:
    id: int
    email: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Workspace:
    slug: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Member:
    workspace: str
    user: User
    role: Role


@dataclass(frozen=True, slots=True)
class Group:
    workspace: str
    name: str
    members: tuple[str, ...]  # emails
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    workspace: str
    user_email: str
    name: str
    role: Role
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class Schedule:
    cron: str
    timezone: str
    data: Any
    enabled: bool
    next_fire_at: datetime | None


@dataclass(frozen=True, slots=True)
class Workflow:
    """A workflow's draft and settings; deployed versions are :class:`WorkflowVersion`."""

    workspace: str
    name: str
    description: str
    files: dict[str, str]
    created_at: datetime
    updated_at: datetime
    deployed_version: int | None
    webhook_id: str | None
    hmac_enabled: bool
    schedule: Schedule | None
