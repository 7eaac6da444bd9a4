"""What ``rest`` and ``graphql`` datasources share: one httpx client per datasource, auth, timeouts, and errors
that never carry a secret.

Config: ``base_url``, ``headers``, ``auth_kind`` (``none`` default, ``bearer``, ``basic``, ``api_key``),
``api_key_header`` (default ``X-API-Key``), ``timeout`` (seconds, default 30, a whole-call limit), ``verify_tls``
(default true). Secrets: ``token`` (bearer), ``username``/``password`` (basic), ``api_key``. Redirects are not
followed (a 3xx is a non-2xx answer), so credentials are only ever sent to ``base_url``'s host.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from .base import ConnectorError
from .templating import as_text

if TYPE_CHECKING:
    import httpx

AUTH_KINDS = ("none", "bearer", "basic", "api_key")
USER_AGENT = "loomwork"
_EXCERPT = 300


class HttpStatusError(ConnectorError):
    """A non-2xx answer (when the query does not set ``allow_error_status``)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Scrubber:
    """Replaces every secret value (and its URL-encoded and Basic-auth forms) in a message with ``***``."""

    def __init__(self, values: Iterable[str]) -> None:
        forms: set[str] = set()
        for value in values:
            if value:
                forms.update({value, quote(value, safe=""), quote(value)})
        self._forms = sorted(forms, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for form in self._forms:
            text = text.replace(form, "***")
        return text


def display_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (for messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def auth_headers(name: str, config: dict[str, Any], secrets: dict[str, str]) -> dict[str, str]:
    """The headers that authenticate calls, per ``auth_kind``; a missing secret is a clear error."""
    kind = config.get("auth_kind") or "none"
    if kind not in AUTH_KINDS:
        raise ConnectorError(f"datasource {name!r}: auth_kind must be one of {', '.join(AUTH_KINDS)}, not {kind!r}")

    def need(*fields: str) -> None:
        missing = [f for f in fields if not secrets.get(f)]
        if missing:
            raise ConnectorError(f"datasource {name!r}: auth_kind {kind!r} needs the secret(s) {', '.join(missing)}")

    if kind == "bearer":
        need("token")
        return {"Authorization": f"Bearer {secrets['token']}"}
    if kind == "basic":
        need("username")
        pair = f"{secrets['username']}:{secrets.get('password', '')}".encode()
        return {"Authorization": f"Basic {base64.b64encode(pair).decode('ascii')}"}
    if kind == "api_key":
        need("api_key")
        return {str(config.get("api_key_header") or "X-API-Key"): secrets["api_key"]}
    return {}


def response_result(response: httpx.Response) -> dict[str, Any]:
    """``{"status", "headers" (lower-case names), "body" (parsed JSON when the answer is JSON, else text)}``."""
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    body: Any = response.text
    if response.content and (content_type == "application/json" or content_type.endswith("+json")):
        try:
            body = json.loads(response.content)
        except ValueError:
            body = response.text
    return {"status": response.status_code, "headers": dict(response.headers.items()), "body": body}


class HttpClient:
    """One datasource's httpx client (created on first use, closed by :meth:`close`)."""

    def __init__(self, name: str, kind: str, config: dict[str, Any], secrets: dict[str, str]) -> None:
        base_url = config.get("base_url")
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ConnectorError(f"datasource {name!r}: {kind} needs config.base_url (http:// or https://)")
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.timeout = float(config.get("timeout") or 30)
        self._verify = bool(config.get("verify_tls", True))
        self._headers = {"User-Agent": USER_AGENT}
        self._headers.update({str(k): as_text(v) for k, v in (config.get("headers") or {}).items()})
        auth = auth_headers(name, config, secrets)
        self._headers.update(auth)
        self.scrub = Scrubber([*secrets.values(), *auth.values()])
        self._client: httpx.AsyncClient | None = None

    def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(
                headers=self._headers,
                verify=self._verify,
                timeout=httpx.Timeout(self.timeout),
                follow_redirects=False,
            )
        return self._client

    async def open(self) -> None:
        self._get_client()

    def url_for(self, path: str) -> str:
        """``base_url`` + ``path``; a path with its own scheme and host is refused (it would take the
        datasource's credentials elsewhere)."""
        parts = urlsplit(path)
        if parts.scheme or parts.netloc or path.startswith("//"):
            raise ConnectorError(f"datasource {self.name!r}: path {path!r} must be relative to the base_url")
        if not path:
            return self.base_url
        return f"{self.base_url}/{path.lstrip('/')}"

    def error(self, message: str) -> ConnectorError:
        return ConnectorError(self.scrub(f"datasource {self.name!r}: {message}"))

    async def send(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str | list[str]] | None = None,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        timeout: float | None = None,
        allow_error_status: bool = False,
    ) -> httpx.Response:
        """One call; connection failures, timeouts and (unless allowed) non-2xx answers raise ConnectorError."""
        import httpx

        client = self._get_client()
        limit = float(timeout) if timeout else self.timeout
        shown = f"{method} {display_url(url)}"
        try:
            target = httpx.URL(url)
            if params:  # merged with any query string already in the path (httpx would replace it)
                target = target.copy_merge_params(params)
            async with asyncio.timeout(limit):
                response = await client.request(
                    method, target, headers=headers, content=content, timeout=httpx.Timeout(limit)
                )
        except (TimeoutError, httpx.TimeoutException):
            raise self.error(f"{shown} timed out after {limit:g} s") from None
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            detail = str(exc) or type(exc).__name__
            raise self.error(f"{shown} failed: {type(exc).__name__}: {detail}") from None
        if not allow_error_status and not 200 <= response.status_code < 300:
            excerpt = " ".join(response.text[:_EXCERPT].split())
            suffix = "…" if len(response.text) > _EXCERPT else ""
            message = f"{shown} returned HTTP {response.status_code}" + (f": {excerpt}{suffix}" if excerpt else "")
            raise HttpStatusError(self.scrub(f"datasource {self.name!r}: {message}"), response.status_code)
        return response

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
