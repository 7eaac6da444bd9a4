"""The Appsmith-style refund approval, end to end against a real server process over HTTP."""

from __future__ import annotations

import asyncio

from loomwork.mailsink import MailSink

from .helpers import WS, add_member, check, deploy, deploy_example, eventually, run_of
from .server import ServerProcess


def test_refund_approval_from_webhook_to_decision(server: ServerProcess, mail: MailSink) -> None:
    with server.client() as admin:
        deploy_example(admin)
        finance_key = add_member(admin, server, "fin@e2e.test", "operator", groups=("finance",))
        outsider_key = add_member(admin, server, "out@e2e.test", "operator")
        hook = check(admin.post(f"{WS}/workflows/refund-approval/webhook"), 200)

    with server.client(token="") as outside_world:
        accepted = outside_world.post(hook["url"].replace(server.base_url + "/api/v1", ""), json={"order_id": 2})
        assert accepted.status_code == 202, accepted.text
        run_id = accepted.json()["run_id"]

    with server.client(token=finance_key) as finance, server.client(token=outsider_key) as outsider:
        pending = eventually(
            lambda: check(finance.get(f"{WS}/requests"), 200)["items"], what="the request in finance's inbox"
        )
        assert [r["request_name"] for r in pending] == ["refund"]
        request = pending[0]
        assert request["run_id"] == run_id
        assert request["metadata"]["order"]["customer"] == "Grace Hopper"
        assert check(outsider.get(f"{WS}/requests"), 200)["items"] == []

        resolve = f"{WS}/requests/{request['id']}/resolve"
        assert outsider.post(resolve, json={"resolution": "Approve"}).status_code in (403, 404)
        assert finance.post(resolve, json={"resolution": "Maybe"}).status_code == 422
        resolved = check(finance.post(resolve, json={"resolution": "Approve", "metadata": {"note": "ok"}}), 200)
        assert resolved["status"] == "resolved"
        assert resolved["resolved_by"] == "fin@e2e.test"
        assert finance.post(resolve, json={"resolution": "Reject"}).status_code == 409

    with server.client() as admin:
        run = eventually(lambda: (r := run_of(admin, run_id))["status"] == "succeeded" and r, what="run succeeded")
        assert run["output"] == {"refunded": True, "approved_by": "fin@e2e.test"}
        assert run["trigger"] == "webhook"
        kinds = [step["kind"] for step in run["steps"]]
        assert kinds.count("query") == 3 and "request" in kinds
        history = check(admin.get(f"{WS}/workflows/refund-approval/runs", params={"status": "succeeded"}), 200)
        assert [item["id"] for item in history["items"]] == [run_id]
    # The customer was told, over SMTP.
    [message] = mail.messages()
    text = message.read_text()
    assert "To: grace@example.com" in text
    assert "Subject: Your refund for order 2" in text
    assert "was approved" in text


def test_twenty_parallel_resolves_one_wins(server: ServerProcess) -> None:
    main_py = (
        "from loomwork import wf\n\n"
        "async def execute_workflow(data):\n"
        "    d = await wf.assign_request('ok', ['Yes', 'No'], to_groups=['deciders'])\n"
        "    return d.resolution\n"
    )
    with server.client() as admin:
        deploy(admin, "race", main_py)
        keys = [add_member(admin, server, f"d{i}@e2e.test", "viewer", groups=("deciders",)) for i in range(4)]
        run_id = check(admin.post(f"{WS}/workflows/race/runs", json={"data": {}}), 202)["run_id"]
        request = eventually(lambda: run_of(admin, run_id)["requests"], what="the request")[0]

    async def race() -> list[int]:
        clients = [server.async_client(token=keys[i % len(keys)]) for i in range(20)]
        try:
            answers = await asyncio.gather(
                *(
                    c.post(f"{WS}/requests/{request['id']}/resolve", json={"resolution": "Yes" if i % 2 else "No"})
                    for i, c in enumerate(clients)
                )
            )
            return sorted(a.status_code for a in answers)
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))

    statuses = asyncio.run(race())
    assert statuses == [200] + [409] * 19
    with server.client() as admin:
        run = eventually(lambda: (r := run_of(admin, run_id))["status"] == "succeeded" and r, what="run finished")
        assert run["output"] == run["requests"][0]["resolution"]
