"""A real HTTP server for blocking clients (the sync ``Client``, the CLI): uvicorn on a free port, serving the
same app as the in-process tests, with its engine, in a background thread with its own event loop.

    with live_server(tmp_path, database_url) as server:
        Client(server.url, server.api_key).me()
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from loomwork.server.app import create_app
from loomwork.server.runner import wire_engine
from loomwork.settings import Settings
from loomwork.testing import engine_for_tests

from .conftest import ADMIN_EMAIL, ADMIN_PASSWORD, WORKSPACE

START_TIMEOUT = 30.0


@dataclass
class LiveServer:
    url: str
    api_key: str
    workspace: str
    app: Any
    loop: asyncio.AbstractEventLoop

    def call(self, coroutine: Any, timeout: float = 30.0) -> Any:
        """Run a coroutine on the server's loop (e.g. an accounts operation) and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self.ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


@contextlib.contextmanager
def live_server(tmp_path: Path, database_url: str) -> Iterator[LiveServer]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        async with engine_for_tests(tmp_path / "data", database_url=database_url) as engine:
            wire_engine(engine)
            settings = Settings(data_dir=tmp_path / "data", port=port, max_body_bytes=1024 * 1024)
            app = create_app(engine, settings)
            created = await app.state.context.accounts.bootstrap(ADMIN_EMAIL, ADMIN_PASSWORD, WORKSPACE)
            server = _Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False), ready)
            box.update(server=server, app=app, key=created.secret, loop=asyncio.get_running_loop())
            await server.serve(sockets=[sock])

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            box["error"] = exc
        finally:
            ready.set()

    thread = threading.Thread(target=target, name="live-server", daemon=True)
    thread.start()
    try:
        if not ready.wait(START_TIMEOUT):
            raise TimeoutError(f"the live server did not start within {START_TIMEOUT} s")
        if "error" in box or not box["server"].started:
            raise RuntimeError("the live server failed to start") from box.get("error")
        yield LiveServer(f"http://127.0.0.1:{port}", box["key"], WORKSPACE, box["app"], box["loop"])
    finally:
        if "server" in box:
            box["server"].should_exit = True
        thread.join(START_TIMEOUT)
        sock.close()
        if thread.is_alive():
            raise TimeoutError("the live server did not stop")
        if "error" in box:
            raise RuntimeError("the live server failed") from box["error"]
