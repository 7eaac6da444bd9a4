"""Run history: list and inspect runs, read and follow their logs, cancel and retry them.

Viewers read; operators also cancel and retry. Run lists are keyset-paged newest first by (created_at, id)
with an opaque cursor (base64url of that pair), so pages never skip or repeat a run while new runs arrive.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from ..aio import wait_event
from ..engine import Engine
from ..errors import NotFound, Unprocessable
from ..model import LogLine, Request, Role, Run, RunStatus, Step, Trigger
from ..store import history as queries
from .accounts import Access

MAX_LIMIT = 500
MAX_LOG_LIMIT = 1000
#: How long a follower sleeps at most without a notification: a lost notification costs at most this.
FOLLOW_POLL = 1.0
#: A comment line this often keeps proxies from closing an idle event stream.
HEARTBEAT = 15.0


@dataclass(frozen=True, slots=True)
class RunPage:
    items: list[Run]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class RunDetail:
    run: Run
    steps: list[Step]
    requests: list[Request]


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One thing a log follower sends: a ``line``, a ``heartbeat`` or the ``end`` of the run."""

    kind: str
    line: LogLine | None = None
    status: RunStatus | None = None


# -- parsing the filters ---------------------------------------------------------------------------------------
def parse_statuses(values: Iterable[str] | None) -> tuple[RunStatus, ...]:
    """``status`` may be repeated and each value may hold several, comma-separated."""
    found: list[RunStatus] = []
    for value in values or ():
        for part in value.split(","):
            name = part.strip().lower()
            if not name:
                continue
            try:
                found.append(RunStatus(name))
            except ValueError:
                allowed = ", ".join(s.value for s in RunStatus)
                raise Unprocessable(f"unknown run status {part.strip()!r}; use one of: {allowed}") from None
    return tuple(dict.fromkeys(found))


def parse_trigger(value: str | None) -> Trigger | None:
    if value is None or not value.strip():
        return None
    try:
        return Trigger(value.strip().lower())
    except ValueError:
        allowed = ", ".join(t.value for t in Trigger)
        raise Unprocessable(f"unknown trigger {value!r}; use one of: {allowed}") from None


def parse_time(value: str | None, what: str) -> datetime | None:
    """An RFC 3339 timestamp; without an offset it is taken as UTC. A ``+`` that became a space is forgiven."""
    if value is None or not value.strip():
        return None
    text = value.strip().replace(" ", "+") if "T" in value else value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise Unprocessable(
            f"{what} must be an RFC 3339 timestamp such as 2024-05-01T12:00:00Z, got {value!r}"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def encode_cursor(run: Run) -> str:
    raw = orjson.dumps([run.created_at.astimezone(UTC).isoformat(), run.id])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None or not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, run_id = orjson.loads(raw)
        when = datetime.fromisoformat(created)
        if not isinstance(run_id, str) or when.tzinfo is None:
            raise ValueError(cursor)
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise Unprocessable("invalid cursor: pass the next_cursor of a previous page unchanged") from None
    return when.astimezone(UTC), run_id


def check_limit(limit: int, maximum: int = MAX_LIMIT) -> int:
    if not 1 <= limit <= maximum:
        raise Unprocessable(f"limit must be between 1 and {maximum}, got {limit}")
    return limit


class History:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- lists -------------------------------------------------------------------------------------------------
    async def list_runs(
        self,
        access: Access,
        *,
        workflow: str | None = None,
        statuses: Iterable[str] | None = None,
        trigger: str | None = None,
        since: str | None = None,
        until: str | None = None,
        test: bool | None = None,
        q: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        must_exist: bool = False,
    ) -> RunPage:
        """Runs of the workspace (or of one workflow), newest first. ``must_exist``: 404 for an unknown workflow."""
        access.require(Role.VIEWER)
        query = queries.RunQuery(
            workspace=access.workspace,
            workflow=workflow,
            statuses=parse_statuses(statuses),
            trigger=parse_trigger(trigger),
            since=parse_time(since, "since"),
            until=parse_time(until, "until"),
            test=test,
            q=q or None,
            limit=check_limit(limit) + 1,
            after=decode_cursor(cursor),
        )
        if (
            workflow is not None
            and must_exist
            and not await self.engine.db.read(queries.workflow_exists, access.workspace, workflow)
        ):
            raise NotFound(f"workflow {workflow!r} not found in workspace {access.workspace!r}")
        found = await self.engine.db.read(queries.list_runs, query)
        items = found[:limit]
        return RunPage(items, encode_cursor(items[-1]) if len(found) > limit else None)

    # -- one run ---------------------------------------------------------------------------------------------
    async def get_run(self, access: Access, run_id: str) -> RunDetail:
        access.require(Role.VIEWER)
        run = await self.engine.get_run(run_id, workspace=access.workspace)
        steps, requests = await asyncio.gather(self.engine.list_steps(run.id), self.engine.list_run_requests(run.id))
        return RunDetail(run, steps, requests)

    async def cancel(self, access: Access, run_id: str) -> Run:
        access.require(Role.OPERATOR)
        return await self.engine.cancel_run(run_id, workspace=access.workspace)

    async def retry(self, access: Access, run_id: str) -> Run:
        access.require(Role.OPERATOR)
        return await self.engine.retry_run(run_id, workspace=access.workspace)

    # -- logs ------------------------------------------------------------------------------------------------
    async def read_logs(self, access: Access, run_id: str, after: int = 0, limit: int = 500) -> list[LogLine]:
        access.require(Role.VIEWER)
        check_limit(limit, MAX_LOG_LIMIT)
        await self.engine.get_run(run_id, workspace=access.workspace)
        return await self.engine.read_logs(run_id, max(after, 0), limit)

    async def open_follow(self, access: Access, run_id: str) -> None:
        """Check access before a stream starts: errors must be answered as problems, not mid-stream."""
        access.require(Role.VIEWER)
        await self.engine.get_run(run_id, workspace=access.workspace)

    async def follow_logs(
        self, run_id: str, after: int = 0, *, heartbeat: float = HEARTBEAT
    ) -> AsyncIterator[LogEvent]:
        """Every log line after ``after`` as it is written, then ``end`` once the run ended and all were sent.

        Wakes on the ``log`` and ``finished`` notifications (from any node); re-reads at least every second
        so a lost notification never leaves a follower hanging. Call :meth:`open_follow` first.
        """
        wake = asyncio.Event()

        def on_notification(payload: str) -> None:
            if payload in (run_id, "*", ""):
                wake.set()

        unsubscribe = [self.engine.subscribe(topic, on_notification) for topic in ("log", "finished")]
        try:
            last_sent = time.monotonic()
            while True:
                wake.clear()
                # Status first, lines second: if the run had ended, every line it wrote is already stored.
                run = await self.engine.get_run(run_id)
                lines = await self.engine.read_logs(run_id, after, MAX_LOG_LIMIT)
                for line in lines:
                    after = line.seq
                    yield LogEvent("line", line)
                if lines:
                    last_sent = time.monotonic()
                    if len(lines) == MAX_LOG_LIMIT:
                        continue
                if run.status.is_final:
                    yield LogEvent("end", status=run.status)
                    return
                await wait_event(wake, FOLLOW_POLL)
                if time.monotonic() - last_sent >= heartbeat:
                    last_sent = time.monotonic()
                    yield LogEvent("heartbeat")
        finally:
            for stop in unsubscribe:
                stop()
