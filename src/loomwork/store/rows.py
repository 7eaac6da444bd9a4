"""Rows into value objects, built at the store's edge, and the ids the store hands out."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from ..model import (
    ErrorInfo,
    LogLevel,
    LogLine,
    Request,
    RequestStatus,
    Run,
    RunStatus,
    Step,
    StepKind,
    StepStatus,
    Trigger,
    WorkflowVersion,
)
from .base import as_utc

_REQUEST_NAMESPACE = uuid.UUID("5c0f8a8e-6a43-4d5e-9b57-1d1b1f0c7a01")


def new_run_id() -> str:
    """A UUIDv7: random, yet sorted by creation time, so ids page in the order runs were made."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | rand
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))


def request_id_for(run_id: str, seq: int) -> str:
    """Request ids are derived from the step, so a replayed ``create_request`` names the same request."""
    return str(uuid.uuid5(_REQUEST_NAMESPACE, f"{run_id}:{seq}"))


def run_from_row(row: Any) -> Run:
    return Run(
        id=row.id,
        workspace=row.workspace,
        workflow=row.workflow,
        version=row.version,
        version_id=row.version_id,
        status=RunStatus(row.status),
        trigger=Trigger(row.trigger),
        test=bool(row.test),
        input=row.input,
        output=row.output,
        error=ErrorInfo.from_json(row.error),
        created_at=as_utc(row.created_at),  # type: ignore[arg-type]
        started_at=as_utc(row.started_at),
        finished_at=as_utc(row.finished_at),
        parent_run_id=row.parent_run_id,
        parent_seq=row.parent_seq,
        attempts=row.attempts,
    )


def step_from_row(row: Any) -> Step:
    return Step(
        run_id=row.run_id,
        seq=row.seq,
        kind=StepKind(row.kind),
        name=row.name,
        status=StepStatus(row.status),
        input=row.input,
        output=row.output,
        error=ErrorInfo.from_json(row.error),
        attempts=row.attempts,
        started_at=as_utc(row.started_at),
        finished_at=as_utc(row.finished_at),
        done_order=row.done_order,
        wake_at=as_utc(row.wake_at),
        handle=row.handle,
        error_detail=row.error,
    )


def request_from_row(row: Any) -> Request:
    return Request(
        id=row.id,
        workspace=row.workspace,
        workflow=row.workflow,
        run_id=row.run_id,
        seq=row.seq,
        request_name=row.request_name,
        message=row.message,
        resolutions=tuple(row.resolutions),
        metadata=dict(row._mapping["metadata"]),
        to_users=tuple(row.to_users),
        to_groups=tuple(row.to_groups),
        status=RequestStatus(row.status),
        created_at=as_utc(row.created_at),  # type: ignore[arg-type]
        expires_at=as_utc(row.expires_at),
        on_timeout=row.on_timeout,
        resolution=row.resolution,
        payload=row.payload,
        resolved_by=row.resolved_by,
        resolved_at=as_utc(row.resolved_at),
    )


def log_from_row(row: Any) -> LogLine:
    return LogLine(
        run_id=row.run_id,
        seq=row.id,
        ts=as_utc(row.ts),  # type: ignore[arg-type]
        level=LogLevel(row.level),
        message=row.message,
        fields=dict(row.fields or {}),
    )


def version_from_row(row: Any) -> WorkflowVersion:
    return WorkflowVersion(
        id=row.id,
        workspace=row.workspace,
        workflow=row.workflow,
        number=row.number,
        files=dict(row.files),
        created_at=as_utc(row.created_at),  # type: ignore[arg-type]
    )
