"""Operations endpoints, without authentication: ``/healthz`` (also under ``/api/v1``) and ``/metrics``."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter
from starlette.responses import Response

from ... import __version__
from ..auth import Ctx
from ..metrics import CONTENT_TYPE
from ..problems import problem
from ..responses import ok

log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])

PING_TIMEOUT = 5.0


@router.get("/healthz", summary="Liveness and readiness: the database answers")
@router.get("/api/v1/healthz", summary="Liveness and readiness (same as /healthz)", include_in_schema=False)
async def healthz(ctx: Ctx) -> Response:
    try:
        await asyncio.wait_for(asyncio.to_thread(ctx.engine.store.ping), timeout=PING_TIMEOUT)
    except Exception as exc:  # any failure to reach the database means not ready
        # The reason goes to the log only: this endpoint answers anyone.
        log.warning("health check failed: %s", "timed out" if isinstance(exc, TimeoutError) else exc)
        return problem(503, "the database is not reachable")
    return ok({"status": "ok", "database": "ok", "version": __version__})


@router.get("/metrics", summary="Prometheus metrics (text format 0.0.4)")
async def metrics(ctx: Ctx) -> Response:
    text = await ctx.metrics.render(webhook_counts=getattr(ctx.triggers, "webhook_counts", {}))
    return Response(text, media_type=CONTENT_TYPE)
