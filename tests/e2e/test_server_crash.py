"""``kill -9`` of a real server while runs wait on requests and while runs are mid-step; a restart finishes all."""

from __future__ import annotations

import signal

from .helpers import WS, check, deploy, eventually, run_of
from .server import ServerProcess

WAITING = (
    "from loomwork import wf\n\n"
    "async def execute_workflow(data):\n"
    "    d = await wf.assign_request('go', ['Go'], to_users=['admin@e2e.test'])\n"
    "    return {'n': data['n'], 'by': d.resolved_by}\n"
)

BUSY = (
    "import time\n"
    "from loomwork import wf\n\n"
    "def slow(n):\n"
    "    time.sleep(0.3)\n"
    "    return n * 2\n\n"
    "async def execute_workflow(data):\n"
    "    total = 0\n"
    "    for i in range(6):\n"
    "        total += await wf.step(slow, i, name=f'slow-{i}')\n"
    "    return total\n"
)


def test_kill_9_while_runs_wait_and_work_then_restart(server: ServerProcess) -> None:
    with server.client() as admin:
        deploy(admin, "waiting", WAITING)
        deploy(admin, "busy", BUSY)
        waiting = [check(admin.post(f"{WS}/workflows/waiting/runs", json={"data": {"n": i}}), 202) for i in range(5)]
        busy = [check(admin.post(f"{WS}/workflows/busy/runs", json={"data": {}}), 202) for _ in range(4)]
        eventually(lambda: all(run_of(admin, r["run_id"])["status"] == "waiting" for r in waiting), what="runs waiting")
        eventually(
            lambda: any(any(s["status"] == "succeeded" for s in run_of(admin, r["run_id"])["steps"]) for r in busy),
            what="a busy run mid-way",
        )

    server.kill_9()
    server.start()

    with server.client() as admin:
        for r in waiting:
            request = run_of(admin, r["run_id"])["requests"][0]
            check(admin.post(f"{WS}/requests/{request['id']}/resolve", json={"resolution": "Go"}), 200)
        for r in waiting + busy:
            run = eventually(
                lambda r=r: (x := run_of(admin, r["run_id"]))["status"] in ("succeeded", "failed") and x,
                timeout=60,
                what=f"run {r['run_id']} finished",
            )
            assert run["status"] == "succeeded", run["error"]
        outputs = sorted(run_of(admin, r["run_id"])["output"]["n"] for r in waiting)
        assert outputs == [0, 1, 2, 3, 4]
        assert all(run_of(admin, r["run_id"])["output"] == 30 for r in busy)


def test_sigterm_hands_back_in_flight_runs(server: ServerProcess) -> None:
    with server.client() as admin:
        deploy(admin, "busy", BUSY)
        busy = [check(admin.post(f"{WS}/workflows/busy/runs", json={"data": {}}), 202) for _ in range(3)]
        eventually(lambda: any(run_of(admin, r["run_id"])["steps"] for r in busy), what="work in flight")
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=30) == 0
    server.start()
    with server.client() as admin:
        for r in busy:
            run = eventually(
                lambda r=r: (x := run_of(admin, r["run_id"]))["status"] == "succeeded" and x, timeout=60, what="done"
            )
            assert run["output"] == 30
