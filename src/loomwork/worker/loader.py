"""Load a deployed version's code in a worker process, each version in a package of its own.

``main.py`` becomes ``_loomwork_v<id>.main``, so ``from . import helpers`` works and two versions of one
workflow never share modules. Plain ``import helpers`` also works at import time: the version's folder is put
on ``sys.path`` while ``main`` is imported, and the top-level modules it brings are then moved under the
version's package so that another version importing its own ``helpers`` gets its own.
"""

from __future__ import annotations

import importlib
import sys
import traceback
import types
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import WorkflowFolderError
from ..folder import WorkflowSettings, parse_settings
from ..model import ErrorInfo

Entry = Callable[[Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class LoadedVersion:
    version_id: int
    directory: Path
    entry: Entry
    settings: WorkflowSettings

    def format_error(self, exc: BaseException) -> ErrorInfo:
        """Type, message and a traceback of the workflow's own files only."""
        root = str(self.directory) + "/"
        error_type = getattr(exc, "error_type", None) or type(exc).__name__
        frames = [frame for frame in traceback.extract_tb(exc.__traceback__) if frame.filename.startswith(root)]
        for frame in frames:
            frame.filename = frame.filename[len(root) :]
        lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
        remote = getattr(exc, "remote_traceback", "")
        last = f"{error_type}: {exc}\n"
        if remote:
            # The step's own traceback already ends with the error line.
            lines.append(f"  (raised by the step:)\n{remote}")
            if not remote.endswith(last):
                lines.append(last)
        else:
            lines.append(last)
        return ErrorInfo(str(error_type), str(exc), "".join(lines))


def load_version(version_id: int, files: dict[str, str], root: Path) -> LoadedVersion:
    directory = root / f"v{version_id}"
    for relative, text in files.items():
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    package_name = f"_loomwork_v{version_id}"
    package = types.ModuleType(package_name)
    package.__path__ = [str(directory)]
    package.__file__ = None
    sys.modules[package_name] = package
    before = set(sys.modules)
    sys.path.insert(0, str(directory))
    try:
        module = importlib.import_module(f"{package_name}.main")
    except Exception as exc:
        raise WorkflowFolderError(f"importing main.py failed: {type(exc).__name__}: {exc}") from exc
    finally:
        sys.path.remove(str(directory))
        for name in set(sys.modules) - before:
            loaded = sys.modules[name]
            if not name.startswith(package_name) and str(getattr(loaded, "__file__", "")).startswith(str(directory)):
                sys.modules[f"{package_name}.{name}"] = sys.modules.pop(name)
    entry = getattr(module, "execute_workflow", None)
    if entry is None or not callable(entry):
        raise WorkflowFolderError("main.py must define async def execute_workflow(data)")
    return LoadedVersion(version_id, directory, entry, parse_settings(files.get("workflow.toml")))
