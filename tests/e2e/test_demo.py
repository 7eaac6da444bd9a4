"""``loomwork demo``, the README's first command: it starts, prints a login and a key, and the example works."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .conftest import EXAMPLES
from .server import free_port


def test_demo_starts_prints_the_login_and_runs_the_example(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "LOOMWORK_DATA_DIR": str(tmp_path / "data"),
        "LOOMWORK_CONFIG": str(tmp_path / "none.toml"),
        "LOOMWORK_WORKERS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    out_path = tmp_path / "demo.out"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "loomwork", "demo", "--port", str(port), "--examples", str(EXAMPLES)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while "Stop with Ctrl-C" not in out_path.read_text():
            assert proc.poll() is None, out_path.read_text()
            assert time.monotonic() < deadline, out_path.read_text()
            time.sleep(0.05)
        printed = out_path.read_text()
        assert f"Loomwork is running at http://127.0.0.1:{port}" in printed
        login = re.search(r"log in:\s+(\S+) / (\S+)", printed)
        key = re.search(r"API key:\s+(lwk_\S+)", printed)
        assert login is not None and key is not None, printed
        assert "mail sink:" in printed

        base = f"http://127.0.0.1:{port}/api/v1"
        logged_in = httpx.post(f"{base}/auth/login", json={"email": login[1], "password": login[2]})
        assert logged_in.status_code == 200
        headers = {"Authorization": f"Bearer {key[1]}"}
        answer = httpx.post(
            f"{base}/workspaces/demo/workflows/refund-approval/runs",
            json={"data": {"order_id": 1}, "wait": 20},
            headers=headers,
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["output"] == {"refunded": True, "approved_by": None}
        assert list((tmp_path / "data" / "mail").glob("*.eml")), "the customer's mail reached the sink"
        big = httpx.post(
            f"{base}/workspaces/demo/workflows/refund-approval/runs", json={"data": {"order_id": 2}}, headers=headers
        )
        assert big.status_code == 202
        deadline = time.monotonic() + 20
        while not httpx.get(f"{base}/workspaces/demo/requests", headers=headers).json()["items"]:
            assert time.monotonic() < deadline, "the refund request never reached the admin's inbox"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
