"""A real ``loomwork server`` process on a free port, for end-to-end tests over HTTP.

Started in its own session (process group) so that ``kill_9`` can SIGKILL the server and its worker processes
at once, as a machine losing power would. ``restart`` starts a new server on the same data dir and port.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ADMIN_EMAIL = "admin@e2e.test"
ADMIN_PASSWORD = "e2e-password-123"
WORKSPACE = "shop"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    def __init__(self, tmp_path: Path, *, database_url: str | None = None, env: dict[str, str] | None = None) -> None:
        self.tmp_path = tmp_path
        self.data_dir = tmp_path / "data"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "LOOMWORK_DATA_DIR": str(self.data_dir),
            "LOOMWORK_PORT": str(self.port),
            "LOOMWORK_HOST": "127.0.0.1",
            "LOOMWORK_WORKERS": "2",
            "LOOMWORK_SQLITE_SYNCHRONOUS": "NORMAL",
            "LOOMWORK_LOG_LEVEL": "warning",
            "LOOMWORK_CONFIG": str(tmp_path / "no-loomwork.toml"),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        if database_url:
            self.env["LOOMWORK_DATABASE_URL"] = database_url
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self.starts = 0
        self.api_key = ""

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "loomwork", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"loomwork {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def init(self) -> str:
        out = self.cli("init", "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD, "--workspace", WORKSPACE, "--json")
        info: dict[str, Any] = json.loads(out.stdout)
        self.api_key = str(info["api_key"])
        return self.api_key

    def start(self, timeout: float = 60.0) -> None:
        self.starts += 1
        self._close_log()
        log = self._log = open(self.tmp_path / f"server-{self.starts}.log", "wb")  # noqa: SIM115 - closed later
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "loomwork", "server"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"the server did not become healthy within {timeout} s:\n{self.log()}")

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-4000:] for p in sorted(self.tmp_path.glob("server-*.log")))

    def kill_9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
                raise AssertionError(f"the server ignored SIGTERM for {timeout} s:\n{self.log()}") from None
        return self.proc.returncode

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(AssertionError):
                self.terminate()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # any worker process left behind
        self._close_log()

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        token = self.api_key if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=f"{self.base_url}/api/v1", headers=headers, timeout=30.0, **kwargs)

    def async_client(self, token: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
        token = self.api_key if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=f"{self.base_url}/api/v1", headers=headers, timeout=30.0, **kwargs)
