"""Running a node: the engine, optionally the scheduler and the HTTP API, until SIGTERM or SIGINT.

``loomwork server`` = API + scheduler + workers; ``loomwork api`` = API only (never claims runs);
``loomwork worker`` = workers + scheduler, no HTTP. On SIGTERM the API stops accepting connections, requests in
flight get a few seconds to finish, the scheduler stops, and the engine hands the runs it was executing back
to the queue (``Engine.stop``): nothing is lost, and the next node to start resumes them from their journals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import uvicorn

from ..datasources import DatasourceEffects
from ..engine import Engine
from ..engine.effects import EffectExecutor
from ..service.directory import DatabaseDirectory
from ..service.effects import WorkspaceEffects
from ..service.scheduler import Scheduler
from ..settings import Settings
from .app import create_app

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Roles:
    api: bool = True
    execute: bool = True
    scheduler: bool = True


SERVER = Roles()
API_ONLY = Roles(api=True, execute=False, scheduler=False)
WORKER_ONLY = Roles(api=False, execute=True, scheduler=True)


def build_engine(settings: Settings, *, execute: bool = True) -> Engine:
    fallback: EffectExecutor | None = None
    if settings.datasources_file is not None:
        fallback = DatasourceEffects.from_file(settings.datasources_file)
    return wire_engine(Engine(settings.engine_config(execute=execute)), fallback=fallback)


def wire_engine(engine: Engine, *, fallback: EffectExecutor | None = None) -> Engine:
    """Give an engine the server's directory (members and groups) and the workspaces' datasources."""
    engine.directory = DatabaseDirectory(engine.store)
    engine.effects = WorkspaceEffects(engine, fallback=fallback)
    return engine


Setup = Callable[[Engine], Awaitable[None]]


async def serve(
    settings: Settings,
    roles: Roles = SERVER,
    *,
    setup: Setup | None = None,
    on_ready: Callable[[], None] | None = None,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def request_stop(signum: int, _frame: object) -> None:
        loop.call_soon_threadsafe(stop.set)

    # Our handlers go in first: uvicorn restores (and re-raises into) whatever handlers it found.
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    engine = build_engine(settings, execute=roles.execute)
    scheduler = Scheduler(engine) if roles.scheduler else None
    server: uvicorn.Server | None = None
    serving: asyncio.Task[None] | None = None
    await engine.start()
    try:
        if setup is not None:
            await setup(engine)
        if scheduler is not None:
            await scheduler.start()
        if roles.api:
            config = uvicorn.Config(
                create_app(engine, settings),
                host=settings.host,
                port=settings.port,
                lifespan="off",
                access_log=False,
                log_level=settings.log_level,
                timeout_graceful_shutdown=5,
                server_header=False,
            )
            server = uvicorn.Server(config)
            serving = asyncio.create_task(server.serve(), name="loomwork-http")
            while not server.started:
                if serving.done():
                    await serving  # raises what stopped it (e.g. the port is taken)
                    raise SystemExit(f"the HTTP server stopped while starting on {settings.host}:{settings.port}")
                await asyncio.sleep(0.02)
        if on_ready is not None:
            on_ready()
        waiter = asyncio.create_task(stop.wait())
        watched = {waiter} | ({serving} if serving is not None else set())
        await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
    finally:
        if server is not None and serving is not None:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await serving
        if scheduler is not None:
            await scheduler.stop()
        await engine.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(
    settings: Settings,
    roles: Roles = SERVER,
    *,
    setup: Setup | None = None,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve until a signal; uses uvloop when it is installed."""
    main = serve(settings, roles, setup=setup, on_ready=on_ready)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        asyncio.run(main)
    else:
        uvloop.run(main)
