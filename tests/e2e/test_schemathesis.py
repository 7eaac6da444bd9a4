"""Property-based API testing: schemathesis generates requests from the OpenAPI document; none may get a 5xx.

It runs against a real server process with an admin key, with a fixed seed so a failure reproduces.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from .helpers import WS, check, deploy
from .server import ServerProcess

MAIN_PY = "async def execute_workflow(data):\n    return data\n"


def test_generated_requests_never_get_a_server_error(server: ServerProcess, tmp_path: Path) -> None:
    with server.client() as admin:
        deploy(admin, "echo", MAIN_PY)
        check(admin.post(f"{WS}/workflows/echo/runs", json={"data": {"a": 1}, "wait": 5}), 200)
    executable = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert executable is not None, "schemathesis is a dev dependency"
    result = subprocess.run(
        [
            executable,
            "run",
            f"{server.base_url}/api/v1/openapi.json",
            "--checks",
            "not_a_server_error",
            "--header",
            f"Authorization: Bearer {server.api_key}",
            "--max-examples",
            "15",
            "--seed",
            "20261127",
            "--request-timeout",
            "20",
            "--generation-deterministic",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:] + server.log()
