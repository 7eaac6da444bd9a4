"""People in the loop, from the API: "get requests", read one, resolve it, and the one-click links.

Who sees what: a member sees the requests that list them (by email) or a group they belong to; admins see
any request, and with ``all=true`` list them all. Resolving checks the same in the engine (admins may resolve
any request; the resolution is recorded under their own email). The engine makes resolving exactly-once:
of concurrent resolvers one wins, the others get ``Conflict``.

One-click links (``engine/links.py``) carry an HMAC of (request id, resolution): the signature is the
capability, so a link resolves without a login, with admin semantics (no assignee check), recorded as
``resolved_by = "link:<resolution>"``. A link stops working once the request is no longer pending.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..engine import Engine, links
from ..errors import Forbidden, NotFound, Unprocessable
from ..model import Request, RequestStatus, Role
from ..store import history as queries
from .accounts import Access

MAX_LIMIT = 500
LINK_ACTOR_PREFIX = "link:"


def parse_request_status(value: str | None) -> RequestStatus:
    if value is None or not value.strip():
        return RequestStatus.PENDING
    try:
        return RequestStatus(value.strip().lower())
    except ValueError:
        allowed = ", ".join(s.value for s in RequestStatus)
        raise Unprocessable(f"unknown request status {value!r}; use one of: {allowed}") from None


class Inbox:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def list_requests(
        self,
        access: Access,
        *,
        workflow: str | None = None,
        request_names: Iterable[str] | None = None,
        status: str | None = None,
        limit: int = 10,
        skip: int = 0,
        everyone: bool = False,
    ) -> list[Request]:
        access.require(Role.VIEWER)
        if everyone and not access.is_admin:
            raise Forbidden("only workspace admins may list all requests (all=true)")
        if not 1 <= limit <= MAX_LIMIT:
            raise Unprocessable(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
        if skip < 0:
            raise Unprocessable(f"skip must not be negative, got {skip}")
        query = queries.RequestQuery(
            workspace=access.workspace,
            assignee=None if everyone else access.email,
            workflow=workflow or None,
            request_names=tuple(dict.fromkeys(n for n in request_names or () if n)),
            status=parse_request_status(status),
            limit=limit,
            skip=skip,
        )
        return await self.engine.db.read(queries.list_requests, query)

    async def get_request(self, access: Access, request_id: str) -> Request:
        """One request, if the caller is among its assignees or an admin; otherwise it does not exist (404)."""
        access.require(Role.VIEWER)
        request = await self.engine.get_request(request_id, workspace=access.workspace)
        if not access.is_admin and not await self.engine.db.read(queries.is_assignee, request.id, access.email):
            raise NotFound(f"request {request_id} not found")
        return request

    async def resolve(
        self, access: Access, request_id: str, resolution: str, metadata: dict[str, Any] | None = None
    ) -> Request:
        access.require(Role.VIEWER)
        return await self.engine.resolve_request(
            request_id,
            resolution,
            metadata,
            actor=access.email,
            admin=access.is_admin,
            workspace=access.workspace,
        )

    # -- one-click links -------------------------------------------------------------------------------------
    async def link_target(self, request_id: str, resolution: str, signature: str | None) -> Request:
        """The request a signed link points at; a missing or wrong signature looks like no request (404)."""
        if not signature or not links.verify(self.engine.secret_key, request_id, resolution, signature):
            raise NotFound("this link is not valid")
        request = await self.engine.get_request(request_id)
        if resolution not in request.resolutions:
            raise NotFound("this link is not valid")
        return request

    async def resolve_by_link(self, request_id: str, resolution: str, signature: str | None) -> Request:
        """Resolve through a signed link: once, while pending (else ``Conflict``)."""
        await self.link_target(request_id, resolution, signature)
        return await self.engine.resolve_request(
            request_id, resolution, {}, actor=f"{LINK_ACTOR_PREFIX}{resolution}", admin=True
        )
