"""Errors as ``application/problem+json`` (RFC 9457): the one place an exception becomes an HTTP status."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ..errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    LoomworkError,
    NotFound,
    StoreError,
    StoreUnavailable,
    Unauthorized,
    Unprocessable,
    WorkflowFolderError,
)

PROBLEM_TYPE = "application/problem+json"

#: Each error class answers one status; the first match in this order wins.
STATUS_OF: list[tuple[type[LoomworkError], int]] = [
    (NotFound, 404),
    (Conflict, 409),
    (Unprocessable, 422),
    (WorkflowFolderError, 422),
    (InvalidRequest, 422),
    (Unauthorized, 401),
    (Forbidden, 403),
    (StoreUnavailable, 503),
    (StoreError, 500),
]

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class HTTPProblem(Exception):
    """Raised by the HTTP layer itself for a problem that is not a domain error (e.g. malformed JSON)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers


def problem(
    status: int, detail: str, *, errors: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None
) -> Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM_TYPE, headers=headers)


def status_of(exc: LoomworkError) -> int:
    for cls, status in STATUS_OF:
        if isinstance(exc, cls):
            return status
    return 500


def validation_errors(exc: RequestValidationError) -> tuple[int, list[dict[str, Any]]]:
    errors = []
    malformed = False
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            malformed = True
        loc = [str(part) for part in error.get("loc", ())]
        errors.append({"loc": loc, "msg": str(error.get("msg", "invalid"))})
    return (400 if malformed else 422), errors


def install(app: FastAPI) -> None:
    async def on_domain_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoomworkError)
        status = status_of(exc)
        detail = str(exc) if status < 500 or isinstance(exc, StoreUnavailable) else "internal error"
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return problem(status, detail, headers=headers)

    async def on_http_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPProblem)
        return problem(exc.status, exc.detail, errors=exc.errors, headers=exc.headers)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        status, errors = validation_errors(exc)
        detail = "the request body is not valid JSON" if status == 400 else "the request is not valid"
        return problem(status, detail, errors=errors)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return problem(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}) or None)

    app.add_exception_handler(LoomworkError, on_domain_error)
    app.add_exception_handler(HTTPProblem, on_http_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
