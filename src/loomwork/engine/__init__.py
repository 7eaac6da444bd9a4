"""The engine: durable execution of runs, free of HTTP. ``Engine`` is the one public entry point."""

from .config import EngineConfig
from .directory import Directory, OpenDirectory, StaticDirectory
from .effects import EffectCall, EffectExecutor
from .engine import DEFAULT_WORKSPACE, Engine

__all__ = [
    "DEFAULT_WORKSPACE",
    "Directory",
    "EffectCall",
    "EffectExecutor",
    "Engine",
    "EngineConfig",
    "OpenDirectory",
    "StaticDirectory",
]
