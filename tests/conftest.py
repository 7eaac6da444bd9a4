"""Fixtures: every engine and store test runs on SQLite and on PostgreSQL (a fresh database per test)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from loomwork.engine import Engine
from loomwork.store import Store
from loomwork.testing import engine_for_tests

POSTGRES_URL = os.environ.get("LOOMWORK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_SERVICES = os.environ.get("LOOMWORK_REQUIRE_SERVICES") == "1"


def service_missing(reason: str) -> None:
    """Skip with a visible reason on a bare laptop; fail in CI, where every service must be there."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


def _admin_url(database: str) -> str:
    base, _, _ = POSTGRES_URL.rpartition("/")
    return f"{base}/{database}"


_template: dict[str, str] = {}


def _postgres_template() -> str:
    """A database with the schema migrated once; each test gets a copy of it (fast)."""
    if "name" in _template:
        return _template["name"]
    name = f"lw_template_{os.getpid()}"
    try:
        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        service_missing(f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}")
    store = Store(_admin_url(name))
    store.migrate()
    store.close()
    _template["name"] = name
    return name


@pytest.fixture(scope="session", autouse=True)
def _drop_template() -> Iterator[None]:
    yield
    if "name" in _template:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{_template["name"]}" WITH (FORCE)')


@pytest.fixture
def postgres_url() -> Iterator[str]:
    template = _postgres_template()
    name = f"lw_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield _admin_url(name)
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'loomwork.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def backend(database_url: str) -> str:
    return "postgres" if database_url.startswith("postgresql") else "sqlite"


@pytest.fixture
async def engine(database_url: str, tmp_path: Path) -> AsyncIterator[Engine]:
    async with engine_for_tests(tmp_path / "data", database_url=database_url) as started:
        yield started


def make_engine(database_url: str, tmp_path: Path, **kwargs: Any) -> Any:
    return engine_for_tests(tmp_path / "data", database_url=database_url, **kwargs)
