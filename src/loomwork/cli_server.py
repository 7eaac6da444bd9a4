"""CLI commands that run a node or set one up: server, api, worker, demo, init, migrate, config."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click

from .demo import (
    DEMO_EMAIL,
    DEMO_WORKSPACE,
    DemoLogin,
    demo_password,
    example_datasources,
    example_folders,
    load_demo,
)
from .engine import Engine
from .errors import LoomworkError
from .sealing import SecretBox
from .server import runner
from .service.accounts import Accounts
from .service.effects import secret_box
from .settings import Settings
from .store import Store
from .store import datasources as datasource_rows
from .store import workflows as drafts


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings.load().replace(**overrides)
    except LoomworkError as exc:
        raise click.ClickException(str(exc)) from exc


def _node_options(fn: Any) -> Any:
    fn = click.option("--port", type=click.IntRange(0, 65535), help="Port (default 8080, LOOMWORK_PORT).")(fn)
    fn = click.option("--host", help="Interface to listen on (default 127.0.0.1, LOOMWORK_HOST).")(fn)
    fn = click.option(
        "--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Data directory (LOOMWORK_DATA_DIR)."
    )(fn)
    return fn


def _serve(settings: Settings, roles: runner.Roles, what: str, setup: runner.Setup | None = None) -> None:
    def ready() -> None:
        if roles.api:
            click.echo(f"Loomwork {what} listening on {settings.base_url}", err=True)
        else:
            click.echo(f"Loomwork {what} started", err=True)

    try:
        runner.run(settings, roles, setup=setup, on_ready=ready)
    except LoomworkError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot start: {exc}") from exc


@click.command("server")
@_node_options
def server_command(host: str | None, port: int | None, data_dir: Path | None) -> None:
    """Run the API, the scheduler and a pool of workers (embedded SQLite unless LOOMWORK_DATABASE_URL is set)."""
    _serve(_settings(host=host, port=port, data_dir=data_dir), runner.SERVER, "server")


@click.command("api")
@_node_options
def api_command(host: str | None, port: int | None, data_dir: Path | None) -> None:
    """Run the API only (it never executes runs). For scale-out on PostgreSQL."""
    _serve(_settings(host=host, port=port, data_dir=data_dir), runner.API_ONLY, "API")


@click.command("worker")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Data directory.")
def worker_command(data_dir: Path | None) -> None:
    """Run workers and the scheduler only (no HTTP). For scale-out on PostgreSQL."""
    _serve(_settings(data_dir=data_dir), runner.WORKER_ONLY, "worker")


@click.command("demo")
@_node_options
@click.option(
    "--examples",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("examples"),
    show_default=True,
    help="Folder of example workflows (and their datasources.toml) to load.",
)
def demo_command(host: str | None, port: int | None, data_dir: Path | None, examples: Path) -> None:
    """Start the server with the example workflows deployed in workspace 'demo'; prints the URL and login."""
    settings = _settings(host=host, port=port, data_dir=data_dir)
    login = DemoLogin(DEMO_EMAIL, demo_password(settings.data_dir), DEMO_WORKSPACE)
    folders = example_folders(examples)
    sources, sinks = example_datasources(examples, settings.data_dir)

    async def setup(engine: Engine) -> None:
        await load_demo(engine, folders, login, sources)

    def ready() -> None:
        base = settings.base_url
        example = login.workflows[0] if login.workflows else "WORKFLOW"
        runs_url = f"{base}/api/v1/workspaces/{login.workspace}/workflows/{example}/runs"
        click.echo(
            "\n".join(
                [
                    f"Loomwork is running at {base}",
                    f"  log in:     {login.email} / {login.password}",
                    f"  workspace:  {login.workspace} (workflows: {', '.join(login.workflows) or 'none'})",
                    f"  API key:    {login.api_key}",
                    f"  API docs:   {base}/api/docs",
                    *(f"  mail sink:  {s.host}:{s.port}, messages kept in {s.folder}" for s in sinks),
                    "  try:",
                    f"    curl -X POST -H 'Authorization: Bearer {login.api_key}' \\",
                    "      -H 'Content-Type: application/json' -d '{\"data\": {\"order_id\": 2}}' \\",
                    f"      {runs_url}",
                    "  Stop with Ctrl-C.",
                ]
            )
        )

    try:
        runner.run(settings, runner.SERVER, setup=setup, on_ready=ready)
    except LoomworkError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot start: {exc}") from exc
    finally:
        for sink in sinks:
            sink.stop()


@click.command("init")
@click.option("--email", required=True, help="The first admin's email.")
@click.option("--password", required=True, help="The first admin's password (at least 8 characters).")
@click.option("--workspace", required=True, help="The first workspace's slug.")
@click.option("--json", "as_json", is_flag=True, help='Print {"email", "workspace", "api_key"} as JSON.')
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Data directory.")
def init_command(email: str, password: str, workspace: str, as_json: bool, data_dir: Path | None) -> None:
    """Create the first admin and workspace (idempotent) and print a new API key."""
    settings = _settings(data_dir=data_dir)

    async def main() -> tuple[str, str]:
        engine = runner.build_engine(settings, execute=False)
        async with engine:
            created = await Accounts(engine).bootstrap(email, password, workspace)
            return created.key.user_email, created.secret

    try:
        user_email, key = asyncio.run(main())
    except LoomworkError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps({"email": user_email, "workspace": workspace, "api_key": key}))
    else:
        click.echo(f"admin:     {user_email}\nworkspace: {workspace}\nAPI key:   {key}  (shown once; keep it safe)")


@click.command("migrate")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Data directory.")
def migrate_command(data_dir: Path | None) -> None:
    """Apply database migrations not yet applied (servers also do this at start-up)."""
    settings = _settings(data_dir=data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        store = Store(settings.engine_config().resolved_database_url())
        try:
            applied = store.migrate()
        finally:
            store.close()
    except LoomworkError as exc:
        raise click.ClickException(str(exc)) from exc
    if applied:
        click.echo(f"applied {len(applied)} migration(s): " + ", ".join(applied))
    else:
        click.echo("the database is up to date")


@click.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def config_command(as_json: bool) -> None:
    """Print the effective settings (defaults, loomwork.toml, LOOMWORK_* variables), secrets masked."""
    values = _settings().masked()
    if as_json:
        click.echo(json.dumps(values, indent=2, default=str))
        return
    width = max(len(k) for k in values)
    for key, value in values.items():
        click.echo(f"{key.ljust(width)}  {'' if value is None else value}")


@click.command("reseal")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Data directory.")
def reseal_command(data_dir: Path | None) -> None:
    """Re-encrypt every stored secret under the current secret key (after a rotation; see docs/datasources.md)."""
    settings = _settings(data_dir=data_dir)

    async def main() -> tuple[int, int]:
        engine = runner.build_engine(settings, execute=False)
        async with engine:
            box = secret_box(engine)
            sealed = await engine.db.read(datasource_rows.all_sealed)
            for workspace, name, value in sealed:
                await engine.db.write(datasource_rows.set_sealed, workspace, name, box.reseal(value))
            hooks = SecretBox(engine.secret_key, "webhook-hmac-secret", engine.config.previous_secret_keys)
            hmacs = await engine.db.read(drafts.all_sealed_hmac_secrets)
            for workspace, name, value in hmacs:
                await engine.db.write(drafts.set_sealed_hmac_secret, workspace, name, hooks.reseal(value))
            return len(sealed), len(hmacs)

    try:
        datasources, webhooks = asyncio.run(main())
    except LoomworkError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"re-sealed the secrets of {datasources} datasource(s) and {webhooks} webhook(s)")


COMMANDS = [
    reseal_command,
    server_command,
    api_command,
    worker_command,
    demo_command,
    init_command,
    migrate_command,
    config_command,
]
