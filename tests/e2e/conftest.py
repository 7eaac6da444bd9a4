"""End-to-end fixtures: a real server process with the shop example's datasource, an admin API key."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .server import ServerProcess

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    shop = tmp_path / "shop"
    shop.mkdir()
    shutil.copy(EXAMPLES / "datasources.toml", shop / "datasources.toml")
    shutil.copy(EXAMPLES / "shop.sql", shop / "shop.sql")
    process = ServerProcess(tmp_path, env={"LOOMWORK_DATASOURCES_FILE": str(shop / "datasources.toml")})
    process.init()
    process.start()
    try:
        yield process
    finally:
        process.stop()
