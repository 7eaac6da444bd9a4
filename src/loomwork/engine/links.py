"""One-click resolve links: HMAC-signed, bound to one request and one resolution, expiring with the request."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote


def sign(secret: bytes, request_id: str, resolution: str) -> str:
    digest = hmac.new(secret, f"{request_id}\x00{resolution}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def verify(secret: bytes, request_id: str, resolution: str, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, request_id, resolution).encode(), signature.encode())


def resolve_links(base_url: str, secret: bytes, request_id: str, resolutions: list[str]) -> dict[str, str]:
    base = base_url.rstrip("/")
    links = {}
    for resolution in resolutions:
        signature = sign(secret, request_id, resolution)
        links[resolution] = f"{base}/api/v1/links/{request_id}/{quote(resolution, safe='')}?sig={signature}"
    return links
