"""Cron schedules: time zones and DST, firing into runs (one per firing, even when schedulers race), catch-up
after a restart, and the live ``Scheduler`` loop. On SQLite and PostgreSQL."""

from __future__ import annotations

import collections
import itertools
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from loomwork.engine import Engine
from loomwork.errors import Unprocessable
from loomwork.model import RunStatus, Trigger
from loomwork.service.scheduler import Scheduler
from loomwork.store import Store, Tx, identity, schedules, utcnow, versions, workflows
from loomwork.store.base import as_utc
from loomwork.store.schema import runs
from loomwork.store.schema import workflows as workflows_table
from loomwork.testing import wait_until

WS = "acme"
MAIN = "async def execute_workflow(data):\n    return data\n"
NOON = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# -- cron expressions and time zones ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cron",
    ["61 * * * *", "* * * *", "* * * * * *", "* * * * * * *", "@hourly", "R * * * *", "H * * * *", "x y z a b"],
)
def test_bad_cron_expressions_are_unprocessable(cron: str) -> None:
    with pytest.raises(Unprocessable):
        schedules.parse_cron(cron, "UTC")


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../etc/passwd", "", "localtime"])
def test_unknown_time_zones_are_unprocessable(zone: str) -> None:
    with pytest.raises(Unprocessable, match="time zone"):
        schedules.parse_cron("* * * * *", zone)


def test_a_cron_that_never_fires_is_unprocessable() -> None:
    with pytest.raises(Unprocessable, match="never fires"):
        schedules.parse_cron("0 0 31 2 *", "UTC")
    leap_day = schedules.parse_cron("0 0 29 2 *", "UTC")
    assert leap_day.next_after(NOON) == at("2028-02-29T00:00:00+00:00")


def firings(cron: str, zone: str, start: datetime, count: int) -> list[str]:
    checked = schedules.parse_cron(cron, zone)
    out, t = [], start
    for _ in range(count):
        t = checked.next_after(t)
        out.append(t.strftime("%m-%d %H:%M"))
    return out


def test_berlin_daily_schedule_follows_the_wall_clock_across_spring_forward() -> None:
    # 2026-03-29: 02:00 CET becomes 03:00 CEST; 09:00 local is 08:00 UTC before, 07:00 UTC after.
    assert firings("0 9 * * *", "Europe/Berlin", at("2026-03-27T12:00:00+00:00"), 3) == [
        "03-28 08:00",
        "03-29 07:00",
        "03-30 07:00",
    ]
    # 02:30 does not exist on the 29th: it fires right after the gap (03:00 CEST = 01:00 UTC), once.
    assert firings("30 2 * * *", "Europe/Berlin", at("2026-03-28T00:00:00+00:00"), 3) == [
        "03-28 01:30",
        "03-29 01:00",
        "03-30 00:30",
    ]
    assert firings("*/30 * * * *", "Europe/Berlin", at("2026-03-29T00:00:00+00:00"), 4) == [
        "03-29 00:30",
        "03-29 01:00",
        "03-29 01:30",
        "03-29 02:00",
    ]


def test_berlin_autumn_repeated_hour_fires_fixed_times_once_and_intervals_on_the_clock() -> None:
    # 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:00-03:00 local happens twice.
    assert firings("30 2 * * *", "Europe/Berlin", at("2026-10-24T12:00:00+00:00"), 2) == [
        "10-25 00:30",
        "10-26 01:30",
    ]
    assert firings("*/30 * * * *", "Europe/Berlin", at("2026-10-24T23:45:00+00:00"), 5) == [
        "10-25 00:00",
        "10-25 00:30",
        "10-25 01:00",
        "10-25 01:30",
        "10-25 02:00",
    ]


@pytest.mark.parametrize(
    ("zone", "changes"),
    [
        ("Europe/Berlin", ["2026-03-29", "2026-10-25"]),
        ("America/New_York", ["2026-03-08", "2026-11-01"]),
        ("Australia/Lord_Howe", ["2026-04-05", "2026-10-04"]),  # a 30-minute shift
    ],
)
def test_firings_move_forward_through_zone_changes(zone: str, changes: list[str]) -> None:
    for cron in ("0 1,2,3 * * *", "*/20 2 * * *", "*/15 * * * *"):
        checked = schedules.parse_cron(cron, zone)
        for change in changes:
            start = at(f"{change}T00:00:00+00:00") - timedelta(days=2)
            end = start + timedelta(days=4)
            iterated = list(itertools.takewhile(end.__gt__, checked.firings_after(start)))
            restarted, t = [], start
            while (t := checked.next_after(t)) < end:
                restarted.append(t)
            assert iterated == restarted
            assert all(a < b for a, b in itertools.pairwise(iterated))
            per_day = collections.Counter(t.astimezone(ZoneInfo(zone)).date() for t in iterated)
            limit = 100 if cron.startswith("*/15") else 3
            assert all(1 <= n <= limit for n in per_day.values()), per_day


# -- firing into runs ------------------------------------------------------------------------------------------
@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = Store(database_url)
    s.migrate()
    s.write(identity.create_workspace, WS, WS, None)
    yield s
    s.close()


def make_workflow(store: Store, name: str = "report", *, deploy: bool = True) -> None:
    store.write(workflows.create_workflow, WS, name, "", {"main.py": MAIN})
    if deploy:
        store.write(versions.deploy_version, WS, name, {"main.py": MAIN})


def set_next_at(tx: Tx, name: str, next_at: datetime) -> None:
    tx.conn.execute(
        workflows_table.update()
        .where(workflows_table.c.workspace == WS, workflows_table.c.name == name)
        .values(schedule_next_at=next_at)
    )
    tx.notify("schedule")


def schedule(store: Store, cron: str, next_at: datetime, *, name: str = "report", **kwargs: Any) -> None:
    args = {"timezone": "UTC", "data": {"n": 1}, "enabled": True, **kwargs}
    store.write(schedules.set_schedule, WS, name, cron, args["timezone"], args["data"], args["enabled"], NOON)
    store.write(set_next_at, name, next_at)


def scheduled_runs(tx: Tx) -> list[tuple[str, str, str]]:
    rows = tx.conn.execute(
        sa.select(runs.c.workflow, runs.c.idempotency_key, runs.c.trigger).order_by(runs.c.idempotency_key)
    ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def next_at_of(store: Store, name: str = "report") -> datetime | None:
    sched = store.read(workflows.get_workflow, WS, name).schedule
    assert sched is not None
    return sched.next_fire_at


def test_set_schedule_computes_the_next_firing_in_the_zone(store: Store) -> None:
    make_workflow(store)
    now = at("2026-03-28T12:00:00+00:00")
    result = store.write(schedules.set_schedule, WS, "report", "0 9 * * *", "Europe/Berlin", {}, True, now)
    assert result.next_fire_at == at("2026-03-29T07:00:00+00:00")
    assert next_at_of(store) == result.next_fire_at
    disabled = store.write(schedules.set_schedule, WS, "report", "0 9 * * *", "UTC", {}, False, now)
    assert disabled.next_fire_at is None and not disabled.enabled


def test_a_firing_creates_exactly_one_run(store: Store) -> None:
    make_workflow(store)
    schedule(store, "*/5 * * * *", NOON)
    assert store.read(schedules.next_due) == NOON
    assert store.write(schedules.fire_due_schedules, NOON - timedelta(seconds=1), 100).runs == []
    fired = store.write(schedules.fire_due_schedules, NOON, 100)
    assert [(r.trigger, r.input, r.status) for r in fired.runs] == [(Trigger.SCHEDULE, {"n": 1}, RunStatus.QUEUED)]
    assert next_at_of(store) == NOON + timedelta(minutes=5)
    assert store.write(schedules.fire_due_schedules, NOON + timedelta(seconds=30), 100).runs == []
    assert store.read(scheduled_runs) == [("report", "schedule:2026-01-01T12:00:00+00:00", "schedule")]


def test_a_firing_seen_again_is_a_duplicate_not_a_second_run(store: Store) -> None:
    make_workflow(store)
    schedule(store, "*/5 * * * *", NOON)
    store.write(schedules.fire_due_schedules, NOON, 100)
    store.write(set_next_at, "report", NOON)  # as if a scheduler had read a stale next_at
    again = store.write(schedules.fire_due_schedules, NOON + timedelta(minutes=5), 100)
    # 12:00 again (a duplicate, without aborting the transaction on PostgreSQL) and 12:05 (new).
    assert again.duplicates == 1
    assert [r.input for r in again.runs] == [{"n": 1}]
    assert len(store.read(scheduled_runs)) == 2


def test_restart_catches_up_the_firings_of_the_last_hour(store: Store) -> None:
    make_workflow(store)
    schedule(store, "*/5 * * * *", NOON - timedelta(minutes=10))
    fired = store.write(schedules.fire_due_schedules, NOON + timedelta(seconds=20), 100)
    assert (len(fired.runs), fired.skipped) == (3, 0)
    assert [key for _, key, _ in store.read(scheduled_runs)] == [
        "schedule:2026-01-01T11:50:00+00:00",
        "schedule:2026-01-01T11:55:00+00:00",
        "schedule:2026-01-01T12:00:00+00:00",
    ]
    assert next_at_of(store) == NOON + timedelta(minutes=5)


def test_firings_older_than_an_hour_are_skipped_and_logged(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    make_workflow(store)
    schedule(store, "*/5 * * * *", NOON - timedelta(hours=2))
    with caplog.at_level(logging.WARNING, logger="loomwork.store.schedules"):
        fired = store.write(schedules.fire_due_schedules, NOON, 100)
    # 10:00 .. 10:55 are more than an hour old; 11:00 .. 12:00 run.
    assert (len(fired.runs), fired.skipped) == (13, 12)
    assert "skipped 12 firing(s)" in caplog.text
    keys = [key for _, key, _ in store.read(scheduled_runs)]
    assert keys[0] == "schedule:2026-01-01T11:00:00+00:00" and len(set(keys)) == 13


def test_a_schedule_down_for_a_long_time_jumps_ahead(store: Store) -> None:
    make_workflow(store)
    schedule(store, "* * * * *", NOON - timedelta(days=30))
    fired = store.write(schedules.fire_due_schedules, NOON, 100)
    assert len(fired.runs) == 61 and fired.skipped > 100
    assert next_at_of(store) == NOON + timedelta(minutes=1)


def test_disabled_and_removed_schedules_do_not_fire(store: Store) -> None:
    make_workflow(store, "off")
    make_workflow(store, "gone")
    store.write(schedules.set_schedule, WS, "off", "* * * * *", "UTC", {}, False, NOON)
    store.write(set_next_at, "off", NOON)  # even with a next_at left over
    store.write(schedules.set_schedule, WS, "gone", "* * * * *", "UTC", {}, True, NOON)
    store.write(schedules.clear_schedule, WS, "gone")
    assert store.read(workflows.get_workflow, WS, "gone").schedule is None
    assert store.read(schedules.next_due) is None
    fired = store.write(schedules.fire_due_schedules, NOON + timedelta(hours=1), 100)
    assert (fired.runs, fired.workflows) == ([], 0)


def test_no_deployed_version_skips_the_firing_but_advances(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    make_workflow(store, deploy=False)
    schedule(store, "*/5 * * * *", NOON)
    with caplog.at_level(logging.WARNING, logger="loomwork.store.schedules"):
        fired = store.write(schedules.fire_due_schedules, NOON, 100)
    assert (fired.runs, fired.skipped) == ([], 1)
    assert "no deployed version" in caplog.text
    assert next_at_of(store) == NOON + timedelta(minutes=5)


def test_racing_schedulers_create_each_run_once(database_url: str, store: Store) -> None:
    for i in range(5):
        make_workflow(store, f"wf-{i}")
        schedule(store, "*/5 * * * *", NOON - timedelta(minutes=30), name=f"wf-{i}")
    stores = [Store(database_url) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    results: list[schedules.Fired] = []
    errors: list[BaseException] = []

    def fire(s: Store) -> None:
        try:
            barrier.wait()
            results.append(s.write(schedules.fire_due_schedules, NOON, 100))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=fire, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for s in stores:
        s.close()
    assert not errors
    created = store.read(scheduled_runs)
    assert len(created) == 5 * 7  # 11:30 .. 12:00 for each workflow
    assert len(set(created)) == len(created)
    assert sum(len(r.runs) for r in results) == len(created)


# -- the live loop ---------------------------------------------------------------------------------------------
async def deploy(engine: Engine, name: str) -> None:
    await engine.db.write(identity.create_workspace, WS, WS, None)
    await engine.db.write(workflows.create_workflow, WS, name, "", {"main.py": MAIN})
    await engine.deploy(name, {"main.py": MAIN}, workspace=WS)


async def runs_of(engine: Engine) -> list[Any]:
    def read(tx: Tx) -> list[Any]:
        query = sa.select(runs.c.id, runs.c.created_at, runs.c.input, runs.c.idempotency_key)
        return list(tx.conn.execute(query.order_by(runs.c.idempotency_key)).all())

    return await engine.db.read(read)


async def test_scheduler_loop_fires_within_a_second_of_the_due_time(engine: Engine) -> None:
    await deploy(engine, "tick")
    scheduler = Scheduler(engine)
    await scheduler.start()
    try:
        await engine.db.write(schedules.set_schedule, WS, "tick", "* * * * *", "UTC", {"k": "v"}, True, utcnow())
        due = utcnow() + timedelta(seconds=0.5)
        await engine.db.write(set_next_at, "tick", due)  # publishes "schedule": the loop re-reads
        created = await wait_until(lambda: runs_of(engine), timeout=2.0, message="a scheduled run")
        assert len(created) == 1 and created[0].input == {"k": "v"}
        created_at = as_utc(created[0].created_at)
        assert created_at is not None and due <= created_at < due + timedelta(seconds=1)
        following = (await engine.db.read(workflows.get_workflow, WS, "tick")).schedule
        assert following is not None and following.next_fire_at is not None and following.next_fire_at > due
        run = await engine.wait_for_run(created[0].id, 10)
        assert run.status == RunStatus.SUCCEEDED and run.trigger == Trigger.SCHEDULE
    finally:
        await scheduler.stop()


async def test_scheduler_catches_up_on_start(engine: Engine) -> None:
    await deploy(engine, "late")
    await engine.db.write(schedules.set_schedule, WS, "late", "*/5 * * * *", "UTC", {}, True, utcnow())
    minute = utcnow().replace(second=0, microsecond=0)
    missed = minute - timedelta(minutes=minute.minute % 5) - timedelta(minutes=10)
    await engine.db.write(set_next_at, "late", missed)
    scheduler = Scheduler(engine)
    await scheduler.start()
    try:
        created = await wait_until(
            lambda: _at_least(engine, 3), timeout=2.0, message="the missed firings to be caught up"
        )
        # Three firings (four if the clock crossed a 5-minute mark meanwhile), from the oldest missed one.
        assert created[0].idempotency_key == f"schedule:{missed.isoformat()}"
        assert len(created) in (3, 4) and len({r.idempotency_key for r in created}) == len(created)
    finally:
        await scheduler.stop()


async def _at_least(engine: Engine, count: int) -> list[Any] | None:
    found = await runs_of(engine)
    return found if len(found) >= count else None
