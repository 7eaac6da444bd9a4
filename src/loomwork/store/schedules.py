"""Cron schedules: kept in the ``schedule_*`` columns of ``workflows``, fired into queued runs.

Each firing is one run, however many schedulers race: the run's idempotency key is derived from the firing's
instant (``schedule:<UTC ISO time>``) and ``(workspace, workflow, idempotency_key)`` is unique. On PostgreSQL the
due rows are also taken ``FOR UPDATE SKIP LOCKED``, so concurrent schedulers mostly do not even try the same one.

Time zones: the cron expression is read in the schedule's IANA zone (croniter over zone-aware datetimes).
A time skipped by a spring-forward change fires at the first instant after the gap; in the repeated hour of an
autumn change, expressions with a fixed hour fire once (the first pass), expressions with a wildcard or stepped
hour fire on the wall clock in both passes (what Vixie cron does).
"""

from __future__ import annotations

import functools
import itertools
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import sqlalchemy as sa
from croniter import CroniterError, croniter

from ..errors import Unprocessable, WorkflowFolderError
from ..folder import parse_settings
from ..model import Run, Schedule, Trigger
from .base import Tx, as_utc
from .runs import NewRun, create_run
from .schema import workflows
from .versions import latest_version
from .workflows import get_workflow

log = logging.getLogger(__name__)

#: Firings missed by more than this (the scheduler was down) are skipped, not run late.
CATCH_UP = timedelta(hours=1)
#: How many skipped firings are counted one by one before jumping ahead (croniter takes ~70 us a firing, and
#: firing runs inside the engine's write transaction).
_MAX_COUNTED = 100
_MAX_SEARCH = 1_000
_RANDOM_OR_HASHED = re.compile(r"(^|[^a-z])[rh]([^a-z]|$)", re.IGNORECASE)
_ZONE_NAME = re.compile(r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$")


# -- cron expressions ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Cron:
    """A checked 5-field cron expression read in one IANA time zone."""

    expression: str
    zone: ZoneInfo

    @property
    def fixed_hour(self) -> bool:
        hour = self.expression.split()[1]
        return not hour.startswith("*")

    def next_after(self, after: datetime) -> datetime:
        """The first firing strictly after ``after`` (UTC in, UTC out)."""
        return next(self.firings_after(after))

    def firings_after(self, after: datetime) -> Iterator[datetime]:
        """Every firing strictly after ``after``, in order (UTC)."""
        it = croniter(self.expression, after.astimezone(self.zone))
        last, passed = after, 0
        while True:
            try:
                candidate: datetime = it.get_next(datetime).astimezone(UTC)
            except CroniterError as exc:
                raise Unprocessable(f"cron expression {self.expression!r} never fires") from exc
            # Never go backwards across a zone change; in the repeated hour of an autumn change, a fixed-time
            # job already fired in the first pass.
            if candidate <= last or (self.fixed_hour and candidate.astimezone(self.zone).fold == 1):
                passed += 1
                if passed > _MAX_SEARCH:
                    raise Unprocessable(f"cron expression {self.expression!r} never fires")
                continue
            passed = 0
            last = candidate
            yield candidate


@functools.cache
def _zones() -> frozenset[str]:
    # The system's zone directory also holds "localtime" and "posixrules": not IANA names, and host-dependent.
    return frozenset(available_timezones()) - {"localtime", "posixrules", "Factory"}


def parse_zone(name: str) -> ZoneInfo:
    zones = _zones()
    if not _ZONE_NAME.match(name) or name not in zones:
        raise Unprocessable(f"unknown time zone {name!r}: use an IANA name such as 'UTC' or 'Europe/Berlin'")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise Unprocessable(f"unknown time zone {name!r}: use an IANA name such as 'UTC' or 'Europe/Berlin'") from exc


def parse_cron(expression: str, timezone: str) -> Cron:
    """Check a schedule: exactly 5 fields (minute hour day-of-month month day-of-week), a known zone, and it fires."""
    fields = expression.split()
    if len(fields) != 5:
        raise Unprocessable(
            f"cron expression {expression!r} has {len(fields)} field(s); a schedule needs exactly 5: "
            "minute hour day-of-month month day-of-week (no seconds or years, no @aliases)"
        )
    if any(_RANDOM_OR_HASHED.search(f) for f in fields):
        raise Unprocessable(f"cron expression {expression!r}: random (R) and hashed (H) fields are not supported")
    normalised = " ".join(fields)
    try:
        croniter(normalised)
    except (CroniterError, ValueError, KeyError) as exc:
        raise Unprocessable(f"invalid cron expression {expression!r}: {exc}") from exc
    checked = Cron(normalised, parse_zone(timezone))
    checked.next_after(datetime.now(UTC))  # e.g. "0 0 31 2 *" never does
    return checked


# -- settings --------------------------------------------------------------------------------------------------
def _where(workspace: str, name: str) -> Any:
    return sa.and_(workflows.c.workspace == workspace, workflows.c.name == name)


def set_schedule(
    tx: Tx,
    workspace: str,
    name: str,
    cron: str,
    timezone: str,
    data: dict[str, Any],
    enabled: bool,
    now: datetime,
) -> Schedule:
    """Set (or replace) the workflow's schedule; the next firing counts from ``now``."""
    checked = parse_cron(cron, timezone)
    get_workflow(tx, workspace, name)
    next_at = checked.next_after(now) if enabled else None
    tx.conn.execute(
        workflows.update()
        .where(_where(workspace, name))
        .values(
            schedule_cron=checked.expression,
            schedule_timezone=timezone,
            schedule_data=data,
            schedule_enabled=enabled,
            schedule_next_at=next_at,
        )
    )
    tx.notify("schedule")
    return Schedule(checked.expression, timezone, data, enabled, next_at)


def clear_schedule(tx: Tx, workspace: str, name: str) -> None:
    get_workflow(tx, workspace, name)
    tx.conn.execute(
        workflows.update()
        .where(_where(workspace, name))
        .values(
            schedule_cron=None,
            schedule_timezone=None,
            schedule_data=None,
            schedule_enabled=False,
            schedule_next_at=None,
        )
    )
    tx.notify("schedule")


# Spelled like the partial index ix_workflows_schedule_due (a typed Boolean would compile to "= 1" on SQLite,
# which SQLite's planner does not match against the index's predicate).
_DUE = sa.and_(sa.literal_column("workflows.schedule_enabled"), workflows.c.schedule_next_at.is_not(None))


def next_due(tx: Tx) -> datetime | None:
    """The earliest instant at which some enabled schedule fires, or None."""
    value = tx.conn.execute(sa.select(sa.func.min(workflows.c.schedule_next_at)).where(_DUE)).scalar_one_or_none()
    return as_utc(value)


# -- firing ----------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Fired:
    """What one ``fire_due_schedules`` call did."""

    runs: list[Run] = field(default_factory=list)  # runs created now
    duplicates: int = 0  # firings another scheduler had already turned into runs
    skipped: int = 0  # firings older than CATCH_UP, or of a workflow with no deployed version
    workflows: int = 0  # schedules advanced


def fire_due_schedules(tx: Tx, now: datetime, limit: int = 100) -> Fired:
    """Turn every firing due at ``now`` into a queued run (one per firing), and advance the schedules."""
    query = (
        sa.select(
            workflows.c.workspace,
            workflows.c.name,
            workflows.c.schedule_cron,
            workflows.c.schedule_timezone,
            workflows.c.schedule_data,
            workflows.c.schedule_next_at,
        )
        .where(_DUE, workflows.c.schedule_next_at <= now)
        .order_by(workflows.c.schedule_next_at)
        .limit(limit)
    )
    if tx.is_postgres:
        query = query.with_for_update(skip_locked=True)
    fired = Fired()
    for row in tx.conn.execute(query).all():
        fired.workflows += 1
        try:
            cron = parse_cron(row.schedule_cron, row.schedule_timezone or "UTC")
        except Unprocessable as exc:  # only if the row was written behind the API's back
            log.error("schedule of %s/%s disabled: %s", row.workspace, row.name, exc)
            tx.conn.execute(workflows.update().where(_where(row.workspace, row.name)).values(schedule_next_at=None))
            continue
        next_at = as_utc(row.schedule_next_at)
        assert next_at is not None
        times, skipped, following = _firings(cron, next_at, now)
        if skipped:
            log.warning(
                "schedule of %s/%s: skipped %s firing(s) older than %s (the scheduler was not running)",
                row.workspace,
                row.name,
                f"more than {_MAX_COUNTED}" if skipped > _MAX_COUNTED else skipped,
                CATCH_UP,
            )
        fired.skipped += skipped
        if times:
            _start_runs(tx, row.workspace, row.name, row.schedule_data, times, fired)
        tx.conn.execute(workflows.update().where(_where(row.workspace, row.name)).values(schedule_next_at=following))
    return fired


def _firings(cron: Cron, next_at: datetime, now: datetime) -> tuple[list[datetime], int, datetime]:
    """``(firings to run, firings skipped as too old, the next firing after now)`` from ``next_at``."""
    cutoff = now - CATCH_UP
    skipped = 0
    upcoming: Iterator[datetime] = itertools.chain([next_at], cron.firings_after(next_at))
    at = next(upcoming)
    while at < cutoff:
        skipped += 1
        if skipped > _MAX_COUNTED:  # down for long: stop counting, jump to the window
            upcoming = cron.firings_after(cutoff - timedelta(microseconds=1))
            at = next(upcoming)
            break
        at = next(upcoming)
    times: list[datetime] = []
    while at <= now:
        times.append(at)
        at = next(upcoming)
    return times, skipped, at


def _start_runs(tx: Tx, workspace: str, name: str, data: Any, times: list[datetime], fired: Fired) -> None:
    version = latest_version(tx, workspace, name)
    if version is None:
        log.warning(
            "schedule of %s/%s: %d firing(s) skipped, the workflow has no deployed version", workspace, name, len(times)
        )
        fired.skipped += len(times)
        return
    try:
        timeout = parse_settings(version.files.get("workflow.toml")).timeout
    except WorkflowFolderError:  # checked at deploy
        timeout = None
    for at in times:
        new = NewRun(
            workspace=workspace,
            workflow=name,
            version_id=version.id,
            version=version.number,
            input=data if data is not None else {},
            trigger=Trigger.SCHEDULE,
            idempotency_key=f"schedule:{at.isoformat()}",
            timeout=timeout,
        )
        # ON CONFLICT DO NOTHING inside: a duplicate never aborts the transaction.
        run, created = create_run(tx, new)
        if created:
            fired.runs.append(run)
        else:
            fired.duplicates += 1
