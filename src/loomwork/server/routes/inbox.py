"""Requests for people: get requests, read one, resolve it; and the one-click resolve links.

A link's ``GET`` only shows a confirmation page with a form (mail scanners prefetch links, so a GET must never
change anything); the form's ``POST`` to the same address resolves. Both answer small HTML pages.
"""

from __future__ import annotations

import html
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field
from starlette.responses import HTMLResponse, Response

from ...errors import Conflict, NotFound, Unprocessable
from ...model import Request, RequestStatus
from ...service.inbox import MAX_LIMIT
from ..auth import Ctx, CurrentAccess
from ..responses import ok, page
from ..schemas import Body
from ..views import request_view

router = APIRouter()


class ResolveBody(Body):
    resolution: Annotated[str, Field(min_length=1, max_length=1000)]
    metadata: dict[str, Any] | None = None


@router.get("/workspaces/{ws}/requests", tags=["requests"], summary="Get requests assigned to me")
async def list_requests(
    access: CurrentAccess,
    ctx: Ctx,
    workflow: Annotated[str | None, Query(max_length=100)] = None,
    request_name: Annotated[list[str] | None, Query(description="repeat for several")] = None,
    status: Annotated[str | None, Query(description="pending (default), resolved, expired or cancelled")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 10,
    skip: Annotated[int, Query(ge=0)] = 0,
    everyone: Annotated[bool, Query(alias="all", description="admins: every request of the workspace")] = False,
) -> Response:
    found = await ctx.inbox.list_requests(
        access, workflow=workflow, request_names=request_name, status=status, limit=limit, skip=skip, everyone=everyone
    )
    return page([request_view(r) for r in found], None)


@router.get("/workspaces/{ws}/requests/{request_id}", tags=["requests"], summary="One request")
async def get_request(request_id: str, access: CurrentAccess, ctx: Ctx) -> Response:
    return ok(request_view(await ctx.inbox.get_request(access, request_id)))


@router.post("/workspaces/{ws}/requests/{request_id}/resolve", tags=["requests"], summary="Resolve a request")
async def resolve_request(request_id: str, body: ResolveBody, access: CurrentAccess, ctx: Ctx) -> Response:
    resolved = await ctx.inbox.resolve(access, request_id, body.resolution, body.metadata)
    return ok(request_view(resolved))


# -- one-click links -----------------------------------------------------------------------------------------
_LINK_PATH = "/links/{request_id}/{resolution:path}"
Signature = Annotated[str | None, Query(max_length=200, description="the link's signature")]


@router.get(_LINK_PATH, tags=["requests"], summary="Confirmation page of a one-click resolve link")
async def link_page(request_id: str, resolution: str, ctx: Ctx, sig: Signature = None) -> Response:
    try:
        target = await ctx.inbox.link_target(request_id, resolution, sig)
    except NotFound:
        return _page(404, "Link not valid", "This link is not valid.")
    if target.status != RequestStatus.PENDING:
        return _settled_page(target)
    # No action attribute: the form posts to this very address, signature included.
    body = (
        f"<p>{_e(target.message) or _e(target.request_name)}</p>"
        '<form method="post">'
        f'<button type="submit">{_e(resolution)}</button></form>'
    )
    return _page(200, f"Confirm: {resolution}", body, raw=True)


@router.post(_LINK_PATH, tags=["requests"], summary="Resolve through a one-click link (once)")
async def link_resolve(request_id: str, resolution: str, ctx: Ctx, sig: Signature = None) -> Response:
    try:
        resolved = await ctx.inbox.resolve_by_link(request_id, resolution, sig)
    except NotFound:
        return _page(404, "Link not valid", "This link is not valid.")
    except Conflict:
        try:
            return _settled_page(await ctx.inbox.link_target(request_id, resolution, sig))
        except NotFound:
            return _page(404, "Link not valid", "This link is not valid.")
    except Unprocessable as exc:
        return _page(422, "Not possible", str(exc))
    return _page(200, resolution, f"Done: {resolved.request_name!r} was resolved as {resolution!r}.")


def _settled_page(target: Request) -> Response:
    if target.status == RequestStatus.RESOLVED:
        text = f"This request was already resolved ({target.resolution})."
        return _page(409, "Already resolved", text)
    if target.status == RequestStatus.EXPIRED:
        return _page(409, "Expired", "This request expired before it was resolved.")
    return _page(409, "No longer open", f"This request was {target.status.value}.")


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _page(status: int, title: str, body: str, *, raw: bool = False) -> Response:
    content = body if raw else f"<p>{_e(body)}</p>"
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{_e(title)} - Loomwork</title></head>"
        f'<body style="font-family: system-ui, sans-serif; max-width: 32rem; margin: 3rem auto">'
        f"<h1>{_e(title)}</h1>{content}</body></html>"
    )
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    return HTMLResponse(document, status_code=status, headers=headers)
