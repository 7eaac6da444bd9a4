"""A workflow's cron schedule: ``PUT/DELETE /workspaces/{ws}/workflows/{wf}/schedule`` (developer role)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import Field
from starlette.responses import Response

from ...model import Schedule
from ...service.scheduler import Schedules
from ..auth import Ctx, CurrentAccess
from ..responses import no_content, ok
from ..schemas import Body

router = APIRouter(tags=["schedules"])

WorkflowName = Annotated[str, Path(description="workflow name", max_length=100)]


class SchedulePut(Body):
    cron: Annotated[
        str, Field(min_length=1, max_length=200, description="5 fields: minute hour day-of-month month day-of-week")
    ]
    timezone: Annotated[str, Field(min_length=1, max_length=100, description="IANA time zone")] = "UTC"
    data: Annotated[dict[str, Any], Field(description="the input of each scheduled run")] = {}
    enabled: bool = True


def schedule_view(schedule: Schedule) -> dict[str, Any]:
    return {
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "data": schedule.data,
        "enabled": schedule.enabled,
        "next_fire_at": schedule.next_fire_at,
    }


@router.put("/workspaces/{ws}/workflows/{wf}/schedule", summary="Set the workflow's cron schedule")
async def put_schedule(wf: WorkflowName, body: SchedulePut, access: CurrentAccess, ctx: Ctx) -> Response:
    schedule = await Schedules(ctx.engine).set(
        access, wf, cron=body.cron, timezone=body.timezone, data=body.data, enabled=body.enabled
    )
    return ok(schedule_view(schedule))


@router.delete("/workspaces/{ws}/workflows/{wf}/schedule", status_code=204, summary="Remove the workflow's schedule")
async def delete_schedule(wf: WorkflowName, access: CurrentAccess, ctx: Ctx) -> Response:
    await Schedules(ctx.engine).clear(access, wf)
    return no_content()
