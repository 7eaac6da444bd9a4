"""Workflows over HTTP: drafts, files, lint, deploy, versions, restore and webhooks."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa

from loomwork.model import RunStatus
from loomwork.store import workflows as workflow_store
from loomwork.store.schema import workflows as workflows_table
from loomwork.testing import wait_until

from .conftest import WORKSPACE, Api, MemberFactory

BASE = f"/workspaces/{WORKSPACE}/workflows"
MAIN = "from loomwork import wf\n\n\nasync def execute_workflow(data):\n    wf.log.info('hi')\n    return data\n"
SLEEPER = "from loomwork import wf\n\n\nasync def execute_workflow(data):\n    await wf.sleep(3600)\n    return 1\n"


async def create(api: Api, name: str, files: dict[str, str] | None = None, **extra: object) -> dict[str, object]:
    body: dict[str, object] = {"name": name, **extra}
    if files is not None:
        body["files"] = files
    response = await api.client.post(BASE, json=body)
    assert response.status_code == 201, response.text
    result: dict[str, object] = response.json()
    return result


async def test_create_get_list_patch_delete(api: Api) -> None:
    created = await create(api, "refunds", description="Refund approvals")
    assert created["name"] == "refunds"
    assert created["description"] == "Refund approvals"
    assert set(created["files"]) == {"main.py", "workflow.toml"}  # type: ignore[arg-type]
    assert created["deployed_version"] is None
    assert created["webhook_enabled"] is False
    assert (await api.client.post(f"{BASE}/refunds/lint")).json() == []  # the default files deploy as they are
    await create(api, "alpha", files={"main.py": MAIN})

    again = await api.client.post(BASE, json={"name": "refunds"})
    assert again.status_code == 409
    got = await api.client.get(f"{BASE}/refunds")
    assert got.status_code == 200
    assert got.json()["files"] == created["files"]

    listing = (await api.client.get(BASE)).json()
    assert [w["name"] for w in listing["items"]] == ["alpha", "refunds"]
    assert listing["next_cursor"] is None
    assert "files" not in listing["items"][0]
    assert listing["items"][0]["last_run_status"] is None
    first = (await api.client.get(BASE, params={"limit": 1})).json()
    assert [w["name"] for w in first["items"]] == ["alpha"]
    second = (await api.client.get(BASE, params={"limit": 1, "cursor": first["next_cursor"]})).json()
    assert [w["name"] for w in second["items"]] == ["refunds"]
    assert second["next_cursor"] is None

    patched = await api.client.patch(f"{BASE}/refunds", json={"description": "Refunds", "files": {"main.py": MAIN}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["description"] == "Refunds"
    assert patched.json()["files"] == {"main.py": MAIN}

    renamed = await api.client.patch(f"{BASE}/refunds", json={"name": "refund-approval"})
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "refund-approval"
    assert (await api.client.get(f"{BASE}/refunds")).status_code == 404
    assert (await api.client.patch(f"{BASE}/refund-approval", json={"name": "alpha"})).status_code == 409

    assert (await api.client.delete(f"{BASE}/refund-approval")).status_code == 204
    assert (await api.client.get(f"{BASE}/refund-approval")).status_code == 404
    assert (await api.client.delete(f"{BASE}/refund-approval")).status_code == 404


async def test_unknown_workflow_is_404_everywhere(api: Api) -> None:
    for method, path in [
        ("GET", "nope"),
        ("PATCH", "nope"),
        ("DELETE", "nope"),
        ("PUT", "nope/files/main.py"),
        ("POST", "nope/lint"),
        ("POST", "nope/deploy"),
        ("GET", "nope/versions"),
        ("POST", "nope/versions/1/restore"),
        ("POST", "nope/webhook"),
        ("DELETE", "nope/webhook"),
    ]:
        body = {"content": "x"} if method == "PUT" else ({} if method == "PATCH" else None)
        response = await api.client.request(method, f"{BASE}/{path}", json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"


async def test_bad_bodies_are_422(api: Api) -> None:
    for body in (
        {"name": "Bad Name"},
        {"name": "-leading"},
        {"name": ""},
        {"name": "ok", "colour": "blue"},
        {"name": "ok", "files": {"../escape.py": "x"}},
        {"name": "ok", "files": {"/abs.py": "x"}},
        {"name": "ok", "files": {"main.py": 5}},
    ):
        response = await api.client.post(BASE, json=body)
        assert response.status_code == 422, (body, response.text)
    await create(api, "ok")
    assert (await api.client.patch(f"{BASE}/ok", json={"name": "Not A Slug"})).status_code == 422
    assert (await api.client.patch(f"{BASE}/ok", json={"unknown": 1})).status_code == 422
    assert (await api.client.get(BASE, params={"cursor": "%%%"})).status_code == 422


async def test_put_and_delete_one_file(api: Api) -> None:
    await create(api, "files-wf", files={"main.py": MAIN})
    put = await api.client.put(
        f"{BASE}/files-wf/files/queries/get_order.sql", json={"content": "-- datasource: db\nSELECT 1\n"}
    )
    assert put.status_code == 200, put.text
    assert put.json()["files"]["queries/get_order.sql"].startswith("-- datasource: db")
    replaced = await api.client.put(f"{BASE}/files-wf/files/main.py", json={"content": MAIN + "\n# edited\n"})
    assert replaced.json()["files"]["main.py"].endswith("# edited\n")
    assert (await api.client.put(f"{BASE}/files-wf/files/x.py", json={"text": "x"})).status_code == 422
    assert (await api.client.put(f"{BASE}/files-wf/files/a/../../b.py", json={"content": "x"})).status_code in (
        404,
        422,
    )
    assert (await api.client.put(f"{BASE}/files-wf/files/a//b.py", json={"content": "x"})).status_code == 422

    deleted = await api.client.delete(f"{BASE}/files-wf/files/queries/get_order.sql")
    assert deleted.status_code == 204
    files = (await api.client.get(f"{BASE}/files-wf")).json()["files"]
    assert set(files) == {"main.py"}
    assert (await api.client.delete(f"{BASE}/files-wf/files/queries/get_order.sql")).status_code == 404


async def test_lint_reports_a_syntax_error_with_its_position(api: Api) -> None:
    await create(api, "linted", files={"main.py": MAIN, "helpers.py": "def f(:\n    pass\n"})
    response = await api.client.post(f"{BASE}/linted/lint")
    assert response.status_code == 200, response.text
    diagnostics = response.json()
    assert len(diagnostics) == 1
    error = diagnostics[0]
    assert set(error) == {"file", "line", "col", "end_line", "end_col", "severity", "code", "message"}
    assert (error["file"], error["line"], error["col"], error["severity"], error["code"]) == (
        "helpers.py",
        1,
        7,
        "error",
        "E999",
    )
    # Files in the body are linted instead of the draft, and are not stored.
    given = await api.client.post(f"{BASE}/linted/lint", json={"files": {"main.py": "X = 1\n"}})
    assert [d["code"] for d in given.json()] == ["LW101"]
    assert "helpers.py" in (await api.client.get(f"{BASE}/linted")).json()["files"]
    assert (await api.client.post(f"{BASE}/linted/lint", json={"files": {}, "x": 1})).status_code == 422


async def test_deploy_is_refused_with_diagnostics_then_succeeds(api: Api) -> None:
    await create(api, "deployme", files={"main.py": "async def execute_workflow(data):\n    return data +\n"})
    refused = await api.client.post(f"{BASE}/deployme/deploy")
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["status"] == 422
    assert "not deployed" in problem["detail"]
    [error] = problem["errors"]
    assert error["loc"] == ["main.py", 2, error["col"]]
    assert error["code"] == "E999"
    assert error["severity"] == "error"
    assert error["msg"] == error["message"]
    assert (await api.client.get(f"{BASE}/deployme")).json()["deployed_version"] is None
    assert (await api.client.get(f"{BASE}/deployme/versions")).json()["items"] == []

    await api.client.put(f"{BASE}/deployme/files/main.py", json={"content": MAIN})
    first = await api.client.post(f"{BASE}/deployme/deploy")
    assert first.status_code == 200, first.text
    assert first.json()["version"] == 1
    assert first.json()["warnings"] == []
    same = await api.client.post(f"{BASE}/deployme/deploy")
    assert same.json()["version"] == 1  # identical draft: no new version
    await api.client.put(f"{BASE}/deployme/files/helpers.py", json={"content": "import os\n"})
    second = await api.client.post(f"{BASE}/deployme/deploy")
    assert second.json()["version"] == 2
    assert [w["code"] for w in second.json()["warnings"]] == ["F401"]  # warnings do not block
    assert (await api.client.get(f"{BASE}/deployme")).json()["deployed_version"] == 2
    latest = await api.engine.latest_version("deployme", workspace=WORKSPACE)
    assert latest.number == 2
    assert latest.files["helpers.py"] == "import os\n"


async def test_versions_list_and_restore(api: Api) -> None:
    await create(api, "versioned", files={"main.py": MAIN})
    for n in range(1, 4):
        await api.client.put(f"{BASE}/versioned/files/note.txt", json={"content": f"v{n}"})
        assert (await api.client.post(f"{BASE}/versioned/deploy")).json()["version"] == n
    listing = (await api.client.get(f"{BASE}/versioned/versions")).json()
    assert [v["number"] for v in listing["items"]] == [3, 2, 1]
    assert listing["items"][0]["file_count"] == 2
    assert listing["items"][0]["created_at"].endswith("Z")
    page1 = (await api.client.get(f"{BASE}/versioned/versions", params={"limit": 2})).json()
    assert [v["number"] for v in page1["items"]] == [3, 2]
    page2 = await api.client.get(f"{BASE}/versioned/versions", params={"limit": 2, "cursor": page1["next_cursor"]})
    assert [v["number"] for v in page2.json()["items"]] == [1]
    assert page2.json()["next_cursor"] is None
    one = (await api.client.get(f"{BASE}/versioned/versions/1")).json()
    assert one["files"]["note.txt"] == "v1"

    await api.client.put(f"{BASE}/versioned/files/extra.py", json={"content": "X = 1\n"})
    restored = await api.client.post(f"{BASE}/versioned/versions/1/restore")
    assert restored.status_code == 200, restored.text
    assert restored.json()["files"] == {"main.py": MAIN, "note.txt": "v1"}
    assert restored.json()["deployed_version"] == 3  # restoring edits the draft only
    assert (await api.client.post(f"{BASE}/versioned/versions/9/restore")).status_code == 404
    assert (await api.client.post(f"{BASE}/versioned/versions/0/restore")).status_code == 422


async def test_test_snapshots_are_not_versions(api: Api) -> None:
    """Versions numbered <= 0 (test snapshots of drafts) are invisible to listings and ``deployed_version``."""
    await create(api, "snap", files={"main.py": MAIN})
    await api.engine.db.write(_insert_version, WORKSPACE, "snap", -1, {"main.py": MAIN})
    assert (await api.client.get(f"{BASE}/snap")).json()["deployed_version"] is None
    assert (await api.client.get(f"{BASE}/snap/versions")).json()["items"] == []
    assert (await api.client.post(f"{BASE}/snap/deploy")).json()["version"] == 1
    assert (await api.client.get(f"{BASE}/snap")).json()["deployed_version"] == 1


def _insert_version(tx: object, workspace: str, workflow: str, number: int, files: dict[str, str]) -> None:
    from loomwork.store import utcnow
    from loomwork.store.schema import workflow_versions

    tx.conn.execute(  # type: ignore[attr-defined]
        workflow_versions.insert().values(
            workspace=workspace, workflow=workflow, number=number, files=files, created_at=utcnow()
        )
    )


async def test_delete_and_rename_are_refused_while_a_run_is_in_progress(api: Api) -> None:
    await create(api, "sleepy", files={"main.py": SLEEPER})
    assert (await api.client.post(f"{BASE}/sleepy/deploy")).status_code == 200
    run = await api.engine.start_run("sleepy", {}, workspace=WORKSPACE)
    refused = await api.client.delete(f"{BASE}/sleepy")
    assert refused.status_code == 409
    assert "in progress" in refused.json()["detail"]
    assert (await api.client.patch(f"{BASE}/sleepy", json={"name": "sleepier"})).status_code == 409
    listing = (await api.client.get(BASE)).json()["items"]
    assert listing[0]["last_run_status"] in {"queued", "running", "waiting"}

    await api.engine.cancel_run(run.id, workspace=WORKSPACE)

    async def finished() -> bool:
        return (await api.engine.get_run(run.id)).status is RunStatus.CANCELLED

    await wait_until(finished, timeout=10, message="the run is cancelled")
    assert (await api.client.delete(f"{BASE}/sleepy")).status_code == 204


async def test_viewers_read_developers_write(api: Api, as_member: MemberFactory) -> None:
    await create(api, "shared", files={"main.py": MAIN})
    viewer = await as_member("viewer@acme.test", "viewer")
    operator = await as_member("op@acme.test", "operator")
    developer = await as_member("dev@acme.test", "developer")
    async with viewer, operator, developer:
        assert (await viewer.get(f"{BASE}/shared")).status_code == 200
        assert (await viewer.get(BASE)).status_code == 200
        assert (await viewer.post(f"{BASE}/shared/lint")).status_code == 200
        assert (await viewer.get(f"{BASE}/shared/versions")).status_code == 200
        for client in (viewer, operator):
            assert (await client.post(f"{BASE}/shared/deploy")).status_code == 403
            assert (await client.post(BASE, json={"name": "mine"})).status_code == 403
            assert (await client.patch(f"{BASE}/shared", json={"description": "x"})).status_code == 403
            assert (await client.put(f"{BASE}/shared/files/a.py", json={"content": "x"})).status_code == 403
            assert (await client.delete(f"{BASE}/shared/files/main.py")).status_code == 403
            assert (await client.post(f"{BASE}/shared/webhook")).status_code == 403
            assert (await client.delete(f"{BASE}/shared")).status_code == 403
        assert (await developer.post(f"{BASE}/shared/deploy")).json()["version"] == 1
        assert (await developer.post(BASE, json={"name": "mine"})).status_code == 201
        assert (await developer.delete(f"{BASE}/mine")).status_code == 204


async def test_webhook_token_is_shown_once_hashed_and_regenerated(api: Api) -> None:
    await create(api, "hooked", files={"main.py": MAIN})
    enabled = await api.client.post(f"{BASE}/hooked/webhook")
    assert enabled.status_code == 200, enabled.text
    hook = enabled.json()
    assert set(hook) == {"url", "token", "hook_id"}
    assert hook["url"] == f"{api.settings.base_url}/api/v1/hooks/{hook['hook_id']}?token={hook['token']}"
    got = await api.client.get(f"{BASE}/hooked")
    assert got.json()["webhook_enabled"] is True
    assert hook["token"] not in got.text
    assert hook["token"] not in (await api.client.get(BASE)).text

    target = await api.engine.db.read(workflow_store.webhook_target, hook["hook_id"])
    assert target is not None
    assert target[:3] == (WORKSPACE, "hooked", hashlib.sha256(hook["token"].encode()).hexdigest())

    again = (await api.client.post(f"{BASE}/hooked/webhook")).json()
    assert again["token"] != hook["token"]
    assert again["hook_id"] != hook["hook_id"]
    assert await api.engine.db.read(workflow_store.webhook_target, hook["hook_id"]) is None
    assert await api.engine.db.read(workflow_store.webhook_target, again["hook_id"]) is not None

    assert (await api.client.delete(f"{BASE}/hooked/webhook")).status_code == 204
    assert (await api.client.get(f"{BASE}/hooked")).json()["webhook_enabled"] is False
    assert await api.engine.db.read(workflow_store.webhook_target, again["hook_id"]) is None


async def test_webhook_hmac_secret_is_shown_once_and_stored_encrypted(api: Api) -> None:
    await create(api, "signed", files={"main.py": MAIN})
    service = api.app.state.context.workflows  # type: ignore[attr-defined]
    plain = (await api.client.post(f"{BASE}/signed/webhook", json={})).json()
    assert "hmac_secret" not in plain
    assert await service.webhook_hmac_secret(WORKSPACE, "signed") is None

    hook = (await api.client.post(f"{BASE}/signed/webhook", json={"hmac": True})).json()
    secret = hook["hmac_secret"]
    assert len(secret) >= 32
    got = await api.client.get(f"{BASE}/signed")
    assert got.json()["webhook_hmac"] is True
    assert secret not in got.text
    stored = await api.engine.db.read(_stored_hmac, WORKSPACE, "signed")
    assert stored is not None
    assert secret not in stored
    assert await service.webhook_hmac_secret(WORKSPACE, "signed") == secret.encode()

    assert (await api.client.post(f"{BASE}/signed/webhook", json={"hmac": "maybe"})).status_code == 422
    assert (await api.client.post(f"{BASE}/signed/webhook", json={"other": 1})).status_code == 422
    await api.client.post(f"{BASE}/signed/webhook")  # regenerating without hmac drops the secret
    assert await service.webhook_hmac_secret(WORKSPACE, "signed") is None


def _stored_hmac(tx: object, workspace: str, name: str) -> str | None:
    value: str | None = tx.conn.execute(  # type: ignore[attr-defined]
        sa.select(workflows_table.c.webhook_hmac_secret).where(
            workflows_table.c.workspace == workspace, workflows_table.c.name == name
        )
    ).scalar_one()
    return value
