"""CLI commands that talk to a Loomwork server through :mod:`loomwork.client` (and ``lint``, which is local).

Every server command takes ``--url`` (``LOOMWORK_URL``, default ``http://127.0.0.1:8080``), ``--api-key``
(``LOOMWORK_API_KEY``) and ``--workspace`` (``LOOMWORK_WORKSPACE``; optional when the key belongs to exactly one
workspace). Failures print one line to stderr and exit 1; usage errors exit 2.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import click

from .client import ApiError, Client, NotFound, Request, Run, TriggerResult
from .errors import LoomworkError
from .folder import check_name, parse_settings, read_folder

DEFAULT_URL = "http://127.0.0.1:8080"
REQUEST_STATUSES = ("pending", "resolved", "expired", "cancelled")
RUN_STATUSES = ("queued", "running", "waiting", "succeeded", "failed", "cancelled")


# -- shared plumbing -------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Remote:
    """Where and as whom to connect, from the common options."""

    url: str
    api_key: str | None
    workspace_option: str | None

    def client(self) -> Client:
        if not self.api_key:
            raise click.UsageError("no API key: pass --api-key or set LOOMWORK_API_KEY (see `loomwork init`)")
        return Client(self.url, self.api_key)

    def workspace(self, client: Client) -> str:
        if self.workspace_option:
            return self.workspace_option
        spaces = [w.slug for w in client.me().workspaces]
        if len(spaces) == 1:
            return spaces[0]
        known = f" (yours: {', '.join(spaces)})" if spaces else ""
        raise click.UsageError(f"which workspace? pass --workspace or set LOOMWORK_WORKSPACE{known}")


@contextlib.contextmanager
def _failures() -> Iterator[None]:
    """Errors become one line on stderr and exit 1 (lint diagnostics of a refused deploy go first)."""
    try:
        yield
    except ApiError as exc:
        for error in exc.errors:
            if "file" in error and "message" in error:
                click.echo(_diagnostic_line(error), err=True)
        detail = exc.detail if exc.status else str(exc)
        raise click.ClickException(f"{detail} (HTTP {exc.status})" if exc.status else detail) from exc
    except LoomworkError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")) from exc


def remote_command(fn: Callable[..., None]) -> Callable[..., None]:
    """Add ``--url``, ``--api-key`` and ``--workspace`` and hand the command a :class:`Remote`."""

    @click.option("--url", envvar="LOOMWORK_URL", default=DEFAULT_URL, show_default=True, help="Server address.")
    @click.option("--api-key", envvar="LOOMWORK_API_KEY", help="API key (or LOOMWORK_API_KEY).")
    @click.option("--workspace", "-w", envvar="LOOMWORK_WORKSPACE", help="Workspace slug (or LOOMWORK_WORKSPACE).")
    @functools.wraps(fn)
    def wrapper(url: str, api_key: str | None, workspace: str | None, **kwargs: Any) -> None:
        with _failures():
            fn(Remote(url, api_key, workspace), **kwargs)

    return wrapper


def _json_option(value: str | None, what: str, *, default: Any) -> Any:
    if value is None:
        return default
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=what) from exc
    if not isinstance(parsed, dict):
        raise click.BadParameter("must be a JSON object", param_hint=what)
    return parsed


def _dump(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


def _duration(run: Run) -> str:
    if run.duration is None:
        return "-"
    seconds = run.duration.total_seconds()
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = [headers, *rows]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def _diagnostic_line(d: dict[str, Any]) -> str:
    return f"{d.get('file')}:{d.get('line')}:{d.get('col')}: {d.get('severity')} {d.get('code')} {d.get('message')}"


# -- workflow folders ------------------------------------------------------------------------------------------
@click.command("push")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", help="Workflow name (default: the folder's name).")
@click.option("--deploy", is_flag=True, help="Deploy the pushed draft as a new version.")
@remote_command
def push_command(remote: Remote, folder: Path, name: str | None, deploy: bool) -> None:
    """Upload the workflow FOLDER as the draft of a workflow (created if new); optionally deploy it."""
    files = read_folder(folder)
    name = check_name(name or folder.resolve().name)
    description = parse_settings(files.get("workflow.toml")).description
    with remote.client() as client:
        ws = remote.workspace(client)
        try:
            client.get_workflow(ws, name)
        except NotFound:
            client.create_workflow(ws, name, files, description=description)
            click.echo(f"created {name} ({len(files)} files)")
        else:
            client.update_workflow(ws, name, files=files, description=description or None)
            click.echo(f"updated {name} ({len(files)} files)")
        if deploy:
            click.echo(f"deployed {name} version {client.deploy(ws, name)}")


def _safe_target(root: Path, path: str) -> Path:
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or "\\" in path:
        raise click.ClickException(f"the server sent an unsafe file path {path!r}; nothing was written")
    return root.joinpath(*pure.parts)


@click.command("pull")
@click.argument("workflow")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Write into FOLDER even if it is not empty (overwrites same-named files).")
@remote_command
def pull_command(remote: Remote, workflow: str, folder: Path, force: bool) -> None:
    """Write the draft files of WORKFLOW into FOLDER."""
    if folder.exists() and any(folder.iterdir()) and not force:
        raise click.ClickException(f"{folder} is not empty; pass --force to write into it anyway")
    with remote.client() as client:
        found = client.get_workflow(remote.workspace(client), workflow)
    targets = {path: _safe_target(folder, path) for path in found.files}
    for path, target in sorted(targets.items()):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(found.files[path], encoding="utf-8", newline="")
    click.echo(f"pulled {workflow} ({len(targets)} files) into {folder}")


@click.command("lint")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
def lint_command(folder: Path) -> None:
    """Check the workflow FOLDER locally; exits 1 if there is any error."""
    from .lint import has_errors, lint_files

    with _failures():
        files = read_folder(folder, check=False)
    found = lint_files(files)
    for diagnostic in found:
        click.echo(_diagnostic_line(diagnostic.to_json()))
    errors = sum(1 for d in found if d.is_error)
    if found:
        click.echo(f"{errors} error(s), {len(found) - errors} warning(s)", err=True)
    if has_errors(found):
        raise SystemExit(1)


# -- runs ------------------------------------------------------------------------------------------------------
@click.command("trigger")
@click.argument("workflow")
@click.option("--data", "data_text", metavar="JSON", help="The run's input, a JSON object (default: {}).")
@click.option("--wait", type=click.FloatRange(min=0), help="Wait up to this many seconds for the result.")
@click.option("--idempotency-key", help="A repeated key returns the earlier run instead of starting one.")
@click.option("--test", is_flag=True, help="Run the draft instead of the deployed version.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@remote_command
def trigger_command(
    remote: Remote,
    workflow: str,
    data_text: str | None,
    wait: float | None,
    idempotency_key: str | None,
    test: bool,
    as_json: bool,
) -> None:
    """Start a run of WORKFLOW. With --wait, print its output; exits 1 if the run failed."""
    data = _json_option(data_text, "--data", default={})
    with remote.client() as client:
        result = client.trigger(remote.workspace(client), workflow, data, wait, idempotency_key, test)
    _print_trigger(result, as_json)
    if result.status in ("failed", "cancelled"):
        raise SystemExit(1)


def _print_trigger(result: TriggerResult, as_json: bool) -> None:
    if as_json:
        if result.responded:
            click.echo(_dump({"run_id": result.run_id, "http_status": result.http_status, "body": result.body}))
        else:
            click.echo(_dump(result.body))
        return
    if result.responded:
        click.echo(f"run {result.run_id} responded with HTTP {result.http_status}")
        click.echo(_dump(result.body) if not isinstance(result.body, str) else result.body)
        return
    click.echo(f"run {result.run_id} {result.status}")
    if result.status == "succeeded":
        click.echo(_dump(result.output))
    elif result.error is not None:
        click.echo(f"error: {result.error}", err=True)


@click.command("runs")
@click.option("--workflow", help="Only this workflow's runs.")
@click.option("--status", "statuses", multiple=True, type=click.Choice(RUN_STATUSES), help="Repeatable.")
@click.option("--trigger", type=click.Choice(("api", "webhook", "schedule", "test", "retry", "child", "local")))
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
@remote_command
def runs_command(
    remote: Remote, workflow: str | None, statuses: tuple[str, ...], trigger: str | None, limit: int, as_json: bool
) -> None:
    """Recent runs, newest first."""
    with remote.client() as client:
        page = client.list_runs(remote.workspace(client), workflow, list(statuses) or None, trigger, limit)
    if as_json:
        click.echo(_dump([run.raw for run in page]))
        return
    rows = [
        [
            r.id,
            r.workflow,
            r.status,
            r.trigger,
            str(r.version if r.version is not None else "-"),
            _when(r.created_at),
            _duration(r),
        ]
        for r in page
    ]
    click.echo(table(["ID", "WORKFLOW", "STATUS", "TRIGGER", "VERSION", "CREATED", "DURATION"], rows))


# -- requests --------------------------------------------------------------------------------------------------
@click.command("requests")
@click.option("--all", "everyone", is_flag=True, help="Everyone's requests, not only mine (admins).")
@click.option("--status", type=click.Choice(REQUEST_STATUSES), default="pending", show_default=True)
@click.option("--workflow", help="Only this workflow's requests.")
@click.option("--name", "names", multiple=True, help="Only requests of this name (repeatable).")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the requests as JSON.")
@remote_command
def requests_command(
    remote: Remote,
    everyone: bool,
    status: str,
    workflow: str | None,
    names: tuple[str, ...],
    limit: int,
    as_json: bool,
) -> None:
    """Requests waiting for me (or in another status)."""
    with remote.client() as client:
        found = client.get_requests(remote.workspace(client), list(names) or None, status, workflow, everyone, limit)
    if as_json:
        click.echo(_dump([r.raw for r in found]))
        return
    click.echo(
        table(["ID", "WORKFLOW", "NAME", "STATUS", "RESOLUTIONS", "CREATED", "MESSAGE"], [_row(r) for r in found])
    )


def _row(r: Request) -> list[str]:
    return [
        r.id,
        r.workflow,
        r.request_name,
        r.status,
        "|".join(r.resolutions),
        _when(r.created_at),
        _clip(r.message, 50),
    ]


@click.command("resolve")
@click.argument("request_id", metavar="ID")
@click.argument("resolution")
@click.option("--metadata", "metadata_text", metavar="JSON", help="A JSON object passed to the workflow as payload.")
@remote_command
def resolve_command(remote: Remote, request_id: str, resolution: str, metadata_text: str | None) -> None:
    """Resolve the request ID with RESOLUTION."""
    metadata = _json_option(metadata_text, "--metadata", default=None)
    with remote.client() as client:
        resolved = client.resolve_request(remote.workspace(client), request_id, resolution, metadata)
    click.echo(f"resolved {resolved.id} ({resolved.request_name}) as {resolved.resolution}")


COMMANDS: list[click.Command] = [
    push_command,
    pull_command,
    lint_command,
    trigger_command,
    runs_command,
    requests_command,
    resolve_command,
]


def register(group: click.Group) -> None:
    for command in COMMANDS:
        group.add_command(command)
