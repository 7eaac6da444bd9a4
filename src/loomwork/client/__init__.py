"""Python client of the Loomwork HTTP API (SPEC §5).

    from loomwork.client import Client

    with Client("http://127.0.0.1:8080", api_key) as lw:
        result = lw.trigger("acme", "refund-approval", {"order_id": 7}, wait=10)
        for request in lw.get_requests("acme", request_name="refund"):
            lw.resolve_request("acme", request.id, "Approve", {"reason": "loyal customer"})

``AsyncClient`` has the same methods, awaitable. Results are frozen dataclasses (``Run``, ``Request``,
``Workflow``, ``Page`` ...); errors are typed (``NotFound``, ``Conflict``, ``Unprocessable``, ``Unauthorized``,
``Forbidden``, all :class:`ApiError` with ``status``, ``detail`` and ``errors``; ``ConnectionFailed`` when the
server cannot be reached).

``trigger`` returns a :class:`TriggerResult`, not a ``Run``: a trigger that waits may be answered by the
workflow's own ``wf.respond(...)`` (any status and body), which a run cannot represent. ``result.run_id`` leads
to the run (``get_run``); ``result.output`` holds the output when the run finished while the caller waited.
"""

from __future__ import annotations

from .clients import AsyncClient, Client, api_root
from .errors import (
    ApiError,
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ServerError,
    Unauthorized,
    Unprocessable,
)
from .types import (
    ApiKey,
    Datasource,
    Diagnostic,
    Group,
    LogLine,
    Me,
    Member,
    Page,
    Request,
    Run,
    RunError,
    Schedule,
    Step,
    TriggerResult,
    Version,
    Webhook,
    Workflow,
    Workspace,
)

__all__ = [
    "ApiError",
    "ApiKey",
    "AsyncClient",
    "BadRequest",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "Datasource",
    "Diagnostic",
    "Forbidden",
    "Group",
    "LogLine",
    "Me",
    "Member",
    "NotFound",
    "Page",
    "PayloadTooLarge",
    "Request",
    "Run",
    "RunError",
    "Schedule",
    "ServerError",
    "Step",
    "TriggerResult",
    "Unauthorized",
    "Unprocessable",
    "Version",
    "Webhook",
    "Workflow",
    "Workspace",
    "api_root",
]
