"""The ``loomwork`` command line."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import LoomworkError
from .local import LocalRunOptions, print_outcome, run_folder
from .model import Request


def _parse_json(value: str | None, what: str) -> Any:
    if value is None:
        return {}
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"{what} is not valid JSON: {exc}") from exc


def _parse_resolutions(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        name, sep, resolution = value.partition("=")
        if not sep or not name or not resolution:
            raise click.BadParameter(f"{value!r} must look like REQUEST_NAME=RESOLUTION", param_hint="--resolve")
        out[name] = resolution
    return out


@click.group()
@click.version_option(__version__, prog_name="loomwork")
def main() -> None:
    """Loomwork: durable, code-first workflows with people in the loop."""


@main.command("run")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--data", "data_text", help="The run's input as JSON (default: {}).")
@click.option(
    "--data-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read the input JSON from a file.",
)
@click.option(
    "--resolve",
    "resolves",
    multiple=True,
    metavar="REQUEST_NAME=RESOLUTION",
    help="Resolve requests of that name without asking (repeatable).",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the embedded database here (default: a temporary directory).",
)
@click.option("--timeout", type=float, help="Stop following after this many seconds.")
def run_command(
    folder: Path,
    data_text: str | None,
    data_file: Path | None,
    resolves: tuple[str, ...],
    state_dir: Path | None,
    timeout: float | None,
) -> None:
    """Run the workflow in FOLDER locally, printing steps, logs and the output."""
    if data_file is not None:
        data = _parse_json(data_file.read_text(encoding="utf-8"), str(data_file))
    else:
        data = _parse_json(data_text, "--data")
    interactive = sys.stdin.isatty()

    def ask(request: Request) -> str:
        choice: str = click.prompt(
            f"    resolve {request.request_name!r}", type=click.Choice(list(request.resolutions))
        )
        return choice

    options = LocalRunOptions(
        folder=folder,
        data=data,
        resolutions=_parse_resolutions(resolves),
        state_dir=state_dir,
        ask=ask if interactive else None,
        timeout=timeout,
    )
    try:
        run = asyncio.run(run_folder(options, click.echo))
    except LoomworkError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(print_outcome(run, click.echo))


def _register() -> None:
    """Add the commands that run a node (cli_server) and those that call one (cli_remote)."""
    from .cli_remote import register as register_remote
    from .cli_server import COMMANDS

    for command in COMMANDS:
        main.add_command(command)
    register_remote(main)


_register()

if __name__ == "__main__":
    main()
