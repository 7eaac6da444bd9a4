"""Loomwork: durable, code-first workflows with people in the loop."""

from . import wf
from .errors import (
    ChildRunFailed,
    Conflict,
    Forbidden,
    InvalidRequest,
    LoomworkError,
    NonDeterminismError,
    NotFound,
    RequestTimeout,
    StepError,
    Unprocessable,
    WorkflowError,
)
from .model import Decision, RequestStatus, RunStatus, StepKind, StepStatus

__version__ = "0.1.0"

__all__ = [
    "ChildRunFailed",
    "Conflict",
    "Decision",
    "Forbidden",
    "InvalidRequest",
    "LoomworkError",
    "NonDeterminismError",
    "NotFound",
    "RequestStatus",
    "RequestTimeout",
    "RunStatus",
    "StepError",
    "StepKind",
    "StepStatus",
    "Unprocessable",
    "WorkflowError",
    "__version__",
    "wf",
]
