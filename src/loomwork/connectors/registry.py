"""The datasource kinds: their config and secret fields, checked here, and the module that connects to each.

A kind's module (``loomwork.connectors.<kind>``) is imported only when a datasource of that kind is used, so
a driver that is not needed is never loaded. Each module exposes ``create(name, config, secrets, base_dir)``
returning a :class:`~loomwork.connectors.base.Connector`. ``docs/datasources.md`` documents the same fields.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import Unprocessable
from .base import Connector


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: type | tuple[type, ...]
    required: bool = False
    help: str = ""

    def check(self, datasource: str, where: str, value: Any) -> None:
        wanted = self.type if isinstance(self.type, tuple) else (self.type,)
        ok = isinstance(value, wanted) and not (isinstance(value, bool) and bool not in wanted)
        if not ok:
            names = " or ".join(t.__name__ for t in wanted)
            raise Unprocessable(f"datasource {datasource!r}: {where}.{self.name} must be {names}")


@dataclass(frozen=True, slots=True)
class KindSpec:
    kind: str
    module: str
    config: tuple[Field, ...]
    secrets: tuple[Field, ...]
    #: Groups of secret names of which at least one group must be complete (e.g. password, or a url).
    required_secrets: tuple[tuple[str, ...], ...] = ()

    def check(
        self, datasource: str, config: Mapping[str, Any], secrets: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The config and secrets, checked: unknown, missing or mistyped fields raise :class:`Unprocessable`."""
        known = {f.name: f for f in self.config}
        unknown = sorted(set(config) - set(known))
        if unknown:
            allowed = ", ".join(known) or "none"
            raise Unprocessable(
                f"datasource {datasource!r}: unknown {self.kind} config field(s) {', '.join(unknown)} "
                f"(allowed: {allowed})"
            )
        for field in self.config:
            if field.name in config and config[field.name] is not None:
                field.check(datasource, "config", config[field.name])
            elif field.required:
                raise Unprocessable(f"datasource {datasource!r}: {self.kind} needs config.{field.name}")
        secret_names = {f.name for f in self.secrets}
        unknown = sorted(set(secrets) - secret_names)
        if unknown:
            allowed = ", ".join(sorted(secret_names)) or "none"
            raise Unprocessable(
                f"datasource {datasource!r}: unknown {self.kind} secret(s) {', '.join(unknown)} (allowed: {allowed})"
            )
        for name, value in secrets.items():
            if not isinstance(value, str):
                raise Unprocessable(f"datasource {datasource!r}: secrets.{name} must be a string")
        return {k: v for k, v in config.items() if v is not None}, dict(secrets)

    def check_required_secrets(self, datasource: str, secrets: Mapping[str, str]) -> None:
        """At least one group of ``required_secrets`` must be set (called on the stored, merged secrets)."""
        if not self.required_secrets:
            return
        if any(all(secrets.get(name) for name in group) for group in self.required_secrets):
            return
        options = " or ".join("+".join(group) for group in self.required_secrets)
        raise Unprocessable(f"datasource {datasource!r}: {self.kind} needs the secret(s) {options}")


_SQL_SERVER = (
    Field("host", str, help="server host name or address"),
    Field("port", int, help="server port"),
    Field("database", str, help="database name"),
    Field("user", str, help="user name"),
    Field("options", dict, help="driver options (e.g. sslmode, connect_timeout)"),
    Field("pool_size", int, help="connections kept open (default 5)"),
)
_HTTP = (
    Field("base_url", str, required=True, help="e.g. https://api.example.com/v1"),
    Field("headers", dict, help="default headers sent with every call"),
    Field("auth_kind", str, help="none (default), bearer, basic or api_key"),
    Field("api_key_header", str, help="header carrying the api_key secret (default X-API-Key)"),
    Field("timeout", (int, float), help="seconds per call (default 30)"),
    Field("verify_tls", bool, help="check the server's TLS certificate (default true)"),
)

KINDS: dict[str, KindSpec] = {
    "postgres": KindSpec(
        "postgres",
        "loomwork.connectors.postgres",
        _SQL_SERVER,
        (Field("password", str), Field("url", str, help="a whole postgresql:// URL instead of the fields")),
    ),
    "mysql": KindSpec(
        "mysql",
        "loomwork.connectors.mysql",
        _SQL_SERVER,
        (Field("password", str), Field("url", str, help="a whole mysql:// URL instead of the fields")),
    ),
    "sqlite": KindSpec(
        "sqlite",
        "loomwork.connectors.sqlite",
        (
            Field("path", str, required=True, help="the database file (relative paths: to the server's data dir)"),
            Field("create_from", str, help="a SQL script that creates the database if the file is missing"),
        ),
        (),
    ),
    "rest": KindSpec(
        "rest",
        "loomwork.connectors.rest",
        _HTTP,
        (Field("token", str), Field("username", str), Field("password", str), Field("api_key", str)),
    ),
    "graphql": KindSpec(
        "graphql",
        "loomwork.connectors.graphql",
        (*_HTTP, Field("endpoint", str, help="path of the GraphQL endpoint under base_url (default /graphql)")),
        (Field("token", str), Field("username", str), Field("password", str), Field("api_key", str)),
    ),
    "smtp": KindSpec(
        "smtp",
        "loomwork.connectors.smtp",
        (
            Field("host", str, required=True),
            Field("port", int, help="default 587 with starttls, 465 with tls, else 25"),
            Field("tls", str, help="none, starttls (default) or tls"),
            Field("from", str, required=True, help="the sender address"),
            Field("timeout", (int, float), help="seconds (default 30)"),
        ),
        (Field("username", str), Field("password", str)),
    ),
    "redis": KindSpec(
        "redis",
        "loomwork.connectors.redis",
        (Field("timeout", (int, float), help="seconds per command (default 10)"),),
        (Field("url", str, help="redis://[:password@]host:port/db"),),
        required_secrets=(("url",),),
    ),
}


def spec_of(kind: str) -> KindSpec:
    try:
        return KINDS[kind]
    except KeyError:
        raise Unprocessable(f"unknown datasource kind {kind!r} (kinds: {', '.join(KINDS)})") from None


def create_connector(
    name: str, kind: str, config: dict[str, Any], secrets: dict[str, str], base_dir: Path | None = None
) -> Connector:
    """A connector for one datasource (not yet opened); its driver module is imported now."""
    module = importlib.import_module(spec_of(kind).module)
    connector: Connector = module.create(name, config, secrets, base_dir)
    return connector
