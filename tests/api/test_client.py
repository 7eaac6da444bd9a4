"""The async client SDK against the app in-process (httpx ASGI transport): results are typed, errors too."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from loomwork import errors as domain
from loomwork.client import (
    ApiError,
    AsyncClient,
    Client,
    Conflict,
    ConnectionFailed,
    Forbidden,
    NotFound,
    Request,
    Run,
    Unauthorized,
    Unprocessable,
)
from loomwork.testing import wait_until

from .conftest import ADMIN_EMAIL, ADMIN_PASSWORD, WORKSPACE, Api, MemberFactory
from .live import LiveServer, live_server

T = TypeVar("T")

ADDER = """from loomwork import wf


def add(x, y):
    return x + y


async def execute_workflow(data):
    wf.log.info("adding", x=data.get("x", 0))
    return {"sum": await wf.step(add, data.get("x", 0), 1)}
"""

APPROVAL = """from loomwork import wf


async def execute_workflow(data):
    decision = await wf.assign_request(
        request_name="refund",
        message=f"Refund {data['amount']}?",
        resolutions=["Approve", "Reject"],
        to_users=["admin@acme.test"],
        metadata={"amount": data["amount"]},
    )
    return {"resolution": decision.resolution, "payload": decision.payload, "by": decision.resolved_by}
"""

RESPONDS = """from loomwork import wf


async def execute_workflow(data):
    wf.respond(201, {"accepted": data}, {"X-Answer": "early"})
    return "done"
"""

REFUSES = """from loomwork import wf


async def execute_workflow(data):
    wf.respond(400, {"problem": "no amount"})
    return "refused"
"""

BROKEN = """async def execute_workflow(data)
    return 1
"""


def client_for(api: Api, key: str | None) -> AsyncClient:
    return AsyncClient("http://loomwork.test", key, transport=httpx.ASGITransport(app=api.app))  # type: ignore[arg-type]


def key_of(client: httpx.AsyncClient) -> str:
    return client.headers["Authorization"].split(" ", 1)[1]


@pytest.fixture
async def lw(api: Api) -> AsyncClient:
    async with client_for(api, key_of(api.client)) as client:
        yield client  # type: ignore[misc]


async def deployed(lw: AsyncClient, name: str, main: str) -> int:
    await lw.create_workflow(WORKSPACE, name, {"main.py": main}, description=f"{name} for tests")
    return await lw.deploy(WORKSPACE, name)


async def test_trigger_wait_get_run_and_list_runs(lw: AsyncClient) -> None:
    assert await deployed(lw, "adder", ADDER) == 1
    result = await lw.trigger(WORKSPACE, "adder", {"x": 41}, wait=10)
    assert (result.http_status, result.status, result.output) == (200, "succeeded", {"sum": 42})
    assert result.finished and not result.responded and result.run_id

    run = await lw.get_run(WORKSPACE, result.run_id)
    assert isinstance(run, Run)
    assert (run.workflow, run.version, run.trigger, run.input, run.output) == (
        "adder",
        1,
        "api",
        {"x": 41},
        {"sum": 42},
    )
    assert isinstance(run.created_at, datetime) and run.created_at.tzinfo is not None
    assert run.duration is not None and run.duration.total_seconds() >= 0
    assert [(s.kind, s.name, s.status, s.output) for s in run.steps] == [("step", "add", "succeeded", 42)]

    queued = await lw.trigger(WORKSPACE, "adder", {"x": 1}, idempotency_key="once")
    assert queued.http_status == 202 and queued.status == "queued" and not queued.replayed
    again = await lw.trigger(WORKSPACE, "adder", {"x": 2}, idempotency_key="once")
    assert again.run_id == queued.run_id and again.replayed

    page = await lw.list_runs(WORKSPACE, workflow="adder")
    assert [r.id for r in page] == [queued.run_id, result.run_id]
    assert all(not r.steps for r in page)
    assert (await lw.list_runs(WORKSPACE, status=["succeeded"], limit=1)).items[0].status == "succeeded"
    first = await lw.list_runs(WORKSPACE, limit=1)
    assert len(first) == 1 and first.next_cursor is not None
    everything = [r.id async for r in lw.iter_runs(WORKSPACE, page_size=1)]
    assert everything == [queued.run_id, result.run_id]

    logs = await lw.get_logs(WORKSPACE, result.run_id)
    assert [(line.level, line.message, line.fields) for line in logs] == [("info", "adding", {"x": 41})]


async def test_a_workflow_that_responds_gives_its_own_answer(lw: AsyncClient) -> None:
    await deployed(lw, "early", RESPONDS)
    result = await lw.trigger(WORKSPACE, "early", {"n": 1}, wait=10)
    assert result.responded
    assert (result.http_status, result.body) == (201, {"accepted": {"n": 1}})
    assert result.headers["x-answer"] == "early"
    assert result.run_id is not None
    run = await lw.get_run(WORKSPACE, result.run_id)
    assert run.workflow == "early"
    # An error status sent by the workflow is its answer, not an error of the API.
    await deployed(lw, "refuses", REFUSES)
    refused = await lw.trigger(WORKSPACE, "refuses", wait=10)
    assert refused.responded and (refused.http_status, refused.body) == (400, {"problem": "no amount"})
    with pytest.raises(NotFound):  # while the server's own errors stay errors
        await lw.trigger(WORKSPACE, "no-such-workflow", wait=10)


async def test_requests_resolve_and_typed_errors(api: Api, lw: AsyncClient, as_member: MemberFactory) -> None:
    await deployed(lw, "refund", APPROVAL)
    triggered = await lw.trigger(WORKSPACE, "refund", {"amount": 12})
    assert triggered.run_id is not None

    async def pending() -> list[Request]:
        return await lw.get_requests(WORKSPACE, request_name="refund")

    [request] = await wait_until(pending, message="the request is created")
    assert (request.request_name, request.resolutions, request.metadata) == (
        "refund",
        ("Approve", "Reject"),
        {"amount": 12},
    )
    assert request.status == "pending" and request.run_id == triggered.run_id
    assert (await lw.get_request(WORKSPACE, request.id)).id == request.id

    with pytest.raises(Unprocessable) as bad:
        await lw.resolve_request(WORKSPACE, request.id, "Maybe")
    assert bad.value.status == 422 and "Maybe" in bad.value.detail
    assert isinstance(bad.value, domain.Unprocessable) and isinstance(bad.value, ApiError)

    resolved = await lw.resolve_request(WORKSPACE, request.id, "Approve", {"reason": "fine"})
    assert (resolved.status, resolved.resolution, resolved.payload) == ("resolved", "Approve", {"reason": "fine"})
    assert resolved.resolved_by == ADMIN_EMAIL and resolved.resolved_at is not None

    with pytest.raises(Conflict) as twice:
        await lw.resolve_request(WORKSPACE, request.id, "Reject")
    assert twice.value.status == 409 and isinstance(twice.value, domain.Conflict)

    async def finished() -> Run | None:
        run = await lw.get_run(WORKSPACE, triggered.run_id or "")
        return run if run.finished else None

    run = await wait_until(finished, message="the run finishes")
    assert run.output == {"resolution": "Approve", "payload": {"reason": "fine"}, "by": ADMIN_EMAIL}
    assert [r.status for r in run.requests] == ["resolved"]
    assert await lw.get_requests(WORKSPACE, request_name="refund") == []
    assert [r.id for r in await lw.get_requests(WORKSPACE, status="resolved", all=True)] == [request.id]

    with pytest.raises(NotFound) as missing:
        await lw.get_run(WORKSPACE, "no-such-run")
    assert missing.value.status == 404 and isinstance(missing.value, domain.NotFound)

    async with client_for(api, "lwk_not_a_key") as stranger:
        with pytest.raises(Unauthorized) as unknown:
            await stranger.me()
    assert unknown.value.status == 401 and isinstance(unknown.value, domain.Unauthorized)

    viewer = await as_member("view@acme.test", "viewer")
    async with viewer, client_for(api, key_of(viewer)) as as_viewer:
        assert (await as_viewer.get_run(WORKSPACE, run.id)).id == run.id  # viewers read
        with pytest.raises(Forbidden) as refused:
            await as_viewer.trigger(WORKSPACE, "refund", {"amount": 1})
    assert refused.value.status == 403 and isinstance(refused.value, domain.Forbidden)


async def test_cancel_and_retry(lw: AsyncClient) -> None:
    await deployed(lw, "refund", APPROVAL)
    triggered = await lw.trigger(WORKSPACE, "refund", {"amount": 5})
    await wait_until(lambda: lw.get_requests(WORKSPACE, request_name="refund"), message="the request is created")
    cancelled = await lw.cancel_run(WORKSPACE, triggered.run_id or "")
    assert cancelled.id == triggered.run_id
    run = await wait_until(lambda: _finished(lw, cancelled.id), message="the cancelled run ends")
    assert run.status == "cancelled"
    with pytest.raises(Conflict):  # only a failed run can be retried
        await lw.retry_run(WORKSPACE, run.id)


async def _finished(lw: AsyncClient, run_id: str) -> Run | None:
    run = await lw.get_run(WORKSPACE, run_id)
    return run if run.finished else None


async def test_workflow_management(lw: AsyncClient) -> None:
    created = await lw.create_workflow(WORKSPACE, "tool", {"main.py": ADDER}, description="a tool")
    assert (created.name, created.description, created.files, created.deployed_version) == (
        "tool",
        "a tool",
        {"main.py": ADDER},
        None,
    )
    with pytest.raises(Conflict):
        await lw.create_workflow(WORKSPACE, "tool", {"main.py": ADDER})
    with_query = await lw.put_file(WORKSPACE, "tool", "queries/one.sql", "-- datasource: db\nselect 1\n")
    assert set(with_query.files) == {"main.py", "queries/one.sql"}
    assert await lw.lint(WORKSPACE, "tool", {"main.py": ADDER}) == []
    diagnostics = await lw.lint(WORKSPACE, "tool", {"main.py": BROKEN})
    assert diagnostics and diagnostics[0].file == "main.py" and diagnostics[0].severity == "error"
    assert str(diagnostics[0]).startswith("main.py:1:")

    assert await lw.deploy(WORKSPACE, "tool") == 1
    await lw.update_workflow(WORKSPACE, "tool", files={"main.py": BROKEN})
    with pytest.raises(Unprocessable) as refused:
        await lw.deploy(WORKSPACE, "tool")
    assert refused.value.errors and refused.value.errors[0]["file"] == "main.py"
    versions = await lw.versions(WORKSPACE, "tool")
    assert [v.number for v in versions] == [1]
    restored = await lw.restore_version(WORKSPACE, "tool", 1)
    assert restored.files["main.py"] == ADDER
    assert (await lw.get_version(WORKSPACE, "tool", 1)).files["main.py"] == ADDER

    hook = await lw.enable_webhook(WORKSPACE, "tool")
    assert hook["token"] in hook["url"]
    assert (await lw.get_workflow(WORKSPACE, "tool")).webhook_enabled
    await lw.disable_webhook(WORKSPACE, "tool")
    schedule = await lw.set_schedule(WORKSPACE, "tool", "*/5 * * * *", timezone="Europe/Berlin", data={"x": 1})
    assert (schedule.cron, schedule.timezone, schedule.data, schedule.enabled) == (
        "*/5 * * * *",
        "Europe/Berlin",
        {"x": 1},
        True,
    )
    assert schedule.next_fire_at is not None
    with pytest.raises(Unprocessable):
        await lw.set_schedule(WORKSPACE, "tool", "not a cron")
    await lw.delete_schedule(WORKSPACE, "tool")

    renamed = await lw.update_workflow(WORKSPACE, "tool", name="tool-2", description="renamed")
    assert (renamed.name, renamed.description) == ("tool-2", "renamed")
    listed = await lw.list_workflows(WORKSPACE)
    assert [w.name for w in listed] == ["tool-2"] and listed.items[0].files == {}
    await lw.delete_file(WORKSPACE, "tool-2", "queries/one.sql")
    await lw.delete_workflow(WORKSPACE, "tool-2")
    with pytest.raises(NotFound):
        await lw.get_workflow(WORKSPACE, "tool-2")


async def test_identity_login_members_groups_and_keys(api: Api, lw: AsyncClient) -> None:
    me = await lw.me()
    assert (me.email, me.via) == (ADMIN_EMAIL, "key")
    assert [(w.slug, w.role) for w in me.workspaces] == [(WORKSPACE, "admin")]

    transport = httpx.ASGITransport(app=api.app)  # type: ignore[arg-type]
    session = await AsyncClient.login("http://loomwork.test", ADMIN_EMAIL, ADMIN_PASSWORD, transport=transport)
    async with session:
        assert (await session.me()).via == "session"
        await session.logout()
        with pytest.raises(Unauthorized):
            await session.me()
    with pytest.raises(Unauthorized):
        await AsyncClient.login("http://loomwork.test", ADMIN_EMAIL, "wrong password", transport=transport)

    member = await lw.add_member(WORKSPACE, "Ann@Acme.test", "operator")
    assert (member.email, member.role) == ("ann@acme.test", "operator")
    assert (await lw.update_member(WORKSPACE, "ann@acme.test", role="developer")).role == "developer"
    group = await lw.create_group(WORKSPACE, "finance", ["ann@acme.test"])
    assert group.members == ("ann@acme.test",)
    assert [g.name for g in await lw.list_groups(WORKSPACE)] == ["finance"]
    assert (await lw.set_group(WORKSPACE, "finance", [])).members == ()
    await lw.delete_group(WORKSPACE, "finance")

    created = await lw.create_api_key(WORKSPACE, "ci", "operator")
    assert created.key and created.key not in repr(created)
    keys = await lw.list_api_keys(WORKSPACE)
    assert created.id in {k.id for k in keys} and all(k.key is None for k in keys)
    async with client_for(api, created.key) as ci:
        assert [w.role for w in (await ci.me()).workspaces] == ["operator"]
        await lw.delete_api_key(WORKSPACE, created.id)
        with pytest.raises(Unauthorized):
            await ci.me()
    await lw.remove_member(WORKSPACE, "ann@acme.test")
    assert [m.email for m in await lw.list_members(WORKSPACE)] == [ADMIN_EMAIL]

    with pytest.raises(Unprocessable) as invalid:
        await lw.add_member(WORKSPACE, "x@acme.test", "overlord")
    assert invalid.value.errors and "role" in str(invalid.value)


def test_an_unreachable_server_is_connection_failed() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        with Client(f"http://127.0.0.1:{port}", "key", timeout=5) as client, pytest.raises(ConnectionFailed) as failed:
            client.me()
    assert failed.value.status == 0
    assert f"127.0.0.1:{port}" in str(failed.value)


# -- the blocking client, against a real HTTP server ------------------------------------------------------------
@pytest.fixture
def live(tmp_path: Path, database_url: str) -> Iterator[LiveServer]:
    with live_server(tmp_path, database_url) as server:
        yield server


def test_sync_client_over_http(live: LiveServer) -> None:
    with Client(live.url, live.api_key) as lw:
        assert lw.me().email == ADMIN_EMAIL
        lw.create_workflow(WORKSPACE, "adder", {"main.py": ADDER})
        assert lw.deploy(WORKSPACE, "adder") == 1
        done = lw.trigger(WORKSPACE, "adder", {"x": 1}, wait=10)
        assert (done.http_status, done.status, done.output) == (200, "succeeded", {"sum": 2})
        run = lw.get_run(WORKSPACE, done.run_id or "")
        assert [s.output for s in run.steps] == [2]
        assert [r.id for r in lw.list_runs(WORKSPACE, workflow="adder")] == [run.id]
        assert [r.id for r in lw.iter_runs(WORKSPACE, status="succeeded", page_size=1)] == [run.id]
        assert [line.message for line in lw.get_logs(WORKSPACE, run.id)] == ["adding"]

        lw.create_workflow(WORKSPACE, "refund", {"main.py": APPROVAL})
        lw.deploy(WORKSPACE, "refund")
        waiting = lw.trigger(WORKSPACE, "refund", {"amount": 3}, wait=0.2)
        assert waiting.http_status == 202
        [request] = wait_until_sync(lambda: lw.get_requests(WORKSPACE, request_name=["refund"]))
        with pytest.raises(Unprocessable):
            lw.resolve_request(WORKSPACE, request.id, "Perhaps")
        assert lw.resolve_request(WORKSPACE, request.id, "Reject").resolution == "Reject"
        with pytest.raises(Conflict):
            lw.resolve_request(WORKSPACE, request.id, "Approve")
        with pytest.raises(NotFound):
            lw.get_request(WORKSPACE, "nope")
    with Client(live.url, "lwk_wrong") as stranger, pytest.raises(Unauthorized):
        stranger.list_runs(WORKSPACE)
    with Client.login(live.url, ADMIN_EMAIL, ADMIN_PASSWORD) as session:
        assert session.me().via == "session"


def wait_until_sync(condition: Callable[[], T], timeout: float = 10.0) -> T:
    """The blocking twin of ``loomwork.testing.wait_until``: the first truthy value, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(0.02)
    return value


async def test_datasources_and_the_editor_query_run(lw: AsyncClient, tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "client-shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT)")
        conn.execute("INSERT INTO orders VALUES (7, 'Ada')")
    created = await lw.create_datasource(WORKSPACE, "shop", "sqlite", {"path": str(db)})
    assert created.kind == "sqlite" and created.secrets == ()
    cache = await lw.create_datasource(WORKSPACE, "cache", "redis", {}, {"url": "redis://:hush-123@127.0.0.1:6379/0"})
    assert cache.secrets == ("url",) and "hush-123" not in repr(cache.raw)
    assert [d.name for d in await lw.list_datasources(WORKSPACE)] == ["cache", "shop"]
    assert (await lw.test_datasource(WORKSPACE, "shop"))["ok"] is True
    updated = await lw.update_datasource(WORKSPACE, "shop", config={"path": str(db)})
    assert updated.config == {"path": str(db)}
    files = {
        "main.py": "async def execute_workflow(data):\n    return 1\n",
        "queries/lookup.sql": "-- datasource: shop\nSELECT customer FROM orders WHERE id = {{ params.id }}\n",
    }
    await lw.create_workflow(WORKSPACE, "lookups", files)
    ran = await lw.run_query(WORKSPACE, "lookups", "lookup", {"id": 7})
    assert ran["ok"] is True and ran["result"] == [{"customer": "Ada"}]
    await lw.delete_datasource(WORKSPACE, "cache")
    with pytest.raises(NotFound):
        await lw.get_datasource(WORKSPACE, "cache")
    with pytest.raises(Unprocessable):
        await lw.create_datasource(WORKSPACE, "bad", "oracle")
