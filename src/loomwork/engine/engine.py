"""The engine: the public operations on runs and requests, and the loops that keep runs moving.

One :class:`Engine` per process. It claims queued runs, hands them to its worker processes, journals what they
report, carries out engine-side effects, fires timers and recovers runs whose node or worker died. Everything
durable goes through the store; everything the engine keeps in memory can be lost without losing a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import secrets
import uuid
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from ..aio import wait_event
from ..errors import NotFound, StoreError
from ..folder import WorkflowSettings, check_files, check_name
from ..model import LogLine, Request, Run, Step, Trigger, WorkflowVersion
from ..store import (
    Notification,
    Store,
    Tx,
    claims,
    journal,
    logs,
    nodes,
    requests,
    runs,
    timers,
    utcnow,
    versions,
)
from .config import EngineConfig
from .database import Database
from .directory import Directory, OpenDirectory
from .dispatch import Dispatcher
from .effects import EffectExecutor, NoDatasources
from .notify import PostgresListener

log = logging.getLogger(__name__)

DEFAULT_WORKSPACE = "default"


class Engine:
    def __init__(
        self,
        config: EngineConfig,
        *,
        directory: Directory | None = None,
        effects: EffectExecutor | None = None,
    ) -> None:
        self.config = config
        self.directory: Directory = directory or OpenDirectory()
        self.effects: EffectExecutor = effects or NoDatasources()
        self.node_id = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(config.resolved_database_url(), sqlite_synchronous=config.sqlite_synchronous)
        self.db = Database(self.store)
        self.secret_key = config.secret_key or _load_or_create_key(config)
        self.dispatcher = Dispatcher(self)
        self._tasks: list[asyncio.Task[None]] = []
        self._claim_wakeup = asyncio.Event()
        self._timer_wakeup = asyncio.Event()
        self._finish_waiters: dict[str, list[asyncio.Future[Run | None]]] = {}
        self._subscribers: dict[str, list[Callable[[str], None]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: PostgresListener | None = None
        self._lock_file: Any = None
        self._started = False

    # -- lifecycle --------------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.store.dialect == "sqlite" and self.config.execute:
            self._lock_file = _exclusive_lock(self.config)
        await asyncio.to_thread(self.store.migrate)
        self.db.start()
        self.store.add_listener(self._from_store_thread)
        self.db.own_listener = (self._from_store_thread, self._on_notifications)
        if self.config.execute:
            await self.db.write(nodes.register_node, self.node_id, os.getpid())
            await self._recover()
            await self.dispatcher.start()
            self._spawn(self._claim_loop(), "claims")
            self._spawn(self._timer_loop(), "timers")
            if self.store.dialect == "postgresql":
                self._spawn(self._heartbeat_loop(), "heartbeat")
        if self.store.dialect == "postgresql":
            self._listener = PostgresListener(self.store.url, self._on_notifications)
            await self._listener.start()
        self._started = True

    async def stop(self) -> None:
        """Stop executing: in-flight runs go back to the queue; nothing is lost."""
        if not self._started:
            return
        self._started = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._listener is not None:
            await self._listener.stop()
        if self.config.execute:
            await self.dispatcher.stop()
            with contextlib.suppress(StoreError):
                await self.db.write(nodes.remove_node, self.node_id)
        self.store.remove_listener(self._from_store_thread)
        await self.db.close()
        await self.effects.close()
        self.store.close()
        if self._lock_file is not None:
            self._lock_file.close()

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"loomwork-{name}")
        self._tasks.append(task)

    async def _recover(self) -> None:
        """Queue again the runs that were executing when a node died (on SQLite: any other node)."""
        if self.store.dialect == "sqlite":
            count = await self.db.write(runs.requeue_orphans, utcnow(), all_but=self.node_id)
        else:
            stale = utcnow() - timedelta(seconds=self.config.node_timeout)
            count = await self.db.write(runs.requeue_orphans, stale)
        if count:
            log.info("recovered %d run(s) that were executing when their node stopped", count)

    # -- workflows ---------------------------------------------------------------------------------------------
    async def deploy(
        self, workflow: str, files: dict[str, str], *, workspace: str = DEFAULT_WORKSPACE
    ) -> WorkflowVersion:
        check_name(workflow)
        check_files(files)
        return await self.db.write(versions.deploy_version, workspace, workflow, dict(files))

    async def latest_version(self, workflow: str, *, workspace: str = DEFAULT_WORKSPACE) -> WorkflowVersion:
        version = await self.db.read(versions.latest_version, workspace, workflow)
        if version is None:
            raise NotFound(f"workflow {workflow!r} has no deployed version in workspace {workspace!r}")
        return version

    async def get_version(self, version_id: int) -> WorkflowVersion:
        return await self.db.read(versions.get_version, version_id)

    # -- runs --------------------------------------------------------------------------------------------------
    async def start_run(
        self,
        workflow: str,
        data: Any = None,
        *,
        workspace: str = DEFAULT_WORKSPACE,
        trigger: Trigger = Trigger.API,
        test: bool = False,
        idempotency_key: str | None = None,
        version: WorkflowVersion | None = None,
    ) -> Run:
        """Store a queued run of the latest deployed version (or ``version``). Durable when this returns."""
        version = version or await self.latest_version(workflow, workspace=workspace)
        settings = check_files(version.files)
        new = runs.NewRun(
            workspace=workspace,
            workflow=workflow,
            version_id=version.id,
            version=version.number,
            input=data,
            trigger=trigger,
            test=test,
            idempotency_key=idempotency_key,
            timeout=settings.timeout,
        )
        run, _ = await self.db.write(runs.create_run, new)
        return run

    async def start_runs(
        self,
        workflow: str,
        inputs: Iterable[Any],
        *,
        workspace: str = DEFAULT_WORKSPACE,
        trigger: Trigger = Trigger.API,
    ) -> list[Run]:
        """Store many queued runs; they share commits, so this is much faster than one by one."""
        version = await self.latest_version(workflow, workspace=workspace)
        settings = check_files(version.files)
        batch = [
            runs.NewRun(workspace, workflow, version.id, version.number, data, trigger, timeout=settings.timeout)
            for data in inputs
        ]
        chunks = [self.db.submit(runs.create_runs, batch[i : i + 500]) for i in range(0, len(batch), 500)]
        return [run for chunk in await asyncio.gather(*chunks) for run in chunk]

    async def get_run(self, run_id: str, *, workspace: str | None = None) -> Run:
        return await self.db.read(runs.get_run, run_id, workspace)

    async def list_steps(self, run_id: str) -> list[Step]:
        return await self.db.read(journal.load_journal, run_id)

    async def list_run_requests(self, run_id: str) -> list[Request]:
        return await self.db.read(requests.list_run_requests, run_id)

    async def read_logs(self, run_id: str, after: int = 0, limit: int = 1000) -> list[LogLine]:
        return await self.db.read(logs.read_logs, run_id, after, limit)

    async def cancel_run(self, run_id: str, *, workspace: str | None = None) -> Run:
        return await self.db.write(runs.cancel_run, run_id, workspace)

    async def retry_run(self, run_id: str, *, workspace: str | None = None) -> Run:
        return await self.db.write(runs.retry_run, run_id, workspace)

    async def wait_for_run(self, run_id: str, timeout: float | None = None) -> Run:
        """Wait until the run ends (or ``timeout`` passes) and return it as it then is."""
        return (await self.wait_for_runs([run_id], timeout))[0]

    async def wait_for_runs(self, run_ids: list[str], timeout: float | None = None) -> list[Run]:
        """Wait until all these runs end (or ``timeout`` passes); returns them in the same order."""
        loop = asyncio.get_running_loop()
        waiters = {run_id: loop.create_future() for run_id in run_ids}
        for run_id, waiter in waiters.items():
            self._finish_waiters.setdefault(run_id, []).append(waiter)
        try:
            current = {run.id: run for run in await self.db.read(runs.get_runs, list(run_ids))}
            missing = [run_id for run_id in run_ids if run_id not in current]
            if missing:
                raise NotFound(f"run {missing[0]} not found")
            pending = [waiters[r] for r, run in current.items() if not run.status.is_final]
            if pending:
                await asyncio.wait(pending, timeout=timeout)
            stale = []
            for run_id, waiter in waiters.items():
                final = waiter.result() if waiter.done() else None
                if final is not None:
                    current[run_id] = final
                elif not current[run_id].status.is_final:
                    stale.append(run_id)
            if stale:
                current.update({run.id: run for run in await self.db.read(runs.get_runs, stale)})
            return [current[run_id] for run_id in run_ids]
        finally:
            for run_id, waiter in waiters.items():
                registered = self._finish_waiters.get(run_id, [])
                if waiter in registered:
                    registered.remove(waiter)
                if not registered:
                    self._finish_waiters.pop(run_id, None)

    async def wait_for_response(
        self, run_id: str, timeout: float, *, just_created: bool = False
    ) -> Run | dict[str, Any]:
        """Wait until the run calls ``wf.respond`` (→ its ``{status_code, body, headers}``) or ends (→ the run),
        or ``timeout`` passes (→ the run as it is then). A response journaled before the end wins.

        ``just_created``: the caller created the run and calls this without awaiting anything in between, so
        nothing can have happened yet and the first look at the database is skipped (the trigger's hot path).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        finished: asyncio.Future[Run | None] = loop.create_future()
        wake: list[asyncio.Future[None]] = [loop.create_future()]
        responded = [False]

        def poke(*_: object) -> None:
            if not wake[0].done():
                wake[0].set_result(None)

        def on_respond(payload: str) -> None:
            if payload in (run_id, "*"):
                responded[0] = True
                poke()

        self._finish_waiters.setdefault(run_id, []).append(finished)
        finished.add_done_callback(poke)
        unsubscribe = self.subscribe("respond", on_respond)
        try:
            if not just_created:
                run, response = await self.db.read(_run_and_response, run_id)
                if response is not None:
                    return dict(response)
                if run.status.is_final:
                    return run
            while True:
                if responded[0]:
                    responded[0] = False
                    response = await self.db.read(journal.response_of, run_id)
                    if response is not None:
                        return dict(response)
                if finished.done():
                    run = finished.result() or await self.get_run(run_id)
                    if run.status.is_final:
                        return run
                    # Woken by a "finished" that was not this run's end (a collapsed "*"): wait on.
                    self._finish_waiters[run_id].remove(finished)
                    finished = loop.create_future()
                    finished.add_done_callback(poke)
                    self._finish_waiters[run_id].append(finished)
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return await self.get_run(run_id)
                if wake[0].done():
                    wake[0] = loop.create_future()
                    continue
                await asyncio.wait((wake[0],), timeout=remaining)
        finally:
            unsubscribe()
            registered = self._finish_waiters.get(run_id, [])
            if finished in registered:
                registered.remove(finished)
            if not registered:
                self._finish_waiters.pop(run_id, None)

    def run_finished(self, done: asyncio.Future[Run | None]) -> None:
        """A run this node executed ended: hand its final state to whoever waits, without a read."""
        if done.cancelled() or done.exception() is not None:
            return
        run = done.result()
        if run is not None:
            for waiter in self._finish_waiters.get(run.id, []):
                if not waiter.done():
                    waiter.set_result(run)

    def _wake_waiters(self, run_id: str) -> None:
        waiting = self._finish_waiters.values() if run_id == "*" else [self._finish_waiters.get(run_id, [])]
        for waiters in waiting:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    # -- requests ----------------------------------------------------------------------------------------------
    async def get_request(self, request_id: str, *, workspace: str | None = None) -> Request:
        return await self.db.read(requests.get_request, request_id, workspace)

    async def resolve_request(
        self,
        request_id: str,
        resolution: str,
        metadata: dict[str, Any] | None = None,
        actor: str = "anonymous",
        *,
        admin: bool = False,
        workspace: str | None = None,
    ) -> Request:
        """Resolve a request. Durable when it returns; exactly one concurrent caller wins (others: Conflict)."""

        def may_resolve(request: Request) -> bool:
            return self.directory.may_resolve(
                request.workspace, actor, request.to_users, request.to_groups, admin=admin
            )

        return await self.db.write(
            requests.resolve_request,
            request_id,
            resolution,
            dict(metadata or {}),
            actor,
            may_resolve,
            workspace,
        )

    # -- settings ----------------------------------------------------------------------------------------------
    def settings_of(self, version: WorkflowVersion) -> WorkflowSettings:
        return check_files(version.files)

    # -- loops -------------------------------------------------------------------------------------------------
    async def _claim_loop(self) -> None:
        self._claim_wakeup.set()
        while True:
            # A notification wakes us at once; the timeout only covers a notification lost on the way.
            await wait_event(self._claim_wakeup, 5.0)
            self._claim_wakeup.clear()
            try:
                while (
                    self.dispatcher.has_live_worker
                    and (capacity := self.config.max_active_runs - self.dispatcher.active_count) > 0
                ):
                    claimed = await self.db.write(
                        claims.claim_for_execution,
                        self.node_id,
                        min(capacity, 256),
                        frozenset(self.dispatcher.known_versions),
                    )
                    for item in claimed:
                        self.dispatcher.dispatch(item)
                    if not claimed:
                        break
            except Exception:  # the loop must outlive any one failure
                log.exception("claiming runs failed; retrying")
                await asyncio.sleep(1.0)

    async def _timer_loop(self) -> None:
        while True:
            try:
                due = await self.db.read(timers.next_due)
                now = utcnow()
                if due is not None and due <= now:
                    await self.db.write(timers.fire_due, now)
                    continue
                timeout = 60.0 if due is None else min(60.0, (due - now).total_seconds())
                await wait_event(self._timer_wakeup, max(timeout, 0.001))
                self._timer_wakeup.clear()
            except Exception:
                log.exception("firing timers failed; retrying")
                await asyncio.sleep(1.0)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_interval)
            try:
                await self.db.write(nodes.heartbeat, self.node_id)
                await self._recover()
            except Exception:
                log.exception("heartbeat failed")

    def wake_claims(self) -> None:
        """Look for queued runs now (a worker came back, capacity freed up)."""
        self._claim_wakeup.set()

    # -- notifications -----------------------------------------------------------------------------------------
    def _from_store_thread(self, notifications: list[Notification]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._on_notifications, notifications)

    def subscribe(self, topic: str, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(payload)`` on the event loop for each notification of ``topic`` (from any node).

        Topics: ``queued``, ``outcome``, ``cancel``, ``timer``, ``finished``, ``step``, ``respond`` (payload: a run
        id, or ``*`` when a burst was collapsed) and whatever services publish. Returns a function that unsubscribes.
        """
        self._subscribers.setdefault(topic, []).append(callback)

        def unsubscribe() -> None:
            callbacks = self._subscribers.get(topic, [])
            if callback in callbacks:
                callbacks.remove(callback)

        return unsubscribe

    def _on_notifications(self, notifications: list[Notification]) -> None:
        for topic, payload in notifications:
            for callback in tuple(self._subscribers.get(topic, ())):
                try:
                    callback(payload)
                except Exception:
                    log.exception("a %r subscriber failed", topic)
            if topic == "queued" and self.config.execute:
                self._claim_wakeup.set()
            elif topic == "timer":
                self._timer_wakeup.set()
            elif topic == "outcome":
                self.dispatcher.outcome_arrived(payload)
            elif topic == "cancel":
                self.dispatcher.cancelled(payload)
            elif topic == "finished":
                # Later in this turn of the loop: a run_finished callback may bring the run itself first.
                asyncio.get_running_loop().call_soon(self._wake_waiters, payload)


def _run_and_response(tx: Tx, run_id: str) -> tuple[Run, Any]:
    return runs.get_run(tx, run_id), journal.response_of(tx, run_id)


def _load_or_create_key(config: EngineConfig) -> bytes:
    env = os.environ.get("LOOMWORK_SECRET_KEY")
    if env:
        return env.encode()
    path = config.data_dir / "secret.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip().encode()


def _exclusive_lock(config: EngineConfig) -> Any:
    """One executing engine per SQLite file: that is what lets a restart recover runs at once."""
    handle = open(config.data_dir / "engine.lock", "w")  # noqa: SIM115 - held for the engine's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StoreError(
            f"another Loomwork engine is already running on {config.data_dir}; "
            "use PostgreSQL (LOOMWORK_DATABASE_URL) to run several"
        ) from None
    return handle
