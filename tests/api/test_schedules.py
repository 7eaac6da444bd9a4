"""``PUT/DELETE /workspaces/{ws}/workflows/{wf}/schedule``: validation, roles, and the workflow view."""

from __future__ import annotations

from datetime import datetime, timedelta

from loomwork.store import utcnow, workflows

from .conftest import WORKSPACE, Api, MemberFactory

MAIN = "async def execute_workflow(data):\n    return data\n"
BASE = f"/workspaces/{WORKSPACE}/workflows"


async def make_workflow(api: Api, name: str = "nightly") -> str:
    await api.engine.db.write(workflows.create_workflow, WORKSPACE, name, "", {"main.py": MAIN})
    return f"{BASE}/{name}/schedule"


async def test_put_schedule_answers_the_schedule_with_its_next_firing(api: Api) -> None:
    url = await make_workflow(api)
    body = {"cron": "*/5 * * * *", "timezone": "Europe/Berlin", "data": {"report": "daily"}, "enabled": True}
    before = utcnow()
    response = await api.client.put(url, json=body)
    assert response.status_code == 200, response.text
    got = response.json()
    assert {k: got[k] for k in ("cron", "timezone", "data", "enabled")} == {k: body[k] for k in got if k in body}
    next_at = datetime.fromisoformat(got["next_fire_at"])
    assert got["next_fire_at"].endswith("Z")
    assert before < next_at <= before + timedelta(minutes=5) and next_at.minute % 5 == 0 and next_at.second == 0
    shown = (await api.client.get(f"{BASE}/nightly")).json()["schedule"]
    assert shown == got


async def test_put_schedule_defaults_to_utc_and_empty_data(api: Api) -> None:
    url = await make_workflow(api)
    response = await api.client.put(url, json={"cron": "0 9 * * mon-fri"})
    assert response.status_code == 200, response.text
    got = response.json()
    assert (got["timezone"], got["data"], got["enabled"]) == ("UTC", {}, True)
    assert datetime.fromisoformat(got["next_fire_at"]).hour == 9
    disabled = await api.client.put(url, json={"cron": "0 9 * * *", "enabled": False})
    assert disabled.json()["enabled"] is False and disabled.json()["next_fire_at"] is None


BAD = [
    ({"cron": "61 * * * *"}, "invalid cron expression"),
    ({"cron": "* * * *"}, "exactly 5"),
    ({"cron": "* * * * * *"}, "exactly 5"),
    ({"cron": "0 0 31 2 *"}, "never fires"),
    ({"cron": "*/5 * * * *", "timezone": "Mars/Olympus"}, "unknown time zone"),
    ({"cron": "*/5 * * * *", "data": [1, 2]}, "not valid"),
    ({"cron": "*/5 * * * *", "extra": 1}, "not valid"),
    ({}, "not valid"),
]


async def test_bad_schedules_are_422_problems(api: Api) -> None:
    url = await make_workflow(api)
    for body, needle in BAD:
        response = await api.client.put(url, json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert needle in response.json()["detail"], (body, response.text)
    assert (await api.client.get(f"{BASE}/nightly")).json()["schedule"] is None


async def test_unknown_workflow_is_404(api: Api) -> None:
    assert (await api.client.put(f"{BASE}/nope/schedule", json={"cron": "* * * * *"})).status_code == 404
    assert (await api.client.delete(f"{BASE}/nope/schedule")).status_code == 404


async def test_schedules_need_the_developer_role(api: Api, as_member: MemberFactory) -> None:
    url = await make_workflow(api)
    for role in ("viewer", "operator"):
        async with await as_member(f"{role}@acme.test", role) as client:
            assert (await client.put(url, json={"cron": "* * * * *"})).status_code == 403
            assert (await client.delete(url)).status_code == 403
    async with await as_member("dev@acme.test", "developer") as dev:
        assert (await dev.put(url, json={"cron": "* * * * *"})).status_code == 200


async def test_delete_removes_the_schedule(api: Api) -> None:
    url = await make_workflow(api)
    assert (await api.client.put(url, json={"cron": "0 * * * *"})).status_code == 200
    response = await api.client.delete(url)
    assert response.status_code == 204
    assert (await api.client.get(f"{BASE}/nightly")).json()["schedule"] is None
