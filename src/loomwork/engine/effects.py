"""The seam through which engine-side effects (saved queries, ad-hoc http calls) are carried out.

The engine holds datasource credentials; workflow code only names the query. An :class:`EffectExecutor` gets
the run's deployed files (to find ``queries/NAME.*``), the call's input and its idempotency key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import StepError
from ..model import StepKind


@dataclass(frozen=True, slots=True)
class EffectCall:
    workspace: str
    workflow: str
    run_id: str
    seq: int
    kind: StepKind
    name: str
    input: dict[str, Any]
    files: dict[str, str]

    @property
    def idempotency_key(self) -> str:
        return f"{self.run_id}:{self.seq}"


class EffectExecutor(Protocol):
    async def execute(self, call: EffectCall) -> Any:
        """Carry out the effect and return its JSON-serialisable result, or raise ``StepError``."""

    async def close(self) -> None: ...


class NoDatasources:
    """The executor when no datasources are configured: every query fails with a clear message."""

    async def execute(self, call: EffectCall) -> Any:
        if call.kind == StepKind.QUERY and not any(path.startswith(f"queries/{call.name}.") for path in call.files):
            raise StepError(f"workflow {call.workflow!r} has no query {call.name!r} (queries/{call.name}.sql|.toml)")
        raise StepError(
            f"{call.kind.value} {call.name!r} needs a datasource, and none is configured for this engine",
            error_type="DatasourceError",
        )

    async def close(self) -> None:
        return None
