"""Datasources (SPEC §4): CRUD with write-only secrets, a connection test, and the editor's query run."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import Field
from starlette.responses import Response

from ...service.datasources import Outcome
from ...store.datasources import DatasourceRow
from ..auth import Ctx, CurrentAccess
from ..responses import no_content, ok
from ..schemas import Body, Slug

router = APIRouter(tags=["datasources"])

DatasourceName = Annotated[str, Path(description="datasource name", max_length=100)]
Kind = Annotated[
    str, Field(min_length=1, max_length=20, description="postgres, mysql, sqlite, rest, graphql, smtp, redis")
]
Config = Annotated[dict[str, Any], Field(description="the kind's config fields (docs/datasources.md)")]
Secrets = Annotated[
    dict[str, str | None], Field(description="secret fields; write-only. In PATCH, null removes a secret")
]


class DatasourceCreate(Body):
    name: Slug
    kind: Kind
    config: Config = {}
    secrets: Secrets = {}


class DatasourcePatch(Body):
    config: Config | None = None
    secrets: Secrets | None = None


class QueryRun(Body):
    params: dict[str, Any] = {}


def datasource_view(row: DatasourceRow) -> dict[str, Any]:
    return {
        "name": row.name,
        "kind": row.kind,
        "config": row.config,
        "secrets": sorted(row.secret_names),  # the names of the secrets that are set, never their values
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def outcome_view(outcome: Outcome) -> dict[str, Any]:
    out: dict[str, Any] = {"ok": outcome.ok, "elapsed_ms": outcome.elapsed_ms}
    if outcome.ok:
        out["result"] = outcome.result
    else:
        out["error"] = outcome.error
    return out


@router.get("/workspaces/{ws}/datasources", summary="Datasources (config and the names of set secrets)")
async def list_datasources(access: CurrentAccess, ctx: Ctx) -> Response:
    rows = await ctx.datasources.list(access)
    return ok({"items": [datasource_view(r) for r in rows], "next_cursor": None})


@router.post("/workspaces/{ws}/datasources", status_code=201, summary="Create a datasource (developers)")
async def create_datasource(body: DatasourceCreate, access: CurrentAccess, ctx: Ctx) -> Response:
    row = await ctx.datasources.create(access, body.name, body.kind, body.config, body.secrets)
    return ok(datasource_view(row), 201)


@router.get("/workspaces/{ws}/datasources/{name}", summary="One datasource; secrets by name only")
async def get_datasource(name: DatasourceName, access: CurrentAccess, ctx: Ctx) -> Response:
    return ok(datasource_view(await ctx.datasources.get(access, name)))


@router.patch("/workspaces/{ws}/datasources/{name}", summary="Change config and/or set or remove secrets")
async def patch_datasource(name: DatasourceName, body: DatasourcePatch, access: CurrentAccess, ctx: Ctx) -> Response:
    row = await ctx.datasources.update(access, name, config=body.config, secrets=body.secrets)
    return ok(datasource_view(row))


@router.delete("/workspaces/{ws}/datasources/{name}", status_code=204, summary="Delete a datasource")
async def delete_datasource(name: DatasourceName, access: CurrentAccess, ctx: Ctx) -> Response:
    await ctx.datasources.delete(access, name)
    return no_content()


@router.post(
    "/workspaces/{ws}/datasources/{name}/test",
    summary="Connect and report the server's version, or the error ({ok, result|error, elapsed_ms})",
)
async def test_datasource(name: DatasourceName, access: CurrentAccess, ctx: Ctx) -> Response:
    return ok(outcome_view(await ctx.datasources.test(access, name)))


@router.post(
    "/workspaces/{ws}/workflows/{wf}/queries/{query}/run",
    summary="Run one query of the draft with params ({ok, result|error, elapsed_ms})",
)
async def run_query(
    wf: Annotated[str, Path(max_length=100)],
    query: Annotated[str, Path(max_length=100)],
    body: QueryRun,
    access: CurrentAccess,
    ctx: Ctx,
) -> Response:
    return ok(outcome_view(await ctx.datasources.run_query(access, wf, query, body.params)))
