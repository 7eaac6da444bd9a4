"""The smtp connector against a real in-process SMTP server (aiosmtpd)."""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loomwork.connectors.base import ConnectorError
from loomwork.connectors.smtp import create
from loomwork.queries import parse_toml_query

from .servers import SmtpServer, free_port, self_signed_cert, start_smtp

PASSWORD = "smtp-SECRET-pw-42"
# The plain-text AUTH test server (auth_require_tls=False) warns on every connection; that is the point of it.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


@pytest.fixture
def plain() -> Iterator[SmtpServer]:
    server = start_smtp()
    yield server
    server.controller.stop()


@pytest.fixture
def authed() -> Iterator[SmtpServer]:
    server = start_smtp(user="mailer", password=PASSWORD)
    yield server
    server.controller.stop()


def config(port: int, **extra: Any) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": port, "tls": "none", "from": "Loomwork <bot@example.com>", **extra}


def q(text: str) -> Any:
    return parse_toml_query("notify", 'datasource = "mailer"\n' + text)


def parsed(server: SmtpServer, index: int = -1) -> email.message.EmailMessage:
    raw = server.sink.messages[index].content
    assert isinstance(raw, bytes)
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


async def test_sends_one_text_message(plain: SmtpServer) -> None:
    connector = create("mailer", config(plain.port), {}, None)
    query = q(
        'to = "{{ params.email }}"\nsubject = "Refund for order {{ params.id }}"\ntext = "Hello {{ params.name }} ✓"'
    )
    result = await connector.execute(query, {"email": "ann@example.com", "id": 17, "name": "Änn"}, "run-1:3")
    assert result["accepted"] == ["ann@example.com"]
    assert len(plain.sink.messages) == 1
    envelope = plain.sink.messages[0]
    assert envelope.mail_from == "bot@example.com"
    assert envelope.rcpt_tos == ["ann@example.com"]
    message = parsed(plain)
    assert message["Subject"] == "Refund for order 17"
    assert message["To"] == "ann@example.com"
    assert message["Message-ID"] == result["message_id"]
    assert result["message_id"].endswith("@example.com>")
    assert message["X-Loomwork-Idempotency-Key"] == "run-1:3"
    assert message.get_content_type() == "text/plain"
    assert message.get_content().strip() == "Hello Änn ✓"


async def test_text_and_html_make_multipart_alternative(plain: SmtpServer) -> None:
    connector = create("mailer", config(plain.port), {}, None)
    query = q(
        'to = "{{ params.to }}"\ncc = ["audit@example.com", "{{ params.cc }}"]\nsubject = "Hi"\n'
        'text = "plain {{ params.n }}"\nhtml = "<p>html {{ params.n }}</p>"'
    )
    result = await connector.execute(
        query, {"to": ["a@example.com", "b@example.com"], "cc": "c@example.com", "n": 2}, "k"
    )
    assert result["accepted"] == ["a@example.com", "b@example.com", "audit@example.com", "c@example.com"]
    message = parsed(plain)
    assert message["Cc"] == "audit@example.com, c@example.com"
    assert message.get_content_type() == "multipart/alternative"
    parts = {part.get_content_type(): part.get_content().strip() for part in message.iter_parts()}
    assert parts == {"text/plain": "plain 2", "text/html": "<p>html 2</p>"}


async def test_refused_recipient_not_in_accepted(plain: SmtpServer) -> None:
    connector = create("mailer", config(plain.port), {}, None)
    result = await connector.execute(
        q('to = "ok@example.com, refused@example.com"\nsubject = "s"\ntext = "t"'), {}, "k"
    )
    assert result["accepted"] == ["ok@example.com"]
    with pytest.raises(ConnectorError, match=r"refused@example\.com"):
        await connector.execute(q('to = "refused@example.com"\nsubject = "s"\ntext = "t"'), {}, "k")


async def test_header_injection_refused(plain: SmtpServer) -> None:
    connector = create("mailer", config(plain.port), {}, None)
    with pytest.raises(ConnectorError):
        await connector.execute(
            q('to = "a@example.com"\nsubject = "{{ params.s }}"'), {"s": "x\r\nBcc: evil@example.com"}, "k"
        )
    assert plain.sink.messages == []


async def test_login_and_wrong_password(authed: SmtpServer) -> None:
    good = create("mailer", config(authed.port), {"username": "mailer", "password": PASSWORD}, None)
    result = await good.execute(q('to = "a@example.com"\nsubject = "s"\ntext = "t"'), {}, "k")
    assert result["accepted"] == ["a@example.com"]
    assert "Python SMTP" in await good.test()  # login succeeded in the test too
    bad = create("mailer", config(authed.port), {"username": "mailer", "password": PASSWORD + "x"}, None)
    with pytest.raises(ConnectorError, match="535") as info:
        await bad.execute(q('to = "a@example.com"\nsubject = "s"\ntext = "t"'), {}, "k")
    assert PASSWORD not in str(info.value)
    assert info.value.__cause__ is None
    with pytest.raises(ConnectorError, match="535"):
        await bad.test()
    assert len(authed.sink.messages) == 1
    anonymous = create("mailer", config(authed.port), {}, None)
    with pytest.raises(ConnectorError, match="530"):
        await anonymous.execute(q('to = "a@example.com"\nsubject = "s"\ntext = "t"'), {}, "k")


async def test_test_returns_greeting(plain: SmtpServer) -> None:
    greeting = await create("mailer", config(plain.port), {}, None).test()
    assert greeting.startswith(f"SMTP 127.0.0.1:{plain.port}: ")
    assert "Python SMTP" in greeting  # aiosmtpd's banner


async def test_connection_refused_is_clear_and_secret_free() -> None:
    port = free_port()
    connector = create("mailer", config(port), {"username": "mailer", "password": PASSWORD}, None)
    with pytest.raises(ConnectorError, match=f"127.0.0.1:{port}") as info:
        await connector.execute(q('to = "a@example.com"\nsubject = "s"'), {}, "k")
    assert PASSWORD not in str(info.value)
    with pytest.raises(ConnectorError):
        await connector.test()


async def test_timeout_on_silent_server() -> None:
    with socket.socket() as silent:  # accepts TCP connections (backlog) but never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        port = silent.getsockname()[1]
        connector = create("mailer", config(port, timeout=0.3), {}, None)
        started = time.monotonic()
        with pytest.raises(ConnectorError, match=f"127.0.0.1:{port} failed"):
            await connector.execute(q('to = "a@example.com"\nsubject = "s"'), {}, "k")
        assert time.monotonic() - started < 3


async def test_starttls_with_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = self_signed_cert(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    server = start_smtp(user="mailer", password=PASSWORD, tls_context=server_context)
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts our self-signed certificate
        cfg = config(server.port, tls="starttls", host="localhost")
        connector = create("mailer", cfg, {"username": "mailer", "password": PASSWORD}, None)
        result = await connector.execute(q('to = "a@example.com"\nsubject = "tls"\ntext = "t"'), {}, "k")
        assert result["accepted"] == ["a@example.com"]
        assert parsed(server)["Subject"] == "tls"
        plain = create(
            "mailer", config(server.port, host="localhost"), {"username": "mailer", "password": PASSWORD}, None
        )
        with pytest.raises(ConnectorError) as info:  # without STARTTLS the server refuses to authenticate
            await plain.execute(q('to = "a@example.com"\nsubject = "s"'), {}, "k")
        assert PASSWORD not in str(info.value)
    finally:
        server.controller.stop()
