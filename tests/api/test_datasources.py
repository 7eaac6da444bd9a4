"""Datasources over HTTP: write-only sealed secrets, validation per kind, connection tests, queries from workflows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from loomwork.model import RunStatus

from .conftest import WORKSPACE, Api, MemberFactory

DS = f"/workspaces/{WORKSPACE}/datasources"
SECRET = "s3cr3t-PW-7f1d9e"  # distinctive, so that finding it anywhere is unambiguous


def _shop(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, amount NUMERIC)")
        conn.execute("INSERT INTO orders VALUES (1, 'Ada', 7.5), (2, 'Grace', 129)")
    return path


async def test_crud_with_write_only_secrets(api: Api, tmp_path: Path) -> None:
    body = {
        "name": "warehouse",
        "kind": "postgres",
        "config": {"host": "127.0.0.1", "port": 5432, "database": "test", "user": "postgres"},
        "secrets": {"password": SECRET},
    }
    created = await api.client.post(DS, json=body)
    assert created.status_code == 201, created.text
    assert created.json()["secrets"] == ["password"]
    assert SECRET not in created.text
    listed = await api.client.get(DS)
    assert [d["name"] for d in listed.json()["items"]] == ["warehouse"] and SECRET not in listed.text
    one = await api.client.get(f"{DS}/warehouse")
    assert one.json()["config"]["host"] == "127.0.0.1" and SECRET not in one.text

    patched = await api.client.patch(f"{DS}/warehouse", json={"config": {"host": "localhost", "port": 5432}})
    assert patched.json()["config"] == {"host": "localhost", "port": 5432}
    assert patched.json()["secrets"] == ["password"]  # secrets untouched by a config change
    removed = await api.client.patch(f"{DS}/warehouse", json={"secrets": {"password": None, "url": "postgresql://x"}})
    assert removed.json()["secrets"] == ["url"]
    assert (await api.client.post(DS, json={**body, "name": "warehouse"})).status_code == 409
    assert (await api.client.delete(f"{DS}/warehouse")).status_code == 204
    assert (await api.client.get(f"{DS}/warehouse")).status_code == 404


async def test_secrets_are_sealed_in_the_database(api: Api, database_url: str, tmp_path: Path) -> None:
    body = {"name": "cache", "kind": "redis", "config": {}, "secrets": {"url": f"redis://:{SECRET}@127.0.0.1:6379/0"}}
    assert (await api.client.post(DS, json=body)).status_code == 201
    if database_url.startswith("sqlite"):
        db = Path(database_url.removeprefix("sqlite:///"))
        files = list(db.parent.glob(db.name + "*"))
        assert files
        assert all(SECRET.encode() not in f.read_bytes() for f in files)
    else:
        with psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            dump = conn.execute("SELECT row_to_json(d)::text FROM datasources d").fetchall()
        assert dump and all(SECRET not in row[0] for row in dump)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "x", "kind": "oracle"}, "unknown datasource kind"),
        ({"name": "x", "kind": "sqlite", "config": {}}, "config.path"),
        ({"name": "x", "kind": "sqlite", "config": {"path": 3}}, "config.path must be str"),
        ({"name": "x", "kind": "sqlite", "config": {"path": "a.db", "colour": "red"}}, "unknown sqlite config"),
        ({"name": "x", "kind": "redis", "config": {}, "secrets": {}}, "needs the secret(s) url"),
        ({"name": "x", "kind": "rest", "config": {"base_url": "http://x"}, "secrets": {"pin": "1"}}, "unknown rest"),
        ({"name": "Bad Name", "kind": "sqlite", "config": {"path": "a.db"}}, ""),
    ],
)
async def test_bad_datasources_are_422_with_the_reason(api: Api, body: dict[str, object], message: str) -> None:
    response = await api.client.post(DS, json=body)
    assert response.status_code == 422, response.text
    assert message in response.text


async def test_roles(api: Api, as_member: MemberFactory, tmp_path: Path) -> None:
    assert (
        await api.client.post(DS, json={"name": "shop", "kind": "sqlite", "config": {"path": "x.db"}})
    ).status_code == 201
    async with await as_member("viewer@acme.test", "viewer") as viewer:
        assert (await viewer.get(DS)).status_code == 200
        assert (
            await viewer.post(DS, json={"name": "y", "kind": "sqlite", "config": {"path": "y.db"}})
        ).status_code == 403
        assert (await viewer.delete(f"{DS}/shop")).status_code == 403
        assert (await viewer.post(f"{DS}/shop/test")).status_code == 403


async def test_connection_test_reports_the_version_or_the_error(api: Api, tmp_path: Path) -> None:
    shop = _shop(tmp_path)
    await api.client.post(DS, json={"name": "shop", "kind": "sqlite", "config": {"path": str(shop)}})
    good = await api.client.post(f"{DS}/shop/test")
    assert good.status_code == 200
    assert good.json()["ok"] is True and good.json()["result"].startswith("SQLite")
    await api.client.post(
        DS,
        json={
            "name": "nowhere",
            "kind": "sqlite",
            "config": {"path": str(tmp_path / "missing-dir" / "x.db")},
        },
    )
    bad = await api.client.post(f"{DS}/nowhere/test")
    assert bad.status_code == 200 and bad.json()["ok"] is False
    assert "cannot open" in bad.json()["error"]["message"]


MAIN_PY = """from loomwork import wf


async def execute_workflow(data):
    rows = await wf.queries.get_order.run(order_id=data["order_id"])
    return rows
"""
GET_ORDER = "-- datasource: shop\nSELECT id, customer FROM orders WHERE id = {{ params.order_id }}\n"


async def test_workflow_queries_go_through_the_workspace_datasource(api: Api, tmp_path: Path) -> None:
    shop = _shop(tmp_path)
    await api.client.post(DS, json={"name": "shop", "kind": "sqlite", "config": {"path": str(shop)}})
    files = {"main.py": MAIN_PY, "queries/get_order.sql": GET_ORDER}
    assert (
        await api.client.post(f"/workspaces/{WORKSPACE}/workflows", json={"name": "orders", "files": files})
    ).status_code == 201
    assert (await api.client.post(f"/workspaces/{WORKSPACE}/workflows/orders/deploy")).status_code == 200
    answer = await api.client.post(
        f"/workspaces/{WORKSPACE}/workflows/orders/runs", json={"data": {"order_id": 2}, "wait": 20}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["output"] == [{"id": 2, "customer": "Grace"}]
    run = (await api.client.get(f"/workspaces/{WORKSPACE}/runs/{answer.json()['run_id']}")).json()
    query_step = next(s for s in run["steps"] if s["kind"] == "query")
    assert query_step["input"]["params"] == {"order_id": 2}

    # The editor's "Run query", on the draft.
    ran = await api.client.post(
        f"/workspaces/{WORKSPACE}/workflows/orders/queries/get_order/run", json={"params": {"order_id": 1}}
    )
    assert ran.json()["ok"] is True and ran.json()["result"] == [{"id": 1, "customer": "Ada"}]
    missing = await api.client.post(f"/workspaces/{WORKSPACE}/workflows/orders/queries/get_order/run", json={})
    assert missing.json()["ok"] is False and "params.order_id" in missing.json()["error"]["message"]
    assert (
        await api.client.post(f"/workspaces/{WORKSPACE}/workflows/orders/queries/nope/run", json={})
    ).status_code == 404

    # Pointing the datasource elsewhere closes the old connection: the next run reads the new file.
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, amount NUMERIC)")
        conn.execute("INSERT INTO orders VALUES (2, 'Hopper', 1)")
    await api.client.patch(f"{DS}/shop", json={"config": {"path": str(other)}})
    again = await api.client.post(
        f"/workspaces/{WORKSPACE}/workflows/orders/runs", json={"data": {"order_id": 2}, "wait": 20}
    )
    assert again.json()["output"] == [{"id": 2, "customer": "Hopper"}]


async def test_a_query_on_a_missing_datasource_fails_the_run_clearly(api: Api) -> None:
    files = {"main.py": MAIN_PY, "queries/get_order.sql": GET_ORDER}
    await api.client.post(f"/workspaces/{WORKSPACE}/workflows", json={"name": "orders", "files": files})
    await api.client.post(f"/workspaces/{WORKSPACE}/workflows/orders/deploy")
    answer = await api.client.post(
        f"/workspaces/{WORKSPACE}/workflows/orders/runs", json={"data": {"order_id": 2}, "wait": 20}
    )
    assert answer.json()["status"] == RunStatus.FAILED
    assert "uses datasource 'shop', which does not exist" in answer.json()["error"]["message"]


async def test_a_wrong_password_fails_clearly_and_leaks_nowhere(api: Api, database_url: str) -> None:
    """A real MariaDB refuses the password: the test endpoint, the failed run, its logs and the store keep it out."""
    import socket

    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 3306)) != 0:
            from conftest import service_missing

            service_missing("MariaDB not reachable at 127.0.0.1:3306")
    config = {"host": "127.0.0.1", "port": 3306, "database": "test", "user": "root"}
    body = {"name": "shop", "kind": "mysql", "config": config, "secrets": {"password": SECRET}}
    assert (await api.client.post(DS, json=body)).status_code == 201
    tested = await api.client.post(f"{DS}/shop/test")
    assert tested.json()["ok"] is False
    assert "Access denied" in tested.json()["error"]["message"] and SECRET not in tested.text

    files = {"main.py": MAIN_PY, "queries/get_order.sql": GET_ORDER}
    await api.client.post(f"/workspaces/{WORKSPACE}/workflows", json={"name": "orders", "files": files})
    await api.client.post(f"/workspaces/{WORKSPACE}/workflows/orders/deploy")
    answer = await api.client.post(
        f"/workspaces/{WORKSPACE}/workflows/orders/runs", json={"data": {"order_id": 2}, "wait": 30}
    )
    assert answer.json()["status"] == RunStatus.FAILED, answer.text
    assert "Access denied" in answer.json()["error"]["message"]
    run_id = answer.json()["run_id"]
    detail = await api.client.get(f"/workspaces/{WORKSPACE}/runs/{run_id}")
    logs = await api.client.get(f"/workspaces/{WORKSPACE}/runs/{run_id}/logs")
    assert SECRET not in answer.text + detail.text + logs.text
    if database_url.startswith("sqlite"):
        db = Path(database_url.removeprefix("sqlite:///"))
        assert all(SECRET.encode() not in f.read_bytes() for f in db.parent.glob(db.name + "*"))
