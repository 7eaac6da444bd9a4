"""The interface every datasource kind implements, and the error they translate driver errors into."""

from __future__ import annotations

from typing import Any, Protocol

from ..errors import StepError
from ..queries import Query

QueryResult = Any


class ConnectorError(StepError):
    """A datasource failed; the driver's message is kept, secrets never are."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_type="ConnectorError")


class Connector(Protocol):
    async def open(self) -> None: ...

    async def test(self) -> str:
        """Connect and return a description of the server (its version)."""

    async def execute(self, query: Query, params: dict[str, Any], idempotency_key: str) -> QueryResult: ...

    async def close(self) -> None: ...
