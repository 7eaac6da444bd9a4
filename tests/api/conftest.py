"""API tests run in-process: a started engine, the FastAPI app over it, httpx through the ASGI transport.

``api`` is an admin's client of workspace ``acme``; ``as_member`` makes clients for other members.
Every test here runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from loomwork.engine import Engine
from loomwork.model import Role
from loomwork.server.app import create_app
from loomwork.server.runner import wire_engine
from loomwork.settings import Settings
from loomwork.testing import engine_for_tests

ADMIN_EMAIL = "admin@acme.test"
ADMIN_PASSWORD = "correct horse battery"
WORKSPACE = "acme"


@dataclass
class Api:
    engine: Engine
    app: object
    client: httpx.AsyncClient
    settings: Settings

    def client_with(self, token: str | None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),  # type: ignore[arg-type]
            base_url="http://loomwork.test/api/v1",
            headers=headers,
        )


@pytest.fixture
async def api(database_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    async with engine_for_tests(tmp_path / "data", database_url=database_url) as engine:
        wire_engine(engine)
        settings = Settings(data_dir=tmp_path / "data", max_body_bytes=64 * 1024)
        app = create_app(engine, settings)
        accounts = app.state.context.accounts
        created = await accounts.bootstrap(ADMIN_EMAIL, ADMIN_PASSWORD, WORKSPACE)
        api = Api(engine, app, httpx.AsyncClient(), settings)
        api.client = api.client_with(created.secret)
        async with api.client:
            yield api


MemberFactory = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
def as_member(api: Api) -> MemberFactory:
    """``await as_member("ann@acme.test", "operator", groups=["finance"])`` → a client with that member's key."""

    async def make(
        email: str, role: str = "viewer", *, groups: tuple[str, ...] = (), workspace: str = WORKSPACE
    ) -> httpx.AsyncClient:
        admin = api.client
        response = await admin.post(f"/workspaces/{workspace}/members", json={"email": email, "role": role})
        assert response.status_code in (201, 409), response.text
        for group in groups:
            current = await admin.get(f"/workspaces/{workspace}/groups")
            existing = {g["name"]: g["members"] for g in current.json()["items"]}
            members = sorted({*existing.get(group, []), email})
            put = await admin.put(f"/workspaces/{workspace}/groups/{group}", json={"members": members})
            assert put.status_code == 200, put.text
        accounts = api.app.state.context.accounts  # type: ignore[attr-defined]
        principal = await accounts.authenticate(admin.headers["Authorization"].split(" ", 1)[1])
        user = await accounts.ensure_user(email, None)
        from loomwork.service.accounts import Access, Principal

        access = Access(Principal(user=user, via="test"), workspace, Role(role))
        del principal
        key = await accounts.create_api_key(access, "test", Role(role))
        return api.client_with(key.secret)

    return make
