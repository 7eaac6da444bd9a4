"""A workflow is a folder: reading it, checking it and parsing ``workflow.toml``, with clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loomwork.errors import WorkflowFolderError
from loomwork.folder import (
    MAX_FILE_BYTES,
    WorkflowSettings,
    check_files,
    check_name,
    parse_settings,
    read_folder,
)

MAIN = "async def execute_workflow(data):\n    return data\n"


def write(folder: Path, files: dict[str, str | bytes]) -> Path:
    for relative, content in files.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    return folder


# -- check_files --------------------------------------------------------------------------------------------
def test_a_minimal_folder_is_accepted_with_default_settings() -> None:
    assert check_files({"main.py": MAIN}) == WorkflowSettings()


def test_a_full_folder_is_accepted() -> None:
    settings = check_files(
        {
            "main.py": "import helpers\nfrom lib import tools\n\nasync def execute_workflow(data):\n    return 1\n",
            "helpers.py": "X = 1\n",
            "lib/tools.py": "def f():\n    return 2\n",
            "queries/get_order.sql": "-- datasource: shop\nSELECT 1\n",
            "workflow.toml": 'description = "Refunds"\ntimeout = "10m"\n',
        }
    )
    assert settings.description == "Refunds"
    assert settings.timeout == 600


def test_missing_main_py_is_refused() -> None:
    with pytest.raises(WorkflowFolderError, match=r"needs a main\.py defining async def execute_workflow"):
        check_files({"helpers.py": "X = 1\n"})


@pytest.mark.parametrize(
    "main",
    [
        "def execute_workflow(data):\n    return 1\n",  # not async
        "async def run(data):\n    return 1\n",
        "class Flow:\n    async def execute_workflow(self, data):\n        return 1\n",  # not at top level
        "",
    ],
    ids=["sync", "other-name", "method", "empty"],
)
def test_main_py_without_async_execute_workflow_is_refused(main: str) -> None:
    with pytest.raises(WorkflowFolderError, match=r"main\.py must define async def execute_workflow\(data\)"):
        check_files({"main.py": main})


def test_syntax_error_in_main_reports_file_line_and_column() -> None:
    main = "async def execute_workflow(data):\n    x = (1,\n    return x\n\n\n"
    with pytest.raises(WorkflowFolderError) as caught:
        check_files({"main.py": "async def execute_workflow(data):\n    return 1 +\n"})
    assert str(caught.value) == "main.py:2:15: invalid syntax"
    with pytest.raises(WorkflowFolderError, match=r"^main\.py:2:9: "):
        check_files({"main.py": main})


def test_syntax_error_in_another_module_names_that_module() -> None:
    with pytest.raises(WorkflowFolderError, match=r"^lib/helpers\.py:3:\d+: "):
        check_files({"main.py": MAIN, "lib/helpers.py": "X = 1\n\ndef broken(:\n    pass\n"})


@pytest.mark.parametrize("path", ["../x.py", "queries/../../etc/passwd", "/etc/passwd", "queries\\x.sql", ""], ids=repr)
def test_unsafe_paths_are_refused(path: str) -> None:
    with pytest.raises(WorkflowFolderError, match=r"must be relative, without '\.\.'"):
        check_files({"main.py": MAIN, path: "x"})


def test_file_content_must_be_text_and_not_too_big() -> None:
    with pytest.raises(WorkflowFolderError, match=r"^data\.json: file content must be text"):
        check_files({"main.py": MAIN, "data.json": b"{}"})  # type: ignore[dict-item]
    with pytest.raises(WorkflowFolderError, match=rf"^big\.txt: file is larger than {MAX_FILE_BYTES} bytes"):
        check_files({"main.py": MAIN, "big.txt": "x" * (MAX_FILE_BYTES + 1)})
    check_files({"main.py": MAIN, "big.txt": "x" * MAX_FILE_BYTES})


def test_bad_workflow_toml_fails_the_check() -> None:
    with pytest.raises(WorkflowFolderError, match=r"^workflow\.toml: "):
        check_files({"main.py": MAIN, "workflow.toml": "timeout = \n"})


# -- parse_settings -----------------------------------------------------------------------------------------
def test_settings_defaults() -> None:
    assert parse_settings(None) == parse_settings("") == WorkflowSettings()
    defaults = WorkflowSettings()
    assert (defaults.timeout, defaults.retry_attempts, defaults.retry_backoff, defaults.webhook_wait) == (
        None,
        1,
        1.0,
        None,
    )


def test_every_setting_is_read() -> None:
    settings = parse_settings(
        """
        description = "Refund approval"
        timeout = "2h"

        [retry]
        attempts = 3
        backoff = "500ms"

        [webhook]
        wait = 30

        [schedule]
        cron = "0 9 * * 1"
        """.replace("\n        ", "\n")
    )
    assert settings == WorkflowSettings(
        description="Refund approval", timeout=7200, retry_attempts=3, retry_backoff=0.5, webhook_wait=30
    )
    assert settings.to_json() == {
        "description": "Refund approval",
        "timeout": 7200,
        "retry_attempts": 3,
        "retry_backoff": 0.5,
        "webhook_wait": 30,
    }


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ('"90"', 90), ('"30s"', 30), ('"10m"', 600), ('"2h"', 7200), ('"3d"', 259200), ("1.5", 1.5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_settings(f"timeout = {text}\n").timeout == seconds


def test_malformed_toml_is_reported_with_its_position() -> None:
    with pytest.raises(WorkflowFolderError, match=r"^workflow\.toml: .*line 2"):
        parse_settings('description = "ok"\ntimeout = = 3\n')


def test_unknown_settings_are_named() -> None:
    with pytest.raises(WorkflowFolderError) as caught:
        parse_settings('descripton = "typo"\nretries = 3\n')
    message = str(caught.value)
    assert "unknown setting(s) ['descripton', 'retries']" in message
    assert "known: ['description', 'retry', 'schedule', 'timeout', 'webhook']" in message


@pytest.mark.parametrize(
    ("text", "names"),
    [("[retry]\nattempt = 3\n", "[retry] attempt"), ("[webhook]\nwiat = 5\n", "[webhook] wiat")],
)
def test_unknown_keys_inside_tables_are_named(text: str, names: str) -> None:
    with pytest.raises(WorkflowFolderError, match=rf"^workflow\.toml: unknown setting\(s\) \['{re.escape(names)}'\]"):
        parse_settings(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('timeout = "10 minutes"', "timeout must be a number of seconds or a string like '30s'"),
        ('timeout = "fast"', "got 'fast'"),
        ("timeout = -5", "timeout must be positive, got -5"),
        ("timeout = 0", "timeout must be positive"),
        ("timeout = true", "timeout must be a number of seconds"),
        ("timeout = nan", "timeout must be a finite"),
        ("timeout = inf", "timeout must be a finite"),
        ('[retry]\nbackoff = "soon"', r"\[retry\] backoff must be a number of seconds"),
        ("[webhook]\nwait = []", r"\[webhook\] wait must be a number of seconds"),
    ],
)
def test_bad_durations_are_named(text: str, message: str) -> None:
    with pytest.raises(WorkflowFolderError, match=rf"^workflow\.toml: .*{message}"):
        parse_settings(text + "\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[retry]\nattempts = 0", r"\[retry\] attempts must be an integer >= 1, got 0"),
        ("[retry]\nattempts = 2.5", r"\[retry\] attempts must be an integer >= 1, got 2.5"),
        ("[retry]\nattempts = true", r"\[retry\] attempts must be an integer >= 1, got True"),
        ("retry = 3", r"\[retry\] and \[webhook\] must be tables"),
        ('webhook = "on"', r"\[retry\] and \[webhook\] must be tables"),
        ("description = 42", "description must be a string"),
    ],
)
def test_bad_values_are_named(text: str, message: str) -> None:
    with pytest.raises(WorkflowFolderError, match=rf"^workflow\.toml: {message}"):
        parse_settings(text + "\n")


# -- check_name ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["refunds", "refund-approval", "a", "v2_flow", "0day"])
def test_good_workflow_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "Refunds", "-x", "_x", "a b", "a/b", "../x", "é"])
def test_bad_workflow_names(name: str) -> None:
    with pytest.raises(WorkflowFolderError, match=r"workflow name .* must match \[a-z0-9\]"):
        check_name(name)


# -- read_folder --------------------------------------------------------------------------------------------
def test_read_folder_reads_text_files_by_posix_path(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "refunds",
        {
            "main.py": MAIN,
            "helpers.py": "X = 1\n",
            "queries/get_order.sql": "-- datasource: shop\nSELECT 1\n",
            "queries/notify.toml": 'datasource = "mailer"\n',
            "workflow.toml": 'description = "d"\n',
            "README.md": "# refunds\n",
            "logo.png": b"\x89PNG\r\n",  # not a text file: left out
            ".git/config": "[core]\n",  # hidden: left out
            "__pycache__/main.cpython-311.pyc": b"\x00",
            ".env": "SECRET=1\n",
        },
    )
    assert read_folder(folder) == {
        "README.md": "# refunds\n",
        "helpers.py": "X = 1\n",
        "main.py": MAIN,
        "queries/get_order.sql": "-- datasource: shop\nSELECT 1\n",
        "queries/notify.toml": 'datasource = "mailer"\n',
        "workflow.toml": 'description = "d"\n',
    }


def test_read_folder_checks_what_it_read(tmp_path: Path) -> None:
    with pytest.raises(WorkflowFolderError, match=r"needs a main\.py"):
        read_folder(write(tmp_path / "empty", {"helpers.py": "X = 1\n"}))
    with pytest.raises(WorkflowFolderError, match=r"^main\.py:1:\d+: "):
        read_folder(write(tmp_path / "broken", {"main.py": "async def execute_workflow(data:\n"}))
    with pytest.raises(WorkflowFolderError, match=r"^workflow\.toml: unknown setting"):
        read_folder(write(tmp_path / "settings", {"main.py": MAIN, "workflow.toml": "colour = 1\n"}))


def test_read_folder_refuses_a_missing_folder_and_non_utf8_text(tmp_path: Path) -> None:
    with pytest.raises(WorkflowFolderError, match="is not a directory"):
        read_folder(tmp_path / "nope")
    with pytest.raises(WorkflowFolderError, match="is not a directory"):
        read_folder(write(tmp_path, {"file.py": MAIN}) / "file.py")
    folder = write(tmp_path / "latin", {"main.py": MAIN, "notes.txt": "café".encode("latin-1")})
    with pytest.raises(WorkflowFolderError, match=r"^notes\.txt: not UTF-8 text"):
        read_folder(folder)
