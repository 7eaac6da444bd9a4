"""People in the loop (SPEC §3.3, §8.3, §8.4): validation, who may resolve, exactly-once, deadlines, cancel.

Every test runs on SQLite and on PostgreSQL, through real worker processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from loomwork import Conflict, Forbidden, NotFound, RequestStatus, RunStatus, StepKind, Unprocessable
from loomwork.engine import Engine, StaticDirectory
from loomwork.model import Request, Run
from loomwork.testing import engine_for_tests, wait_until

ANN = "ann@example.com"
BOB = "bob@example.com"
CAROL = "carol@example.com"  # in group "finance"
DAVE = "dave@example.com"  # a workspace admin: assigned nothing
CROWD = [f"user{i:02d}@example.com" for i in range(50)]  # group "crowd"

DIRECTORY = StaticDirectory(
    members=[ANN, BOB, CAROL, DAVE, *CROWD],
    groups={"finance": [CAROL], "crowd": CROWD, "empty": []},
)

#: Imported by the workflows below: a Decision as JSON, so the run's output shows what the workflow saw.
DECISIONS_PY = textwrap.dedent(
    """
    from loomwork import Decision

    def as_json(d):
        assert isinstance(d, Decision), type(d)
        return {
            "request_id": d.request_id,
            "resolution": d.resolution,
            "payload": d.payload,
            "resolved_by": d.resolved_by,
            "resolved_at": d.resolved_at.isoformat(),
            "workflow_run_id": d.workflow_run_id,
        }
    """
)


def src(code: str) -> str:
    return textwrap.dedent(code).lstrip()


@pytest.fixture
async def engine(database_url: str, tmp_path: Path) -> AsyncIterator[Engine]:
    async with engine_for_tests(tmp_path / "data", database_url=database_url, directory=DIRECTORY) as started:
        yield started


async def start(engine: Engine, code: str, data: Any = None, *, workflow: str = "people") -> Run:
    files = {"main.py": src(code), "decisions.py": DECISIONS_PY}
    version = await engine.deploy(workflow, files)
    return await engine.start_run(workflow, data if data is not None else {}, version=version)


async def finished(engine: Engine, run_id: str, timeout: float = 10.0) -> Run:
    run = await engine.wait_for_run(run_id, timeout)
    assert run.status.is_final, f"run {run_id} is still {run.status.value} after {timeout} s"
    return run


async def pending(engine: Engine, run_id: str, count: int = 1) -> list[Request]:
    """Wait until the run has ``count`` pending requests; return them in step order."""

    async def check() -> list[Request] | None:
        found = [r for r in await engine.list_run_requests(run_id) if r.status == RequestStatus.PENDING]
        return found if len(found) >= count else None

    return await wait_until(check, timeout=10, message=f"{count} pending request(s) on run {run_id}")


async def status_is(engine: Engine, run_id: str, status: RunStatus) -> Run:
    async def check() -> Run | None:
        run = await engine.get_run(run_id)
        return run if run.status == status else None

    return await wait_until(check, timeout=10, message=f"run {run_id} {status.value}")


# -- validation: a bad request fails the run at that line, never leaves it stuck -------------------------------
INVALID_CASES = {
    "empty resolutions": (
        f"'approve', [], to_users=[{ANN!r}]",
        "request 'approve': resolutions must not be empty",
    ),
    "duplicate resolutions": (
        f"'approve', ['Yes', 'No', 'Yes'], to_users=[{ANN!r}]",
        "request 'approve': resolutions must be unique",
    ),
    "no assignee": (
        "'approve', ['Yes', 'No']",
        "request 'approve' has no assignee",
    ),
    "on_timeout not offered": (
        f"'approve', ['Yes', 'No'], to_users=[{ANN!r}], timeout=wf.seconds(5), on_timeout='Maybe'",
        "request 'approve': on_timeout 'Maybe' is not one of ['Yes', 'No']",
    ),
    "unknown user": (
        f"'approve', ['Yes', 'No'], to_users=[{ANN!r}, 'zed@example.com']",
        "not members of workspace 'default': zed@example.com",
    ),
    "unknown group": (
        "'approve', ['Yes', 'No'], to_groups=['finance', 'no-such-group']",
        "no such group(s) in workspace 'default': no-such-group",
    ),
}


async def test_invalid_requests_fail_the_run_at_that_line(engine: Engine) -> None:
    # Every case in both forms at once, one run each: every one must end failed, none may hang waiting.
    started: dict[tuple[str, str], Run] = {}
    for form in ("assign_request", "create_request"):
        for case, (args, _) in INVALID_CASES.items():
            code = f"""
                from loomwork import wf

                async def execute_workflow(data):
                    wf.log.info("about to ask")
                    await wf.{form}({args})
                    return "unreachable"
                """
            started[form, case] = await start(engine, code, workflow=f"invalid-{len(started)}")
    for (form, case), run in started.items():
        expected = INVALID_CASES[case][1]
        run = await finished(engine, run.id)
        assert run.status == RunStatus.FAILED, (form, case, run.status, run.output)
        assert run.error is not None
        assert run.error.type == "InvalidRequest", (form, case, run.error)
        assert expected in run.error.message, (form, case, run.error.message)
        assert 'File "main.py", line 5, in execute_workflow' in run.error.traceback, (form, case, run.error)
        assert await engine.list_run_requests(run.id) == [], (form, case)  # nothing left pending for anyone


# -- who may resolve -----------------------------------------------------------------------------------------
ASK_ANN_OR_FINANCE = """
    from loomwork import wf
    import decisions

    async def execute_workflow(data):
        decision = await wf.assign_request(
            "refund", ["Approve", "Reject"], message="Refund 12 EUR?",
            to_users=["ann@example.com"], to_groups=["finance"], metadata={"order": 7},
        )
        return decisions.as_json(decision)
    """


async def test_only_assignees_may_resolve(engine: Engine) -> None:
    run = await start(engine, ASK_ANN_OR_FINANCE)
    (request,) = await pending(engine, run.id)
    assert request.request_name == "refund"
    assert request.message == "Refund 12 EUR?"
    assert request.resolutions == ("Approve", "Reject")
    assert request.to_users == (ANN,)
    assert request.to_groups == ("finance",)
    assert request.metadata == {"order": 7}

    with pytest.raises(Forbidden, match=r"bob@example\.com is not an assignee"):
        await engine.resolve_request(request.id, "Approve", {}, BOB)
    with pytest.raises(Forbidden):  # a member of a group that is not assigned
        await engine.resolve_request(request.id, "Approve", {}, CROWD[0])
    with pytest.raises(Unprocessable, match="'Maybe' is not one of"):
        await engine.resolve_request(request.id, "Maybe", {}, ANN)
    with pytest.raises(NotFound):
        await engine.resolve_request("no-such-request", "Approve", {}, ANN)
    with pytest.raises(NotFound):  # another workspace does not see it
        await engine.resolve_request(request.id, "Approve", {}, ANN, workspace="other")
    assert (await engine.get_request(request.id)).status == RequestStatus.PENDING
    assert (await engine.get_run(run.id)).status == RunStatus.WAITING

    # Carol is not listed by name but is in "finance".
    resolved = await engine.resolve_request(request.id, "Reject", {"reason": "duplicate"}, CAROL)
    assert resolved.status == RequestStatus.RESOLVED
    assert resolved.resolution == "Reject"
    assert resolved.resolved_by == CAROL
    run = await finished(engine, run.id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output["resolution"] == "Reject"
    assert run.output["resolved_by"] == CAROL
    assert run.output["payload"] == {"reason": "duplicate"}


async def test_decision_fields_and_a_second_resolution_conflicts(engine: Engine) -> None:
    run = await start(engine, ASK_ANN_OR_FINANCE)
    (request,) = await pending(engine, run.id)
    before = datetime.now(UTC)
    await engine.resolve_request(request.id, "Approve", {"reason": "loyal customer", "amount": 12.5}, ANN)
    after = datetime.now(UTC)
    with pytest.raises(Conflict):
        await engine.resolve_request(request.id, "Reject", {"note": "second"}, CAROL)
    with pytest.raises(Conflict):  # even the same answer from the same person
        await engine.resolve_request(request.id, "Approve", {"note": "again"}, ANN)
    with pytest.raises(Conflict):  # and an admin
        await engine.resolve_request(request.id, "Reject", {}, DAVE, admin=True)
    run = await finished(engine, run.id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    decision = run.output
    assert decision["request_id"] == request.id
    assert decision["resolution"] == "Approve"
    assert decision["payload"] == {"reason": "loyal customer", "amount": 12.5}  # what the resolver sent
    assert decision["resolved_by"] == ANN
    assert decision["workflow_run_id"] == run.id
    resolved_at = datetime.fromisoformat(decision["resolved_at"])
    assert resolved_at.tzinfo is not None
    assert before - timedelta(seconds=0.01) <= resolved_at <= after + timedelta(seconds=0.01)
    stored = await engine.get_request(request.id)
    assert (stored.status, stored.resolution, stored.resolved_by) == (RequestStatus.RESOLVED, "Approve", ANN)
    assert stored.payload == decision["payload"]
    assert stored.resolved_at == resolved_at
    assert stored.metadata == {"order": 7}  # the request's own metadata is kept apart from the payload


async def test_admin_resolves_on_behalf_of_assignees(engine: Engine) -> None:
    run = await start(engine, ASK_ANN_OR_FINANCE)
    (request,) = await pending(engine, run.id)
    with pytest.raises(Forbidden):
        await engine.resolve_request(request.id, "Approve", {}, DAVE)
    with pytest.raises(Unprocessable):  # admins still only pick offered resolutions
        await engine.resolve_request(request.id, "Whatever", {}, DAVE, admin=True)
    resolved = await engine.resolve_request(request.id, "Approve", {"on_behalf_of": ANN}, DAVE, admin=True)
    assert resolved.resolved_by == DAVE
    run = await finished(engine, run.id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output["resolved_by"] == DAVE
    assert run.output["payload"] == {"on_behalf_of": ANN}


# -- exactly one resolution, under concurrency ----------------------------------------------------------------
ASK_CROWD = """
    from loomwork import wf
    import decisions

    async def execute_workflow(data):
        return decisions.as_json(await wf.assign_request("vote", ["Approve", "Reject"], to_groups=["crowd"]))
    """


def _one_winner(results: list[Any]) -> tuple[int, Request]:
    winners = [(i, r) for i, r in enumerate(results) if isinstance(r, Request)]
    losers = [r for r in results if not isinstance(r, Request)]
    assert len(winners) == 1, f"{len(winners)} resolutions won: {winners}"
    assert len(losers) == len(results) - 1
    assert all(isinstance(e, Conflict) for e in losers), [e for e in losers if not isinstance(e, Conflict)]
    return winners[0]


async def test_exactly_one_of_50_concurrent_resolutions_wins(engine: Engine) -> None:
    run = await start(engine, ASK_CROWD)
    (request,) = await pending(engine, run.id)
    choices = ["Approve" if i % 2 else "Reject" for i in range(50)]
    results = await asyncio.gather(
        *(engine.resolve_request(request.id, choices[i], {"voter": i}, actor) for i, actor in enumerate(CROWD)),
        return_exceptions=True,
    )
    index, winner = _one_winner(results)
    assert (winner.resolution, winner.resolved_by, winner.payload) == (choices[index], CROWD[index], {"voter": index})
    run = await finished(engine, run.id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output["resolution"] == choices[index]
    assert run.output["resolved_by"] == CROWD[index]
    assert run.output["payload"] == {"voter": index}
    stored = await engine.get_request(request.id)
    assert (stored.status, stored.resolved_by) == (RequestStatus.RESOLVED, CROWD[index])


async def test_exactly_one_of_concurrent_resolutions_wins_across_two_nodes(postgres_url: str, tmp_path: Path) -> None:
    """Two nodes on one PostgreSQL database (the scale-out deployment) race through separate connections."""
    async with (
        engine_for_tests(tmp_path / "node-a", database_url=postgres_url, directory=DIRECTORY) as engine,
        engine_for_tests(
            tmp_path / "node-b", database_url=postgres_url, directory=DIRECTORY, execute=False
        ) as api_node,
    ):
        run = await start(engine, ASK_CROWD)
        (request,) = await pending(engine, run.id)
        nodes = [engine, api_node]
        results = await asyncio.gather(
            *(
                nodes[i % 2].resolve_request(request.id, "Approve" if i < 25 else "Reject", {"voter": i}, actor)
                for i, actor in enumerate(CROWD)
            ),
            return_exceptions=True,
        )
        index, winner = _one_winner(results)
        run = await finished(engine, run.id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output["resolution"] == ("Approve" if index < 25 else "Reject")
    assert run.output["resolved_by"] == CROWD[index] == winner.resolved_by
    assert run.output["payload"] == {"voter": index}


# -- a resolution before wait() is kept ------------------------------------------------------------------------
async def test_resolution_before_wait_is_kept_while_a_step_runs(engine: Engine, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    run = await start(
        engine,
        """
        import os, time
        from loomwork import wf
        import decisions

        def wait_for_gate(path):
            deadline = time.monotonic() + 20
            while not os.path.exists(path):
                if time.monotonic() > deadline:
                    raise TimeoutError("the gate never opened")
                time.sleep(0.01)
            return "open"

        async def execute_workflow(data):
            req = await wf.create_request("early", ["Go", "Stop"], to_users=["ann@example.com"])
            gate = await wf.step(wait_for_gate, data["gate"])
            decision = await req.wait()
            return {"gate": gate, "request_id": req.id, **decisions.as_json(decision)}
        """,
        {"gate": str(gate)},
    )
    (request,) = await pending(engine, run.id)
    await engine.resolve_request(request.id, "Stop", {"why": "early"}, ANN)
    # The step is still blocked, so the workflow has not reached req.wait() yet.
    assert (await engine.get_run(run.id)).status == RunStatus.RUNNING
    assert not gate.exists()
    gate.touch()
    run = await finished(engine, run.id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output["gate"] == "open"
    assert run.output["request_id"] == request.id
    assert (run.output["resolution"], run.output["resolved_by"], run.output["payload"]) == (
        "Stop",
        ANN,
        {"why": "early"},
    )


async def test_resolution_before_wait_is_kept_while_the_run_sleeps(engine: Engine) -> None:
    run = await start(
        engine,
        """
        from loomwork import wf
        import decisions

        async def execute_workflow(data):
            req = await wf.create_request("early", ["Go", "Stop"], to_users=["ann@example.com"])
            await wf.sleep(1)
            return decisions.as_json(await req.wait())
        """,
    )
    (request,) = await pending(engine, run.id)
    await status_is(engine, run.id, RunStatus.WAITING)  # parked: holds no process
    await engine.resolve_request(request.id, "Go", {"n": 1}, ANN)
    run = await finished(engine, run.id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert (run.output["resolution"], run.output["resolved_by"], run.output["payload"]) == ("Go", ANN, {"n": 1})
    sleep = next(s for s in await engine.list_steps(run.id) if s.kind == StepKind.SLEEP)
    wake_at = datetime.fromisoformat(sleep.input["until"])
    assert datetime.fromisoformat(run.output["resolved_at"]) < wake_at  # it really came before wait()


# -- deadlines -----------------------------------------------------------------------------------------------
async def test_deadline_with_on_timeout_resolves_as_the_system(engine: Engine) -> None:
    run = await start(
        engine,
        """
        from loomwork import wf
        import decisions

        async def execute_workflow(data):
            decision = await wf.assign_request(
                "approve", ["Approve", "Reject"], to_users=["ann@example.com"],
                timeout=wf.seconds(0.5), on_timeout="Reject",
            )
            return decisions.as_json(decision)
        """,
    )
    (request,) = await pending(engine, run.id)
    assert request.expires_at is not None
    assert request.on_timeout == "Reject"
    assert timedelta(seconds=0.4) <= request.expires_at - request.created_at <= timedelta(seconds=0.6)
    run = await finished(engine, run.id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output["resolution"] == "Reject"
    assert run.output["resolved_by"] == "system:timeout"
    assert run.output["payload"] == {}
    late = datetime.fromisoformat(run.output["resolved_at"]) - request.expires_at
    assert timedelta(0) <= late < timedelta(seconds=1), late
    stored = await engine.get_request(request.id)
    assert stored.status == RequestStatus.EXPIRED
    assert stored.resolution == "Reject"
    assert stored.resolved_by == "system:timeout"
    with pytest.raises(Conflict):
        await engine.resolve_request(request.id, "Approve", {}, ANN)


async def test_deadline_without_on_timeout_raises_a_catchable_request_timeout(engine: Engine) -> None:
    run = await start(
        engine,
        """
        from loomwork import wf, RequestTimeout

        async def execute_workflow(data):
            try:
                await wf.assign_request("approve", ["Yes"], to_users=["ann@example.com"], timeout=wf.seconds(0.5))
            except RequestTimeout as exc:
                return {"caught": type(exc).__name__, "request_id": exc.request_id,
                        "request_name": exc.request_name, "message": str(exc), "at": wf.now().isoformat()}
            return {"caught": None}
        """,
    )
    (request,) = await pending(engine, run.id)
    run = await finished(engine, run.id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output["caught"] == "RequestTimeout"
    assert run.output["request_id"] == request.id
    assert run.output["request_name"] == "approve"
    assert "expired" in run.output["message"]
    assert request.expires_at is not None
    late = datetime.fromisoformat(run.output["at"]) - request.expires_at
    assert timedelta(0) <= late < timedelta(seconds=1.5), late
    stored = await engine.get_request(request.id)
    assert stored.status == RequestStatus.EXPIRED
    assert stored.resolution is None
    with pytest.raises(Conflict):
        await engine.resolve_request(request.id, "Yes", {}, ANN)


async def test_uncaught_request_timeout_fails_the_run(engine: Engine) -> None:
    run = await start(
        engine,
        """
        from loomwork import wf

        async def execute_workflow(data):
            await wf.assign_request("approve", ["Yes"], to_users=["ann@example.com"], timeout=wf.seconds(0.5))
            return "unreachable"
        """,
    )
    (request,) = await pending(engine, run.id)
    run = await finished(engine, run.id)
    assert run.status == RunStatus.FAILED
    assert run.error is not None
    assert run.error.type == "RequestTimeout"
    assert "'approve'" in run.error.message
    assert request.id in run.error.message
    assert 'File "main.py", line 4, in execute_workflow' in run.error.traceback


# -- cancel --------------------------------------------------------------------------------------------------
async def test_cancelling_a_waiting_run_cancels_its_requests(engine: Engine) -> None:
    run = await start(
        engine,
        """
        import asyncio
        from loomwork import wf

        async def execute_workflow(data):
            a = await wf.create_request("a", ["Yes", "No"], to_users=["ann@example.com"])
            b = await wf.create_request("b", ["Yes", "No"], to_groups=["finance"], timeout=wf.hours(1))
            await asyncio.gather(a.wait(), b.wait())
            return "unreachable"
        """,
    )
    await pending(engine, run.id, count=2)
    await status_is(engine, run.id, RunStatus.WAITING)
    cancelled = await engine.cancel_run(run.id)
    assert cancelled.status == RunStatus.CANCELLED
    requests = await engine.list_run_requests(run.id)
    assert [(r.request_name, r.status) for r in requests] == [
        ("a", RequestStatus.CANCELLED),
        ("b", RequestStatus.CANCELLED),
    ]
    with pytest.raises(Conflict):
        await engine.resolve_request(requests[0].id, "Yes", {}, ANN)
    with pytest.raises(Conflict):
        await engine.resolve_request(requests[1].id, "No", {}, CAROL, admin=True)
    with pytest.raises(Conflict):
        await engine.cancel_run(run.id)
    run = await engine.get_run(run.id)
    assert run.status == RunStatus.CANCELLED
    assert run.error is not None
    assert run.error.type == "RunCancelled"
    assert all(r.resolved_by is None for r in await engine.list_run_requests(run.id))


# -- several requests at once ----------------------------------------------------------------------------------
async def test_first_returns_the_first_resolved_request(engine: Engine) -> None:
    run = await start(
        engine,
        """
        from loomwork import wf
        import decisions

        async def execute_workflow(data):
            a = await wf.create_request("a", ["Yes", "No"], to_users=["ann@example.com"])
            b = await wf.create_request("b", ["Yes", "No"], to_users=["bob@example.com"])
            decision = await wf.first(a.wait(), b.wait())
            return {"a": a.id, "b": b.id, "first": decisions.as_json(decision)}
        """,
    )
    a, b = await pending(engine, run.id, count=2)
    assert (a.request_name, b.request_name) == ("a", "b")
    await engine.resolve_request(b.id, "No", {"from": "b"}, BOB)
    # A later answer to the other request does not change which came first (Conflict: the run had
    # already finished and withdrawn it).
    with contextlib.suppress(Conflict):
        await engine.resolve_request(a.id, "Yes", {"from": "a"}, ANN)
    run = await finished(engine, run.id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert (run.output["a"], run.output["b"]) == (a.id, b.id)
    first = run.output["first"]
    assert (first["request_id"], first["resolution"], first["resolved_by"], first["payload"]) == (
        b.id,
        "No",
        BOB,
        {"from": "b"},
    )
    # The run is over: the other request is answered or withdrawn, never left pending.
    assert (await engine.get_request(a.id)).status in (RequestStatus.RESOLVED, RequestStatus.CANCELLED)
    with pytest.raises(Conflict):
        await engine.resolve_request(a.id, "Yes", {}, ANN)


async def test_gather_waits_for_both_requests(engine: Engine) -> None:
    run = await start(
        engine,
        """
        import asyncio
        from loomwork import wf
        import decisions

        async def execute_workflow(data):
            a = await wf.create_request("a", ["Yes", "No"], to_users=["ann@example.com"])
            b = await wf.create_request("b", ["Yes", "No"], to_groups=["finance"])
            da, db = await asyncio.gather(a.wait(), b.wait())
            return [decisions.as_json(da), decisions.as_json(db)]
        """,
    )
    a, b = await pending(engine, run.id, count=2)
    # Answer the second first: each wait still gets its own decision.
    await engine.resolve_request(b.id, "No", {"n": "b"}, CAROL)

    async def b_taken_and_parked_again() -> bool:
        steps = {s.seq: s for s in await engine.list_steps(run.id)}
        status = (await engine.get_run(run.id)).status
        return steps[b.seq].done_order is not None and status == RunStatus.WAITING

    await wait_until(b_taken_and_parked_again, message="run took b's answer and parked again")
    assert (await engine.get_request(a.id)).status == RequestStatus.PENDING
    await engine.resolve_request(a.id, "Yes", {"n": "a"}, ANN)
    run = await finished(engine, run.id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    da, db = run.output
    assert (da["request_id"], da["resolution"], da["resolved_by"], da["payload"]) == (a.id, "Yes", ANN, {"n": "a"})
    assert (db["request_id"], db["resolution"], db["resolved_by"], db["payload"]) == (b.id, "No", CAROL, {"n": "b"})


# -- retry after a request failed the run ------------------------------------------------------------------------
async def test_retry_after_a_request_timed_out_asks_again(engine: Engine) -> None:
    run = await start(
        engine,
        """
        from loomwork import wf
        import decisions

        async def execute_workflow(data):
            marker = await wf.step(lambda: "before", name="before")
            decision = await wf.assign_request(
                "approve", ["Yes"], to_users=["ann@example.com"], timeout=wf.seconds(0.5)
            )
            return {"marker": marker, **decisions.as_json(decision)}
        """,
    )
    (first,) = await pending(engine, run.id)
    failed = await finished(engine, run.id)
    assert failed.error is not None
    assert failed.error.type == "RequestTimeout"
    await engine.retry_run(run.id)
    (second,) = await pending(engine, run.id)
    assert second.request_name == "approve"
    assert second.expires_at is not None
    assert first.expires_at is not None
    assert second.expires_at > first.expires_at  # a fresh deadline
    await engine.resolve_request(second.id, "Yes", {"second": "time"}, ANN)
    run = await finished(engine, run.id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert (run.output["marker"], run.output["resolution"], run.output["payload"]) == (
        "before",
        "Yes",
        {"second": "time"},
    )
    assert [s.name for s in await engine.list_steps(run.id)] == ["before", "approve"]


async def test_retry_after_an_unknown_assignee_once_they_joined(database_url: str, tmp_path: Path) -> None:
    directory = StaticDirectory(members=[ANN], groups={})
    async with engine_for_tests(tmp_path / "data", database_url=database_url, directory=directory) as engine:
        run = await start(
            engine,
            """
            from loomwork import wf
            import decisions

            async def execute_workflow(data):
                return decisions.as_json(await wf.assign_request("ok", ["Yes"], to_users=["newbie@example.com"]))
            """,
        )
        failed = await finished(engine, run.id)
        assert failed.error is not None
        assert failed.error.type == "InvalidRequest"
        assert "newbie@example.com" in failed.error.message
        directory.members.add("newbie@example.com")
        await engine.retry_run(run.id)
        (request,) = await pending(engine, run.id)
        await engine.resolve_request(request.id, "Yes", {}, "newbie@example.com")
        run = await finished(engine, run.id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output["resolved_by"] == "newbie@example.com"
