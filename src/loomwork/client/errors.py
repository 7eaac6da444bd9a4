"""Errors the client raises: one class per HTTP status family, each carrying the problem+json fields.

Every error is an :class:`ApiError` (``status``, ``title``, ``detail``, ``errors``). The classes for 401, 403,
404, 409 and 422 also derive from the domain errors of the same name in :mod:`loomwork.errors`, so code that
catches ``loomwork.errors.NotFound`` catches a 404 from a remote server too::

    ApiError                        any status not listed below, and the root of all of these
    ├── BadRequest                  400: malformed JSON, bad query parameters
    ├── Unauthorized                401: no, unknown, expired or revoked key or session
    ├── Forbidden                   403: the caller's role or assignment does not allow it
    ├── NotFound                    404: no such object in this workspace (or not visible to the caller)
    ├── Conflict                    409: e.g. a request already resolved, a name already taken
    ├── PayloadTooLarge             413: body over the server's limit
    ├── Unprocessable               422: unknown fields, wrong types, a resolution not offered, lint errors
    ├── ServerError                 5xx
    └── ConnectionFailed            the server could not be reached or did not answer in time (status 0)
"""

from __future__ import annotations

from typing import Any

import httpx

from .. import errors as domain

__all__ = [
    "ApiError",
    "BadRequest",
    "Conflict",
    "ConnectionFailed",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "ServerError",
    "Unauthorized",
    "Unprocessable",
    "error_from_response",
]


class ApiError(domain.LoomworkError):
    """The server answered with an error status (or could not be reached: ``status == 0``)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str = "",
        errors: list[dict[str, Any]] | None = None,
        body: Any = None,
    ) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.errors: list[dict[str, Any]] = list(errors or [])
        self.body = body
        super().__init__(self._message())

    def _message(self) -> str:
        head = f"{self.status} {self.title}: {self.detail}" if self.status else self.detail
        if not self.errors:
            return head
        return head + " (" + "; ".join(_describe(e) for e in self.errors[:10]) + ")"


class BadRequest(ApiError):
    """400."""


class Unauthorized(domain.Unauthorized, ApiError):
    """401."""


class Forbidden(domain.Forbidden, ApiError):
    """403."""


class NotFound(domain.NotFound, ApiError):
    """404."""


class Conflict(domain.Conflict, ApiError):
    """409."""


class PayloadTooLarge(ApiError):
    """413."""


class Unprocessable(domain.Unprocessable, ApiError):
    """422. ``errors`` holds the fields (``loc``, ``msg``) or lint diagnostics that were refused."""


class ServerError(ApiError):
    """5xx."""


class ConnectionFailed(ApiError):
    """No answer: connection refused, DNS failure, timeout. ``status`` is 0."""

    def __init__(self, detail: str) -> None:
        super().__init__(0, detail, title="Connection failed")


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: Unprocessable,
}


def _describe(error: dict[str, Any]) -> str:
    if "msg" in error:
        loc = error.get("loc")
        where = ".".join(str(part) for part in loc) if isinstance(loc, list | tuple) else str(loc or "")
        return f"{where}: {error['msg']}" if where else str(error["msg"])
    if "message" in error:  # a lint diagnostic
        where = ":".join(str(error[k]) for k in ("file", "line", "col") if error.get(k) is not None)
        return f"{where}: {error['message']}" if where else str(error["message"])
    return str(error)


def error_from_response(response: httpx.Response) -> ApiError:
    """The error for an answer with status >= 400; reads problem+json, tolerates any other body."""
    status = response.status_code
    body: Any = None
    try:
        body = response.json()
    except ValueError:
        body = response.text
    title = response.reason_phrase
    detail = ""
    errors: list[dict[str, Any]] = []
    if isinstance(body, dict):
        title = str(body.get("title") or title)
        detail = str(body.get("detail") or "")
        raw_errors = body.get("errors")
        if isinstance(raw_errors, list):
            errors = [e if isinstance(e, dict) else {"msg": str(e)} for e in raw_errors]
    elif isinstance(body, str):
        detail = body.strip()[:500]
    if not detail:
        detail = title or f"HTTP {status}"
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    return cls(status, detail, title=title, errors=errors, body=body)
