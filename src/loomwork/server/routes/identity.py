"""Login, who am I, workspaces, members, groups and API keys."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from ...errors import Forbidden
from ...model import Role
from ...service.accounts import SESSION_LIFETIME
from ..auth import CSRF_COOKIE, SESSION_COOKIE, Ctx, CurrentAccess, CurrentPrincipal
from ..responses import no_content, ok
from ..schemas import (
    ApiKeyCreate,
    GroupCreate,
    GroupPut,
    LoginBody,
    MemberCreate,
    MemberPatch,
    WorkspaceCreate,
    WorkspacePatch,
)
from ..views import api_key_view, group_view, member_view, user_view, workspace_view

router = APIRouter()


# -- auth ------------------------------------------------------------------------------------------------------
@router.post("/auth/login", tags=["auth"], summary="Log in with email and password")
async def login(body: LoginBody, ctx: Ctx) -> Response:
    result = await ctx.accounts.login(body.email, body.password)
    response = ok({"token": result.token, "csrf_token": result.csrf_token, "user": user_view(result.user)})
    max_age = int(SESSION_LIFETIME.total_seconds())
    secure = ctx.settings.cookie_secure
    response.set_cookie(
        SESSION_COOKIE, result.token, max_age=max_age, httponly=True, samesite="lax", secure=secure, path="/"
    )
    response.set_cookie(
        CSRF_COOKIE, result.csrf_token, max_age=max_age, httponly=False, samesite="lax", secure=secure, path="/"
    )
    return response


@router.post("/auth/logout", tags=["auth"], summary="End the session (its token stops working)")
async def logout(who: CurrentPrincipal, ctx: Ctx) -> Response:
    await ctx.accounts.logout(who)
    response = no_content()
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.get("/me", tags=["auth"], summary="Who am I: user, workspaces, roles and groups")
async def me(who: CurrentPrincipal, ctx: Ctx) -> Response:
    info = await ctx.accounts.me(who)
    return ok(
        {
            "user": user_view(info["user"]),
            "via": info["via"],
            "workspaces": [
                {**w, "role": w["role"].value if w["role"] is not None else None} for w in info["workspaces"]
            ],
        }
    )


# -- workspaces ------------------------------------------------------------------------------------------------
@router.get("/workspaces", tags=["workspaces"], summary="Workspaces I belong to")
async def list_workspaces(who: CurrentPrincipal, ctx: Ctx) -> Response:
    spaces = await ctx.accounts.workspaces_of(who.user)
    if who.key is not None:
        spaces = [(w, r) for w, r in spaces if w.slug == who.key.workspace]
    return ok({"items": [workspace_view(w, r) for w, r in spaces], "next_cursor": None})


@router.post("/workspaces", tags=["workspaces"], status_code=201, summary="Create a workspace (you become its admin)")
async def create_workspace(body: WorkspaceCreate, who: CurrentPrincipal, ctx: Ctx) -> Response:
    if who.key is not None:
        raise Forbidden("API keys are bound to one workspace and cannot create workspaces; log in instead")
    workspace = await ctx.accounts.create_workspace(who, body.slug, body.name)
    return ok(workspace_view(workspace, Role.ADMIN), 201)


@router.get("/workspaces/{ws}", tags=["workspaces"], summary="One workspace")
async def get_workspace(access: CurrentAccess, ctx: Ctx) -> Response:
    return ok(workspace_view(await ctx.accounts.get_workspace(access), access.role))


@router.patch("/workspaces/{ws}", tags=["workspaces"], summary="Rename a workspace (admins)")
async def patch_workspace(body: WorkspacePatch, access: CurrentAccess, ctx: Ctx) -> Response:
    return ok(workspace_view(await ctx.accounts.rename_workspace(access, body.name), access.role))


@router.delete("/workspaces/{ws}", tags=["workspaces"], status_code=204, summary="Delete a workspace and all in it")
async def delete_workspace(access: CurrentAccess, ctx: Ctx) -> Response:
    await ctx.accounts.delete_workspace(access)
    return no_content()


# -- members ---------------------------------------------------------------------------------------------------
@router.get("/workspaces/{ws}/members", tags=["members"], summary="Members and their roles")
async def list_members(access: CurrentAccess, ctx: Ctx) -> Response:
    return ok({"items": [member_view(m) for m in await ctx.accounts.list_members(access)], "next_cursor": None})


@router.post("/workspaces/{ws}/members", tags=["members"], status_code=201, summary="Add a member (admins)")
async def add_member(body: MemberCreate, access: CurrentAccess, ctx: Ctx) -> Response:
    member = await ctx.accounts.add_member(access, body.email, body.role, body.name, body.password)
    return ok(member_view(member), 201)


@router.patch("/workspaces/{ws}/members/{email}", tags=["members"], summary="Change a member's role or name")
async def patch_member(email: str, body: MemberPatch, access: CurrentAccess, ctx: Ctx) -> Response:
    return ok(member_view(await ctx.accounts.update_member(access, email, body.role, body.name)))


@router.delete("/workspaces/{ws}/members/{email}", tags=["members"], status_code=204, summary="Remove a member")
async def remove_member(email: str, access: CurrentAccess, ctx: Ctx) -> Response:
    await ctx.accounts.remove_member(access, email)
    return no_content()


# -- groups ----------------------------------------------------------------------------------------------------
@router.get("/workspaces/{ws}/groups", tags=["groups"], summary="Groups and their members")
async def list_groups(access: CurrentAccess, ctx: Ctx) -> Response:
    return ok({"items": [group_view(g) for g in await ctx.accounts.list_groups(access)], "next_cursor": None})


@router.post("/workspaces/{ws}/groups", tags=["groups"], status_code=201, summary="Create a group (admins)")
async def create_group(body: GroupCreate, access: CurrentAccess, ctx: Ctx) -> Response:
    return ok(group_view(await ctx.accounts.create_group(access, body.name, body.members)), 201)


@router.put("/workspaces/{ws}/groups/{group}", tags=["groups"], summary="Set a group's members (creates it if new)")
async def put_group(group: str, body: GroupPut, access: CurrentAccess, ctx: Ctx) -> Response:
    return ok(group_view(await ctx.accounts.set_group(access, group, body.members)))


@router.delete("/workspaces/{ws}/groups/{group}", tags=["groups"], status_code=204, summary="Delete a group")
async def delete_group(group: str, access: CurrentAccess, ctx: Ctx) -> Response:
    await ctx.accounts.delete_group(access, group)
    return no_content()


# -- API keys --------------------------------------------------------------------------------------------------
@router.get("/workspaces/{ws}/api-keys", tags=["api-keys"], summary="API keys (yours; admins see all)")
async def list_api_keys(access: CurrentAccess, ctx: Ctx) -> Response:
    return ok({"items": [api_key_view(k) for k in await ctx.accounts.list_api_keys(access)], "next_cursor": None})


@router.post(
    "/workspaces/{ws}/api-keys", tags=["api-keys"], status_code=201, summary="Create a key; its secret is shown once"
)
async def create_api_key(body: ApiKeyCreate, access: CurrentAccess, ctx: Ctx) -> Response:
    created = await ctx.accounts.create_api_key(access, body.name, body.role)
    return ok({**api_key_view(created.key), "key": created.secret}, 201)


@router.delete("/workspaces/{ws}/api-keys/{key_id}", tags=["api-keys"], status_code=204, summary="Revoke a key")
async def delete_api_key(key_id: str, access: CurrentAccess, ctx: Ctx) -> Response:
    await ctx.accounts.delete_api_key(access, key_id)
    return no_content()
