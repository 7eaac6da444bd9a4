"""Versioned migrations: numbered SQL files per dialect, applied in order, each in its own transaction.

Plain SQL files rather than generated code: what runs against a production database is what a reviewer reads.
``tests/test_migrations.py`` checks that applying them all yields exactly the schema declared in ``schema.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

import sqlalchemy as sa

from .schema import schema_migrations

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def available_migrations(dialect: str) -> list[Migration]:
    folder = resources.files("loomwork.store") / "migrations" / dialect
    found = []
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


def _statements(sql: str) -> list[str]:
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def applied_versions(conn: sa.Connection) -> set[int]:
    if not sa.inspect(conn).has_table("schema_migrations"):
        return set()
    return set(conn.execute(sa.select(schema_migrations.c.version)).scalars())


def apply_migrations(engine: sa.Engine) -> list[Migration]:
    """Apply every migration not yet applied; returns those applied now. Safe to run concurrently on Postgres."""
    dialect = engine.dialect.name
    applied_now: list[Migration] = []
    with engine.begin() as conn:
        if dialect == "postgresql":
            # Two nodes starting at once must not both migrate: serialise on an advisory lock.
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7716000001)")
        done = applied_versions(conn)
        for migration in available_migrations(dialect):
            if migration.version in done:
                continue
            for statement in _statements(migration.sql):
                conn.exec_driver_sql(statement)
            conn.execute(
                schema_migrations.insert().values(
                    version=migration.version, name=migration.name, applied_at=datetime.now(UTC)
                )
            )
            applied_now.append(migration)
    return applied_now
