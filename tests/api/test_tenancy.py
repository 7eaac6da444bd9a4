"""Tenancy (guarantee §8.5): a key of workspace A gets 404 for every object of workspace B.

The paths come from the OpenAPI document, so an endpoint added later is covered without editing this test.
Workspace B is filled with one of everything (workflow with a deployed version, a webhook and a schedule, a
waiting run with a request, a group, a member, an API key); each path is called with B's names and ids and
A's admin key, with every method the document lists.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from loomwork.testing import wait_until

from .conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api

WAITING = (
    "from loomwork import wf\n\n"
    "async def execute_workflow(data):\n"
    "    d = await wf.assign_request('ok', ['Yes'], to_groups=['team'])\n"
    "    return d.resolution\n"
)

#: Paths outside any workspace: checked by their own tests (login, hooks by token, signed links, health).
UNSCOPED = re.compile(r"^/api/v1/(auth/|me$|workspaces$|hooks/|links/)|^/(healthz|metrics)")


async def _fill_workspace_b(api: Api) -> dict[str, str]:
    async with api.client_with(None) as browser:
        login = await browser.post("/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        token = login.json()["token"]
    async with api.client_with(token) as b:
        assert (await b.post("/workspaces", json={"slug": "beta"})).status_code == 201
        member = await b.post("/workspaces/beta/members", json={"email": "bob@beta.test", "role": "viewer"})
        assert member.status_code == 201
        assert (await b.put("/workspaces/beta/groups/team", json={"members": [ADMIN_EMAIL]})).status_code == 200
        key = (await b.post("/workspaces/beta/api-keys", json={"name": "b"})).json()
        created = await b.post(
            "/workspaces/beta/workflows", json={"name": "secret-flow", "files": {"main.py": WAITING}}
        )
        assert created.status_code == 201, created.text
        assert (await b.post("/workspaces/beta/workflows/secret-flow/deploy")).status_code == 200
        assert (await b.post("/workspaces/beta/workflows/secret-flow/webhook")).status_code == 200
        schedule = {"cron": "0 3 * * *", "timezone": "UTC", "data": {}, "enabled": False}
        assert (await b.put("/workspaces/beta/workflows/secret-flow/schedule", json=schedule)).status_code == 200
        run = await b.post("/workspaces/beta/workflows/secret-flow/runs", json={"data": {"x": 1}})
        run_id = run.json()["run_id"]

        async def request_id() -> str | None:
            detail = (await b.get(f"/workspaces/beta/runs/{run_id}")).json()
            return detail["requests"][0]["id"] if detail["requests"] else None

        rid = await wait_until(request_id, message="B's request")
    return {
        "ws": "beta",
        "wf": "secret-flow",
        "run_id": run_id,
        "id": rid,
        "request_id": rid,
        "group": "team",
        "email": "bob@beta.test",
        "key_id": key["id"],
        "number": "1",
        "n": "1",
        "path": "main.py",
        "query": "q",
        "name": "db",
        "datasource": "db",
    }


async def test_a_key_of_workspace_a_gets_404_for_everything_of_workspace_b(api: Api) -> None:
    names = await _fill_workspace_b(api)
    document = (await api.client.get("/openapi.json")).json()
    checked = 0
    for path, operations in document["paths"].items():
        if UNSCOPED.search(path):
            continue
        assert path.startswith("/api/v1/workspaces/{ws}"), f"{path} is not under a workspace; add it to UNSCOPED"
        concrete = re.sub(r"\{(\w+)(?::path)?\}", lambda m: names[m.group(1)], path)
        for method in operations:
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            kwargs: dict[str, Any] = {"json": {}} if method in ("post", "put", "patch") else {}
            response = await api.client.request(method.upper(), concrete.removeprefix("/api/v1"), **kwargs)
            assert response.status_code == 404, f"{method.upper()} {concrete}: {response.status_code} {response.text}"
            assert "secret-flow" not in response.text or "not found" in response.text
            checked += 1
    assert checked >= 25
    # And nothing of B shows in A's own lists.
    listed = await api.client.get("/workspaces")
    assert [w["slug"] for w in listed.json()["items"]] == ["acme"]
    requests = await api.client.get("/workspaces/acme/requests", params={"all": "true"})
    assert requests.json()["items"] == []
    runs = await api.client.get("/workspaces/acme/runs")
    assert runs.json()["items"] == []


@pytest.mark.parametrize("path", ["/workspaces/beta/runs/{run_id}", "/workspaces/acme/runs/{run_id}"])
async def test_a_run_of_b_is_not_found_under_either_workspace(api: Api, path: str) -> None:
    names = await _fill_workspace_b(api)
    response = await api.client.get(path.format(**names))
    assert response.status_code == 404
