"""Every error Loomwork raises derives from :class:`LoomworkError`.

The tree::

    LoomworkError
    ├── WorkflowError                 raised inside workflow code, or recorded as a run's failure
    │   ├── NonDeterminismError       replay diverged from the journal
    │   ├── RequestTimeout            a request's deadline passed with no ``on_timeout``
    │   ├── InvalidRequest            ``assign_request``/``create_request`` arguments are wrong
    │   ├── StepError                 an engine-side effect (query, http, child run) failed
    │   ├── ChildRunFailed            a child run ended failed or cancelled
    │   ├── RunCancelled              the run was cancelled while it was running
    │   └── ResourceLimitExceeded     the run broke its CPU, memory or wall-clock limit
    ├── WorkflowFolderError           a workflow folder or ``workflow.toml`` is malformed
    ├── NotFound                      no such run, request or workflow (in this workspace)
    ├── Conflict                      the object is not in a state that allows the operation
    ├── Unprocessable                 the input is well-formed but not acceptable
    ├── Unauthorized                  no valid credentials were presented
    ├── Forbidden                     the actor may not do this
    └── StoreError                    the database failed; the driver's message is kept
        └── StoreUnavailable          the database could not be reached

The API layer maps each class to one HTTP status in a single table; nothing else inspects messages.
"""

from __future__ import annotations

__all__ = [
    "ChildRunFailed",
    "Conflict",
    "Forbidden",
    "InvalidRequest",
    "LoomworkError",
    "NonDeterminismError",
    "NotFound",
    "RequestTimeout",
    "ResourceLimitExceeded",
    "RunCancelled",
    "StepError",
    "StoreError",
    "StoreUnavailable",
    "Unauthorized",
    "Unprocessable",
    "WorkflowError",
    "WorkflowFolderError",
]


class LoomworkError(Exception):
    """Root of every error raised by Loomwork."""


class WorkflowError(LoomworkError):
    """An error raised inside workflow code by the ``wf`` API."""


class NonDeterminismError(WorkflowError):
    """Replaying the workflow produced a different step than the journal holds."""

    def __init__(self, seq: int, recorded: str, new: str) -> None:
        self.seq = seq
        self.recorded = recorded
        self.new = new
        super().__init__(
            f"step {seq}: the journal recorded {recorded} but the code now calls {new}; "
            "a run must make the same wf.* calls in the same order when it is replayed"
        )


class RequestTimeout(WorkflowError):
    """A request's deadline passed and it has no ``on_timeout`` resolution."""

    def __init__(self, request_id: str, request_name: str) -> None:
        self.request_id = request_id
        self.request_name = request_name
        super().__init__(f"request {request_name!r} ({request_id}) expired before anyone resolved it")


class InvalidRequest(WorkflowError):
    """The arguments of ``assign_request``/``create_request`` are not acceptable."""


class StepError(WorkflowError):
    """An effect carried out by the engine (query, http call, child start) failed."""

    def __init__(self, message: str, *, error_type: str = "StepError") -> None:
        self.error_type = error_type
        super().__init__(message)


class ChildRunFailed(WorkflowError):
    """A child run started with ``wf.run_workflow(..., wait=True)`` did not succeed."""

    def __init__(self, run_id: str, status: str, error: str) -> None:
        self.run_id = run_id
        self.status = status
        super().__init__(f"child run {run_id} ended {status}: {error}")


class RunCancelled(WorkflowError):
    """The run was cancelled."""


class ResourceLimitExceeded(WorkflowError):
    """The run went over its CPU-time, memory or wall-clock limit."""


class WorkflowFolderError(LoomworkError):
    """A workflow folder is malformed: missing ``main.py``, bad ``workflow.toml``, bad query file."""


class NotFound(LoomworkError):
    """The object does not exist, or is not visible to the caller."""


class Conflict(LoomworkError):
    """The object's state does not allow the operation (e.g. a request already resolved)."""


class Unprocessable(LoomworkError):
    """The input is well-formed but not acceptable (e.g. a resolution that is not offered)."""


class Unauthorized(LoomworkError):
    """No valid credentials: a missing, unknown, expired or revoked API key, session or password."""


class Forbidden(LoomworkError):
    """The actor is not allowed to do this (e.g. resolve a request they are not assigned)."""


class StoreError(LoomworkError):
    """The database failed. The driver's message is kept; the driver's exception is ``__cause__``."""


class StoreUnavailable(StoreError):
    """The database could not be reached."""
