"""Real local servers for the non-SQL connector tests: an HTTP API (echo, status, slow, GraphQL) served by
uvicorn in a thread, and an aiosmtpd SMTP server that keeps what it receives."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from graphql import build_schema, graphql
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Any, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


# -- HTTP ------------------------------------------------------------------------------------------------
SCHEMA = build_schema(
    """
    type Echo { id: ID!, qty: Int!, qtyType: String!, tags: [String!], flag: Boolean, price: Float, note: String }
    type Query {
      echo(id: ID!, qty: Int!, tags: [String!], flag: Boolean, price: Float, note: String): Echo
      partial: String
      boom: String
    }
    """
)


class _Root:
    @staticmethod
    def echo(info: Any, **args: Any) -> dict[str, Any]:
        return {**args, "qtyType": type(args["qty"]).__name__}

    @staticmethod
    def partial(info: Any) -> str:
        raise ValueError("partial failure")

    @staticmethod
    def boom(info: Any) -> str:
        raise ValueError("boom")


async def _echo(request: Request) -> Response:
    body = await request.body()
    return JSONResponse(
        {
            "method": request.method,
            "raw_path": request.scope["raw_path"].decode("ascii"),
            "path": request.url.path,
            "query_string": request.scope["query_string"].decode("ascii"),
            "query": {k: request.query_params.getlist(k) for k in request.query_params},
            "headers": {k: v for k, v in request.headers.items()},
            "body": body.decode("utf-8"),
        }
    )


async def _status(request: Request) -> Response:
    code = int(request.path_params["code"])
    text = f"status {code} answered"
    if request.query_params.get("echo_auth"):
        text += f" for {request.headers.get('authorization', '')} {request.headers.get('x-api-key', '')}"
    return PlainTextResponse(text, status_code=code)


async def _slow(request: Request) -> Response:
    await asyncio.sleep(float(request.query_params.get("s", "3")))
    return PlainTextResponse("slow")


async def _text(request: Request) -> Response:
    return PlainTextResponse("héllo", headers={"X-Custom": "yes"})


async def _graphql(request: Request) -> Response:
    payload = await request.json()
    result = await graphql(
        SCHEMA,
        payload["query"],
        root_value=_Root(),
        variable_values=payload.get("variables"),
        operation_name=payload.get("operationName"),
    )
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        body["errors"] = [e.formatted for e in result.errors]
    if result.data is None:
        body.pop("data")
    extra = {"echo_headers": dict(request.headers)} if request.query_params.get("debug") else {}
    return JSONResponse({**body, **extra}, status_code=200 if result.data is not None else 400)


APP = Starlette(
    routes=[
        Route("/echo{rest:path}", _echo, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        Route("/status/{code:int}", _status, methods=["GET", "POST"]),
        Route("/slow", _slow),
        Route("/text", _text),
        Route("/graphql", _graphql, methods=["POST"]),
        Route("/", _text),
    ]
)


class HttpServer:
    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(APP, log_level="warning", lifespan="off", access_log=False, timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def start(self) -> HttpServer:
        self._thread.start()
        wait_until(lambda: self._server.started, what="the local HTTP server")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()


# -- SMTP ------------------------------------------------------------------------------------------------
@dataclass
class SmtpSink:
    messages: list[Envelope] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 Message accepted for delivery"

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address.startswith("refused@"):
            return "550 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"


@dataclass
class SmtpServer:
    sink: SmtpSink
    controller: Controller
    port: int


def _authenticator(user: str, password: str) -> Any:
    def check(server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False)

    return check


def start_smtp(
    *, user: str | None = None, password: str | None = None, tls_context: ssl.SSLContext | None = None
) -> SmtpServer:
    sink = SmtpSink()
    port = free_port()
    kwargs: dict[str, Any] = {}
    if user is not None:
        kwargs.update(authenticator=_authenticator(user, password or ""), auth_required=True)
        kwargs["auth_require_tls"] = tls_context is not None
    if tls_context is not None:
        kwargs.update(tls_context=tls_context, require_starttls=True)
    controller = Controller(sink, hostname="127.0.0.1", port=port, server_hostname="localhost", **kwargs)
    controller.start()
    return SmtpServer(sink, controller, port)


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for localhost/127.0.0.1 and its key (PEM files), made with ``cryptography``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path
