"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) under keys derived from the server's secret key.

Each purpose (datasource secrets, webhook HMAC secrets) derives its own key with HMAC-SHA256, so one sealed
value cannot be replayed as another. Keys listed in ``previous_secret_keys`` still open values sealed before a
rotation; ``loomwork reseal`` rewrites every sealed value under the current key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from .errors import LoomworkError

PREFIX = "fernet:"


class SealError(LoomworkError):
    """A sealed value cannot be opened: the secret key changed (and the old one is not listed) or it is corrupt."""


def _fernet(secret_key: bytes, purpose: str) -> Fernet:
    key = hmac.new(secret_key, f"loomwork:{purpose}:v1".encode(), hashlib.sha256).digest()
    return Fernet(base64.urlsafe_b64encode(key))


class SecretBox:
    def __init__(self, secret_key: bytes, purpose: str, previous_keys: Iterable[bytes] = ()) -> None:
        self.purpose = purpose
        self._fernet = MultiFernet([_fernet(secret_key, purpose), *(_fernet(k, purpose) for k in previous_keys)])

    def seal(self, secret: bytes) -> str:
        return PREFIX + self._fernet.encrypt(secret).decode()

    def unseal(self, stored: str) -> bytes:
        if not stored.startswith(PREFIX):
            raise SealError(f"a stored {self.purpose} value is not sealed")
        try:
            return self._fernet.decrypt(stored.removeprefix(PREFIX).encode())
        except InvalidToken as exc:
            raise SealError(
                f"a stored {self.purpose} value cannot be decrypted with the current secret key; "
                "if the key was rotated, list the old one in previous_secret_keys"
            ) from exc

    def reseal(self, stored: str) -> str:
        """The value sealed again under the current key."""
        return PREFIX + self._fernet.rotate(stored.removeprefix(PREFIX).encode()).decode()
