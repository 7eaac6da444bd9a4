"""The public names of ``loomwork``, ``loomwork.wf`` and ``loomwork.errors`` are pinned here.

A change to this file is a change to the public API: add a name on purpose, never remove one by accident.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys

import pytest

import loomwork
from loomwork import errors, wf

LOOMWORK_NAMES = [
    "ChildRunFailed",
    "Conflict",
    "Decision",
    "Forbidden",
    "InvalidRequest",
    "LoomworkError",
    "NonDeterminismError",
    "NotFound",
    "RequestStatus",
    "RequestTimeout",
    "RunStatus",
    "StepError",
    "StepKind",
    "StepStatus",
    "Unprocessable",
    "WorkflowError",
    "__version__",
    "wf",
]

WF_NAMES = [
    "Decision",
    "RequestHandle",
    "assign_request",
    "create_request",
    "days",
    "first",
    "hours",
    "http",
    "log",
    "minutes",
    "now",
    "queries",
    "random",
    "respond",
    "run_workflow",
    "seconds",
    "sleep",
    "step",
    "step_key",
    "uuid",
]

#: Read from the run being executed; public, but not in ``__all__`` so that ``import *`` works anywhere.
WF_RUN_ATTRIBUTES = ["run_id", "workflow", "trigger"]

ERROR_NAMES = [
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


def test_loomwork_public_names() -> None:
    assert sorted(loomwork.__all__) == LOOMWORK_NAMES
    for name in loomwork.__all__:
        assert hasattr(loomwork, name), name
    assert re.fullmatch(r"\d+\.\d+\.\d+", loomwork.__version__)
    assert loomwork.wf is wf


def test_loomwork_reexports_are_the_same_objects() -> None:
    from loomwork import model

    for name in loomwork.__all__:
        value = getattr(loomwork, name)
        if hasattr(errors, name):
            assert value is getattr(errors, name), name
        elif hasattr(model, name):
            assert value is getattr(model, name), name
    assert wf.Decision is loomwork.Decision


def test_wf_public_names() -> None:
    assert sorted(wf.__all__) == WF_NAMES
    for name in wf.__all__:
        assert hasattr(wf, name), name


def test_star_imports_work_outside_a_run() -> None:
    code = "from loomwork import *\nfrom loomwork.wf import *\nfrom loomwork.errors import *\nprint('ok')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize("name", WF_RUN_ATTRIBUTES)
def test_run_attributes_outside_a_run_raise_a_clear_workflow_error(name: str) -> None:
    with pytest.raises(errors.WorkflowError, match=rf"wf\.{name}.*only .* while a run executes"):
        getattr(wf, name)


@pytest.mark.parametrize(
    "call",
    [wf.now, wf.uuid, wf.random, wf.step_key, lambda: wf.log.info("hello"), lambda: wf.respond(200, {})],
    ids=["now", "uuid", "random", "step_key", "log", "respond"],
)
def test_wf_calls_outside_a_run_raise_a_clear_workflow_error(call: object) -> None:
    assert callable(call)
    with pytest.raises(errors.WorkflowError, match="while a run executes"):
        call()


async def test_wf_effects_outside_a_run_raise_a_clear_workflow_error() -> None:
    with pytest.raises(errors.WorkflowError, match=r"wf\.step\(\) can only be called"):
        await wf.step(print)
    with pytest.raises(errors.WorkflowError, match=r"wf\.sleep\(\)"):
        await wf.sleep(1)
    with pytest.raises(errors.WorkflowError, match=r"wf\.queries\(\)"):
        await wf.queries.get_order.run(order_id=1)


def test_unknown_wf_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        wf.nope  # noqa: B018


def test_duration_helpers() -> None:
    assert wf.days(2).total_seconds() == 2 * 86400
    assert wf.hours(1.5).total_seconds() == 5400
    assert wf.minutes(3).total_seconds() == 180
    assert wf.seconds(7).total_seconds() == 7


# -- the error tree -----------------------------------------------------------------------------------------
def error_classes() -> dict[str, type[BaseException]]:
    return {
        name: value
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == errors.__name__
    }


def test_error_names() -> None:
    assert sorted(errors.__all__) == ERROR_NAMES
    assert sorted(error_classes()) == ERROR_NAMES


def test_every_error_derives_from_loomwork_error() -> None:
    for name, cls in error_classes().items():
        assert issubclass(cls, errors.LoomworkError), name
    assert errors.LoomworkError.__bases__ == (Exception,)


def test_the_tree_drawn_in_the_docstring_is_the_class_tree() -> None:
    """Each class's parent in the docstring drawing is its actual base class, and every class is drawn."""
    doc = errors.__doc__ or ""
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in doc.splitlines():
        match = re.match(r"^(\s*(?:[│ ]\s*)*)(?:[├└]── )?([A-Z]\w*Error|[A-Z]\w+)\b", line)
        if match is None or match.group(2) not in ERROR_NAMES:
            continue
        depth = len(match.group(1)) + (4 if "── " in line else 0)
        name = match.group(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[name] = stack[-1][1] if stack else None
        stack.append((depth, name))
    assert sorted(parents) == ERROR_NAMES
    classes = error_classes()
    for name, parent in parents.items():
        (base,) = classes[name].__bases__
        expected = Exception if parent is None else classes[parent]
        assert base is expected, f"{name} derives from {base.__name__}, the docstring says {parent}"


def test_errors_carry_their_context_as_attributes() -> None:
    nondeterminism = errors.NonDeterminismError(4, "step 'a'", "step 'b'")
    assert (nondeterminism.seq, nondeterminism.recorded, nondeterminism.new) == (4, "step 'a'", "step 'b'")
    assert "step 4" in str(nondeterminism)
    assert "step 'a'" in str(nondeterminism)
    assert "step 'b'" in str(nondeterminism)
    timeout = errors.RequestTimeout("r-1", "approve")
    assert (timeout.request_id, timeout.request_name) == ("r-1", "approve")
    step_error = errors.StepError("declined", error_type="ValueError")
    assert (step_error.error_type, str(step_error)) == ("ValueError", "declined")
    child = errors.ChildRunFailed("c-1", "failed", "boom")
    assert (child.run_id, child.status) == ("c-1", "failed")
    assert issubclass(errors.StoreUnavailable, errors.StoreError)
