"""``smtp`` datasources: a query sends one message.

Config: ``host``, ``port`` (default 587 with starttls, 465 with tls, else 25), ``tls`` (``none``, ``starttls``
default, ``tls``), ``from``, ``timeout`` (seconds, default 30). Secrets: ``username``, ``password`` (login only
when a username is set). A query file::

    datasource = "mailer"
    to = "{{ params.email }}"             # a string (commas allowed) or a list; exact bindings may be lists
    cc = ["audit@example.com"]
    subject = "Refund for order {{ params.order_id }}"
    text = "Hello {{ params.name }}, ..."
    html = "<p>Hello {{ params.name }}</p>"   # with text too: multipart/alternative

Each message carries a ``Message-ID`` and ``X-Loomwork-Idempotency-Key: <run_id>:<seq>`` (a receiving system
can drop duplicates by it). The result is ``{"accepted": [addresses], "message_id": "<...>"}``.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..queries import Query
from .base import ConnectorError
from .httpauth import Scrubber
from .templating import as_text, check_fields, render

if TYPE_CHECKING:
    import aiosmtplib

_FIELDS = {"to", "cc", "subject", "text", "html"}
_TLS = ("none", "starttls", "tls")
_PORTS = {"none": 25, "starttls": 587, "tls": 465}


def _addresses(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [addr for _, addr in getaddresses([as_text(item) for item in items if item not in (None, "")]) if addr]


class SmtpConnector:
    def __init__(self, name: str, config: dict[str, Any], secrets: dict[str, str]) -> None:
        self.name = name
        self.host = config.get("host")
        self.sender = config.get("from")
        if not isinstance(self.host, str) or not self.host:
            raise ConnectorError(f"datasource {name!r}: smtp needs config.host")
        if not isinstance(self.sender, str) or not self.sender:
            raise ConnectorError(f"datasource {name!r}: smtp needs config.from (the sender address)")
        self.tls = str(config.get("tls") or "starttls")
        if self.tls not in _TLS:
            raise ConnectorError(f"datasource {name!r}: smtp tls must be one of {', '.join(_TLS)}, not {self.tls!r}")
        self.port = int(config.get("port") or _PORTS[self.tls])
        self.timeout = float(config.get("timeout") or 30)
        self._username = secrets.get("username") or None
        self._password = secrets.get("password", "")
        self._scrub = Scrubber(secrets.values())
        domain = self.sender.rpartition("@")[2].strip("> ") or "loomwork.local"
        self._domain = domain

    def _error(self, action: str, exc: BaseException) -> ConnectorError:
        detail = str(exc) or type(exc).__name__
        return ConnectorError(
            self._scrub(f"datasource {self.name!r}: SMTP {action} {self.host}:{self.port} failed: {detail}")
        )

    def _client(self, timeout: float | None = None) -> aiosmtplib.SMTP:
        import aiosmtplib

        return aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            use_tls=self.tls == "tls",
            start_tls=self.tls == "starttls",
            timeout=timeout or self.timeout,
        )

    async def _connect(self, client: aiosmtplib.SMTP) -> str:
        import aiosmtplib

        try:
            greeting = await client.connect()
            if self._username:
                await client.login(self._username, self._password)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            client.close()
            raise self._error("connection to", exc) from None
        return greeting.message

    async def open(self) -> None:
        return None

    async def test(self) -> str:
        client = self._client()
        greeting = await self._connect(client)
        try:
            await client.quit()
        except Exception:  # the connection test already succeeded
            client.close()
        return f"SMTP {self.host}:{self.port}: {greeting}"

    def _message(self, query: Query, params: dict[str, Any], idempotency_key: str) -> tuple[EmailMessage, list[str]]:
        spec = query.spec
        check_fields(query.name, "smtp", spec, _FIELDS, {"to", "subject"})
        fields = render({k: spec.get(k) for k in _FIELDS}, params, query.name)
        to, cc = _addresses(fields["to"]), _addresses(fields["cc"])
        if not to:
            raise ConnectorError(f"query {query.name!r}: no recipient in 'to'")
        text = as_text(fields["text"]) if fields["text"] is not None else None
        html = as_text(fields["html"]) if fields["html"] is not None else None
        message = EmailMessage()
        try:
            message["From"] = str(self.sender)
            message["To"] = ", ".join(to)
            if cc:
                message["Cc"] = ", ".join(cc)
            message["Subject"] = as_text(fields["subject"])
            message["Date"] = formatdate(localtime=False)
            message["Message-ID"] = make_msgid(domain=self._domain)
            message["X-Loomwork-Idempotency-Key"] = idempotency_key
        except ValueError as exc:  # e.g. a line break in a header value: never smuggled into the headers
            raise ConnectorError(f"query {query.name!r}: {exc}") from None
        if html is not None and text is not None:
            message.set_content(text)
            message.add_alternative(html, subtype="html")
        elif html is not None:
            message.set_content(html, subtype="html")
        else:
            message.set_content(text or "")
        return message, to + cc

    async def execute(self, query: Query, params: dict[str, Any], idempotency_key: str) -> Any:
        import aiosmtplib

        message, recipients = self._message(query, params, idempotency_key)
        client = self._client(query.timeout)
        await self._connect(client)
        try:
            refused, _ = await client.send_message(message, sender=self.sender, recipients=recipients)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise self._error("send via", exc) from None
        finally:
            try:
                await client.quit()
            except Exception:  # sent (or failed) already: just drop the line
                client.close()
        return {"accepted": [r for r in recipients if r not in refused], "message_id": message["Message-ID"]}

    async def close(self) -> None:
        return None


def create(name: str, config: dict[str, Any], secrets: dict[str, str], base_dir: Path | None) -> SmtpConnector:
    return SmtpConnector(name, config, secrets)
