"""Run history: lists with filters, run detail, logs (also as Server-Sent Events), cancel and retry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from starlette.responses import Response, StreamingResponse

from ...model import LogLine
from ...service.history import MAX_LIMIT, MAX_LOG_LIMIT, History, LogEvent
from ..auth import Ctx, CurrentAccess
from ..responses import dumps, ok, page
from ..views import run_detail_view, run_view

router = APIRouter()

Statuses = Annotated[list[str] | None, Query(description="run status; repeat it or separate several with commas")]
TriggerQ = Annotated[str | None, Query(description="api, webhook, schedule, test, retry, child or local")]
Since = Annotated[str | None, Query(description="runs created at or after this RFC 3339 time")]
Until = Annotated[str | None, Query(description="runs created before this RFC 3339 time")]
TestQ = Annotated[bool | None, Query(description="only test runs (true) or only real runs (false)")]
Search = Annotated[str | None, Query(max_length=200, description="substring of the input or output JSON")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=500, description="next_cursor of the previous page")]


def log_view(line: LogLine) -> dict[str, Any]:
    return {"seq": line.seq, "ts": line.ts, "level": line.level.value, "message": line.message, "fields": line.fields}


@router.get("/workspaces/{ws}/workflows/{wf}/runs", tags=["runs"], summary="Run history of one workflow")
async def list_workflow_runs(
    wf: str,
    access: CurrentAccess,
    ctx: Ctx,
    status: Statuses = None,
    trigger: TriggerQ = None,
    since: Since = None,
    until: Until = None,
    test: TestQ = None,
    q: Search = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    found = await ctx.history.list_runs(
        access,
        workflow=wf,
        statuses=status,
        trigger=trigger,
        since=since,
        until=until,
        test=test,
        q=q,
        limit=limit,
        cursor=cursor,
        must_exist=True,
    )
    return page([run_view(r) for r in found.items], found.next_cursor)


@router.get("/workspaces/{ws}/runs", tags=["runs"], summary="Run history of the whole workspace")
async def list_runs(
    access: CurrentAccess,
    ctx: Ctx,
    workflow: Annotated[str | None, Query(max_length=100)] = None,
    status: Statuses = None,
    trigger: TriggerQ = None,
    since: Since = None,
    until: Until = None,
    test: TestQ = None,
    q: Search = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    found = await ctx.history.list_runs(
        access,
        workflow=workflow or None,
        statuses=status,
        trigger=trigger,
        since=since,
        until=until,
        test=test,
        q=q,
        limit=limit,
        cursor=cursor,
    )
    return page([run_view(r) for r in found.items], found.next_cursor)


@router.get("/workspaces/{ws}/runs/{run_id}", tags=["runs"], summary="Run detail with steps and requests")
async def get_run(run_id: str, access: CurrentAccess, ctx: Ctx) -> Response:
    detail = await ctx.history.get_run(access, run_id)
    return ok(run_detail_view(detail.run, detail.steps, detail.requests))


@router.get(
    "/workspaces/{ws}/runs/{run_id}/logs",
    tags=["runs"],
    summary="Log lines of a run; ?follow=1 streams them as Server-Sent Events",
)
async def get_logs(
    run_id: str,
    access: CurrentAccess,
    ctx: Ctx,
    after: Annotated[int, Query(ge=0, description="only lines with a greater seq")] = 0,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]+$", description="next_cursor of a previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LOG_LIMIT)] = 500,
    follow: bool = False,
    last_event_id: Annotated[str | None, Header(pattern=r"^[0-9]*$")] = None,
) -> Response:
    start = max(after, int(cursor) if cursor else 0)
    if follow:
        if last_event_id:
            start = max(start, int(last_event_id))
        await ctx.history.open_follow(access, run_id)
        return StreamingResponse(
            _event_stream(ctx.history, run_id, start),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    lines = await ctx.history.read_logs(access, run_id, start, limit)
    next_cursor = str(lines[-1].seq) if len(lines) == limit else None
    return page([log_view(line) for line in lines], next_cursor)


async def _event_stream(history: History, run_id: str, after: int) -> AsyncIterator[bytes]:
    yield b": following the run's log\n\n"
    async for event in history.follow_logs(run_id, after):
        yield _sse(event)


def _sse(event: LogEvent) -> bytes:
    if event.kind == "line" and event.line is not None:
        return b"id: %d\nevent: log\ndata: %s\n\n" % (event.line.seq, dumps(log_view(event.line)))
    if event.kind == "end":
        status = event.status.value if event.status is not None else None
        return b"event: end\ndata: %s\n\n" % dumps({"status": status})
    return b": heartbeat\n\n"


@router.post("/workspaces/{ws}/runs/{run_id}/cancel", tags=["runs"], summary="Cancel a running or waiting run")
async def cancel_run(run_id: str, access: CurrentAccess, ctx: Ctx) -> Response:
    return ok(run_view(await ctx.history.cancel(access, run_id)))


@router.post("/workspaces/{ws}/runs/{run_id}/retry", tags=["runs"], summary="Resume a failed run from its failed step")
async def retry_run(run_id: str, access: CurrentAccess, ctx: Ctx) -> Response:
    return ok(run_view(await ctx.history.retry(access, run_id)))
