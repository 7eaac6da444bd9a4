"""Server settings: defaults, then ``loomwork.toml``, then ``LOOMWORK_*`` environment variables (last wins).

Every setting has one name; its environment variable is ``LOOMWORK_`` + the name in upper case, and its key in
``loomwork.toml`` is the name itself. ``docs/configuration.md`` lists them all.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .engine import EngineConfig
from .errors import LoomworkError

SECRET_SETTINGS = frozenset({"secret_key", "previous_secret_keys", "database_url"})


class SettingsError(LoomworkError):
    """A setting has a value of the wrong type or out of range."""


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path = Path(".loomwork")
    database_url: str | None = None
    secret_key: str | None = None
    previous_secret_keys: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None
    workers: int = field(default_factory=lambda: max(1, min(4, os.cpu_count() or 1)))
    max_active_runs: int = 2000
    sqlite_synchronous: str = "FULL"
    worker_memory_mb: int | None = None
    run_cpu_limit: float = 60.0
    max_body_bytes: int = 10 * 1024 * 1024
    cookie_secure: bool = False
    log_level: str = "info"
    datasources_file: Path | None = None

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def engine_config(self, *, execute: bool = True) -> EngineConfig:
        return EngineConfig(
            data_dir=self.data_dir,
            database_url=self.database_url,
            workers=self.workers,
            max_active_runs=self.max_active_runs,
            sqlite_synchronous=self.sqlite_synchronous,
            worker_memory_mb=self.worker_memory_mb,
            run_cpu_limit=self.run_cpu_limit,
            public_url=self.base_url,
            secret_key=(self.secret_key or "").encode(),
            previous_secret_keys=tuple(
                k.strip().encode() for k in (self.previous_secret_keys or "").split(",") if k.strip()
            ),
            execute=execute,
        )

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def masked(self) -> dict[str, Any]:
        """The effective settings as strings, secrets masked: for ``loomwork config``."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_SETTINGS and value:
                value = _mask(f.name, str(value))
            out[f.name] = str(value) if isinstance(value, Path) else value
        return out

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, config_file: Path | None = None) -> Settings:
        env = os.environ if environ is None else environ
        path = config_file or Path(env.get("LOOMWORK_CONFIG", "loomwork.toml"))
        values: dict[str, Any] = {}
        if path.is_file():
            try:
                values.update(tomllib.loads(path.read_text(encoding="utf-8")))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise SettingsError(f"{path}: not valid TOML: {exc}") from exc
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise SettingsError(f"{path}: unknown setting(s): {', '.join(unknown)}")
        for name in names:
            key = f"LOOMWORK_{name.upper()}"
            if key in env:
                values[name] = env[key]
        return cls(**{name: _coerce(name, names[name].type, value) for name, value in values.items()})


def _mask(name: str, value: str) -> str:
    if name == "database_url" and "@" in value and "://" in value:
        scheme, _, rest = value.partition("://")
        creds, _, host = rest.rpartition("@")
        user = creds.partition(":")[0]
        return f"{scheme}://{user}:****@{host}" if ":" in creds else value
    return "****"


def _coerce(name: str, kind: Any, value: Any) -> Any:
    kind = str(kind)
    try:
        if value is None or (isinstance(value, str) and value == "" and "None" in kind):
            return None
        if kind.startswith("Path"):
            return Path(str(value))
        if kind.startswith("int"):
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if kind.startswith("float"):
            return float(value)
        if kind.startswith("bool"):
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        return str(value)
    except (TypeError, ValueError):
        raise SettingsError(f"setting {name!r}: {value!r} is not a valid {kind.split(' ')[0]}") from None
