"""Diagnostics for a workflow folder: what the editor marks inline and what makes deploy refuse (SPEC §4).

``lint_files`` checks what would stop a version from loading, each as an ``error``: unsafe or oversized file
paths, Python that does not compile (``E999`` with the exact position), a ``main.py`` without
``async def execute_workflow(data)``, a ``workflow.toml`` with bad settings, query files that do not parse.
Then **ruff** (``F``, ``E9``, ``B`` rules) adds lint findings as ``warning``\\ s, except undefined names
(``F821``), which would fail at run time and are ``error``\\ s. If the ``ruff`` executable cannot be found
or fails, those findings are skipped; linting never crashes on its account.

Lines and columns are 1-based, like an editor shows them; ``end_col`` is exclusive.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from .errors import WorkflowFolderError
from .folder import MAX_FILE_BYTES, parse_settings
from .queries import parse_sql_query, parse_toml_query

Severity = Literal["error", "warning"]

#: Codes of the structural checks (ruff's own codes are passed through).
SYNTAX = "E999"
UNSAFE_PATH = "LW001"
FILE_TOO_LARGE = "LW002"
NO_MAIN = "LW100"
NO_ENTRY = "LW101"
ENTRY_NOT_ASYNC = "LW102"
ENTRY_SIGNATURE = "LW103"
BAD_SETTINGS = "LW200"
BAD_QUERY = "LW300"
NOT_A_QUERY = "LW301"
SYNTAX_WARNING = "LW900"

#: ruff findings that fail at run time, so they block a deploy.
_ERROR_CODES = frozenset({"F821"})
_RUFF_SELECT = "F,E9,B"
_RUFF_TIMEOUT = 30.0
_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")
_QUOTED = re.compile(r"'([^']+)'")


@dataclass(frozen=True, slots=True)
class Diagnostic:
    file: str
    line: int
    col: int
    end_line: int
    end_col: int
    severity: Severity
    code: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "end_line": self.end_line,
            "end_col": self.end_col,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
        }

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


def _at(file: str, line: int, col: int, code: str, message: str, severity: Severity = "error") -> Diagnostic:
    return Diagnostic(file, line, col, line, col + 1, severity, code, message)


def lint_files(files: dict[str, str]) -> list[Diagnostic]:
    """All diagnostics for a folder, sorted by file and position."""
    found, compiled = check_structure(files)
    found += ruff_diagnostics({path: files[path] for path in compiled})
    return sort_diagnostics(found)


def sort_diagnostics(found: list[Diagnostic]) -> list[Diagnostic]:
    return sorted(found, key=lambda d: (d.file, d.line, d.col, d.code))


def has_errors(found: list[Diagnostic]) -> bool:
    return any(d.is_error for d in found)


# -- structure -------------------------------------------------------------------------------------------------
def check_structure(files: dict[str, str]) -> tuple[list[Diagnostic], list[str]]:
    """The structural checks (no subprocess): diagnostics, and the ``.py`` files that compiled."""
    found: list[Diagnostic] = []
    compiled: list[str] = []
    trees: dict[str, ast.Module] = {}
    for path in sorted(files):
        text = files[path]
        problem = _path_problem(path, text)
        if problem is not None:
            found.append(problem)
            continue
        if path.endswith(".py"):
            tree, diagnostics = _compile(path, text)
            found += diagnostics
            if tree is not None:
                trees[path] = tree
                compiled.append(path)
        elif path.startswith("queries/"):
            found += _check_query(path, text)
    found += _check_entry(files, trees)
    if "workflow.toml" in files and _path_problem("workflow.toml", files["workflow.toml"]) is None:
        found += _check_settings(files["workflow.toml"])
    return found, compiled


def _path_problem(path: str, text: object) -> Diagnostic | None:
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or "\\" in path:
        return _at(path, 1, 1, UNSAFE_PATH, f"file path {path!r} must be relative, without '..'")
    if not isinstance(text, str):
        return _at(path, 1, 1, UNSAFE_PATH, f"{path}: file content must be text")
    if len(text.encode()) > MAX_FILE_BYTES:
        return _at(path, 1, 1, FILE_TOO_LARGE, f"{path}: file is larger than {MAX_FILE_BYTES} bytes")
    return None


def _compile(path: str, text: str) -> tuple[ast.Module | None, list[Diagnostic]]:
    found: list[Diagnostic] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            tree = ast.parse(text, filename=path)
            compile(tree, path, "exec", dont_inherit=True)  # also the checks after parsing ('return' outside ...)
        except SyntaxError as exc:
            return None, [_syntax_error(path, exc)]
        except ValueError as exc:  # e.g. a NUL byte in the source
            return None, [_at(path, 1, 1, SYNTAX, f"{type(exc).__name__}: {exc}")]
    for warning in caught:
        line = warning.lineno if warning.filename == path else 1
        found.append(_at(path, max(line, 1), 1, SYNTAX_WARNING, str(warning.message), "warning"))
    return tree, found


def _syntax_error(path: str, exc: SyntaxError) -> Diagnostic:
    line = exc.lineno or 1
    col = exc.offset or 1
    end_line = exc.end_lineno or line
    end_col = exc.end_offset if exc.end_offset and (end_line, exc.end_offset) > (line, col) else col + 1
    name = type(exc).__name__
    message = exc.msg if name == "SyntaxError" else f"{name}: {exc.msg}"
    return Diagnostic(path, line, col, end_line, end_col, "error", SYNTAX, message)


def _check_entry(files: dict[str, str], trees: dict[str, ast.Module]) -> list[Diagnostic]:
    if "main.py" not in files:
        return [_at("main.py", 1, 1, NO_MAIN, "a workflow needs a main.py defining async def execute_workflow(data)")]
    tree = trees.get("main.py")
    if tree is None:  # does not compile: already reported
        return []
    entry = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "execute_workflow"
    ]
    if not entry:
        return [_at("main.py", 1, 1, NO_ENTRY, "main.py must define async def execute_workflow(data)")]
    node = entry[-1]
    if isinstance(node, ast.FunctionDef):
        return [
            Diagnostic(
                "main.py",
                node.lineno,
                node.col_offset + 1,
                node.lineno,
                node.col_offset + 4,
                "error",
                ENTRY_NOT_ASYNC,
                "execute_workflow must be declared 'async def'",
            )
        ]
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    required_kw = [a for a, default in zip(args.kwonlyargs, args.kw_defaults, strict=True) if default is None]
    takes_one = bool(positional) or args.vararg is not None
    too_many = len(positional) - len(args.defaults) > 1
    if not takes_one or too_many or required_kw:
        return [
            _at(
                "main.py",
                node.lineno,
                node.col_offset + 1,
                ENTRY_SIGNATURE,
                "execute_workflow must take exactly one argument: async def execute_workflow(data)",
            )
        ]
    return []


def _check_settings(text: str) -> list[Diagnostic]:
    try:
        parse_settings(text)
    except WorkflowFolderError as exc:
        message = str(exc).removeprefix("workflow.toml: ")
        line, col = _locate(text, message)
        return [_at("workflow.toml", line, col, BAD_SETTINGS, message)]
    return []


def _check_query(path: str, text: str) -> list[Diagnostic]:
    relative = PurePosixPath(path).relative_to("queries")
    suffix = relative.suffix
    if suffix not in (".sql", ".toml"):
        return [_at(path, 1, 1, NOT_A_QUERY, "not a query: query files end in .sql or .toml", "warning")]
    if len(relative.parts) > 1:
        return [_at(path, 1, 1, NOT_A_QUERY, "wf.queries only finds files directly under queries/, not in subfolders")]
    name = relative.stem
    try:
        if suffix == ".sql":
            parse_sql_query(name, text)
        else:
            parse_toml_query(name, text)
    except WorkflowFolderError as exc:
        message = str(exc).removeprefix(f"{path}: ")
        line, col = _locate(text, message)
        return [_at(path, line, col, BAD_QUERY, message)]
    return []


def _locate(text: str, message: str) -> tuple[int, int]:
    """Where in a TOML or SQL file a message points: its ``(at line N, column M)``, else a quoted key's line."""
    position = _TOML_POSITION.search(message)
    if position:
        return int(position.group(1)), int(position.group(2))
    lines = text.splitlines()
    if "(at end of document)" in message:
        return max(len(lines), 1), len(lines[-1]) + 1 if lines else 1
    for quoted in _QUOTED.findall(message.split("; known")[0]):
        key = quoted.split(" ")[-1]
        for number, line in enumerate(lines, 1):
            stripped = line.strip()
            if re.match(rf"^(--\s*)?{re.escape(key)}\s*[=:]", stripped) or stripped == f"[{key}]":
                return number, line.index(stripped[0]) + 1
    for keyword in ("timeout", "retries", "attempts", "backoff", "wait", "description", "datasource"):
        if keyword in message:
            for number, line in enumerate(lines, 1):
                if re.match(rf"^\s*(--\s*)?{keyword}\s*[=:]", line):
                    return number, 1
    return 1, 1


# -- ruff ------------------------------------------------------------------------------------------------------
def find_ruff() -> str | None:
    beside = Path(sys.executable).parent / "ruff"
    if beside.is_file():
        return str(beside)
    return shutil.which("ruff")


def ruff_diagnostics(sources: dict[str, str]) -> list[Diagnostic]:
    """ruff's findings for these (compiling) Python files; empty if ruff is missing or fails."""
    if not sources:
        return []
    ruff = find_ruff()
    if ruff is None:
        return []
    with tempfile.TemporaryDirectory(prefix="loomwork-lint-") as tmp:
        root = Path(tmp).resolve()
        paths = []
        for path, text in sources.items():
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            paths.append(str(target))
        command = [
            ruff,
            "check",
            "--isolated",
            "--no-cache",
            "--exit-zero",
            "--output-format=json",
            f"--select={_RUFF_SELECT}",
            f"--target-version=py3{min(sys.version_info.minor, 13)}",
            *paths,
        ]
        try:
            done = subprocess.run(command, capture_output=True, timeout=_RUFF_TIMEOUT, check=False, cwd=root)
        except (OSError, subprocess.SubprocessError):
            return []
        if done.returncode != 0:
            return []
        try:
            results = json.loads(done.stdout or b"[]")
        except ValueError:
            return []
        return [d for d in (_from_ruff(root, item) for item in results) if d is not None]


def _from_ruff(root: Path, item: Any) -> Diagnostic | None:
    try:
        code = item.get("code")
        if not code or not re.match(r"^[A-Z]+[0-9]+$", code) or code.startswith("E9"):
            return None  # syntax errors are reported by the compile check, with Python's own wording
        file = Path(item["filename"]).resolve().relative_to(root).as_posix()
        start, end = item["location"], item.get("end_location") or item["location"]
        severity: Severity = "error" if code in _ERROR_CODES else "warning"
        return Diagnostic(
            file,
            int(start["row"]),
            int(start["column"]),
            int(end["row"]),
            int(end["column"]),
            severity,
            code,
            str(item.get("message", code)),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
