"""A workflow is a folder: ``main.py``, further modules, ``queries/``, ``workflow.toml`` (SPEC §2).

The same ``{path: text}`` mapping is what the CLI reads from disk, the API stores as a draft and a deployed
version freezes. This module reads and checks it; it never runs the code.
"""

from __future__ import annotations

import ast
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .durations import parse_duration
from .errors import WorkflowFolderError

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_TEXT_SUFFIXES = {".py", ".sql", ".toml", ".md", ".txt", ".json", ".graphql", ".html"}
MAX_FILE_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class WorkflowSettings:
    """``workflow.toml``. Absent values take the documented defaults."""

    description: str = ""
    timeout: float | None = None
    retry_attempts: int = 1
    retry_backoff: float = 1.0
    webhook_wait: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "timeout": self.timeout,
            "retry_attempts": self.retry_attempts,
            "retry_backoff": self.retry_backoff,
            "webhook_wait": self.webhook_wait,
        }


def check_name(name: str, what: str = "workflow name") -> str:
    if not NAME_PATTERN.match(name):
        raise WorkflowFolderError(f"{what} {name!r} must match [a-z0-9][a-z0-9-_]*")
    return name


def parse_settings(text: str | None) -> WorkflowSettings:
    if not text:
        return WorkflowSettings()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise WorkflowFolderError(f"workflow.toml: {exc}") from exc
    known = {"description", "timeout", "retry", "webhook", "schedule"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise WorkflowFolderError(f"workflow.toml: unknown setting(s) {unknown}; known: {sorted(known)}")
    try:
        retry = data.get("retry", {})
        webhook = data.get("webhook", {})
        if not isinstance(retry, dict) or not isinstance(webhook, dict):
            raise ValueError("[retry] and [webhook] must be tables")
        for table, values, allowed in (("retry", retry, ["attempts", "backoff"]), ("webhook", webhook, ["wait"])):
            extra = [f"[{table}] {key}" for key in sorted(set(values) - set(allowed))]
            if extra:
                raise ValueError(f"unknown setting(s) {extra}; known in [{table}]: {allowed}")
        attempts = retry.get("attempts", 1)
        if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
            raise ValueError(f"[retry] attempts must be an integer >= 1, got {attempts!r}")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise ValueError("description must be a string")
        return WorkflowSettings(
            description=description,
            timeout=parse_duration(data["timeout"], "timeout") if "timeout" in data else None,
            retry_attempts=attempts,
            retry_backoff=parse_duration(retry.get("backoff", 1), "[retry] backoff"),
            webhook_wait=parse_duration(webhook["wait"], "[webhook] wait") if "wait" in webhook else None,
        )
    except ValueError as exc:
        raise WorkflowFolderError(f"workflow.toml: {exc}") from exc


def check_files(files: dict[str, str]) -> WorkflowSettings:
    """Check a folder's files: safe paths, a ``main.py`` defining ``async def execute_workflow``."""
    for path, text in files.items():
        pure = PurePosixPath(path)
        if pure.is_absolute() or ".." in pure.parts or not path or "\\" in path:
            raise WorkflowFolderError(f"file path {path!r} must be relative, without '..'")
        if not isinstance(text, str):
            raise WorkflowFolderError(f"{path}: file content must be text")
        if len(text.encode()) > MAX_FILE_BYTES:
            raise WorkflowFolderError(f"{path}: file is larger than {MAX_FILE_BYTES} bytes")
    if "main.py" not in files:
        raise WorkflowFolderError("a workflow needs a main.py defining async def execute_workflow(data)")
    try:
        tree = ast.parse(files["main.py"], filename="main.py")
    except SyntaxError as exc:
        raise WorkflowFolderError(f"main.py:{exc.lineno}:{exc.offset}: {exc.msg}") from exc
    entry = [node for node in tree.body if isinstance(node, ast.AsyncFunctionDef) and node.name == "execute_workflow"]
    if not entry:
        raise WorkflowFolderError("main.py must define async def execute_workflow(data)")
    for path, text in files.items():
        if path.endswith(".py") and path != "main.py":
            try:
                ast.parse(text, filename=path)
            except SyntaxError as exc:
                raise WorkflowFolderError(f"{path}:{exc.lineno}:{exc.offset}: {exc.msg}") from exc
    return parse_settings(files.get("workflow.toml"))


def read_folder(directory: Path, *, check: bool = True) -> dict[str, str]:
    """The text files of a workflow folder, keyed by POSIX path relative to it; ``check=False`` skips
    :func:`check_files` (for the linter, which reports what is wrong rather than stopping at it)."""
    if not directory.is_dir():
        raise WorkflowFolderError(f"{directory} is not a directory")
    files: dict[str, str] = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
            continue
        if path.is_file() and path.suffix in _TEXT_SUFFIXES:
            try:
                files[relative.as_posix()] = path.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                raise WorkflowFolderError(f"{relative}: not UTF-8 text ({exc})") from exc
    if check:
        check_files(files)
    return files
