"""``loomwork push/pull/trigger/runs/requests/resolve`` against a real HTTP server, and ``loomwork lint``."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from loomwork.cli import main
from loomwork.folder import read_folder

from .conftest import WORKSPACE
from .live import LiveServer, live_server
from .test_client import APPROVAL, wait_until_sync

MAIN = """import helpers
from loomwork import wf


async def execute_workflow(data):
    wf.log.info("greeting", who=data.get("who"))
    return {"greeting": helpers.greet(data.get("who", "world"))}
"""

HELPERS = """def greet(who):
    return f"hello {who}"
"""

FOLDER = {
    "main.py": MAIN,
    "helpers.py": HELPERS,
    "workflow.toml": 'description = "says hello"\ntimeout = "1m"\n',
    "queries/lookup.sql": "-- datasource: shop\nselect * from orders where id = {{ params.id }}\n",
}

BROKEN_MAIN = "async def execute_workflow(data)\n    return 1\n"


def write_folder(root: Path, files: dict[str, str]) -> Path:
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def live(tmp_path: Path, database_url: str) -> Iterator[LiveServer]:
    with live_server(tmp_path, database_url) as server:
        yield server


@pytest.fixture
def cli(live: LiveServer) -> CliRunner:
    return CliRunner(env={"LOOMWORK_URL": live.url, "LOOMWORK_API_KEY": live.api_key, "LOOMWORK_WORKSPACE": None})


def ok(cli: CliRunner, *args: str) -> Result:
    result = cli.invoke(main, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def fails(cli: CliRunner, *args: str, code: int = 1) -> str:
    """Run a command that must fail: the exit code, one line on stderr, no traceback. Returns stderr."""
    result = cli.invoke(main, list(args))
    assert result.exit_code == code, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    return result.stderr


def test_push_pull_round_trip_and_trigger(cli: CliRunner, tmp_path: Path) -> None:
    source = write_folder(tmp_path / "hello", FOLDER)
    created = ok(cli, "push", str(source))
    assert created.stdout.strip() == "created hello (4 files)"
    (source / "main.py").write_text(MAIN.replace("greeting", "hi"), encoding="utf-8")
    pushed = ok(cli, "push", str(source), "--deploy", "--workspace", WORKSPACE)
    assert pushed.stdout.splitlines() == ["updated hello (4 files)", "deployed hello version 1"]

    copy = tmp_path / "copy"
    pulled = ok(cli, "pull", "hello", str(copy))
    assert pulled.stdout.strip() == f"pulled hello (4 files) into {copy}"
    assert read_folder(copy) == read_folder(source)
    assert {p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file()} == set(FOLDER)
    assert "is not empty; pass --force" in fails(cli, "pull", "hello", str(copy))
    ok(cli, "pull", "hello", str(copy), "--force")
    assert "404" in fails(cli, "pull", "nope", str(tmp_path / "other"))

    triggered = ok(cli, "trigger", "hello", "--data", '{"who": "ann"}', "--wait", "10")
    first, *rest = triggered.stdout.splitlines()
    assert first.startswith("run ") and first.endswith(" succeeded")
    assert json.loads("\n".join(rest)) == {"hi": "hello ann"}
    run_id = first.split()[1]
    queued = json.loads(ok(cli, "trigger", "hello", "--json").stdout)
    assert queued["status"] == "queued"
    assert "--data" in fails(cli, "trigger", "hello", "--data", "[1]", code=2)

    table = ok(cli, "runs", "--workflow", "hello").stdout.splitlines()
    assert table[0].split() == ["ID", "WORKFLOW", "STATUS", "TRIGGER", "VERSION", "CREATED", "DURATION"]
    row = next(line.split() for line in table if line.startswith(run_id))
    assert row[1:5] == ["hello", "succeeded", "api", "1"]
    listed = json.loads(ok(cli, "runs", "--status", "succeeded", "--json").stdout)
    assert run_id in [r["id"] for r in listed]
    assert all(r["status"] == "succeeded" for r in listed)


def test_requests_and_resolve(cli: CliRunner, tmp_path: Path) -> None:
    ok(cli, "push", str(write_folder(tmp_path / "refund", {"main.py": APPROVAL})), "--deploy")
    run_id = json.loads(ok(cli, "trigger", "refund", "--data", '{"amount": 9}', "--json").stdout)["run_id"]

    def listed() -> list[dict[str, object]]:
        found: list[dict[str, object]] = json.loads(ok(cli, "requests", "--json").stdout)
        return found

    [request] = wait_until_sync(listed)
    assert (request["run_id"], request["request_name"], request["status"]) == (run_id, "refund", "pending")
    table = ok(cli, "requests", "--all").stdout.splitlines()
    assert table[0].split()[:4] == ["ID", "WORKFLOW", "NAME", "STATUS"]
    assert table[1].split()[:5] == [request["id"], "refund", "refund", "pending", "Approve|Reject"]

    refused = fails(cli, "resolve", str(request["id"]), "Perhaps")
    assert "Perhaps" in refused and "(HTTP 422)" in refused, refused
    assert "--metadata" in fails(cli, "resolve", str(request["id"]), "Approve", "--metadata", "{bad", code=2)
    resolved = ok(cli, "resolve", str(request["id"]), "Approve", "--metadata", '{"reason": "ok"}')
    assert resolved.stdout.strip() == f"resolved {request['id']} (refund) as Approve"
    assert "(HTTP 409)" in fails(cli, "resolve", str(request["id"]), "Reject")
    assert ok(cli, "requests").stdout.splitlines()[1:] == []
    done = json.loads(ok(cli, "requests", "--status", "resolved", "--json").stdout)
    assert [r["payload"] for r in done] == [{"reason": "ok"}]


def test_connection_and_credential_errors(live: LiveServer, tmp_path: Path) -> None:
    no_key = CliRunner(env={"LOOMWORK_URL": live.url, "LOOMWORK_API_KEY": None})
    assert "LOOMWORK_API_KEY" in fails(no_key, "runs", code=2)
    bad_key = CliRunner(env={"LOOMWORK_URL": live.url, "LOOMWORK_API_KEY": "lwk_wrong"})
    assert "401" in fails(bad_key, "runs", "--workspace", WORKSPACE)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        nowhere = CliRunner(env={"LOOMWORK_URL": url, "LOOMWORK_API_KEY": "k"})
        message = fails(nowhere, "runs", "--workspace", WORKSPACE)
    assert f"cannot reach the Loomwork server at {url}" in message
    assert len(message.strip().splitlines()) == 1
    other = CliRunner(env={"LOOMWORK_URL": live.url, "LOOMWORK_API_KEY": live.api_key})
    assert "404" in fails(other, "runs", "--workspace", "elsewhere")
    broken = write_folder(tmp_path / "broken", {"main.py": BROKEN_MAIN})
    assert "main.py:1" in fails(other, "push", str(broken))


def test_lint_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    clean = runner.invoke(main, ["lint", str(write_folder(tmp_path / "clean", FOLDER))])
    assert clean.exit_code == 0, clean.output
    assert clean.stdout == ""
    broken = runner.invoke(main, ["lint", str(write_folder(tmp_path / "broken", {"main.py": BROKEN_MAIN}))])
    assert broken.exit_code == 1, broken.output
    first = broken.stdout.splitlines()[0]
    assert first.startswith("main.py:1:") and ": error " in first
    assert "error(s)" in broken.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    missing_main = runner.invoke(main, ["lint", str(empty)])
    assert missing_main.exit_code == 1
    assert "main.py" in missing_main.stdout
