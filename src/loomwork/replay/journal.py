"""What the replay core knows of a run's past: one entry per journaled step, plus the outcomes of effects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..model import StepKind, StepStatus


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One journaled step as replay needs it.

    ``done_order`` is the position at which the step's outcome was delivered to the workflow; replay delivers
    recorded outcomes in that order so that concurrent branches interleave exactly as they did. ``handle`` is
    what the step answered at once when it was started (a request's id and links, a child's run id, a sleep's
    wake time); ``output``/``error`` is its final outcome.
    """

    seq: int
    kind: StepKind
    name: str
    status: StepStatus
    output: Any = None
    error: dict[str, Any] | None = None
    done_order: int | None = None
    handle: Any = None

    @property
    def is_done(self) -> bool:
        return self.status in (StepStatus.SUCCEEDED, StepStatus.FAILED) and self.done_order is not None

    def describe(self) -> str:
        return f"{self.kind.value} {self.name!r}"

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "kind": self.kind.value,
            "name": self.name,
            "status": self.status.value,
            "output": self.output,
            "error": self.error,
            "done_order": self.done_order,
            "handle": self.handle,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> JournalEntry:
        return cls(
            seq=int(value["seq"]),
            kind=StepKind(value["kind"]),
            name=str(value["name"]),
            status=StepStatus(value["status"]),
            output=value.get("output"),
            error=value.get("error"),
            done_order=value.get("done_order"),
            handle=value.get("handle"),
        )
