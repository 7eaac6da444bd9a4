"""``wf.http`` and REST queries from a run: through the workspace's rest datasource, with the step's key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from connectors.servers import HttpServer

from .conftest import WORKSPACE, Api

MAIN_PY = """from loomwork import wf


async def execute_workflow(data):
    called = await wf.http("api", "POST", "/echo/refunds", body={"order": data["order"]}, headers={"X-Trace": "t1"})
    queried = await wf.queries.lookup.run(order=data["order"], note="a/b c")
    failed = await wf.http("api", "GET", "/status/404", allow_error_status=True)
    return {"called": called, "queried": queried, "failed": failed["status"]}
"""

LOOKUP = """datasource = "api"
method = "GET"
path = "/echo/orders/{{ params.note }}"
query = { order = "{{ params.order }}" }
"""


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    server = HttpServer().start()
    try:
        yield server
    finally:
        server.stop()


async def test_wf_http_and_rest_queries_carry_the_step_idempotency_key(api: Api, http_server: HttpServer) -> None:
    body = {
        "name": "api",
        "kind": "rest",
        "config": {"base_url": http_server.url, "auth_kind": "bearer"},
        "secrets": {"token": "tok-998877"},
    }
    assert (await api.client.post(f"/workspaces/{WORKSPACE}/datasources", json=body)).status_code == 201
    files = {"main.py": MAIN_PY, "queries/lookup.toml": LOOKUP}
    await api.client.post(f"/workspaces/{WORKSPACE}/workflows", json={"name": "calls", "files": files})
    assert (await api.client.post(f"/workspaces/{WORKSPACE}/workflows/calls/deploy")).status_code == 200
    answer = await api.client.post(
        f"/workspaces/{WORKSPACE}/workflows/calls/runs", json={"data": {"order": 7}, "wait": 30}
    )
    assert answer.status_code == 200, answer.text
    run_id = answer.json()["run_id"]
    output = answer.json()["output"]
    detail = (await api.client.get(f"/workspaces/{WORKSPACE}/runs/{run_id}")).json()
    assert [s["kind"] for s in detail["steps"]] == ["http", "query", "http"]
    seqs = [s["seq"] for s in detail["steps"]]

    called = output["called"]["body"]
    assert called["method"] == "POST" and called["path"] == "/echo/refunds"
    assert called["headers"]["authorization"] == "Bearer tok-998877"  # the engine added the secret ...
    assert called["headers"]["x-trace"] == "t1"
    assert called["headers"]["idempotency-key"] == f"{run_id}:{seqs[0]}"  # ... and the step's key
    queried = output["queried"]["body"]
    assert queried["raw_path"] == "/echo/orders/a%2Fb%20c"
    assert queried["query"] == {"order": ["7"]}
    assert queried["headers"]["idempotency-key"] == f"{run_id}:{seqs[1]}"
    assert output["failed"] == 404

    # The journal records the call, not the credential.
    assert "tok-998877" not in str(detail["steps"][0]["input"])
