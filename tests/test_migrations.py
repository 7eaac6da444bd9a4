"""The numbered SQL migrations produce exactly the schema declared in ``loomwork.store.schema``.

Run on SQLite and on PostgreSQL: the database is emptied, migrated from nothing and then compared, through
``sqlalchemy.inspect``, with ``schema.metadata``: tables, columns (name, type, nullability), primary and foreign
keys, unique constraints, indexes (with their partial-index predicates) and CHECK constraints.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import exc

from loomwork.model import LogLevel, RequestStatus, Role, RunStatus, StepKind, StepStatus, Trigger
from loomwork.store import Store
from loomwork.store.migrations import available_migrations
from loomwork.store.schema import metadata

#: The enum each CHECK constraint must allow, value for value.
CHECKED_ENUMS: dict[tuple[str, str], set[str]] = {
    ("runs", "status"): {v.value for v in RunStatus},
    ("runs", "trigger"): {v.value for v in Trigger},
    ("steps", "kind"): {v.value for v in StepKind},
    ("steps", "status"): {v.value for v in StepStatus},
    ("requests", "status"): {v.value for v in RequestStatus},
    ("logs", "level"): {v.value for v in LogLevel},
    ("request_assignees", "kind"): {"user", "group"},
    ("members", "role"): {v.value for v in Role},
    ("api_keys", "role"): {v.value for v in Role},
}


@pytest.fixture
def empty_store(database_url: str) -> Iterator[Store]:
    """A store on a database with nothing in it (the Postgres test database comes migrated: empty it)."""
    store = Store(database_url)
    if store.dialect == "postgresql":
        with store.engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
    assert sa.inspect(store.engine).get_table_names() == []
    try:
        yield store
    finally:
        store.close()


# -- normalising what the two databases reflect -------------------------------------------------------------
def normalise_sql(text: str) -> str:
    """One spelling for a predicate: Postgres reflects ``x IN (...)`` as ``x = ANY (ARRAY[...::text])``."""
    sql = text.lower().replace("::text", "")
    sql = re.sub(r"=\s*any\s*\(\s*array\[(.*?)\]\s*\)", r" in (\1)", sql)
    sql = sql.replace('"', "")
    return re.sub(r"[()\s]", "", sql)


def check_parts(sqltext: str) -> tuple[str, frozenset[str]]:
    """The column a ``col IN ('a', 'b')`` check constrains, and the values it allows."""
    column = re.match(r'[\s("]*(\w+)', sqltext)
    assert column is not None, sqltext
    return column.group(1), frozenset(re.findall(r"'([^']*)'", sqltext))


def column_type(type_: sa.types.TypeEngine[Any], dialect: sa.Dialect) -> str:
    if dialect.name == "sqlite" and isinstance(type_, sa.JSON):
        return "TEXT"  # SQLite has no JSON type; TEXT gives the column text affinity (JSON's would be NUMERIC)
    return type_.compile(dialect=dialect)


def declared_schema(dialect: sa.Dialect) -> dict[str, Any]:
    schema: dict[str, Any] = {}
    for table in metadata.sorted_tables:
        indexes = set()
        for index in table.indexes:
            where = index.dialect_options[dialect.name].get("where")
            indexes.add(
                (
                    index.name,
                    tuple(c.name for c in index.columns),
                    bool(index.unique),
                    None if where is None else normalise_sql(str(where)),
                )
            )
        schema[table.name] = {
            "columns": {c.name: (column_type(c.type, dialect), c.nullable) for c in table.columns},
            "primary_key": [c.name for c in table.primary_key.columns],
            "serial": table.autoincrement_column.name
            if dialect.name == "postgresql" and table.autoincrement_column is not None
            else None,
            "foreign_keys": {
                (
                    tuple(fk.column_keys),
                    fk.referred_table.name,
                    tuple(e.column.name for e in fk.elements),
                    (fk.ondelete or "").upper() or None,
                )
                for fk in table.foreign_key_constraints
            },
            "unique": {
                (c.name, tuple(col.name for col in c.columns))
                for c in table.constraints
                if isinstance(c, sa.UniqueConstraint)
            },
            "indexes": indexes,
            "checks": {
                (c.name, normalise_sql(str(c.sqltext))) for c in table.constraints if isinstance(c, sa.CheckConstraint)
            },
        }
    return schema


def reflected_schema(engine: sa.Engine) -> dict[str, Any]:
    inspector = sa.inspect(engine)
    dialect = engine.dialect
    schema: dict[str, Any] = {}
    for name in inspector.get_table_names():
        columns = inspector.get_columns(name)
        serial = [c["name"] for c in columns if str(c.get("default") or "").startswith("nextval(")]
        indexes = set()
        for index in inspector.get_indexes(name):
            if index.get("duplicates_constraint"):
                continue  # the index Postgres builds for a UNIQUE constraint, compared as a constraint
            where = index.get("dialect_options", {}).get(f"{dialect.name}_where")
            indexes.add(
                (
                    index["name"],
                    tuple(index["column_names"]),
                    bool(index["unique"]),
                    None if where is None else normalise_sql(str(where)),
                )
            )
        schema[name] = {
            "columns": {c["name"]: (column_type(c["type"], dialect), c["nullable"]) for c in columns},
            "primary_key": inspector.get_pk_constraint(name)["constrained_columns"],
            "serial": serial[0] if serial else None,
            "foreign_keys": {
                (
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                    (fk.get("options", {}).get("ondelete") or "").upper() or None,
                )
                for fk in inspector.get_foreign_keys(name)
            },
            "unique": {(u["name"], tuple(u["column_names"])) for u in inspector.get_unique_constraints(name)},
            "indexes": indexes,
            "checks": {(c["name"], normalise_sql(c["sqltext"])) for c in inspector.get_check_constraints(name)},
        }
    return schema


# -- the tests ----------------------------------------------------------------------------------------------
def test_migrations_produce_exactly_the_declared_schema(empty_store: Store) -> None:
    applied = empty_store.migrate()
    migrations = available_migrations(empty_store.dialect)
    assert applied == [f"{m.version:04d}_{m.name}" for m in migrations]

    declared = declared_schema(empty_store.engine.dialect)
    reflected = reflected_schema(empty_store.engine)
    assert sorted(reflected) == sorted(declared)
    for table in declared:
        for aspect in declared[table]:
            assert reflected[table][aspect] == declared[table][aspect], f"{table}: {aspect} differs"


def test_check_constraints_allow_exactly_the_enum_values(empty_store: Store) -> None:
    empty_store.migrate()
    inspector = sa.inspect(empty_store.engine)
    found: dict[tuple[str, str], frozenset[str]] = {}
    for table in inspector.get_table_names():
        for check in inspector.get_check_constraints(table):
            column, values = check_parts(check["sqltext"])
            found[(table, column)] = values
    assert found == {key: frozenset(values) for key, values in CHECKED_ENUMS.items()}

    # The declared schema builds its checks from the same enums.
    for table in metadata.sorted_tables:
        for constraint in table.constraints:
            if isinstance(constraint, sa.CheckConstraint):
                column, values = check_parts(str(constraint.sqltext))
                assert values == CHECKED_ENUMS[(table.name, column)]


def _insert_run(conn: sa.Connection, **overrides: Any) -> None:
    now = datetime.now(UTC)
    version = metadata.tables["workflow_versions"]
    if conn.execute(sa.select(sa.func.count()).select_from(version)).scalar_one() == 0:
        conn.execute(version.insert().values(id=1, workspace="w", workflow="f", number=1, files={}, created_at=now))
    values: dict[str, Any] = {
        "id": "run-1",
        "workspace": "w",
        "workflow": "f",
        "version_id": 1,
        "version": 1,
        "status": RunStatus.QUEUED.value,
        "trigger": Trigger.API.value,
        "test": False,
        "created_at": now,
        "attempts": 0,
        "crashes": 0,
        **overrides,
    }
    conn.execute(metadata.tables["runs"].insert().values(**values))


@pytest.mark.parametrize(
    ("column", "enum_type"), [("status", RunStatus), ("trigger", Trigger)], ids=["status", "trigger"]
)
def test_the_database_refuses_values_outside_the_enum(
    empty_store: Store, column: str, enum_type: type[enum.StrEnum]
) -> None:
    empty_store.migrate()
    with empty_store.engine.begin() as conn:
        for n, value in enumerate(enum_type):
            _insert_run(conn, id=f"ok-{n}", **{column: value.value})
    with pytest.raises(exc.IntegrityError), empty_store.engine.begin() as conn:
        _insert_run(conn, id="bad", **{column: "bogus"})


def test_migrating_again_changes_nothing(empty_store: Store) -> None:
    first = empty_store.migrate()
    assert first
    before = reflected_schema(empty_store.engine)
    migrations_table = metadata.tables["schema_migrations"]
    with empty_store.engine.connect() as conn:
        rows_before = conn.execute(sa.select(migrations_table).order_by(migrations_table.c.version)).all()
    assert empty_store.migrate() == []
    assert empty_store.migrate() == []
    with empty_store.engine.connect() as conn:
        rows_after = conn.execute(sa.select(migrations_table).order_by(migrations_table.c.version)).all()
    assert rows_after == rows_before
    assert reflected_schema(empty_store.engine) == before


def test_schema_migrations_records_every_version(empty_store: Store) -> None:
    started = datetime.now(UTC)
    empty_store.migrate()
    migrations_table = metadata.tables["schema_migrations"]
    with empty_store.engine.connect() as conn:
        rows = conn.execute(sa.select(migrations_table).order_by(migrations_table.c.version)).all()
    expected = [(m.version, m.name) for m in available_migrations(empty_store.dialect)]
    assert [(row.version, row.name) for row in rows] == expected
    for row in rows:
        applied_at = row.applied_at if row.applied_at.tzinfo else row.applied_at.replace(tzinfo=UTC)
        assert applied_at >= started.replace(microsecond=0)


def test_migration_files_are_numbered_and_alike_for_every_dialect() -> None:
    by_dialect = {d: available_migrations(d) for d in ("sqlite", "postgresql")}
    for dialect, migrations in by_dialect.items():
        versions = [m.version for m in migrations]
        assert versions == list(range(1, len(versions) + 1)), f"{dialect}: gaps or duplicates in {versions}"
        assert all(m.sql.strip() for m in migrations)
    assert [(m.version, m.name) for m in by_dialect["sqlite"]] == [
        (m.version, m.name) for m in by_dialect["postgresql"]
    ]
