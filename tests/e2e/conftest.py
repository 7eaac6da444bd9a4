"""End-to-end fixtures: a real server process with the shop example's datasource, an admin API key."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from loomwork.mailsink import MailSink

from .server import ServerProcess, free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def mail(tmp_path: Path) -> Iterator[MailSink]:
    """An SMTP server in the test process, on a free port: the examples' ``mailer`` datasource sends here."""
    sink = MailSink(tmp_path / "mail", "127.0.0.1", free_port())
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def server(tmp_path: Path, mail: MailSink) -> Iterator[ServerProcess]:
    shop = tmp_path / "shop"
    shop.mkdir()
    text = (EXAMPLES / "datasources.toml").read_text()
    text = text.replace("port = 2525", f"port = {mail.port}").replace("sink = true", "")
    (shop / "datasources.toml").write_text(text)
    shutil.copy(EXAMPLES / "shop.sql", shop / "shop.sql")
    process = ServerProcess(tmp_path, env={"LOOMWORK_DATASOURCES_FILE": str(shop / "datasources.toml")})
    process.init()
    process.start()
    try:
        yield process
    finally:
        process.stop()
