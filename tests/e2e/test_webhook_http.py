"""The webhook over real HTTP (uvicorn in a separate process): tokens, bodies, limits, waiting, idempotency."""

from __future__ import annotations

import httpx

from .helpers import WS, check, deploy, eventually, run_of
from .server import ServerProcess

RESPONDS = (
    "from loomwork import wf\n\n"
    "async def execute_workflow(data):\n"
    "    wf.respond(201, {'accepted': data.get('order')}, {'X-Order': str(data.get('order'))})\n"
    "    await wf.sleep(wf.seconds(30))\n"
    "    return 'later'\n"
)


def test_webhook_answers_over_http(server: ServerProcess) -> None:
    with server.client() as admin:
        deploy(admin, "hooked", RESPONDS)
        first = check(admin.post(f"{WS}/workflows/hooked/webhook"), 200)
        second = check(admin.post(f"{WS}/workflows/hooked/webhook"), 200)  # regenerate: the first token dies
    hook_path = f"{server.base_url}/api/v1/hooks/{second['hook_id']}"
    token = second["token"]
    with httpx.Client(timeout=30) as http:
        not_found = [
            http.post(hook_path, json={}, params={"token": "wrong"}),
            http.post(hook_path, json={}),
            http.post(first["url"], json={}),
            http.post(f"{server.base_url}/api/v1/hooks/no-such-hook", json={}, params={"token": token}),
        ]
        assert [r.status_code for r in not_found] == [404] * 4
        assert len({r.text for r in not_found}) == 1  # identical answers: nothing leaks

        malformed = http.post(
            hook_path, params={"token": token}, content=b'{"order": ', headers={"Content-Type": "application/json"}
        )
        assert malformed.status_code == 400
        assert malformed.headers["content-type"] == "application/problem+json"
        assert http.post(hook_path, params={"token": token}, json=[1, 2]).status_code == 422
        oversized = http.post(hook_path, params={"token": token}, content=b'{"x": "' + b"a" * (11 << 20) + b'"}')
        assert oversized.status_code == 413

        answered = http.post(
            hook_path, params={"token": token, "wait": "10"}, json={"order": 7}, headers={"Idempotency-Key": "o-7"}
        )
        assert answered.status_code == 201, answered.text
        assert answered.json() == {"accepted": 7}
        assert answered.headers["x-order"] == "7"
        run_id = answered.headers["loomwork-run-id"]
        again = http.post(
            hook_path,
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "o-7"},
            json={"order": 8},
        )
        assert again.status_code in (200, 202) and again.json()["run_id"] == run_id

    with server.client() as admin:
        runs = check(admin.get(f"{WS}/workflows/hooked/runs"), 200)["items"]
        assert [r["id"] for r in runs] == [run_id]
        assert runs[0]["input"] == {"order": 7} and runs[0]["trigger"] == "webhook"


PINNED_V1 = (
    "from loomwork import wf\n\n"
    "async def execute_workflow(data):\n"
    "    d = await wf.assign_request('go', ['Go'], to_users=['admin@e2e.test'])\n"
    "    return 'v1'\n"
)


def test_runs_stay_on_their_version_when_a_new_one_is_deployed(server: ServerProcess) -> None:
    with server.client() as admin:
        deploy(admin, "pinned", PINNED_V1)
        old = check(admin.post(f"{WS}/workflows/pinned/runs", json={"data": {}}), 202)["run_id"]
        v2 = PINNED_V1.replace("'v1'", "'v2'")
        check(admin.put(f"{WS}/workflows/pinned/files/main.py", json={"content": v2}), 200)
        assert check(admin.post(f"{WS}/workflows/pinned/deploy"), 200)["version"] == 2
        new = check(admin.post(f"{WS}/workflows/pinned/runs", json={"data": {}}), 202)["run_id"]
        for run_id in (old, new):
            requests = eventually(lambda r=run_id: run_of(admin, r)["requests"], what="the run's request")
            check(admin.post(f"{WS}/requests/{requests[0]['id']}/resolve", json={"resolution": "Go"}), 200)
        answers = {}
        for run_id in (old, new):
            run = eventually(lambda r=run_id: (x := run_of(admin, r))["status"] == "succeeded" and x, what="done")
            answers[run_id] = (run["version"], run["output"])
        assert answers == {old: (1, "v1"), new: (2, "v2")}
