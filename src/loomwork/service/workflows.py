"""Workflows: drafts, files, lint, deploy, versions, restore and webhooks, with who-may-do-what.

Viewers read; developers create, edit, deploy, delete and manage webhooks. The draft is the ``workflows`` row
(what the editor edits); ``deploy`` freezes it into an immutable numbered version (``store.versions``).

Webhook tokens are random, shown once and stored as SHA-256 hashes (like API keys). The optional HMAC secret
must be readable again to verify signatures, so it is stored encrypted with Fernet under a key derived from
the engine's secret key (``seal``/``unseal``).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from pathlib import PurePosixPath

from ..engine import Engine
from ..errors import LoomworkError, Unprocessable
from ..folder import MAX_FILE_BYTES, check_name
from ..lint import Diagnostic, check_structure, has_errors, ruff_diagnostics, sort_diagnostics
from ..model import Role, Workflow, WorkflowVersion
from ..sealing import SecretBox
from ..store import versions
from ..store import workflows as store
from .accounts import Access, hash_secret

MAX_FILES = 500
MAX_PATH_LENGTH = 255
MAX_TOTAL_BYTES = 10 * 1024 * 1024

DEFAULT_MAIN = '''from loomwork import wf


async def execute_workflow(data):
    """Runs once per trigger; ``data`` is the trigger's JSON input, the return value is the run's output."""
    wf.log.info("started", data=data)
    return {"received": data}
'''

DEFAULT_SETTINGS = """# Workflow settings; every one is optional.
# timeout = "10m"        # wall-clock limit of one run
#
# [retry]
# attempts = 3           # tries of a failing step
# backoff = 2            # seconds before the second try, doubled each time
#
# [webhook]
# wait = 30              # seconds a webhook caller waits for the output by default
"""


def default_files() -> dict[str, str]:
    return {"main.py": DEFAULT_MAIN, "workflow.toml": DEFAULT_SETTINGS}


class DeployRefused(Unprocessable):
    """The draft has error diagnostics; nothing was deployed."""

    def __init__(self, workflow: str, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        errors = [d for d in diagnostics if d.is_error]
        first = errors[0]
        super().__init__(
            f"workflow {workflow!r} was not deployed: {len(errors)} error(s), the first in "
            f"{first.file}:{first.line}:{first.col}: {first.message}"
        )


@dataclass(frozen=True, slots=True)
class Deployed:
    version: WorkflowVersion
    warnings: list[Diagnostic]


@dataclass(frozen=True, slots=True)
class NewWebhook:
    """Shown once: the id in the URL, the token, and the HMAC secret if one was asked for."""

    hook_id: str
    token: str
    hmac_secret: str | None


def check_path(path: str) -> str:
    """A draft file path: relative POSIX, no ``..``, ``.`` or empty parts, no backslash, not too long."""
    pure = PurePosixPath(path)
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or any(part in ("", ".", "..") for part in path.split("/"))
        or pure.is_absolute()
        or any(ord(ch) < 32 for ch in path)
    ):
        raise Unprocessable(f"file path {path!r} must be relative (like 'queries/x.sql'), without '..' or '.'")
    if len(path) > MAX_PATH_LENGTH:
        raise Unprocessable(f"file path {path[:40]!r}... is longer than {MAX_PATH_LENGTH} characters")
    return path


def check_draft(files: dict[str, str]) -> dict[str, str]:
    """What may be stored as a draft: safe paths and bounded sizes (content is checked by lint, not here)."""
    if len(files) > MAX_FILES:
        raise Unprocessable(f"a workflow may have at most {MAX_FILES} files, got {len(files)}")
    total = 0
    for path, text in files.items():
        check_path(path)
        size = len(text.encode())
        if size > MAX_FILE_BYTES:
            raise Unprocessable(f"{path}: file is larger than {MAX_FILE_BYTES} bytes")
        total += size
    if total > MAX_TOTAL_BYTES:
        raise Unprocessable(f"the workflow's files together are larger than {MAX_TOTAL_BYTES} bytes")
    return dict(files)


class Workflows:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.db = engine.db
        self._box = SecretBox(engine.secret_key, "webhook-hmac-secret", engine.config.previous_secret_keys)

    # -- drafts ---------------------------------------------------------------------------------------------
    async def list_workflows(
        self, access: Access, *, limit: int = 50, after: str | None = None
    ) -> tuple[list[tuple[Workflow, str | None]], str | None]:
        """A page of workflows by name, each with its newest run's status, and the name to continue after."""
        found = await self.db.read(store.list_workflows_page, access.workspace, limit + 1, after)
        more = len(found) > limit
        found = found[:limit]
        statuses = await self.db.read(store.last_run_statuses, access.workspace)
        cursor = found[-1].name if more and found else None
        return [(w, statuses.get(w.name)) for w in found], cursor

    async def get(self, access: Access, name: str) -> Workflow:
        return await self.db.read(store.get_workflow, access.workspace, name)

    async def create(
        self, access: Access, name: str, description: str | None = None, files: dict[str, str] | None = None
    ) -> Workflow:
        access.require(Role.DEVELOPER)
        _check_workflow_name(name)
        draft = check_draft(files) if files is not None else default_files()
        return await self.db.write(store.create_workflow, access.workspace, name, description or "", draft)

    async def update(
        self,
        access: Access,
        name: str,
        *,
        new_name: str | None = None,
        description: str | None = None,
        files: dict[str, str] | None = None,
    ) -> Workflow:
        """Rename, change the description, and/or replace the draft's files (all of them)."""
        access.require(Role.DEVELOPER)
        if new_name is not None:
            _check_workflow_name(new_name)
        draft = check_draft(files) if files is not None else None
        return await self.db.write(
            store.update_workflow, access.workspace, name, new_name=new_name, description=description, files=draft
        )

    async def delete(self, access: Access, name: str) -> None:
        """Delete the workflow, its versions and runs; refused (Conflict) while runs are in progress."""
        access.require(Role.DEVELOPER)
        await self.db.write(store.delete_workflow, access.workspace, name)

    async def put_file(self, access: Access, name: str, path: str, text: str) -> Workflow:
        access.require(Role.DEVELOPER)
        check_path(path)
        current = await self.get(access, name)
        check_draft({**current.files, path: text})
        return await self.db.write(store.put_file, access.workspace, name, path, text)

    async def delete_file(self, access: Access, name: str, path: str) -> Workflow:
        access.require(Role.DEVELOPER)
        check_path(path)
        return await self.db.write(store.put_file, access.workspace, name, path, None)

    # -- lint and deploy ------------------------------------------------------------------------------------
    async def lint(self, access: Access, name: str, files: dict[str, str] | None = None) -> list[Diagnostic]:
        """Diagnostics for the draft, or for ``files`` (not stored) in the editor's context of this workflow."""
        if files is None:
            files = (await self.get(access, name)).files
        else:
            await self.get(access, name)  # 404 for an unknown workflow, as for the draft
        return await lint_async(files)

    async def deploy(self, access: Access, name: str) -> Deployed:
        """A new version from the draft (or the latest one if the draft is unchanged); refused on errors."""
        access.require(Role.DEVELOPER)
        draft = await self.get(access, name)
        found = await lint_async(draft.files)
        if has_errors(found):
            raise DeployRefused(name, found)
        version = await self.engine.deploy(name, draft.files, workspace=access.workspace)
        return Deployed(version, found)

    async def versions(
        self, access: Access, name: str, *, limit: int = 50, before: int | None = None
    ) -> tuple[list[WorkflowVersion], int | None]:
        """A page of deployed versions, newest first, and the number to continue before."""
        await self.get(access, name)
        found = await self.db.read(versions.list_versions, access.workspace, name, limit + 1, before)
        more = len(found) > limit
        found = found[:limit]
        return found, (found[-1].number if more and found else None)

    async def version(self, access: Access, name: str, number: int) -> WorkflowVersion:
        await self.get(access, name)
        return await self.db.read(versions.version_by_number, access.workspace, name, number)

    async def restore(self, access: Access, name: str, number: int) -> Workflow:
        """Copy version ``number``'s files into the draft (the draft's other files are dropped)."""
        access.require(Role.DEVELOPER)
        version = await self.version(access, name, number)
        return await self.db.write(store.update_workflow, access.workspace, name, files=dict(version.files))

    # -- webhooks -------------------------------------------------------------------------------------------
    async def enable_webhook(self, access: Access, name: str, *, with_hmac: bool = False) -> NewWebhook:
        """Enable the webhook, or regenerate it: a new id and token (and HMAC secret); the old ones stop working."""
        access.require(Role.DEVELOPER)
        hook_id = secrets.token_urlsafe(16)
        token = secrets.token_urlsafe(32)
        hmac_secret = secrets.token_urlsafe(32) if with_hmac else None
        sealed = self.seal(hmac_secret.encode()) if hmac_secret is not None else None
        await self.db.write(store.set_webhook, access.workspace, name, hook_id, hash_secret(token), sealed)
        return NewWebhook(hook_id, token, hmac_secret)

    async def disable_webhook(self, access: Access, name: str) -> None:
        access.require(Role.DEVELOPER)
        await self.db.write(store.clear_webhook, access.workspace, name)

    async def webhook_hmac_secret(self, workspace: str, workflow: str) -> bytes | None:
        """The workflow's webhook HMAC secret (decrypted), or ``None`` if it has none. No role check: for the hook."""
        current = await self.db.read(store.get_workflow, workspace, workflow)
        if not current.hmac_enabled:
            return None
        target = await self.db.read(store.webhook_target, current.webhook_id) if current.webhook_id else None
        if target is None or target[3] is None:
            return None
        return self.unseal(target[3])

    def seal(self, secret: bytes) -> str:
        return self._box.seal(secret)

    def unseal(self, stored: str) -> bytes:
        """The secret held in a stored ``webhook_hmac_secret`` value (as ``webhook_target`` returns it)."""
        return self._box.unseal(stored)


def _check_workflow_name(name: str) -> None:
    try:
        check_name(name)
    except LoomworkError as exc:
        raise Unprocessable(str(exc)) from exc
    if len(name) > 100:
        raise Unprocessable("a workflow name may have at most 100 characters")


async def lint_async(files: dict[str, str]) -> list[Diagnostic]:
    """``lint.lint_files`` without blocking the event loop: ruff runs in a thread."""
    found, compiled = check_structure(files)
    found += await asyncio.to_thread(ruff_diagnostics, {path: files[path] for path in compiled})
    return sort_diagnostics(found)
