"""Workflows: drafts and their files, lint, deploy, versions and restore, webhooks (SPEC §4)."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import Field
from starlette.responses import Response

from ...errors import Unprocessable
from ...lint import Diagnostic
from ...model import WorkflowVersion
from ...service.workflows import DeployRefused
from ..auth import Ctx, CurrentAccess
from ..problems import HTTPProblem
from ..responses import no_content, ok, page
from ..schemas import Body, Slug
from ..views import workflow_view

router = APIRouter(tags=["workflows"])

WorkflowName = Annotated[str, Path(description="workflow name", max_length=100)]
Limit = Annotated[int, Query(ge=1, le=500, description="page size")]
Cursor = Annotated[str | None, Query(max_length=500, description="next_cursor of the previous page")]
Description = Annotated[str, Field(max_length=10_000)]
Files = Annotated[dict[str, str], Field(description="the folder as {path: text}")]


class WorkflowCreate(Body):
    name: Slug
    description: Description | None = None
    files: Files | None = None


class WorkflowPatch(Body):
    name: Slug | None = None
    description: Description | None = None
    files: Files | None = None


class FilePut(Body):
    content: str


class LintBody(Body):
    files: Files | None = None


class WebhookEnable(Body):
    hmac: bool = False


def _encode(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def _decode(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        return base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise Unprocessable("the cursor is not valid; pass next_cursor from the previous page") from exc


def diagnostic_error(diagnostic: Diagnostic) -> dict[str, Any]:
    """A diagnostic as an entry of a problem's ``errors``: ``loc`` and ``msg`` plus every diagnostic field."""
    return {
        "loc": [diagnostic.file, diagnostic.line, diagnostic.col],
        "msg": diagnostic.message,
        **diagnostic.to_json(),
    }


def version_view(version: WorkflowVersion, *, files: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "number": version.number,
        "created_at": version.created_at,
        "file_count": len(version.files),
    }
    if files:
        out["files"] = version.files
    return out


# -- drafts ----------------------------------------------------------------------------------------------------
@router.get("/workspaces/{ws}/workflows", summary="Workflows by name, each with its last run status")
async def list_workflows(access: CurrentAccess, ctx: Ctx, limit: Limit = 50, cursor: Cursor = None) -> Response:
    found, after = await ctx.workflows.list_workflows(access, limit=limit, after=_decode(cursor))
    items = [workflow_view(w, files=False, last_run_status=status) for w, status in found]
    return page(items, _encode(after) if after is not None else None)


@router.post("/workspaces/{ws}/workflows", status_code=201, summary="Create a workflow (developers)")
async def create_workflow(body: WorkflowCreate, access: CurrentAccess, ctx: Ctx) -> Response:
    workflow = await ctx.workflows.create(access, body.name, body.description, body.files)
    return ok(workflow_view(workflow), 201)


@router.get("/workspaces/{ws}/workflows/{wf}", summary="A workflow: draft files, settings, deployed version")
async def get_workflow(wf: WorkflowName, access: CurrentAccess, ctx: Ctx) -> Response:
    return ok(workflow_view(await ctx.workflows.get(access, wf)))


@router.patch("/workspaces/{ws}/workflows/{wf}", summary="Rename, describe, or replace the draft's files")
async def patch_workflow(wf: WorkflowName, body: WorkflowPatch, access: CurrentAccess, ctx: Ctx) -> Response:
    workflow = await ctx.workflows.update(
        access, wf, new_name=body.name, description=body.description, files=body.files
    )
    return ok(workflow_view(workflow))


@router.delete("/workspaces/{ws}/workflows/{wf}", status_code=204, summary="Delete a workflow, its versions and runs")
async def delete_workflow(wf: WorkflowName, access: CurrentAccess, ctx: Ctx) -> Response:
    await ctx.workflows.delete(access, wf)
    return no_content()


@router.put("/workspaces/{ws}/workflows/{wf}/files/{path:path}", summary="Write one draft file")
async def put_file(wf: WorkflowName, path: str, body: FilePut, access: CurrentAccess, ctx: Ctx) -> Response:
    return ok(workflow_view(await ctx.workflows.put_file(access, wf, path, body.content)))


@router.delete("/workspaces/{ws}/workflows/{wf}/files/{path:path}", status_code=204, summary="Delete a draft file")
async def delete_file(wf: WorkflowName, path: str, access: CurrentAccess, ctx: Ctx) -> Response:
    await ctx.workflows.delete_file(access, wf, path)
    return no_content()


# -- lint and deploy -------------------------------------------------------------------------------------------
@router.post("/workspaces/{ws}/workflows/{wf}/lint", summary="Diagnostics for the draft, or for the given files")
async def lint(wf: WorkflowName, access: CurrentAccess, ctx: Ctx, body: LintBody | None = None) -> Response:
    found = await ctx.workflows.lint(access, wf, body.files if body is not None else None)
    return ok([d.to_json() for d in found])


@router.post("/workspaces/{ws}/workflows/{wf}/deploy", summary="Deploy the draft as a new immutable version")
async def deploy(wf: WorkflowName, access: CurrentAccess, ctx: Ctx) -> Response:
    try:
        deployed = await ctx.workflows.deploy(access, wf)
    except DeployRefused as refused:
        errors = [diagnostic_error(d) for d in refused.diagnostics if d.is_error]
        raise HTTPProblem(422, str(refused), errors=errors) from refused
    return ok(
        {
            "version": deployed.version.number,
            "created_at": deployed.version.created_at,
            "warnings": [d.to_json() for d in deployed.warnings],
        }
    )


# -- versions --------------------------------------------------------------------------------------------------
@router.get("/workspaces/{ws}/workflows/{wf}/versions", summary="Deployed versions, newest first")
async def list_versions(
    wf: WorkflowName, access: CurrentAccess, ctx: Ctx, limit: Limit = 50, cursor: Cursor = None
) -> Response:
    before_text = _decode(cursor)
    if before_text is not None and not before_text.isdigit():
        raise Unprocessable("the cursor is not valid; pass next_cursor from the previous page")
    before = int(before_text) if before_text is not None else None
    found, more = await ctx.workflows.versions(access, wf, limit=limit, before=before)
    return page([version_view(v) for v in found], _encode(str(more)) if more is not None else None)


@router.get("/workspaces/{ws}/workflows/{wf}/versions/{number}", summary="One deployed version with its files")
async def get_version(
    wf: WorkflowName, number: Annotated[int, Path(ge=1)], access: CurrentAccess, ctx: Ctx
) -> Response:
    return ok(version_view(await ctx.workflows.version(access, wf, number), files=True))


@router.post("/workspaces/{ws}/workflows/{wf}/versions/{number}/restore", summary="Copy a version into the draft")
async def restore_version(
    wf: WorkflowName, number: Annotated[int, Path(ge=1)], access: CurrentAccess, ctx: Ctx
) -> Response:
    return ok(workflow_view(await ctx.workflows.restore(access, wf, number)))


# -- webhook ---------------------------------------------------------------------------------------------------
@router.post(
    "/workspaces/{ws}/workflows/{wf}/webhook",
    summary="Enable or regenerate the webhook; the URL and token are shown only in this answer",
)
async def enable_webhook(
    wf: WorkflowName, access: CurrentAccess, ctx: Ctx, body: WebhookEnable | None = None
) -> Response:
    hook = await ctx.workflows.enable_webhook(access, wf, with_hmac=body is not None and body.hmac)
    out: dict[str, Any] = {
        "url": f"{ctx.settings.base_url}/api/v1/hooks/{hook.hook_id}?token={hook.token}",
        "token": hook.token,
        "hook_id": hook.hook_id,
    }
    if hook.hmac_secret is not None:
        out["hmac_secret"] = hook.hmac_secret
    return ok(out, headers={"Cache-Control": "no-store"})


@router.delete("/workspaces/{ws}/workflows/{wf}/webhook", status_code=204, summary="Disable the webhook")
async def disable_webhook(wf: WorkflowName, access: CurrentAccess, ctx: Ctx) -> Response:
    await ctx.workflows.disable_webhook(access, wf)
    return no_content()
