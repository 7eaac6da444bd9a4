"""Requests over HTTP: who sees them, resolving (403/422/200/409, exactly once), and one-click links."""

from __future__ import annotations

import asyncio
import textwrap
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

from loomwork.engine import Engine
from loomwork.engine.links import sign
from loomwork.model import Request, RequestStatus, Run, RunStatus
from loomwork.store import workflows as drafts
from loomwork.testing import wait_until

from .conftest import ADMIN_EMAIL, WORKSPACE, Api, MemberFactory

FIN = "fin@acme.test"
OUT = "out@acme.test"

REFUND = """
    from loomwork import wf

    async def execute_workflow(data):
        decision = await wf.assign_request(
            data.get("name", "refund"), ["Approve", "Reject"], message="Refund 12 EUR?",
            to_groups=["finance"], metadata={"order": 7},
        )
        return {"resolution": decision.resolution, "by": decision.resolved_by, "payload": decision.payload}
    """

LINKED = """
    from loomwork import wf

    async def execute_workflow(data):
        handle = await wf.create_request(
            "approve", ["Approve", "Reject"], message="Ship <b>it</b>?", to_users=[data["to"]], links=True,
            timeout=data.get("timeout"),
        )
        wf.log.info("links", links=handle.resolve_links)
        decision = await handle.wait()
        return {"resolution": decision.resolution, "by": decision.resolved_by}
    """


async def deploy(engine: Engine, name: str, code: str) -> None:
    files = {"main.py": textwrap.dedent(code).lstrip()}
    await engine.db.write(drafts.create_workflow, WORKSPACE, name, "", files)
    await engine.deploy(name, files, workspace=WORKSPACE)


async def pending_request(engine: Engine, run_id: str) -> Request:
    async def check() -> Request | None:
        found = [r for r in await engine.list_run_requests(run_id) if r.status == RequestStatus.PENDING]
        return found[0] if found else None

    return await wait_until(check, timeout=15, message=f"a pending request on run {run_id}")


async def finished(engine: Engine, run_id: str) -> Run:
    run = await engine.wait_for_run(run_id, 15)
    assert run.status.is_final, f"run {run_id} still {run.status.value}"
    return run


def items(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.json()["next_cursor"] is None
    found: list[dict[str, Any]] = response.json()["items"]
    return found


async def test_requests_are_visible_to_assignees_and_admins(api: Api, as_member: MemberFactory) -> None:
    fin = await as_member(FIN, "viewer", groups=("finance",))
    out = await as_member(OUT, "viewer")
    await deploy(api.engine, "refund", REFUND)
    run = await api.engine.start_run("refund", {}, workspace=WORKSPACE)
    other = await api.engine.start_run("refund", {"name": "second"}, workspace=WORKSPACE)
    request = await pending_request(api.engine, run.id)
    second = await pending_request(api.engine, other.id)
    base = f"/workspaces/{WORKSPACE}/requests"
    async with fin, out:
        mine = items(await fin.get(base))
        assert [r["id"] for r in mine] == [second.id, request.id]  # newest first
        shown = mine[1]
        assert shown["request_name"] == "refund"
        assert shown["message"] == "Refund 12 EUR?"
        assert shown["resolutions"] == ["Approve", "Reject"]
        assert shown["metadata"] == {"order": 7}
        assert shown["to_groups"] == ["finance"]
        assert shown["status"] == "pending"
        assert shown["run_id"] == run.id
        assert shown["workflow"] == "refund"
        assert shown["resolution"] is None
        assert [r["id"] for r in items(await fin.get(base, params={"request_name": "refund"}))] == [request.id]
        both = await fin.get(base, params={"request_name": ["refund", "second"]})
        assert len(items(both)) == 2
        assert [r["id"] for r in items(await fin.get(base, params={"limit": 1, "skip": 1}))] == [request.id]
        assert items(await fin.get(base, params={"workflow": "nope"})) == []
        assert items(await fin.get(base, params={"status": "resolved"})) == []
        assert (await fin.get(f"{base}/{request.id}")).json()["id"] == request.id

        # Not an assignee: the list is empty and the request does not exist for them.
        assert items(await out.get(base)) == []
        assert (await out.get(f"{base}/{request.id}")).status_code == 404
        assert (await out.get(base, params={"all": "true"})).status_code == 403

        # The admin is not assigned either, but may see everything with all=true, and any one request.
        assert items(await api.client.get(base)) == []
        assert len(items(await api.client.get(base, params={"all": "true"}))) == 2
        assert (await api.client.get(f"{base}/{request.id}")).status_code == 200

        assert (await fin.get(base, params={"status": "bogus"})).status_code == 422
        assert (await fin.get(base, params={"limit": 501})).status_code == 422
        assert (await fin.get(base, params={"skip": -1})).status_code == 422
        assert (await fin.get(f"{base}/no-such-request")).status_code == 404


async def test_resolve_checks_assignee_resolution_and_state(api: Api, as_member: MemberFactory) -> None:
    fin = await as_member(FIN, "viewer", groups=("finance",))
    out = await as_member(OUT, "operator")
    await deploy(api.engine, "refund", REFUND)
    run = await api.engine.start_run("refund", {}, workspace=WORKSPACE)
    request = await pending_request(api.engine, run.id)
    url = f"/workspaces/{WORKSPACE}/requests/{request.id}/resolve"
    async with fin, out:
        forbidden = await out.post(url, json={"resolution": "Approve"})
        assert forbidden.status_code == 403, forbidden.text
        assert forbidden.headers["content-type"] == "application/problem+json"
        wrong = await fin.post(url, json={"resolution": "Maybe"})
        assert wrong.status_code == 422
        assert "'Maybe' is not one of" in wrong.json()["detail"]
        assert (await fin.post(url, json={"resolution": "Approve", "extra": 1})).status_code == 422
        resolved = await fin.post(url, json={"resolution": "Approve", "metadata": {"note": "fine"}})
        assert resolved.status_code == 200, resolved.text
        body = resolved.json()
        assert body["status"] == "resolved"
        assert body["resolution"] == "Approve"
        assert body["resolved_by"] == FIN
        assert body["payload"] == {"note": "fine"}
        assert body["resolved_at"].endswith("Z")
        again = await fin.post(url, json={"resolution": "Reject"})
        assert again.status_code == 409
        done = await finished(api.engine, run.id)
        assert done.status == RunStatus.SUCCEEDED, done.error
        assert done.output == {"resolution": "Approve", "by": FIN, "payload": {"note": "fine"}}
        listed = items(await fin.get(f"/workspaces/{WORKSPACE}/requests", params={"status": "resolved"}))
        assert [r["id"] for r in listed] == [request.id]
    missing = await api.client.post(
        f"/workspaces/{WORKSPACE}/requests/no-such-request/resolve", json={"resolution": "Approve"}
    )
    assert missing.status_code == 404


async def test_twenty_concurrent_resolves_one_wins(api: Api, as_member: MemberFactory) -> None:
    clients = [await as_member(f"fin{i}@acme.test", "viewer", groups=("finance",)) for i in range(4)]
    await deploy(api.engine, "refund", REFUND)
    run = await api.engine.start_run("refund", {}, workspace=WORKSPACE)
    request = await pending_request(api.engine, run.id)
    url = f"/workspaces/{WORKSPACE}/requests/{request.id}/resolve"
    calls = [clients[i % 4].post(url, json={"resolution": ["Approve", "Reject"][i % 2]}) for i in range(20)]
    answers = await asyncio.gather(*calls)
    assert Counter(a.status_code for a in answers) == {200: 1, 409: 19}
    (winner,) = [a.json() for a in answers if a.status_code == 200]
    stored = await api.engine.get_request(request.id)
    assert (stored.resolution, stored.resolved_by) == (winner["resolution"], winner["resolved_by"])
    done = await finished(api.engine, run.id)
    assert done.output["resolution"] == winner["resolution"]
    for client in clients:
        await client.aclose()


# -- one-click links -------------------------------------------------------------------------------------------
async def links_of(api: Api, run_id: str) -> dict[str, str]:
    async def check() -> dict[str, str] | None:
        lines = await api.engine.read_logs(run_id)
        return next((line.fields["links"] for line in lines if line.message == "links"), None)

    found: dict[str, str] = await wait_until(check, timeout=15, message="the links were logged")
    return found


def local(url: str) -> str:
    """The link as the in-process app sees it (the public URL's host is not ours)."""
    parts = urlsplit(url)
    return f"http://loomwork.test{parts.path}?{parts.query}"


async def test_one_click_links(api: Api) -> None:
    await deploy(api.engine, "ship", LINKED)
    run = await api.engine.start_run("ship", {"to": ADMIN_EMAIL}, workspace=WORKSPACE)
    links = await links_of(api, run.id)
    assert set(links) == {"Approve", "Reject"}
    assert links["Approve"].startswith(f"{api.engine.config.public_url}/api/v1/links/")
    request = await pending_request(api.engine, run.id)
    approve = local(links["Approve"])
    async with api.client_with(None) as browser:  # no login: the signature is the capability
        page = await browser.get(approve)
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        assert '<form method="post">' in page.text
        assert "Ship &lt;b&gt;it&lt;/b&gt;?" in page.text  # escaped
        assert (await api.engine.get_request(request.id)).status == RequestStatus.PENDING  # GET changed nothing

        bad = approve.rsplit("sig=", 1)[0] + "sig=" + sign(b"wrong key", request.id, "Approve")
        assert (await browser.get(bad)).status_code == 404
        assert (await browser.post(bad)).status_code == 404
        assert (await browser.post(approve.split("?")[0])).status_code == 404  # no signature
        swapped = approve.replace("/Approve?", "/Reject?")  # Approve's signature on Reject
        assert (await browser.post(swapped)).status_code == 404
        assert (await api.engine.get_request(request.id)).status == RequestStatus.PENDING

        done = await browser.post(approve)
        assert done.status_code == 200, done.text
        assert "resolved as &#x27;Approve&#x27;" in done.text
        again = await browser.post(local(links["Reject"]))
        assert again.status_code == 409
        assert "already resolved (Approve)" in again.text
        assert (await browser.get(approve)).status_code == 409
    finished_run = await finished(api.engine, run.id)
    assert finished_run.output == {"resolution": "Approve", "by": "link:Approve"}
    stored = await api.engine.get_request(request.id)
    assert stored.resolved_by == "link:Approve"


async def test_an_expired_link_cannot_resolve(api: Api) -> None:
    await deploy(api.engine, "ship", LINKED)
    run = await api.engine.start_run("ship", {"to": ADMIN_EMAIL, "timeout": 0.3}, workspace=WORKSPACE)
    links = await links_of(api, run.id)
    done = await finished(api.engine, run.id)
    assert done.status == RunStatus.FAILED
    async with api.client_with(None) as browser:
        expired = await browser.post(local(links["Approve"]))
        assert expired.status_code == 409
        assert "expired" in expired.text
