"""Who is calling: ``Authorization: Bearer`` (API key or login token) or the session cookie with CSRF check.

Cookie-authenticated requests that change something must echo the session's CSRF token in ``X-CSRF-Token``
(double-submit: the token is also in the readable ``loomwork_csrf`` cookie and in the login response).
Bearer requests need no CSRF token: a browser never adds that header on its own.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Path, Request

from ..errors import Forbidden, Unauthorized
from ..service.accounts import Access, Principal
from .context import Context, context

SESSION_COOKIE = "loomwork_session"
CSRF_COOKIE = "loomwork_csrf"
CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    return token.strip()


async def principal(request: Request, ctx: Annotated[Context, Depends(context)]) -> Principal:
    token = bearer_token(request)
    if token is not None:
        return await ctx.accounts.authenticate(token)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise Unauthorized("authentication required: send 'Authorization: Bearer <api key>' or log in")
    who = await ctx.accounts.authenticate(cookie)
    if who.via != "session":
        raise Unauthorized("invalid session")
    if request.method not in _SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not who.csrf_token or not hmac.compare_digest(sent, who.csrf_token):
            raise Forbidden("missing or wrong CSRF token (send the X-CSRF-Token header)")
    return who


CurrentPrincipal = Annotated[Principal, Depends(principal)]
WorkspaceSlug = Annotated[str, Path(description="workspace slug", max_length=100)]


async def access(ws: WorkspaceSlug, who: CurrentPrincipal, ctx: Annotated[Context, Depends(context)]) -> Access:
    return await ctx.accounts.access(who, ws)


CurrentAccess = Annotated[Access, Depends(access)]
Ctx = Annotated[Context, Depends(context)]
