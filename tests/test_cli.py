"""``loomwork run DIR`` as a user runs it: a real subprocess on workflow folders written for each test.

Every invocation starts an embedded engine with its own worker process, which takes a second or two; so all the
invocations of this module are started at once by one fixture, and each test then checks its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import loomwork

GREET = """
from loomwork import wf

def shout(name):
    return name.upper()

async def execute_workflow(data):
    wf.log.info("greeting", name=data["name"])
    loud = await wf.step(shout, data["name"])
    return {"greeting": f"hello {loud}", "input": data}
"""

FAILING = """
from loomwork import wf

def look_up(order_id):
    raise LookupError(f"no such order: {order_id}")

async def execute_workflow(data):
    wf.log.info("looking up", order_id=data["order_id"])
    return await wf.step(look_up, data["order_id"])
"""

APPROVAL = """
from loomwork import wf

async def execute_workflow(data):
    decision = await wf.assign_request(
        "approve-refund",
        ["Approve", "Reject"],
        message=f"Refund {data['amount']}?",
        to_groups=["finance"],
    )
    return {"amount": data["amount"], "decision": decision.resolution}
"""

NO_ENTRY = """
async def main(data):
    return data
"""


@dataclass(frozen=True)
class Invocation:
    name: str
    workflow: str
    main_py: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str

    def output_json(self) -> object:
        """The JSON the CLI prints after ``■ succeeded``."""
        _, marker, rest = self.stdout.partition("■ succeeded\n")
        assert marker, self.stdout
        return json.loads(rest)


INVOCATIONS = [
    Invocation("succeeds", "greet", GREET, ("--data", '{"name": "Ann"}')),
    Invocation("data_file", "greet", GREET, ("--data-file", "{dir}/input.json")),
    Invocation("fails", "lookup", FAILING, ("--data", '{"order_id": 7}')),
    Invocation("resolved", "refund", APPROVAL, ("--data", '{"amount": 42}', "--resolve", "approve-refund=Reject")),
    Invocation("unresolved", "refund", APPROVAL, ("--data", '{"amount": 42}')),
    Invocation("not_offered", "refund", APPROVAL, ("--data", '{"amount": 42}', "--resolve", "approve-refund=Maybe")),
    Invocation("malformed_resolve", "refund", APPROVAL, ("--resolve", "approve-refund")),
    Invocation("bad_data", "greet", GREET, ("--data", '{"name": "Ann"')),
    Invocation("no_entry", "broken", NO_ENTRY, ()),
]


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOMWORK_")}
    env["PYTHONIOENCODING"] = "utf-8"
    return env


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Result]]:
    root = tmp_path_factory.mktemp("cli")
    processes = {}
    for invocation in INVOCATIONS:
        home = root / invocation.name  # one parent per folder: `loomwork run` also deploys sibling folders
        folder = home / invocation.workflow
        folder.mkdir(parents=True)
        (folder / "main.py").write_text(textwrap.dedent(invocation.main_py).lstrip(), encoding="utf-8")
        (home / "input.json").write_text('{"name": "Bea"}', encoding="utf-8")
        args = [a.replace("{dir}", str(home)) for a in invocation.args]
        processes[invocation.name] = subprocess.Popen(
            [sys.executable, "-m", "loomwork", "run", str(folder), *args, "--timeout", "60"],
            cwd=home,
            env=clean_env(),
            stdin=subprocess.DEVNULL,  # no terminal to ask
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
    results = {}
    try:
        for name, process in processes.items():
            stdout, stderr = process.communicate(timeout=120)
            results[name] = Result(process.returncode, stdout, stderr)
        yield results
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


def test_a_successful_run_prints_its_steps_logs_and_output(cli: dict[str, Result]) -> None:
    result = cli["succeeds"]
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("▶ run ")
    assert lines[0].endswith(" of greet v1")
    assert '  ✔ step 1 step shout → "ANN"' in lines
    assert any(line.startswith("  │ ") and line.endswith("info    greeting name='Ann'") for line in lines)
    assert result.output_json() == {"greeting": "hello ANN", "input": {"name": "Ann"}}
    assert result.stderr == ""


def test_data_can_come_from_a_file(cli: dict[str, Result]) -> None:
    result = cli["data_file"]
    assert result.returncode == 0, result.stderr
    assert result.output_json() == {"greeting": "hello BEA", "input": {"name": "Bea"}}


def test_a_failing_run_exits_1_with_the_error_and_a_traceback_of_user_code(cli: dict[str, Result]) -> None:
    result = cli["fails"]
    assert result.returncode == 1
    assert "  ✘ step 1 step look_up ✘ LookupError: no such order: 7" in result.stdout
    assert "■ failed: LookupError: no such order: 7" in result.stdout
    assert "■ succeeded" not in result.stdout
    # The traceback shows the workflow's own files, by their path in the folder, and nothing of the engine.
    traceback = result.stdout.partition("■ failed: LookupError: no such order: 7\n")[2]
    assert 'File "main.py", line 8, in execute_workflow' in traceback
    assert 'File "main.py", line 4, in look_up' in traceback
    assert "loomwork" not in traceback
    assert 'File "/' not in traceback


def test_a_request_is_resolved_from_the_command_line(cli: dict[str, Result]) -> None:
    result = cli["resolved"]
    assert result.returncode == 0, result.stderr
    assert "  ? request 'approve-refund': Refund 42?" in result.stdout
    assert "    resolutions: Approve, Reject" in result.stdout
    assert "  ✔ request 'approve-refund' resolved: Reject" in result.stdout
    assert result.output_json() == {"amount": 42, "decision": "Reject"}


def test_a_request_without_resolve_and_no_terminal_says_to_pass_resolve(cli: dict[str, Result]) -> None:
    result = cli["unresolved"]
    assert result.returncode == 1
    assert "pass --resolve approve-refund=RESOLUTION" in result.stderr
    assert "■ succeeded" not in result.stdout


def test_a_resolution_that_is_not_offered_is_refused(cli: dict[str, Result]) -> None:
    result = cli["not_offered"]
    assert result.returncode == 1
    assert "Error: --resolve approve-refund=Maybe: not one of ['Approve', 'Reject']" in result.stderr
    assert "resolved:" not in result.stdout


def test_a_malformed_resolve_is_a_usage_error(cli: dict[str, Result]) -> None:
    result = cli["malformed_resolve"]
    assert result.returncode == 2
    assert "'approve-refund' must look like REQUEST_NAME=RESOLUTION" in result.stderr
    assert result.stdout == ""  # refused before anything ran


def test_bad_data_json_is_a_usage_error(cli: dict[str, Result]) -> None:
    result = cli["bad_data"]
    assert result.returncode == 2
    assert "--data is not valid JSON" in result.stderr
    assert result.stdout == ""


def test_a_folder_without_execute_workflow_is_refused(cli: dict[str, Result]) -> None:
    result = cli["no_entry"]
    assert result.returncode == 1
    assert "Error: main.py must define async def execute_workflow(data)" in result.stderr
    assert result.stdout == ""


def test_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "loomwork", "--version"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"loomwork, version {loomwork.__version__}"
