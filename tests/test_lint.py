"""Linting a workflow folder: structural errors with exact positions, ruff findings as warnings."""

from __future__ import annotations

import pytest

from loomwork import lint
from loomwork.folder import MAX_FILE_BYTES
from loomwork.lint import Diagnostic, has_errors, lint_files

MAIN = 'from loomwork import wf\n\n\nasync def execute_workflow(data):\n    wf.log.info("hi")\n    return data\n'

needs_ruff = pytest.mark.skipif(lint.find_ruff() is None, reason="the ruff executable is not installed")


def codes(found: list[Diagnostic]) -> list[tuple[str, str]]:
    return [(d.file, d.code) for d in found]


def test_a_clean_folder_has_no_diagnostics() -> None:
    files = {
        "main.py": "from loomwork import wf\n\nimport helpers\n\n\nasync def execute_workflow(data):\n"
        "    wf.log.info('hi')\n    return helpers.double(data['n'])\n",
        "helpers.py": "def double(n):\n    return 2 * n\n",
        "workflow.toml": 'timeout = "10m"\n[retry]\nattempts = 3\n',
        "queries/get_order.sql": "-- datasource: shop\nSELECT * FROM orders WHERE id = {{ params.id }}\n",
        "queries/notify.toml": 'datasource = "mailer"\nto = "a@b.c"\n',
    }
    assert lint_files(files) == []


def test_a_syntax_error_has_its_exact_position() -> None:
    found = lint_files({"main.py": MAIN, "helpers.py": "x = 1\ndef broken(:\n    pass\n"})
    assert len(found) == 1
    error = found[0]
    assert (error.file, error.line, error.col, error.severity, error.code) == ("helpers.py", 2, 12, "error", "E999")
    assert error.end_line >= error.line
    assert error.to_json()["message"] == error.message


def test_errors_found_only_when_compiling_are_reported() -> None:
    found = lint_files({"main.py": MAIN + "\nreturn 5\n"})
    assert [(d.code, d.line) for d in found] == [("E999", 8)]
    assert "outside function" in found[0].message


def test_main_py_must_exist_and_define_an_async_entry_with_one_argument() -> None:
    assert codes(lint_files({"helpers.py": "X = 1\n"})) == [("main.py", lint.NO_MAIN)]
    assert codes(lint_files({"main.py": "X = 1\n"})) == [("main.py", lint.NO_ENTRY)]
    not_async = lint_files({"main.py": "X = 1\n\n\ndef execute_workflow(data):\n    return data\n"})
    assert [(d.code, d.line, d.col) for d in not_async] == [(lint.ENTRY_NOT_ASYNC, 4, 1)]
    no_args = lint_files({"main.py": "async def execute_workflow():\n    return 1\n"})
    assert [d.code for d in no_args] == [lint.ENTRY_SIGNATURE]
    assert lint_files({"main.py": "async def execute_workflow(data, extra=None):\n    return data\n"}) == []


def test_workflow_toml_errors_point_at_the_offending_line() -> None:
    broken = lint_files({"main.py": MAIN, "workflow.toml": 'timeout = "10m"\nretry = [\n'})
    assert [(d.file, d.code, d.severity) for d in broken] == [("workflow.toml", lint.BAD_SETTINGS, "error")]
    assert broken[0].line >= 2
    unknown = lint_files({"main.py": MAIN, "workflow.toml": 'timeout = "1m"\n\nspeed = 3\n'})
    assert [(d.code, d.line) for d in unknown] == [(lint.BAD_SETTINGS, 3)]
    assert "speed" in unknown[0].message
    attempts = lint_files({"main.py": MAIN, "workflow.toml": "[retry]\nattempts = 0\n"})
    assert [(d.code, d.line) for d in attempts] == [(lint.BAD_SETTINGS, 2)]


def test_query_files_must_parse() -> None:
    found = lint_files(
        {
            "main.py": MAIN,
            "queries/no_header.sql": "SELECT 1\n",
            "queries/bad.toml": 'datasource = "x"\nmethod = \n',
            "queries/no_source.toml": 'method = "GET"\n',
            "queries/notes.md": "# notes\n",
            "queries/sub/deep.sql": "-- datasource: x\nSELECT 1\n",
        }
    )
    by_file = {d.file: d for d in found}
    assert by_file["queries/no_header.sql"].code == lint.BAD_QUERY
    assert "datasource" in by_file["queries/no_header.sql"].message
    assert (by_file["queries/bad.toml"].code, by_file["queries/bad.toml"].line) == (lint.BAD_QUERY, 2)
    assert by_file["queries/no_source.toml"].severity == "error"
    assert (by_file["queries/notes.md"].code, by_file["queries/notes.md"].severity) == (lint.NOT_A_QUERY, "warning")
    assert by_file["queries/sub/deep.sql"].severity == "error"


def test_unsafe_and_oversized_paths_are_errors() -> None:
    found = lint_files(
        {"main.py": MAIN, "../escape.py": "x = 1\n", "/abs.py": "x = 1\n", "big.txt": "x" * (MAX_FILE_BYTES + 1)}
    )
    assert sorted(codes(found)) == [
        ("../escape.py", lint.UNSAFE_PATH),
        ("/abs.py", lint.UNSAFE_PATH),
        ("big.txt", lint.FILE_TOO_LARGE),
    ]
    assert has_errors(found)


def test_syntax_warnings_are_warnings() -> None:
    found = lint_files({"main.py": MAIN + "\nPATTERN = '\\d+'\n"})
    assert [(d.code, d.severity, d.line) for d in found] == [(lint.SYNTAX_WARNING, "warning", 8)]


@needs_ruff
def test_ruff_findings_are_warnings_except_undefined_names() -> None:
    files = {
        "main.py": "import os\n\n\nasync def execute_workflow(data):\n    return undefined_thing(data)\n",
        "helpers.py": "def f(items=[]):\n    return items\n",
    }
    found = lint_files(files)
    seen = {(d.file, d.code): d for d in found}
    unused = seen[("main.py", "F401")]
    assert (unused.severity, unused.line, unused.col, unused.end_col) == ("warning", 1, 8, 10)
    undefined = seen[("main.py", "F821")]
    assert (undefined.severity, undefined.line, undefined.col) == ("error", 5, 12)
    assert "undefined_thing" in undefined.message
    assert seen[("helpers.py", "B006")].severity == "warning"
    assert has_errors(found)


@needs_ruff
def test_ruff_is_not_run_on_files_that_do_not_compile_and_respects_noqa() -> None:
    files = {
        "main.py": "import os  # noqa: F401\n\n\nasync def execute_workflow(data):\n    return data\n",
        "broken.py": "import sys\ndef (:\n",
    }
    assert codes(lint_files(files)) == [("broken.py", "E999")]


def test_without_ruff_the_structural_checks_still_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lint, "find_ruff", lambda: None)
    found = lint_files({"main.py": "import os\n\n\nasync def execute_workflow(data):\n    return nope\n"})
    assert found == []
    assert codes(lint_files({"main.py": "def (\n"})) == [("main.py", "E999")]


def test_a_failing_ruff_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lint, "find_ruff", lambda: "/nonexistent/ruff")
    assert lint_files({"main.py": "import os\n\n\nasync def execute_workflow(data):\n    return 1\n"}) == []
