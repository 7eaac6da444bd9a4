"""Triggering runs (SPEC §4.4): ``POST .../workflows/{wf}/runs`` and the webhook ``POST /hooks/{id}``.

Both answer at once (``Accepted``, 202) unless the caller waits; then they answer as soon as the run calls
``wf.respond`` (``Responded``: its status, headers and body), or ends (``Finished``, 200), or the wait expires
(``Accepted`` with the status the run then has). An idempotency key seen before for the same workflow answers
with the earlier run, never a second one: with no wait, ``Finished`` if it has ended, else ``Accepted``.

The webhook is the hot path: a hook seen before with its right token is cached, and the one group-committed
write that stores the run also checks, in its transaction, that the hook is unchanged and which version is the
newest deployed one; so a steady stream of calls costs no read at all. A version's settings are parsed once
(versions are immutable).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson

from ..engine import Engine
from ..errors import Conflict, NotFound, Unauthorized, Unprocessable, WorkflowFolderError
from ..folder import WorkflowSettings, check_files, parse_settings
from ..model import Role, Run, RunStatus, Trigger
from ..store import Tx, runs, versions, workflows
from .accounts import Access, hash_secret
from .workflows import Workflows

MAX_WAIT = 300.0
MAX_IDEMPOTENCY_KEY = 200
MAX_HOOK_ID = 200
#: How far ``X-Signature-Timestamp`` may be from the server's clock, in seconds.
SIGNATURE_TOLERANCE = 300
#: The one answer for an unknown hook, a missing, wrong or old token and a disabled webhook.
HOOK_NOT_FOUND = "no such webhook, or a wrong token"
_DUMMY_HASH = hash_secret("loomwork: no such webhook")
_SETTINGS_CACHE_SIZE = 4096
_HOOK_CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class Accepted:
    """202: the run is queued (or still going when the wait expired)."""

    run_id: str
    status: RunStatus
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class Finished:
    """200: the run ended while the caller waited (or had ended, for a repeated idempotency key)."""

    run: Run
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class Responded:
    """The run called ``wf.respond(status_code, body, headers)``; the run itself may still be going."""

    run_id: str
    status_code: int
    body: Any
    headers: dict[str, str]
    replayed: bool = False


Outcome = Accepted | Finished | Responded


class MalformedBody(Unprocessable):
    """The webhook's body is not JSON at all (the HTTP layer answers 400, not 422)."""


@dataclass(frozen=True, slots=True)
class _Hook:
    hook_id: str
    workspace: str
    workflow: str
    token_hash: str
    hmac_secret: str | None

    @property
    def target(self) -> tuple[str, str, str, str | None]:
        """As ``store.workflows.webhook_target`` answers while the hook is unchanged."""
        return self.workspace, self.workflow, self.token_hash, self.hmac_secret


@dataclass(frozen=True, slots=True)
class _Started:
    run: Run
    created: bool
    settings: WorkflowSettings


_STALE = "stale"
_NOT_DEPLOYED = "not deployed"


class Triggers:
    def __init__(self, engine: Engine, workflows: Workflows | None = None) -> None:
        self.engine = engine
        self.db = engine.db
        self._workflows = workflows or Workflows(engine)
        #: Parsed ``workflow.toml`` per version id (versions never change), filled by the writer thread.
        self._settings: dict[int, WorkflowSettings] = {}
        #: Webhooks seen with a right token; each use re-checks the hook in the transaction that stores the run.
        self._hooks: dict[str, _Hook] = {}
        #: Webhook calls by result, for metrics: ``accepted`` (a new run), ``duplicate`` (a repeated
        #: idempotency key), ``rejected`` (404: unknown or disabled hook, wrong token), ``bad_signature`` (401),
        #: ``invalid`` (400/422: the body or the parameters), ``not_deployed`` (409).
        self.webhook_counts: Counter[str] = Counter()

    # -- POST .../workflows/{wf}/runs ------------------------------------------------------------------------
    async def trigger(
        self,
        access: Access,
        workflow: str,
        data: dict[str, Any],
        *,
        wait: float | None = None,
        idempotency_key: str | None = None,
        test: bool = False,
    ) -> Outcome:
        """Start a run of the deployed version (or, with ``test``, of the draft) and wait if asked (operator)."""
        access.require(Role.OPERATOR)
        seconds = _check_wait(wait)
        _check_key(idempotency_key)
        if test:
            draft = await self.db.read(workflows.get_workflow, access.workspace, workflow)
            settings = check_files(draft.files)
            run, created = await self.db.write(
                _start_test_run, access.workspace, workflow, draft.files, data, idempotency_key, settings.timeout
            )
        else:
            started = await self.db.write(
                _start_run, access.workspace, workflow, data, Trigger.API, idempotency_key, self._settings, None
            )
            if not isinstance(started, _Started):
                await self.db.read(workflows.get_workflow, access.workspace, workflow)  # NotFound if unknown
                raise Conflict(
                    f"workflow {workflow!r} has no deployed version: deploy it first, or run a test of the draft "
                    "(test: true)"
                )
            run, created = started.run, started.created
        return await self._answer(run, created, seconds)

    # -- POST /hooks/{hook_id} -------------------------------------------------------------------------------
    async def webhook(
        self,
        hook_id: str,
        token: str | None,
        body: bytes,
        *,
        wait: str | None = None,
        idempotency_key: str | None = None,
        signature: str | None = None,
        timestamp: str | None = None,
    ) -> Outcome:
        """Start a run from a webhook call: token, then HMAC signature (if the workflow has a secret), then body.

        Unknown hook, missing/wrong/old token and disabled webhook all raise the same ``NotFound``; a missing,
        bad or stale signature raises ``Unauthorized``; a body that is not JSON ``MalformedBody``, JSON that is
        not an object ``Unprocessable``; no deployed version ``Conflict``.
        """
        hook = self._hooks.get(hook_id)
        cached = hook is not None
        if hook is None and 0 < len(hook_id) <= MAX_HOOK_ID:
            hook = await self.db.read(_hook, hook_id)
        presented = hash_secret(token or "")
        matches = hmac.compare_digest(presented, hook.token_hash if hook is not None else _DUMMY_HASH)
        if cached and not matches:  # perhaps it changed since it was cached: look again before refusing
            hook, cached = await self.db.read(_hook, hook_id), False
            if hook is None:
                self._hooks.pop(hook_id, None)
            else:
                self._hooks[hook_id] = hook
            matches = hmac.compare_digest(presented, hook.token_hash if hook is not None else _DUMMY_HASH)
        if hook is None or not token or not matches:
            self.webhook_counts["rejected"] += 1
            raise NotFound(HOOK_NOT_FOUND)
        try:
            if hook.hmac_secret is not None:
                check_signature(self._hmac_secret(hook.hmac_secret), body, signature, timestamp)
        except Unauthorized:
            self.webhook_counts["bad_signature"] += 1
            raise
        try:
            data = parse_body(body)
            _check_key(idempotency_key)
            seconds = None if wait is None else _check_wait(_seconds(wait))
        except Unprocessable:
            self.webhook_counts["invalid"] += 1
            raise
        if not cached:
            if len(self._hooks) >= _HOOK_CACHE_SIZE:
                self._hooks.clear()
            self._hooks[hook_id] = hook
        started = await self.db.write(
            _start_run, hook.workspace, hook.workflow, data, Trigger.WEBHOOK, idempotency_key, self._settings, hook
        )
        if started is _STALE:  # the hook changed after it was cached (regenerated, disabled, renamed)
            self._hooks.pop(hook_id, None)
            return await self.webhook(
                hook_id,
                token,
                body,
                wait=wait,
                idempotency_key=idempotency_key,
                signature=signature,
                timestamp=timestamp,
            )
        if not isinstance(started, _Started):
            self.webhook_counts["not_deployed"] += 1
            raise Conflict(f"workflow {hook.workflow!r} has no deployed version; deploy it first")
        self.webhook_counts["accepted" if started.created else "duplicate"] += 1
        if seconds is None:
            seconds = min(started.settings.webhook_wait or 0.0, MAX_WAIT)
        return await self._answer(started.run, started.created, seconds)

    def _hmac_secret(self, stored: str) -> bytes:
        """The raw HMAC secret from the stored (sealed) ``webhook_hmac_secret`` value: the one place to change."""
        return self._workflows.unseal(stored)

    # -- shared ----------------------------------------------------------------------------------------------
    async def _answer(self, run: Run, created: bool, wait: float) -> Outcome:
        # No await between the run's creation and wait_for_response: nothing of the run can be missed.
        replayed = not created
        if wait > 0:
            got: Run | dict[str, Any] = await self.engine.wait_for_response(run.id, wait, just_created=created)
        elif created:
            return Accepted(run.id, run.status)
        else:
            got = run
        if isinstance(got, dict):
            return _responded(run.id, got, replayed)
        if got.status.is_final:
            return Finished(got, replayed)
        return Accepted(got.id, got.status, replayed)


def parse_body(body: bytes) -> dict[str, Any]:
    """A webhook body: empty means ``{}``; otherwise a JSON object."""
    if not body.strip():
        return {}
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedBody(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Unprocessable(f"the request body must be a JSON object (the run's data), not {type(data).__name__}")
    return data


def check_signature(secret: bytes, body: bytes, signature: str | None, timestamp: str | None) -> None:
    """``X-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}." + body)>`` with a recent timestamp."""
    if not signature or not timestamp:
        raise Unauthorized("this webhook needs the X-Signature and X-Signature-Timestamp headers")
    timestamp = timestamp.strip()
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise Unauthorized("X-Signature-Timestamp must be a unix time in seconds") from None
    if abs(time.time() - sent_at) > SIGNATURE_TOLERANCE:
        raise Unauthorized(f"X-Signature-Timestamp is more than {SIGNATURE_TOLERANCE} s from the server's clock")
    scheme, _, digest = signature.strip().partition("=")
    expected = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    if scheme.lower() != "sha256" or not hmac.compare_digest(digest.lower().encode(), expected.encode()):
        raise Unauthorized("the X-Signature does not match the body")


def _check_wait(wait: float | None) -> float:
    if wait is None:
        return 0.0
    if not 0 <= wait <= MAX_WAIT:
        raise Unprocessable(f"wait must be between 0 and {MAX_WAIT:g} seconds, got {wait!r}")
    return float(wait)


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise Unprocessable(f"wait must be a number of seconds, got {text[:50]!r}") from None


def _check_key(key: str | None) -> None:
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise Unprocessable(f"an idempotency key must have 1 to {MAX_IDEMPOTENCY_KEY} characters")


def _responded(run_id: str, value: dict[str, Any], replayed: bool) -> Responded:
    status = value.get("status_code")
    headers = value.get("headers") or {}
    return Responded(
        run_id=run_id,
        status_code=status if isinstance(status, int) and 100 <= status <= 599 else 200,
        body=value.get("body"),
        headers={str(k): str(v) for k, v in headers.items()} if isinstance(headers, dict) else {},
        replayed=replayed,
    )


# -- store operations (one transaction each) --------------------------------------------------------------------
def _hook(tx: Tx, hook_id: str) -> _Hook | None:
    target = workflows.webhook_target(tx, hook_id)
    return None if target is None else _Hook(hook_id, *target)


def _start_run(
    tx: Tx,
    workspace: str,
    workflow: str,
    data: dict[str, Any],
    trigger: Trigger,
    idempotency_key: str | None,
    settings_cache: dict[int, WorkflowSettings],
    hook: _Hook | None,
) -> _Started | str:
    """Create a run of the newest deployed version, or answer why not (``_STALE``, ``_NOT_DEPLOYED``).

    Runs in the writer's transaction, so the version and a cached ``hook`` are checked at the moment the run
    is stored: the trigger path needs no read of its own. Answers instead of raising: an error would make the
    writer redo its whole batch one operation at a time.
    """
    if hook is not None and workflows.webhook_target(tx, hook.hook_id) != hook.target:
        return _STALE
    ref = versions.latest_deployed_ref(tx, workspace, workflow)
    if ref is None:
        return _NOT_DEPLOYED
    version_id, number = ref
    settings = settings_cache.get(version_id)
    if settings is None:
        try:
            settings = parse_settings(versions.get_version(tx, version_id).files.get("workflow.toml"))
        except WorkflowFolderError:  # checked at deploy; never refuse a trigger over it
            settings = WorkflowSettings()
        if len(settings_cache) >= _SETTINGS_CACHE_SIZE:
            settings_cache.clear()
        settings_cache[version_id] = settings
    new = runs.NewRun(
        workspace=workspace,
        workflow=workflow,
        version_id=version_id,
        version=number,
        input=data,
        trigger=trigger,
        idempotency_key=idempotency_key,
        timeout=settings.timeout,
    )
    run, created = runs.create_run(tx, new)
    return _Started(run, created, settings)


def _start_test_run(
    tx: Tx,
    workspace: str,
    workflow: str,
    files: dict[str, str],
    data: dict[str, Any],
    idempotency_key: str | None,
    timeout: float | None,
) -> tuple[Run, bool]:
    version = versions.snapshot_version(tx, workspace, workflow, files)
    new = runs.NewRun(
        workspace=workspace,
        workflow=workflow,
        version_id=version.id,
        version=version.number,
        input=data,
        trigger=Trigger.TEST,
        test=True,
        idempotency_key=idempotency_key,
        timeout=timeout,
    )
    return runs.create_run(tx, new)
