"""Request bodies. Every model forbids unknown fields (``422``), and names are slugs where SPEC §4 says so."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from ..model import Role

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", min_length=1, max_length=100)]
Email = Annotated[str, Field(min_length=3, max_length=254)]
Password = Annotated[str, Field(min_length=8, max_length=1024)]
Text = Annotated[str, Field(max_length=10_000)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginBody(Body):
    email: Email
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class WorkspaceCreate(Body):
    slug: Slug
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class WorkspacePatch(Body):
    name: Annotated[str, Field(min_length=1, max_length=200)]


class MemberCreate(Body):
    email: Email
    role: Role
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    password: Password | None = None


class MemberPatch(Body):
    role: Role | None = None
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class GroupCreate(Body):
    name: Slug
    members: Annotated[list[Email], Field(max_length=10_000)] = []


class GroupPut(Body):
    members: Annotated[list[Email], Field(max_length=10_000)]


class ApiKeyCreate(Body):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    role: Role | None = None


JsonObject = dict[str, Any]
