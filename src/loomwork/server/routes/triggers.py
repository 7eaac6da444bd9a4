"""Triggering runs (SPEC §4.4): ``POST .../workflows/{wf}/runs`` and the webhook ``POST /hooks/{hook_id}``.

Answers, for both:

- ``202 {"run_id", "status"}``: queued (no wait), or still going when the wait expired;
- the run's own answer when it called ``wf.respond(status_code, body, headers)`` while the caller waited: that
  status and those headers, the body as JSON (a ``str`` body with a non-JSON ``Content-Type`` goes out as is);
- ``200 {"run_id", "status": "succeeded", "output"}`` when the run ended while the caller waited;
  a failed or cancelled run is also ``200`` — the trigger worked, the run did not — with
  ``{"run_id", "status", "error": {type, message, traceback}}``.

Every answer carries ``Loomwork-Run-Id``; one for an idempotency key seen before also ``Idempotent-Replayed: true``.
The webhook needs no API key: its token (``?token=`` or ``Authorization: Bearer``) is the credential.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import Field
from starlette.responses import Response

from ...model import RunStatus
from ...service.triggers import MAX_IDEMPOTENCY_KEY, MAX_WAIT, Accepted, Finished, MalformedBody, Outcome
from ..auth import Ctx, CurrentAccess
from ..context import Context
from ..problems import HTTPProblem
from ..responses import dumps, ok
from ..schemas import Body
from ..views import error_view

router = APIRouter(tags=["runs"])

WorkflowName = Annotated[str, Path(description="workflow name", max_length=100)]
Wait = Annotated[float, Field(ge=0, le=MAX_WAIT, description="seconds to wait for wf.respond or the end")]
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=MAX_IDEMPOTENCY_KEY)]

#: Headers a workflow may not set on its answer: the server owns the framing.
_FRAMING = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "trailer"})
_NO_BODY = frozenset({204, 304})
_CANCELLED = {"type": "RunCancelled", "message": "the run was cancelled", "traceback": ""}


class TriggerBody(Body):
    data: dict[str, Any] = {}
    wait: Wait | None = None
    idempotency_key: IdempotencyKey | None = None
    test: bool = False


_HOOK_PARAMETERS = [
    {
        "name": "token",
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": "the hook's token (or send it as Authorization: Bearer)",
    },
    {
        "name": "wait",
        "in": "query",
        "required": False,
        "schema": {"type": "number", "minimum": 0, "maximum": MAX_WAIT},
        "description": "seconds to wait for wf.respond or the end (default: workflow.toml [webhook] wait, or 0)",
    },
    {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "maxLength": MAX_IDEMPOTENCY_KEY},
        "description": "a key seen before for this workflow returns the earlier run",
    },
    {
        "name": "X-Signature",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "sha256=<hex HMAC-SHA256(secret, '<timestamp>.' + body)>, if the webhook has an HMAC secret",
    },
    {
        "name": "X-Signature-Timestamp",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "unix seconds, within 300 s of the server's clock (with X-Signature)",
    },
]


@router.post(
    "/hooks/{hook_id}",
    status_code=202,
    tags=["webhooks"],
    summary="Webhook trigger: the JSON body is the run's data; no API key, the hook's token instead",
    openapi_extra={
        "parameters": _HOOK_PARAMETERS,
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": {"type": "object", "additionalProperties": True}}},
        },
    },
)
async def webhook(hook_id: str, request: Request) -> Response:  # first in the router: the hot path
    # The hot path: parameters are read by hand (no dependency resolution, no validation models, no threads);
    # the service checks them after the token, so a wrong token always gets the same 404 first.
    ctx: Context = request.app.state.context
    query = request.query_params
    headers = request.headers
    token = query.get("token")
    if token is None:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        token = value.strip() if scheme.lower() == "bearer" else None
    raw = await request.body()
    try:
        outcome = await ctx.triggers.webhook(
            hook_id,
            token,
            raw,
            wait=query.get("wait"),
            idempotency_key=headers.get("idempotency-key"),
            signature=headers.get("x-signature"),
            timestamp=headers.get("x-signature-timestamp"),
        )
    except MalformedBody as exc:
        raise HTTPProblem(400, str(exc)) from None
    return render(outcome)


@router.post(
    "/workspaces/{ws}/workflows/{wf}/runs",
    status_code=202,
    summary="Trigger a run (of the draft with test=true); optionally wait for wf.respond or the end",
)
async def trigger(wf: WorkflowName, access: CurrentAccess, ctx: Ctx, body: TriggerBody | None = None) -> Response:
    body = body or TriggerBody()
    outcome = await ctx.triggers.trigger(
        access, wf, body.data, wait=body.wait, idempotency_key=body.idempotency_key, test=body.test
    )
    return render(outcome)


def render(outcome: Outcome) -> Response:
    extra = {"Loomwork-Run-Id": _run_id(outcome)}
    if outcome.replayed:
        extra["Idempotent-Replayed"] = "true"
    if isinstance(outcome, Accepted):
        return ok({"run_id": outcome.run_id, "status": outcome.status.value}, 202, headers=extra)
    if isinstance(outcome, Finished):
        run = outcome.run
        out: dict[str, Any] = {"run_id": run.id, "status": run.status.value}
        if run.status is RunStatus.SUCCEEDED:
            out["output"] = run.output
        else:
            out["error"] = error_view(run.error) or _CANCELLED
        return ok(out, 200, headers=extra)
    headers = {k: v for k, v in outcome.headers.items() if k.lower() not in _FRAMING and _sendable(k, v)}
    headers.update(extra)
    media_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "application/json")
    status = outcome.status_code if outcome.status_code >= 200 else 200  # 1xx cannot end an answer
    if status in _NO_BODY:
        content = b""
    elif isinstance(outcome.body, str) and "json" not in media_type.lower():
        content = outcome.body.encode()
    else:
        content = dumps(outcome.body)
    response = Response(content, status_code=status, headers=headers)
    if "content-type" not in response.headers and content:
        response.headers["content-type"] = media_type
    return response


def _sendable(name: str, value: str) -> bool:
    """A header the workflow set that HTTP can carry (a plain name, no line breaks, Latin-1); others are dropped."""
    if not name or any(c in name for c in " :\t") or "\r" in name + value or "\n" in name + value:
        return False
    try:
        (name + value).encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _run_id(outcome: Outcome) -> str:
    return outcome.run.id if isinstance(outcome, Finished) else outcome.run_id
