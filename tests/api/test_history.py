"""Run history over HTTP: filters, keyset pagination, detail, logs (also streamed as SSE), cancel and retry.

The SSE test goes through a real uvicorn server on a free port: httpx's ASGITransport runs the app to the end
of the response before handing back any of it, so it cannot show lines arriving while the run goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn

from loomwork.engine import Engine
from loomwork.model import Request, RequestStatus, Run, RunStatus, Trigger
from loomwork.store import workflows as drafts
from loomwork.testing import wait_until

from .conftest import ADMIN_EMAIL, WORKSPACE, Api, MemberFactory

ECHO = """
    from loomwork import wf

    def shout(word):
        return word.upper()

    async def execute_workflow(data):
        if data.get("fail"):
            raise ValueError("asked to fail")
        loud = await wf.step(shout, data.get("tag", "none"))
        return {"result": f"out-{data['n']}", "loud": loud}
    """

ASK = f"""
    from loomwork import wf

    async def execute_workflow(data):
        wf.log.info("before", n=1)
        await wf.step(lambda: 1, name="prepare")
        decision = await wf.assign_request("go", ["Go", "Stop"], message="Go on?", to_users=[{ADMIN_EMAIL!r}])
        wf.log.warning("after", resolution=decision.resolution)
        return decision.resolution
    """


def src(code: str) -> str:
    return textwrap.dedent(code).lstrip()


async def deploy(engine: Engine, name: str, code: str, *, workspace: str = WORKSPACE) -> None:
    files = {"main.py": src(code)}
    if workspace == WORKSPACE:
        await engine.db.write(drafts.create_workflow, workspace, name, "", files)
    await engine.deploy(name, files, workspace=workspace)


async def start(engine: Engine, name: str, data: Any, **kwargs: Any) -> Run:
    return await engine.start_run(name, data, workspace=WORKSPACE, **kwargs)


async def finished(engine: Engine, run_id: str) -> Run:
    run = await engine.wait_for_run(run_id, 15)
    assert run.status.is_final, f"run {run_id} still {run.status.value}"
    return run


async def pending_request(engine: Engine, run_id: str) -> Request:
    async def check() -> Request | None:
        found = [r for r in await engine.list_run_requests(run_id) if r.status == RequestStatus.PENDING]
        return found[0] if found else None

    return await wait_until(check, timeout=15, message=f"a pending request on run {run_id}")


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


# -- lists -----------------------------------------------------------------------------------------------------
async def test_history_filters(api: Api) -> None:
    await deploy(api.engine, "echo", ECHO)
    alpha = await start(api.engine, "echo", {"n": 1, "tag": "alpha"})
    broken = await start(api.engine, "echo", {"n": 2, "fail": True})
    middle = datetime.now(UTC)
    tested = await start(api.engine, "echo", {"n": 3, "tag": "beta"}, test=True)
    scheduled = await start(api.engine, "echo", {"n": 4}, trigger=Trigger.SCHEDULE)
    for run in (alpha, broken, tested, scheduled):
        await finished(api.engine, run.id)
    base = f"/workspaces/{WORKSPACE}/workflows/echo/runs"

    everything = await api.client.get(base)
    assert ids(everything) == [scheduled.id, tested.id, broken.id, alpha.id]  # newest first
    assert everything.json()["next_cursor"] is None
    first = everything.json()["items"][-1]
    assert first["status"] == "succeeded"
    assert first["output"] == {"result": "out-1", "loud": "ALPHA"}
    assert first["input"] == {"n": 1, "tag": "alpha"}
    assert first["created_at"].endswith("Z")

    assert ids(await api.client.get(base, params={"status": "failed"})) == [broken.id]
    assert ids(await api.client.get(base, params={"status": ["failed", "cancelled"]})) == [broken.id]
    assert len(ids(await api.client.get(base, params={"status": "failed,succeeded"}))) == 4
    assert ids(await api.client.get(base, params={"trigger": "schedule"})) == [scheduled.id]
    assert ids(await api.client.get(base, params={"test": "true"})) == [tested.id]
    assert ids(await api.client.get(base, params={"test": "false"})) == [scheduled.id, broken.id, alpha.id]
    assert ids(await api.client.get(base, params={"since": middle.isoformat()})) == [scheduled.id, tested.id]
    assert ids(await api.client.get(base, params={"until": middle.isoformat()})) == [broken.id, alpha.id]
    z_time = middle.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert ids(await api.client.get(base, params={"since": z_time, "status": "succeeded"})) == [
        scheduled.id,
        tested.id,
    ]
    assert ids(await api.client.get(base, params={"q": "alpha"})) == [alpha.id]  # input
    assert ids(await api.client.get(base, params={"q": "OUT-3"})) == [tested.id]  # output, any case
    assert ids(await api.client.get(base, params={"q": "100%"})) == []  # wildcards are literal

    # The workspace-wide list takes the same filters plus the workflow.
    await deploy(api.engine, "other", ECHO)
    other = await start(api.engine, "other", {"n": 9})
    await finished(api.engine, other.id)
    everywhere = f"/workspaces/{WORKSPACE}/runs"
    assert ids(await api.client.get(everywhere))[:2] == [other.id, scheduled.id]
    assert ids(await api.client.get(everywhere, params={"workflow": "other"})) == [other.id]
    assert ids(await api.client.get(everywhere, params={"workflow": "echo", "status": "failed"})) == [broken.id]

    for params in ({"status": "bogus"}, {"trigger": "fax"}, {"since": "yesterday"}, {"cursor": "!!"}):
        refused = await api.client.get(base, params=params)
        assert refused.status_code == 422, (params, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
    assert "unknown run status 'bogus'" in (await api.client.get(base, params={"status": "bogus"})).json()["detail"]
    assert (await api.client.get(base, params={"limit": 501})).status_code == 422
    assert (await api.client.get(base, params={"limit": 0})).status_code == 422
    assert (await api.client.get(f"/workspaces/{WORKSPACE}/workflows/nope/runs")).status_code == 404


async def test_pagination_newest_first_across_pages(api: Api) -> None:
    await deploy(api.engine, "echo", ECHO)
    # A batch shares one created_at: the id breaks the tie, so no run is skipped or repeated.
    runs = await api.engine.start_runs("echo", [{"n": i} for i in range(4)], workspace=WORKSPACE)
    runs += [await start(api.engine, "echo", {"n": i}) for i in range(4, 8)]
    expected = sorted(runs, key=lambda r: (r.created_at, r.id), reverse=True)
    base = f"/workspaces/{WORKSPACE}/workflows/echo/runs"

    seen: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        response = await api.client.get(base, params=params)
        seen += ids(response)
        pages += 1
        if pages == 1:  # a run started meanwhile is newer: it never shows up on the later pages
            await start(api.engine, "echo", {"n": 99})
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [r.id for r in expected]
    assert len(set(seen)) == 8


# -- detail ----------------------------------------------------------------------------------------------------
async def test_run_detail_with_steps_requests_and_error(api: Api) -> None:
    await deploy(api.engine, "ask", ASK)
    run = await start(api.engine, "ask", {"x": 1})
    request = await pending_request(api.engine, run.id)
    detail = await api.client.get(f"/workspaces/{WORKSPACE}/runs/{run.id}")
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert body["id"] == run.id
    assert body["workflow"] == "ask"
    assert body["version"] == 1
    assert body["status"] == "waiting"
    assert body["trigger"] == "api"
    assert body["input"] == {"x": 1}
    assert body["error"] is None
    assert [(s["seq"], s["kind"], s["name"], s["status"]) for s in body["steps"]] == [
        (1, "step", "prepare", "succeeded"),
        (2, "request", "go", "waiting"),
    ]
    assert body["steps"][0]["output"] == 1
    (shown,) = body["requests"]
    assert shown["id"] == request.id
    assert shown["status"] == "pending"
    assert shown["resolutions"] == ["Go", "Stop"]
    assert shown["to_users"] == [ADMIN_EMAIL]

    await deploy(api.engine, "echo", ECHO)
    failed = await finished(api.engine, (await start(api.engine, "echo", {"n": 1, "fail": True})).id)
    error = (await api.client.get(f"/workspaces/{WORKSPACE}/runs/{failed.id}")).json()["error"]
    assert error["type"] == "ValueError"
    assert error["message"] == "asked to fail"
    assert 'File "main.py", line 8, in execute_workflow' in error["traceback"]
    assert "loomwork/" not in error["traceback"]

    # A run of another workspace does not exist here.
    await deploy(api.engine, "echo", ECHO, workspace="elsewhere")
    foreign = await api.engine.start_run("echo", {"n": 1}, workspace="elsewhere")
    assert (await api.client.get(f"/workspaces/{WORKSPACE}/runs/{foreign.id}")).status_code == 404
    assert (await api.client.get(f"/workspaces/{WORKSPACE}/runs/{foreign.id}/logs")).status_code == 404
    assert (await api.client.post(f"/workspaces/{WORKSPACE}/runs/{foreign.id}/cancel")).status_code == 404
    assert (await api.client.get(f"/workspaces/{WORKSPACE}/runs/no-such-run")).status_code == 404


# -- logs ------------------------------------------------------------------------------------------------------
LOGGER = """
    from loomwork import wf

    async def execute_workflow(data):
        for i in range(5):
            wf.log.info(f"line {i}", i=i)
        return None
    """


async def test_logs_list_and_paging(api: Api) -> None:
    await deploy(api.engine, "logger", LOGGER)
    run = await finished(api.engine, (await start(api.engine, "logger", {})).id)
    url = f"/workspaces/{WORKSPACE}/runs/{run.id}/logs"
    everything = await api.client.get(url)
    assert everything.status_code == 200, everything.text
    lines = everything.json()["items"]
    assert [line["message"] for line in lines] == [f"line {i}" for i in range(5)]
    assert lines[2]["fields"] == {"i": 2}
    assert lines[0]["level"] == "info"
    assert lines[0]["ts"].endswith("Z")
    seqs = [line["seq"] for line in lines]
    assert seqs == sorted(seqs)
    assert everything.json()["next_cursor"] is None

    first = await api.client.get(url, params={"limit": 2})
    assert [line["seq"] for line in first.json()["items"]] == seqs[:2]
    cursor = first.json()["next_cursor"]
    assert cursor == str(seqs[1])
    rest = await api.client.get(url, params={"cursor": cursor, "limit": 10})
    assert [line["seq"] for line in rest.json()["items"]] == seqs[2:]
    after = await api.client.get(url, params={"after": seqs[3]})
    assert [line["seq"] for line in after.json()["items"]] == seqs[4:]
    assert (await api.client.get(url, params={"limit": 100_000})).status_code == 422


@contextlib.asynccontextmanager
async def served(app: object) -> AsyncIterator[str]:
    """The app behind a real uvicorn server on a free local port; yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    try:
        await wait_until(lambda: server.started or task.done(), timeout=10, message="uvicorn started")
        assert server.started, task
        yield f"http://127.0.0.1:{port}/api/v1"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


async def read_events(response: httpx.Response) -> AsyncIterator[tuple[str, str | None, Any]]:
    """(event, id, data) for each Server-Sent Event; comments (heartbeats) are skipped."""
    event, event_id, data = "message", None, list[str]()
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield event, event_id, orjson.loads("\n".join(data))
            event, event_id, data = "message", None, []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "id":
                event_id = value
            elif name == "data":
                data.append(value)


async def test_logs_follow_streams_lines_as_the_run_writes_them(api: Api) -> None:
    await deploy(api.engine, "ask", ASK)
    run = await start(api.engine, "ask", {})
    seen: list[tuple[str, str | None, Any]] = []
    async with served(api.app) as base_url, httpx.AsyncClient(base_url=base_url, headers=api.client.headers) as live:
        url = f"/workspaces/{WORKSPACE}/runs/{run.id}/logs"
        async with asyncio.timeout(20), live.stream("GET", url, params={"follow": 1}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            async for event in read_events(response):
                seen.append(event)
                if event[0] == "log" and event[2]["message"] == "before":
                    # The run is still waiting: the next line only exists once we answer it.
                    request = await pending_request(api.engine, run.id)
                    resolved = await api.client.post(
                        f"/workspaces/{WORKSPACE}/requests/{request.id}/resolve", json={"resolution": "Go"}
                    )
                    assert resolved.status_code == 200, resolved.text
    assert [(e[0], e[2].get("message")) for e in seen] == [("log", "before"), ("log", "after"), ("end", None)]
    before, after, end = seen
    assert before[1] == str(before[2]["seq"])
    assert after[2]["level"] == "warning"
    assert after[2]["fields"] == {"resolution": "Go"}
    assert end[2] == {"status": "succeeded"}

    # Reconnecting with Last-Event-ID resumes after that line (the run has ended, so the stream is finite).
    resumed = await api.client.get(
        f"/workspaces/{WORKSPACE}/runs/{run.id}/logs", params={"follow": "1"}, headers={"Last-Event-ID": before[1]}
    )
    assert resumed.status_code == 200
    assert "event: log" in resumed.text
    assert '"message":"before"' not in resumed.text
    assert '"message":"after"' in resumed.text
    assert resumed.text.rstrip().endswith('event: end\ndata: {"status":"succeeded"}')


async def test_a_follower_that_goes_away_unsubscribes(api: Api) -> None:
    await deploy(api.engine, "ask", ASK)
    run = await start(api.engine, "ask", {})
    subscribers = api.engine._subscribers  # white-box: a leaked callback would live as long as the engine
    before = {topic: len(subscribers.get(topic, [])) for topic in ("log", "finished")}
    async with served(api.app) as base_url, httpx.AsyncClient(base_url=base_url, headers=api.client.headers) as live:
        url = f"/workspaces/{WORKSPACE}/runs/{run.id}/logs"
        async with asyncio.timeout(20), live.stream("GET", url, params={"follow": 1}) as response:
            async for event in read_events(response):
                assert event[0] == "log"
                assert len(subscribers["log"]) == before["log"] + 1
                break  # hang up while the run still waits

        def released() -> bool:
            return all(len(subscribers.get(topic, [])) == count for topic, count in before.items())

        await wait_until(released, timeout=10, message="the follower unsubscribed")
    assert (await api.engine.get_run(run.id)).status == RunStatus.WAITING


# -- cancel and retry ------------------------------------------------------------------------------------------
async def test_cancel_a_waiting_run_cancels_its_requests(api: Api, as_member: MemberFactory) -> None:
    await deploy(api.engine, "ask", ASK)
    run = await start(api.engine, "ask", {})
    request = await pending_request(api.engine, run.id)
    url = f"/workspaces/{WORKSPACE}/runs/{run.id}/cancel"
    async with await as_member("viewer@acme.test", "viewer") as viewer:
        assert (await viewer.post(url)).status_code == 403
    async with await as_member("operator@acme.test", "operator") as operator:
        cancelled = await operator.post(url)
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        assert (await operator.post(url)).status_code == 409
        assert (await operator.post(f"/workspaces/{WORKSPACE}/runs/{run.id}/retry")).status_code == 409
    assert (await api.engine.get_request(request.id)).status == RequestStatus.CANCELLED
    detail = (await api.client.get(f"/workspaces/{WORKSPACE}/runs/{run.id}")).json()
    assert detail["requests"][0]["status"] == "cancelled"


FLAKY = """
    from pathlib import Path
    from loomwork import wf

    def prepare(counter):
        with open(counter, "a") as f:
            f.write("x")
        return 41

    def check(flag):
        if not Path(flag).exists():
            raise RuntimeError("the flag is not set yet")
        return 1

    async def execute_workflow(data):
        a = await wf.step(prepare, data["counter"])
        b = await wf.step(check, data["flag"], retries=0)
        return a + b
    """


async def test_retry_a_failed_run_from_its_failed_step(api: Api, as_member: MemberFactory, tmp_path: Path) -> None:
    await deploy(api.engine, "flaky", FLAKY)
    flag, counter = tmp_path / "flag", tmp_path / "counter"
    run = await start(api.engine, "flaky", {"flag": str(flag), "counter": str(counter)})
    failed = await finished(api.engine, run.id)
    assert failed.status == RunStatus.FAILED
    assert failed.error is not None and "flag is not set" in failed.error.message
    url = f"/workspaces/{WORKSPACE}/runs/{run.id}/retry"
    async with await as_member("viewer@acme.test", "viewer") as viewer:
        assert (await viewer.post(url)).status_code == 403

    flag.write_text("go")
    async with await as_member("operator@acme.test", "operator") as operator:
        retried = await operator.post(url)
        assert retried.status_code == 200, retried.text
        assert retried.json()["id"] == run.id
        assert retried.json()["status"] == "queued"
        done = await finished(api.engine, run.id)
        assert done.status == RunStatus.SUCCEEDED, done.error
        assert done.output == 42
        assert counter.read_text() == "x"  # the completed step kept its result: it did not run again
        assert (await operator.post(url)).status_code == 409  # only failed runs can be retried
