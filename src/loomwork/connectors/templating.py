"""``{{ params.x }}`` bindings inside the fields of TOML query files (rest, graphql, smtp, redis).

A field that is *exactly* one binding takes the param's value with its JSON type (a number stays a number, a
list a list). A binding inside other text becomes text, encoded for where it lands:

- ``text``: strings as they are; numbers as digits; ``true``/``false``; null as the empty string; lists and
  objects as compact JSON (SMTP fields, headers, redis arguments, query-string values before httpx encodes them),
- ``url``: that text percent-encoded with no safe characters (``/`` becomes ``%2F``), for URL paths,
- ``json``: the value as JSON (``"a\\"b"``, ``12``, ``null``), for a string body that is a template of JSON text.

Only the param values are encoded; the query author's own text is left as written.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal
from urllib.parse import quote

from ..errors import StepError
from ..queries import resolve_binding

Mode = Literal["text", "url", "json"]

_BINDING = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_EXACT = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


def as_text(value: Any) -> str:
    """A param value as plain text (see the module docstring)."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _encode(value: Any, mode: Mode) -> str:
    if mode == "json":
        return json.dumps(value, ensure_ascii=False)
    text = as_text(value)
    return quote(text, safe="") if mode == "url" else text


def render_string(template: str, params: dict[str, Any], query: str, mode: Mode = "text") -> str:
    """The template with every binding replaced by its value encoded per ``mode`` (always a string)."""
    return _BINDING.sub(lambda m: _encode(resolve_binding(m.group(1), params, query), mode), template)


def render(template: Any, params: dict[str, Any], query: str, mode: Mode = "text") -> Any:
    """Render bindings in a string, or in every string of a TOML list or table (keys are left alone).

    A string that is exactly one binding becomes the param's value, typed; other strings become text.
    """
    if isinstance(template, str):
        match = _EXACT.fullmatch(template.strip())
        if match is not None:
            return resolve_binding(match.group(1), params, query)
        return render_string(template, params, query, mode)
    if isinstance(template, list):
        return [render(item, params, query, mode) for item in template]
    if isinstance(template, dict):
        return {key: render(value, params, query, mode) for key, value in template.items()}
    return template


def check_fields(query: str, kind: str, spec: dict[str, Any], allowed: set[str], required: set[str]) -> None:
    """Unknown or missing fields in a TOML query file are clear errors naming the query."""
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise StepError(
            f"query {query!r}: unknown {kind} field(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})",
            error_type="QueryError",
        )
    missing = sorted(name for name in required if name not in spec)
    if missing:
        raise StepError(f"query {query!r}: a {kind} query needs {', '.join(missing)}", error_type="QueryError")
