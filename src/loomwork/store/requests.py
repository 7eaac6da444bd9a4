"""Request operations: create, resolve (first valid resolution wins), expire, read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..errors import Conflict, Forbidden, NotFound, Unprocessable
from ..model import Request, RequestStatus, StepKind, StepStatus
from .base import Tx, utcnow
from .journal import start_wait
from .rows import request_from_row, request_id_for
from .runs import wake_run
from .schema import request_assignees, requests, steps

TIMEOUT_ACTOR = "system:timeout"


@dataclass(frozen=True, slots=True)
class NewRequest:
    workspace: str
    workflow: str
    run_id: str
    seq: int
    request_name: str
    message: str
    resolutions: list[str]
    to_users: list[str]
    to_groups: list[str]
    metadata: dict[str, Any]
    expires_at: datetime | None
    on_timeout: str | None


_INSERT_REQUEST = requests.insert()
_INSERT_ASSIGNEE = request_assignees.insert()
_REQUEST_EXISTS = sa.select(requests.c.id).where(requests.c.id == sa.bindparam("b_id"))
_GET_REQUEST = sa.select(requests).where(requests.c.id == sa.bindparam("b_id"))
_GET_REQUEST_IN = _GET_REQUEST.where(requests.c.workspace == sa.bindparam("b_workspace"))
_SETTLE_REQUEST = (
    requests.update()
    .where(requests.c.id == sa.bindparam("b_id"), requests.c.status == RequestStatus.PENDING.value)
    .values(
        status=sa.bindparam("b_status"),
        resolution=sa.bindparam("b_resolution"),
        payload=sa.bindparam("b_payload", type_=requests.c.payload.type),
        resolved_by=sa.bindparam("b_actor"),
        resolved_at=sa.bindparam("b_now", type_=requests.c.resolved_at.type),
    )
)
_SETTLE_STEP = (
    steps.update()
    .where(
        steps.c.run_id == sa.bindparam("b_run"),
        steps.c.seq == sa.bindparam("b_seq"),
        steps.c.status == StepStatus.WAITING.value,
    )
    .values(
        status=sa.bindparam("b_step_status"),
        output=sa.bindparam("b_output", type_=steps.c.output.type),
        error=sa.bindparam("b_error", type_=steps.c.error.type),
        finished_at=sa.bindparam("b_now", type_=steps.c.finished_at.type),
        wake_at=None,
    )
)


def create_request(tx: Tx, new: NewRequest, resolve_links: dict[str, str]) -> dict[str, Any]:
    """Store a pending request and its waiting step; returns the handle the workflow gets."""
    request_id = request_id_for(new.run_id, new.seq)
    handle = {"request_id": request_id, "resolve_links": resolve_links}
    exists = tx.conn.execute(_REQUEST_EXISTS, {"b_id": request_id}).first()
    if exists is None:
        tx.conn.execute(
            _INSERT_REQUEST,
            dict(
                id=request_id,
                workspace=new.workspace,
                workflow=new.workflow,
                run_id=new.run_id,
                seq=new.seq,
                request_name=new.request_name,
                message=new.message,
                resolutions=new.resolutions,
                metadata=new.metadata,
                to_users=new.to_users,
                to_groups=new.to_groups,
                status=RequestStatus.PENDING.value,
                created_at=utcnow(),
                expires_at=new.expires_at,
                on_timeout=new.on_timeout,
            ),
        )
        assignees = [{"request_id": request_id, "kind": "user", "name": u} for u in dict.fromkeys(new.to_users)]
        assignees += [{"request_id": request_id, "kind": "group", "name": g} for g in dict.fromkeys(new.to_groups)]
        tx.conn.execute(_INSERT_ASSIGNEE, assignees)
    start_wait(
        tx,
        new.run_id,
        new.seq,
        StepKind.REQUEST,
        new.request_name,
        input={
            "message": new.message,
            "resolutions": new.resolutions,
            "to_users": new.to_users,
            "to_groups": new.to_groups,
            "metadata": new.metadata,
            "expires_at": new.expires_at.isoformat() if new.expires_at else None,
            "on_timeout": new.on_timeout,
        },
        handle=handle,
    )
    if new.expires_at is not None:
        tx.notify("timer")
    return handle


def get_request(tx: Tx, request_id: str, workspace: str | None = None) -> Request:
    if workspace is None:
        row = tx.conn.execute(_GET_REQUEST, {"b_id": request_id}).first()
    else:
        row = tx.conn.execute(_GET_REQUEST_IN, {"b_id": request_id, "b_workspace": workspace}).first()
    if row is None:
        raise NotFound(f"request {request_id} not found")
    return request_from_row(row)


def list_run_requests(tx: Tx, run_id: str) -> list[Request]:
    rows = tx.conn.execute(sa.select(requests).where(requests.c.run_id == run_id).order_by(requests.c.seq))
    return [request_from_row(row) for row in rows]


def resolve_request(
    tx: Tx,
    request_id: str,
    resolution: str,
    payload: dict[str, Any],
    actor: str,
    may_resolve: Callable[[Request], bool],
    workspace: str | None = None,
) -> Request:
    """Resolve a pending request. Exactly one caller wins; the others get ``Conflict``."""
    request = get_request(tx, request_id, workspace)
    if request.status != RequestStatus.PENDING:
        raise Conflict(f"request {request_id} is already {request.status.value}")
    if not may_resolve(request):
        raise Forbidden(f"{actor} is not an assignee of request {request.request_name!r}")
    if resolution not in request.resolutions:
        raise Unprocessable(
            f"resolution {resolution!r} is not one of {list(request.resolutions)} for request {request.request_name!r}"
        )
    return _settle(tx, request, RequestStatus.RESOLVED, resolution, payload, actor)


def _settle(
    tx: Tx,
    request: Request,
    status: RequestStatus,
    resolution: str | None,
    payload: dict[str, Any],
    actor: str,
) -> Request:
    now = utcnow()
    won = tx.conn.execute(
        _SETTLE_REQUEST,
        {
            "b_id": request.id,
            "b_status": status.value,
            "b_resolution": resolution,
            "b_payload": payload,
            "b_actor": actor,
            "b_now": now,
        },
    )
    if won.rowcount != 1:
        raise Conflict(f"request {request.id} was resolved by someone else first")
    if resolution is not None:
        outcome: dict[str, Any] = {
            "status": StepStatus.SUCCEEDED.value,
            "output": {
                "request_id": request.id,
                "resolution": resolution,
                "payload": payload,
                "resolved_by": actor,
                "resolved_at": now.isoformat(),
                "workflow_run_id": request.run_id,
            },
            "error": None,
        }
    else:
        outcome = {
            "status": StepStatus.FAILED.value,
            "output": None,
            "error": {
                "type": "RequestTimeout",
                "message": f"request {request.request_name!r} expired before anyone resolved it",
                "request_id": request.id,
                "request_name": request.request_name,
            },
        }
    tx.conn.execute(
        _SETTLE_STEP,
        {
            "b_run": request.run_id,
            "b_seq": request.seq,
            "b_step_status": outcome["status"],
            "b_output": outcome["output"],
            "b_error": outcome["error"],
            "b_now": now,
        },
    )
    wake_run(tx, request.run_id)
    tx.notify("step", request.run_id)
    return replace(
        request,
        status=status,
        resolution=resolution,
        payload=payload,
        resolved_by=actor,
        resolved_at=now,
    )


def expire_requests(tx: Tx, now: datetime, limit: int = 500) -> int:
    """Settle pending requests past their deadline: ``on_timeout`` if set, else ``RequestTimeout``."""
    rows = tx.conn.execute(
        sa.select(requests)
        .where(
            requests.c.status == RequestStatus.PENDING.value,
            requests.c.expires_at.is_not(None),
            requests.c.expires_at <= now,
        )
        .order_by(requests.c.expires_at)
        .limit(limit)
    ).all()
    for row in rows:
        request = request_from_row(row)
        _settle(tx, request, RequestStatus.EXPIRED, request.on_timeout, {}, TIMEOUT_ACTOR)
    return len(rows)


def next_request_expiry(tx: Tx) -> datetime | None:
    return tx.conn.execute(
        sa.select(sa.func.min(requests.c.expires_at)).where(
            requests.c.status == RequestStatus.PENDING.value, requests.c.expires_at.is_not(None)
        )
    ).scalar_one_or_none()
