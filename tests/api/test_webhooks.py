"""The webhook trigger ``POST /hooks/{hook_id}`` (SPEC §4.4): token, identical 404s, bodies, wait, HMAC."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import httpx

from loomwork.model import RunStatus, Trigger

from .conftest import WORKSPACE, Api
from .test_triggers import RESPOND_THEN_SLEEP, THREE_STEPS, make_workflow

BASE = f"/workspaces/{WORKSPACE}/workflows"


async def enable(api: Api, workflow: str, *, with_hmac: bool = False) -> dict[str, Any]:
    response = await api.client.post(f"{BASE}/{workflow}/webhook", json={"hmac": with_hmac})
    assert response.status_code == 200, response.text
    hook: dict[str, Any] = response.json()
    return hook


def anonymous(api: Api) -> httpx.AsyncClient:
    return api.client_with(None)


def signed(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Signature": f"sha256={digest}", "X-Signature-Timestamp": ts, "Content-Type": "application/json"}


async def test_token_in_query_or_bearer_starts_a_webhook_run(api: Api) -> None:
    await make_workflow(api, "adder", THREE_STEPS)
    hook = await enable(api, "adder")
    async with anonymous(api) as client:
        by_query = await client.post(f"/hooks/{hook['hook_id']}?token={hook['token']}", json={"x": 1})
        assert by_query.status_code == 202, by_query.text
        assert by_query.json() == {"run_id": by_query.json()["run_id"], "status": "queued"}
        by_bearer = await client.post(
            f"/hooks/{hook['hook_id']}", json={"x": 2}, headers={"Authorization": f"Bearer {hook['token']}"}
        )
        assert by_bearer.status_code == 202, by_bearer.text
        empty = await client.post(f"/hooks/{hook['hook_id']}?token={hook['token']}")
        assert empty.status_code == 202
    run = await api.engine.wait_for_run(by_bearer.json()["run_id"], timeout=10)
    assert run.status == RunStatus.SUCCEEDED and run.output["sum"] == 5
    assert run.trigger == Trigger.WEBHOOK and run.input == {"x": 2}
    assert (await api.engine.wait_for_run(empty.json()["run_id"], timeout=10)).input == {}
    counts = api.app.state.context.triggers.webhook_counts  # type: ignore[attr-defined]
    assert counts["accepted"] == 3


async def test_every_refusal_is_the_same_404(api: Api) -> None:
    await make_workflow(api, "adder", THREE_STEPS)
    old = await enable(api, "adder")
    hook = await enable(api, "adder")  # regenerated: the old id and token die
    await make_workflow(api, "other", THREE_STEPS)
    disabled = await enable(api, "other")
    assert (await api.client.delete(f"{BASE}/other/webhook")).status_code == 204
    hid, token = hook["hook_id"], hook["token"]
    async with anonymous(api) as client:
        refusals = [
            await client.post(f"/hooks/{hid}?token=wrong", json={}),
            await client.post(f"/hooks/{hid}", json={}),
            await client.post(f"/hooks/{hid}", json={}, headers={"Authorization": "Bearer wrong"}),
            await client.post(f"/hooks/{hid}", json={}, headers={"Authorization": f"Basic {token}"}),
            await client.post(f"/hooks/{hid}?token={old['token']}", json={}),
            await client.post(f"/hooks/{old['hook_id']}?token={old['token']}", json={}),
            await client.post(f"/hooks/{old['hook_id']}?token={token}", json={}),
            await client.post(f"/hooks/unknown-hook?token={token}", json={}),
            await client.post(f"/hooks/{'x' * 300}?token={token}", json={}),
            await client.post(f"/hooks/{disabled['hook_id']}?token={disabled['token']}", json={}),
            await client.post(f"/hooks/{hid}?token=wrong", content=b"{not json"),  # auth comes first
        ]
        assert (await client.post(f"/hooks/{hid}?token={token}", json={})).status_code == 202
    assert {r.status_code for r in refusals} == {404}
    assert len({r.content for r in refusals}) == 1
    assert refusals[0].headers["content-type"] == "application/problem+json"
    counts = api.app.state.context.triggers.webhook_counts  # type: ignore[attr-defined]
    assert counts["rejected"] == len(refusals)


async def test_bodies_malformed_400_not_an_object_422_too_large_413(api: Api) -> None:
    await make_workflow(api, "adder", THREE_STEPS)
    hook = await enable(api, "adder")
    url = f"/hooks/{hook['hook_id']}?token={hook['token']}"
    async with anonymous(api) as client:
        malformed = await client.post(url, content=b'{"x": ', headers={"Content-Type": "application/json"})
        assert malformed.status_code == 400, malformed.text
        assert malformed.headers["content-type"] == "application/problem+json"
        for body in (b"[1, 2]", b'"text"', b"3", b"null"):
            response = await client.post(url, content=body)
            assert response.status_code == 422, (body, response.text)
        too_large = await client.post(url, content=b'{"x": "' + b"a" * (64 * 1024) + b'"}')
        assert too_large.status_code == 413
        assert (await client.post(f"{url}&wait=301", json={})).status_code == 422
        long_key = await client.post(url, json={}, headers={"Idempotency-Key": "k" * 201})
        assert long_key.status_code == 422


async def test_wait_returns_the_workflows_own_answer(api: Api) -> None:
    await make_workflow(api, "early", RESPOND_THEN_SLEEP)
    hook = await enable(api, "early")
    async with anonymous(api) as client:
        started = time.monotonic()
        response = await client.post(f"/hooks/{hook['hook_id']}?token={hook['token']}&wait=30", json={"a": 1})
        assert time.monotonic() - started < 5
    assert response.status_code == 201, response.text
    assert response.json() == {"ok": True, "got": {"a": 1}}
    assert response.headers["x-answer"] == "early"


async def test_the_workflow_toml_sets_the_default_wait(api: Api) -> None:
    await make_workflow(api, "adder", THREE_STEPS, toml="[webhook]\nwait = 10\n")
    hook = await enable(api, "adder")
    async with anonymous(api) as client:
        waited = await client.post(f"/hooks/{hook['hook_id']}?token={hook['token']}", json={"x": 1})
        assert waited.status_code == 200, waited.text
        assert waited.json()["output"]["sum"] == 4
        at_once = await client.post(f"/hooks/{hook['hook_id']}?token={hook['token']}&wait=0", json={"x": 1})
        assert at_once.status_code == 202


async def test_idempotency_key_header_returns_the_same_run(api: Api) -> None:
    await make_workflow(api, "adder", THREE_STEPS)
    hook = await enable(api, "adder")
    url = f"/hooks/{hook['hook_id']}?token={hook['token']}"
    async with anonymous(api) as client:
        first = await client.post(url, json={"x": 1}, headers={"Idempotency-Key": "delivery-7"})
        second = await client.post(url, json={"x": 2}, headers={"Idempotency-Key": "delivery-7"})
        third = await client.post(url, json={"x": 3}, headers={"Idempotency-Key": "delivery-8"})
    assert first.status_code == 202
    assert second.json()["run_id"] == first.json()["run_id"]
    assert second.headers["idempotent-replayed"] == "true"
    assert third.json()["run_id"] != first.json()["run_id"]
    counts = api.app.state.context.triggers.webhook_counts  # type: ignore[attr-defined]
    assert (counts["accepted"], counts["duplicate"]) == (2, 1)


async def test_hmac_signature_is_required_when_the_workflow_has_a_secret(api: Api) -> None:
    await make_workflow(api, "adder", THREE_STEPS)
    hook = await enable(api, "adder", with_hmac=True)
    secret = hook["hmac_secret"]
    url = f"/hooks/{hook['hook_id']}?token={hook['token']}"
    body = b'{"x": 5}'
    async with anonymous(api) as client:
        good = await client.post(url, content=body, headers=signed(secret, body))
        assert good.status_code == 202, good.text
        unsigned = await client.post(url, content=body)
        wrong_secret = await client.post(url, content=body, headers=signed("not the secret", body))
        other_body = await client.post(url, content=b'{"x": 6}', headers=signed(secret, body))
        stale = await client.post(url, content=body, headers=signed(secret, body, int(time.time()) - 301))
        future = await client.post(url, content=body, headers=signed(secret, body, int(time.time()) + 301))
        garbage = await client.post(
            url, content=body, headers={"X-Signature": "md5=abc", "X-Signature-Timestamp": "yesterday"}
        )
        # The token is still checked first: a good signature with a wrong token is the usual 404.
        wrong_token = f"/hooks/{hook['hook_id']}?token=wrong"
        no_token = await client.post(wrong_token, content=body, headers=signed(secret, body))
    for refused in (unsigned, wrong_secret, other_body, stale, future, garbage):
        assert refused.status_code == 401, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
    assert no_token.status_code == 404
    run = await api.engine.wait_for_run(good.json()["run_id"], timeout=10)
    assert run.input == {"x": 5}
    counts = api.app.state.context.triggers.webhook_counts  # type: ignore[attr-defined]
    assert counts["bad_signature"] == 6


async def test_a_webhook_of_a_workflow_never_deployed_is_409(api: Api) -> None:
    await make_workflow(api, "draft-only", THREE_STEPS, deploy=False)
    hook = await enable(api, "draft-only")
    async with anonymous(api) as client:
        response = await client.post(f"/hooks/{hook['hook_id']}?token={hook['token']}", json={})
    assert response.status_code == 409


async def test_a_hook_used_before_still_follows_regenerate_disable_and_deploy(api: Api) -> None:
    """Hooks that were used are cached; every change must still take effect on the very next call."""
    await make_workflow(api, "adder", THREE_STEPS)
    first = await enable(api, "adder")
    async with anonymous(api) as client:
        assert (await client.post(f"/hooks/{first['hook_id']}?token={first['token']}", json={})).status_code == 202
        assert (await client.post(f"/hooks/{first['hook_id']}?token=wrong", json={})).status_code == 404
        assert (await client.post(f"/hooks/{first['hook_id']}?token={first['token']}", json={})).status_code == 202
        second = await enable(api, "adder")
        refused = await client.post(f"/hooks/{first['hook_id']}?token={first['token']}", json={})
        assert refused.status_code == 404
        url = f"/hooks/{second['hook_id']}?token={second['token']}"
        assert (await client.post(url, json={})).status_code == 202

        newer = THREE_STEPS.replace('"version": "deployed"', '"version": "v2"')
        await api.engine.deploy("adder", {"main.py": newer}, workspace=WORKSPACE)
        waited = await client.post(f"{url}&wait=10", json={"x": 1})
        assert waited.json()["output"] == {"sum": 4, "version": "v2"}

        assert (await api.client.delete(f"{BASE}/adder/webhook")).status_code == 204
        gone = await client.post(url, json={})
        assert gone.status_code == 404
        assert gone.content == refused.content
