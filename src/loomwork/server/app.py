"""The HTTP API (SPEC §4) as a FastAPI application over a started engine.

``create_app`` builds the application; it does not start or stop the engine (``server.runner`` does, and tests
do it themselves). Everything under ``/api/v1``; OpenAPI at ``/api/v1/openapi.json``, docs at ``/api/docs``.
"""

from __future__ import annotations

from fastapi import FastAPI

from .. import __version__
from ..engine import Engine
from ..settings import Settings
from . import apidocs, problems
from .context import Context
from .limits import BodySizeLimit
from .routes import datasources, history, identity, inbox, ops, schedules, triggers, workflows

API_PREFIX = "/api/v1"


def create_app(engine: Engine, settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(
        title="Loomwork",
        version=__version__,
        description="Durable, code-first workflows with people in the loop.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # served by apidocs, without a CDN
        redoc_url=None,
    )
    app.state.context = Context.of(engine, settings)
    problems.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes, counts=app.state.context.metrics.http_requests)
    for module in (
        triggers,
        identity,
        workflows,
        schedules,
        datasources,
        history,
        inbox,
    ):  # the webhook first: the hot path
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(ops.router)
    apidocs.install(app, f"{API_PREFIX}/openapi.json")
    return app
