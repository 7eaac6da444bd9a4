"""JSON responses serialised with orjson: RFC 3339 UTC timestamps (``...Z``), dataclasses and enums as values."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC | orjson.OPT_NON_STR_KEYS


def dumps(data: Any) -> bytes:
    return orjson.dumps(data, option=_OPTIONS)


def ok(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(data), status_code=status, media_type="application/json", headers=headers)


def no_content() -> Response:
    return Response(status_code=204)


def page(items: list[Any], next_cursor: str | None) -> Response:
    return ok({"items": items, "next_cursor": next_cursor})
