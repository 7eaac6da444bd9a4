"""Saved queries: ``queries/NAME.sql`` (with ``-- datasource:`` header lines) and ``queries/NAME.toml``.

Bindings are ``{{ params.path.to[0].value }}``: dotted names and ``[index]`` only, never expressions. In SQL
each binding becomes a bound parameter, so a param can never change the statement (no injection).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from .durations import parse_duration
from .errors import StepError, WorkflowFolderError

_BINDING = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_PATH = re.compile(r"^params((?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])+)$")
_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")
_HEADER = re.compile(r"^--\s*(datasource|timeout|retries)\s*:\s*(.+?)\s*$")


@dataclass(frozen=True, slots=True)
class Query:
    name: str
    datasource: str
    kind: str  # "sql" or "toml"
    text: str = ""  # the SQL, for kind "sql"
    spec: dict[str, Any] = field(default_factory=dict)  # the TOML table, for kind "toml"
    timeout: float | None = None
    retries: int = 0


def find_query(files: dict[str, str], name: str) -> Query:
    if f"queries/{name}.sql" in files:
        return parse_sql_query(name, files[f"queries/{name}.sql"])
    if f"queries/{name}.toml" in files:
        return parse_toml_query(name, files[f"queries/{name}.toml"])
    raise StepError(f"no query {name!r}: expected queries/{name}.sql or queries/{name}.toml", error_type="QueryError")


def parse_sql_query(name: str, text: str) -> Query:
    headers: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        match = _HEADER.match(stripped)
        if not match:
            break
        headers[match.group(1)] = match.group(2)
    if "datasource" not in headers:
        raise WorkflowFolderError(f"queries/{name}.sql: the first line must be '-- datasource: NAME'")
    try:
        timeout = parse_duration(headers["timeout"], "timeout") if "timeout" in headers else None
        retries = int(headers.get("retries", "0"))
    except ValueError as exc:
        raise WorkflowFolderError(f"queries/{name}.sql: {exc}") from exc
    return Query(name, headers["datasource"], "sql", text=text, timeout=timeout, retries=retries)


def parse_toml_query(name: str, text: str) -> Query:
    try:
        spec = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise WorkflowFolderError(f"queries/{name}.toml: {exc}") from exc
    datasource = spec.pop("datasource", None)
    if not isinstance(datasource, str) or not datasource:
        raise WorkflowFolderError(f"queries/{name}.toml: 'datasource = \"NAME\"' is required")
    try:
        timeout = parse_duration(spec.pop("timeout"), "timeout") if "timeout" in spec else None
        retries = int(spec.pop("retries", 0))
    except (TypeError, ValueError) as exc:
        raise WorkflowFolderError(f"queries/{name}.toml: {exc}") from exc
    return Query(name, datasource, "toml", spec=spec, timeout=timeout, retries=retries)


def resolve_binding(expression: str, params: dict[str, Any], query: str) -> Any:
    """The value of ``params.a.b[0]``; a clear error names the missing part and the query."""
    match = _PATH.match(expression)
    if not match:
        raise StepError(
            f"query {query!r}: binding {{{{ {expression} }}}} must be params.NAME with .field and [index] parts",
            error_type="QueryError",
        )
    value: Any = params
    walked = "params"
    for attr, index in _PART.findall(match.group(1)):
        if attr:
            walked += f".{attr}"
            if not isinstance(value, dict) or attr not in value:
                raise StepError(f"query {query!r}: missing param {walked}", error_type="QueryError")
            value = value[attr]
        else:
            walked += f"[{index}]"
            if not isinstance(value, list) or int(index) >= len(value):
                raise StepError(f"query {query!r}: missing param {walked}", error_type="QueryError")
            value = value[int(index)]
    return value


def bind_sql(query: Query, params: dict[str, Any], placeholder: str = "?") -> tuple[str, list[Any]]:
    """The SQL with each binding replaced by a placeholder, and the values in order."""
    values: list[Any] = []

    def substitute(match: re.Match[str]) -> str:
        values.append(resolve_binding(match.group(1), params, query.name))
        return placeholder

    body = "\n".join(line for line in query.text.splitlines() if not _HEADER.match(line.strip()))
    return _BINDING.sub(substitute, body).strip().rstrip(";"), values
