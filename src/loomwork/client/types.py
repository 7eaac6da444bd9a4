"""What the client returns: small frozen dataclasses parsed from the API's JSON (SPEC §4).

Timestamps become timezone-aware :class:`~datetime.datetime`; statuses stay plain strings (compare them with
``"succeeded"`` or with the enums of :mod:`loomwork.model`, which are ``StrEnum``). Every object keeps the JSON
it came from in ``raw``, so fields added by a newer server are not lost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = [
    "ApiKey",
    "Datasource",
    "Diagnostic",
    "Group",
    "LogLine",
    "Me",
    "Member",
    "Page",
    "Request",
    "Run",
    "RunError",
    "Schedule",
    "Step",
    "TriggerResult",
    "Version",
    "Webhook",
    "Workflow",
    "Workspace",
]

FINISHED = frozenset({"succeeded", "failed", "cancelled"})


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (``...Z`` or an offset) as an aware datetime; ``None`` stays ``None``."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _req_time(value: Any) -> datetime:
    parsed = parse_time(value)
    if parsed is None:
        raise ValueError("a required timestamp is missing")
    return parsed


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _strs(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value or ())


@dataclass(frozen=True, slots=True)
class RunError:
    type: str
    message: str
    traceback: str = ""

    @classmethod
    def parse(cls, data: Any) -> RunError | None:
        if not isinstance(data, dict):
            return None
        return cls(str(data.get("type", "")), str(data.get("message", "")), str(data.get("traceback") or ""))

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.type else self.message


@dataclass(frozen=True, slots=True)
class Step:
    seq: int
    kind: str
    name: str
    status: str
    input: Any
    output: Any
    error: RunError | None
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, d: dict[str, Any]) -> Step:
        return cls(
            seq=int(d["seq"]),
            kind=str(d.get("kind", "")),
            name=str(d.get("name", "")),
            status=str(d.get("status", "")),
            input=d.get("input"),
            output=d.get("output"),
            error=RunError.parse(d.get("error")),
            attempts=int(d.get("attempts") or 0),
            started_at=parse_time(d.get("started_at")),
            finished_at=parse_time(d.get("finished_at")),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class Request:
    """A request for a human decision (SPEC §3.3) as the API shows it."""

    id: str
    workflow: str
    run_id: str
    request_name: str
    message: str
    resolutions: tuple[str, ...]
    metadata: dict[str, Any]
    to_users: tuple[str, ...]
    to_groups: tuple[str, ...]
    status: str
    created_at: datetime
    expires_at: datetime | None
    resolution: str | None
    payload: dict[str, Any] | None
    resolved_by: str | None
    resolved_at: datetime | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, d: dict[str, Any]) -> Request:
        payload = d.get("payload")
        return cls(
            id=str(d["id"]),
            workflow=str(d.get("workflow", "")),
            run_id=str(d.get("run_id", "")),
            request_name=str(d.get("request_name", "")),
            message=str(d.get("message") or ""),
            resolutions=_strs(d.get("resolutions")),
            metadata=_obj(d.get("metadata")),
            to_users=_strs(d.get("to_users")),
            to_groups=_strs(d.get("to_groups")),
            status=str(d.get("status", "")),
            created_at=_req_time(d.get("created_at")),
            expires_at=parse_time(d.get("expires_at")),
            resolution=d.get("resolution"),
            payload=payload if isinstance(payload, dict) else None,
            resolved_by=d.get("resolved_by"),
            resolved_at=parse_time(d.get("resolved_at")),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class Run:
    """A run. ``steps`` and ``requests`` are filled by ``get_run`` (the detail view), empty in lists."""

    id: str
    workflow: str
    version: int | None
    status: str
    trigger: str
    test: bool
    input: Any
    output: Any
    error: RunError | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    parent_run_id: str | None = None
    attempts: int = 0
    steps: tuple[Step, ...] = ()
    requests: tuple[Request, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def duration(self) -> timedelta | None:
        """From start to finish; ``None`` until the run has both."""
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    @classmethod
    def parse(cls, d: dict[str, Any]) -> Run:
        version = d.get("version")
        return cls(
            id=str(d["id"]),
            workflow=str(d.get("workflow", "")),
            version=int(version) if version is not None else None,
            status=str(d.get("status", "")),
            trigger=str(d.get("trigger", "")),
            test=bool(d.get("test", False)),
            input=d.get("input"),
            output=d.get("output"),
            error=RunError.parse(d.get("error")),
            created_at=_req_time(d.get("created_at")),
            started_at=parse_time(d.get("started_at")),
            finished_at=parse_time(d.get("finished_at")),
            parent_run_id=d.get("parent_run_id"),
            attempts=int(d.get("attempts") or 0),
            steps=tuple(Step.parse(s) for s in d.get("steps") or ()),
            requests=tuple(Request.parse(r) for r in d.get("requests") or ()),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class TriggerResult:
    """The answer to a trigger (SPEC §4.4).

    Without ``wait`` (or when the wait expired) ``http_status`` is 202 and ``status`` is where the run stands.
    When the run finished while the caller waited, ``http_status`` is 200 and ``output`` (or ``error``) is set.
    When the run answered with ``wf.respond(...)``, ``responded`` is true and ``http_status``, ``headers`` and
    ``body`` are exactly what it sent; ``run_id`` then comes from the ``Loomwork-Run-Id`` header, and ``status`` is
    ``"running"`` (the run goes on after responding). A failed or cancelled run that ended while the caller
    waited is ``http_status`` 200 with ``status`` ``"failed"``/``"cancelled"`` and ``error`` set: the trigger
    worked, the run did not. ``replayed`` is true when an ``idempotency_key`` returned an earlier run.
    """

    run_id: str | None
    status: str
    output: Any = None
    error: RunError | None = None
    http_status: int = 202
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    responded: bool = False
    replayed: bool = False

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclass(frozen=True, slots=True)
class LogLine:
    seq: int
    ts: datetime
    level: str
    message: str
    fields: dict[str, Any]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, d: dict[str, Any]) -> LogLine:
        return cls(
            seq=int(d.get("seq") or 0),
            ts=_req_time(d.get("ts")),
            level=str(d.get("level", "info")),
            message=str(d.get("message", "")),
            fields=_obj(d.get("fields")),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class Schedule:
    cron: str
    timezone: str
    data: Any
    enabled: bool
    next_fire_at: datetime | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, d: dict[str, Any]) -> Schedule:
        return cls(
            cron=str(d.get("cron", "")),
            timezone=str(d.get("timezone") or "UTC"),
            data=d.get("data"),
            enabled=bool(d.get("enabled", True)),
            next_fire_at=parse_time(d.get("next_fire_at")),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class Workflow:
    """A workflow: its draft ``files`` (empty in lists), settings and the latest deployed version."""

    name: str
    description: str
    files: dict[str, str]
    deployed_version: int | None
    webhook_enabled: bool
    schedule: Schedule | None
    created_at: datetime | None
    updated_at: datetime | None
    last_run_status: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, d: dict[str, Any]) -> Workflow:
        schedule = d.get("schedule")
        deployed = d.get("deployed_version")
        return cls(
            name=str(d["name"]),
            description=str(d.get("description") or ""),
            files={str(k): str(v) for k, v in _obj(d.get("files")).items()},
            deployed_version=int(deployed) if deployed is not None else None,
            webhook_enabled=bool(d.get("webhook_enabled", False)),
            schedule=Schedule.parse(schedule) if isinstance(schedule, dict) else None,
            created_at=parse_time(d.get("created_at")),
            updated_at=parse_time(d.get("updated_at")),
            last_run_status=d.get("last_run_status"),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class Version:
    """A deployed, immutable version of a workflow."""

    number: int
    created_at: datetime | None
    files: dict[str, str]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, d: dict[str, Any]) -> Version:
        number = d.get("number", d.get("version"))
        return cls(
            number=int(number) if number is not None else 0,
            created_at=parse_time(d.get("created_at")),
            files={str(k): str(v) for k, v in _obj(d.get("files")).items()},
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class Webhook:
    """The webhook URL and token, shown once when enabled or regenerated."""

    url: str
    token: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, d: dict[str, Any]) -> Webhook:
        return cls(url=str(d.get("url", "")), token=str(d.get("token", "")), raw=d)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    file: str
    line: int
    col: int
    end_line: int
    end_col: int
    severity: str
    code: str
    message: str

    @classmethod
    def parse(cls, d: dict[str, Any]) -> Diagnostic:
        line = int(d.get("line") or 1)
        col = int(d.get("col") or 1)
        return cls(
            file=str(d.get("file", "")),
            line=line,
            col=col,
            end_line=int(d.get("end_line") or line),
            end_col=int(d.get("end_col") or col),
            severity=str(d.get("severity", "error")),
            code=str(d.get("code", "")),
            message=str(d.get("message", "")),
        )

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.severity} {self.code} {self.message}"


@dataclass(frozen=True, slots=True)
class Datasource:
    """A datasource; ``secrets`` holds the *names* of the secrets that are set, never their values."""

    name: str
    kind: str
    config: dict[str, Any]
    secrets: tuple[str, ...]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, d: dict[str, Any]) -> Datasource:
        secrets = d.get("secrets") or ()
        names = sorted(secrets) if isinstance(secrets, dict) else _strs(secrets)
        return cls(str(d["name"]), str(d.get("kind", "")), _obj(d.get("config")), tuple(names), raw=d)


@dataclass(frozen=True, slots=True)
class Workspace:
    slug: str
    name: str
    role: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, d: dict[str, Any]) -> Workspace:
        return cls(str(d["slug"]), str(d.get("name") or d["slug"]), d.get("role"), raw=d)


@dataclass(frozen=True, slots=True)
class Me:
    """Who the client is: the user, how it authenticated (``key`` or ``session``) and its workspaces."""

    email: str
    name: str
    via: str
    workspaces: tuple[Workspace, ...]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, d: dict[str, Any]) -> Me:
        user = _obj(d.get("user"))
        return cls(
            email=str(user.get("email", "")),
            name=str(user.get("name") or ""),
            via=str(d.get("via", "")),
            workspaces=tuple(Workspace.parse(w) for w in d.get("workspaces") or ()),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class Member:
    email: str
    name: str
    role: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, d: dict[str, Any]) -> Member:
        return cls(str(d["email"]), str(d.get("name") or ""), str(d.get("role", "")), raw=d)


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    members: tuple[str, ...]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, d: dict[str, Any]) -> Group:
        return cls(str(d["name"]), _strs(d.get("members")), raw=d)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key. ``key`` (the secret) is set only in the answer to ``create_api_key``."""

    id: str
    name: str
    role: str
    user: str
    created_at: datetime | None
    last_used_at: datetime | None
    key: str | None = field(default=None, repr=False)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, d: dict[str, Any]) -> ApiKey:
        return cls(
            id=str(d["id"]),
            name=str(d.get("name", "")),
            role=str(d.get("role", "")),
            user=str(d.get("user", "")),
            created_at=parse_time(d.get("created_at")),
            last_used_at=parse_time(d.get("last_used_at")),
            key=d.get("key"),
            raw={k: v for k, v in d.items() if k != "key"},
        )


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list; pass ``next_cursor`` back as ``cursor`` for the next (``None``: this was the last)."""

    items: tuple[T, ...]
    next_cursor: str | None

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @classmethod
    def parse(cls, data: Any, item: Callable[[dict[str, Any]], T]) -> Page[T]:
        if isinstance(data, list):
            return cls(tuple(item(d) for d in data), None)
        body = _obj(data)
        cursor = body.get("next_cursor")
        return cls(tuple(item(d) for d in body.get("items") or ()), str(cursor) if cursor else None)
