"""Triggering runs over HTTP (SPEC §4.4): answer at once, wait for wf.respond or the end, idempotency, test runs."""

from __future__ import annotations

import time

from loomwork.model import RunStatus, Trigger
from loomwork.store import workflows as workflow_store
from loomwork.testing import wait_until

from .conftest import WORKSPACE, Api, MemberFactory

BASE = f"/workspaces/{WORKSPACE}/workflows"

THREE_STEPS = """from loomwork import wf


def add(x, y):
    return x + y


async def execute_workflow(data):
    a = await wf.step(add, data.get("x", 0), 1)
    b = await wf.step(add, a, 1)
    c = await wf.step(add, b, 1)
    return {"sum": c, "version": "deployed"}
"""

RESPOND_THEN_SLEEP = """from loomwork import wf


async def execute_workflow(data):
    wf.respond(201, {"ok": True, "got": data}, {"X-Answer": "early"})
    await wf.sleep(3600)
    return "late"
"""

SLEEPER = """from loomwork import wf


async def execute_workflow(data):
    await wf.sleep(3600)
    return 1
"""

FAILS = """async def execute_workflow(data):
    raise ValueError("nope")
"""


async def make_workflow(api: Api, name: str, main: str, *, toml: str | None = None, deploy: bool = True) -> None:
    """A workflow draft (store) and, unless told otherwise, a deployed version of it (engine)."""
    files = {"main.py": main}
    if toml is not None:
        files["workflow.toml"] = toml
    await api.engine.db.write(workflow_store.create_workflow, WORKSPACE, name, "", files)
    if deploy:
        await api.engine.deploy(name, files, workspace=WORKSPACE)


async def test_answers_202_at_once_and_the_run_finishes(api: Api) -> None:
    await make_workflow(api, "adder", THREE_STEPS)
    response = await api.client.post(f"{BASE}/adder/runs", json={"data": {"x": 1}})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body == {"run_id": body["run_id"], "status": "queued"}
    assert response.headers["loomwork-run-id"] == body["run_id"]
    run = await api.engine.wait_for_run(body["run_id"], timeout=10)
    assert run.status == RunStatus.SUCCEEDED
    assert run.output == {"sum": 4, "version": "deployed"}
    assert run.trigger == Trigger.API and not run.test
    # An empty body is a trigger with data {}.
    empty = await api.client.post(f"{BASE}/adder/runs")
    assert empty.status_code == 202, empty.text


async def test_wait_returns_the_output_when_the_run_finishes(api: Api) -> None:
    await make_workflow(api, "adder", THREE_STEPS)
    response = await api.client.post(f"{BASE}/adder/runs", json={"data": {"x": 10}, "wait": 10})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {"run_id": body["run_id"], "status": "succeeded", "output": {"sum": 13, "version": "deployed"}}


async def test_wait_on_a_failing_run_returns_200_with_the_error(api: Api) -> None:
    await make_workflow(api, "fails", FAILS)
    response = await api.client.post(f"{BASE}/fails/runs", json={"wait": 10})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "failed"
    assert body["error"]["type"] == "ValueError"
    assert body["error"]["message"] == "nope"
    assert "output" not in body


async def test_wait_returns_what_the_run_responds_while_it_goes_on(api: Api) -> None:
    await make_workflow(api, "early", RESPOND_THEN_SLEEP)
    started = time.monotonic()
    response = await api.client.post(f"{BASE}/early/runs", json={"data": {"n": 1}, "wait": 30})
    assert time.monotonic() - started < 5
    assert response.status_code == 201, response.text
    assert response.json() == {"ok": True, "got": {"n": 1}}
    assert response.headers["x-answer"] == "early"
    assert response.headers["content-type"] == "application/json"
    run_id = response.headers["loomwork-run-id"]
    run = await wait_until(lambda: _parked(api, run_id), message="run parked on its sleep")
    assert run.status == RunStatus.WAITING


async def _parked(api: Api, run_id: str) -> object:
    run = await api.engine.get_run(run_id)
    return run if run.status == RunStatus.WAITING else None


async def test_a_response_may_be_text_or_empty_and_bad_headers_are_dropped(api: Api) -> None:
    text = """from loomwork import wf


async def execute_workflow(data):
    if data.get("empty"):
        wf.respond(204, None, {"X-Empty": "yes"})
    else:
        wf.respond(200, "<b>hi</b>", {"Content-Type": "text/html", "Bad\\nName": "x", "X-Evil": "a\\r\\nb"})
    return "done"
"""
    await make_workflow(api, "texty", text)
    html = await api.client.post(f"{BASE}/texty/runs", json={"wait": 10})
    assert html.status_code == 200, html.text
    assert html.text == "<b>hi</b>"
    assert html.headers["content-type"] == "text/html"
    assert "x-evil" not in html.headers
    empty = await api.client.post(f"{BASE}/texty/runs", json={"wait": 10, "data": {"empty": True}})
    assert empty.status_code == 204
    assert empty.content == b""
    assert empty.headers["x-empty"] == "yes"


async def test_wait_expiry_answers_202_and_the_run_goes_on(api: Api) -> None:
    await make_workflow(api, "sleeper", SLEEPER)
    started = time.monotonic()
    response = await api.client.post(f"{BASE}/sleeper/runs", json={"wait": 0.3})
    elapsed = time.monotonic() - started
    assert response.status_code == 202, response.text
    assert 0.3 <= elapsed < 5
    body = response.json()
    assert body["status"] in ("queued", "running", "waiting")
    assert set(body) == {"run_id", "status"}


async def test_an_idempotency_key_returns_the_same_run(api: Api) -> None:
    await make_workflow(api, "adder", THREE_STEPS)
    first = await api.client.post(f"{BASE}/adder/runs", json={"data": {"x": 1}, "idempotency_key": "order-42"})
    assert first.status_code == 202
    run_id = first.json()["run_id"]
    # Again while (maybe) still going, then again waiting: the same run each time, never a second one.
    again = await api.client.post(f"{BASE}/adder/runs", json={"data": {"x": 99}, "idempotency_key": "order-42"})
    assert again.json()["run_id"] == run_id
    assert again.headers["idempotent-replayed"] == "true"
    waited = await api.client.post(f"{BASE}/adder/runs", json={"idempotency_key": "order-42", "wait": 10})
    assert waited.status_code == 200
    assert waited.json() == {"run_id": run_id, "status": "succeeded", "output": {"sum": 4, "version": "deployed"}}
    # Once it has ended, even without waiting the answer is its result.
    done = await api.client.post(f"{BASE}/adder/runs", json={"idempotency_key": "order-42"})
    assert done.status_code == 200
    assert done.json()["run_id"] == run_id
    other = await api.client.post(f"{BASE}/adder/runs", json={"idempotency_key": "order-43"})
    assert other.json()["run_id"] != run_id


async def test_a_repeated_key_on_a_run_that_responded_returns_that_response(api: Api) -> None:
    await make_workflow(api, "early", RESPOND_THEN_SLEEP)
    first = await api.client.post(f"{BASE}/early/runs", json={"idempotency_key": "k", "wait": 30})
    assert first.status_code == 201
    again = await api.client.post(f"{BASE}/early/runs", json={"idempotency_key": "k", "wait": 30})
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["loomwork-run-id"] == first.headers["loomwork-run-id"]


async def test_a_test_run_executes_the_draft(api: Api) -> None:
    await make_workflow(api, "adder", THREE_STEPS)
    draft = THREE_STEPS.replace('"version": "deployed"', '"version": "draft"')
    await api.engine.db.write(workflow_store.update_workflow, WORKSPACE, "adder", files={"main.py": draft})

    tested = await api.client.post(f"{BASE}/adder/runs", json={"data": {"x": 1}, "wait": 10, "test": True})
    assert tested.status_code == 200, tested.text
    assert tested.json()["output"] == {"sum": 4, "version": "draft"}
    run = await api.engine.get_run(tested.json()["run_id"])
    assert run.trigger == Trigger.TEST and run.test
    assert run.version == -1

    # The unchanged draft reuses its snapshot; a changed one gets the next (negative) number.
    again = await api.client.post(f"{BASE}/adder/runs", json={"wait": 10, "test": True})
    assert (await api.engine.get_run(again.json()["run_id"])).version == -1
    changed = draft.replace('"draft"', '"draft 2"')
    await api.engine.db.write(workflow_store.update_workflow, WORKSPACE, "adder", files={"main.py": changed})
    third = await api.client.post(f"{BASE}/adder/runs", json={"wait": 10, "test": True})
    assert third.json()["output"]["version"] == "draft 2"
    assert (await api.engine.get_run(third.json()["run_id"])).version == -2

    # Snapshots are not deployed versions: a normal trigger still runs version 1.
    deployed = await api.client.post(f"{BASE}/adder/runs", json={"data": {"x": 1}, "wait": 10})
    assert deployed.json()["output"] == {"sum": 4, "version": "deployed"}
    assert (await api.engine.latest_version("adder", workspace=WORKSPACE)).number == 1


async def test_nothing_deployed_is_409_unknown_workflow_404(api: Api) -> None:
    await make_workflow(api, "draft-only", THREE_STEPS, deploy=False)
    response = await api.client.post(f"{BASE}/draft-only/runs", json={})
    assert response.status_code == 409
    assert "deploy it first" in response.json()["detail"]
    # A test run of the draft works without any deployed version.
    tested = await api.client.post(f"{BASE}/draft-only/runs", json={"test": True, "wait": 10})
    assert tested.status_code == 200, tested.text
    assert (await api.client.post(f"{BASE}/draft-only/runs", json={})).status_code == 409
    assert (await api.client.post(f"{BASE}/nope/runs", json={})).status_code == 404
    assert (await api.client.post(f"{BASE}/nope/runs", json={"test": True})).status_code == 404


async def test_bad_bodies_are_422(api: Api) -> None:
    await make_workflow(api, "adder", THREE_STEPS)
    for body in (
        {"data": [1, 2]},
        {"wait": 301},
        {"wait": -1},
        {"idempotency_key": "x" * 201},
        {"idempotency_key": ""},
        {"unknown": 1},
    ):
        response = await api.client.post(f"{BASE}/adder/runs", json=body)
        assert response.status_code == 422, (body, response.text)


async def test_viewers_may_not_trigger_operators_may(api: Api, as_member: MemberFactory) -> None:
    await make_workflow(api, "adder", THREE_STEPS)
    async with await as_member("viewer@acme.test", "viewer") as viewer:
        assert (await viewer.post(f"{BASE}/adder/runs", json={})).status_code == 403
    async with await as_member("operator@acme.test", "operator") as operator:
        assert (await operator.post(f"{BASE}/adder/runs", json={})).status_code == 202
