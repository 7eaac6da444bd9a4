#!/usr/bin/env python3
"""Webhook benchmark of Loomwork: a real ``loomwork server`` process, the load generator in another process.

    .venv/bin/python bench/webhook_bench.py [--quick] [--synchronous FULL|NORMAL] [--out FILE]

In a fresh data dir (embedded SQLite):
  1. ``loomwork init --json`` for an API key, then ``loomwork server`` on a free loopback port;
  2. over the API: two workflows of three ``wf.step`` calls each (the same work as the n8n peer's three Set
     nodes: x = n+1, +1, +1), deployed, with their webhooks enabled;
  3. a load generator in a separate process (``wrk`` for throughput when installed: ``apt-get install wrk``;
     ``bench/loadgen.py``, httpx, for the sequential latency and as the fallback):
       ingest: POST /api/v1/hooks/{id}?token=... with no wait, at each --ingest-concurrency: accepted
               triggers per second (each a stored run, guarantee §8.1) and latency; then the time until all
               those runs have finished (completed runs per second);
       wait:   POST /api/v1/hooks/{id}?token=...&wait=10 sequentially after a warm-up: p50/p99 of
               trigger -> output of the 3-step run;
  4. SIGTERM to the server.

Progress goes to stderr; the last stdout line is one JSON object, also written to --out
(default bench/results/webhook.json).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
LOADGEN = ROOT / "bench" / "loadgen.py"
WRK_SCRIPT = ROOT / "bench" / "wrk" / "post_json.lua"

THREE_STEPS = """\
from loomwork import wf


def add_one(x):
    return x + 1


async def execute_workflow(data):
    x = await wf.step(add_one, data.get("n", 0))
    x = await wf.step(add_one, x)
    x = await wf.step(add_one, x)
    return {"x": x}
"""


def log(message: str) -> None:
    print(f"[webhook-bench] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children so far (from /proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            continue
    return total


def loadgen(url: str, *, concurrency: int, requests: int, warmup: int, ok_status: str) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            str(LOADGEN),
            "--url",
            url,
            "--body",
            '{"n": 1}',
            "--concurrency",
            str(concurrency),
            "--requests",
            str(requests),
            "--warmup",
            str(warmup),
            "--ok-status",
            ok_status,
            "--duration",
            "120",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def wrk(url: str, *, concurrency: int, seconds: float) -> dict[str, Any]:
    """``wrk`` (C, one thread, keep-alive) for throughput: the Python load generator tops out near 350 req/s."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "--latency", "-s", str(WRK_SCRIPT), url],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["ok"] = result["requests"] - result["non_2xx"] - result["socket_errors"]
    result["per_second"] = round(result["ok"] / result["seconds"], 1)
    result["tool"] = "wrk"
    return result


class Server:
    def __init__(self, data_dir: Path, synchronous: str, workers: int, command: str = "server") -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "LOOMWORK_DATA_DIR": str(data_dir),
            "LOOMWORK_PORT": str(self.port),
            "LOOMWORK_SQLITE_SYNCHRONOUS": synchronous,
            "LOOMWORK_WORKERS": str(workers),
            "LOOMWORK_LOG_LEVEL": "warning",
            "LOOMWORK_CONFIG": str(data_dir / "none.toml"),
        }
        init = subprocess.run(
            [
                sys.executable,
                "-m",
                "loomwork",
                "init",
                "--email",
                "bench@example.com",
                "--password",
                "bench-pass-1",
                "--workspace",
                "bench",
                "--json",
            ],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        self.key = json.loads(init.stdout)["api_key"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "loomwork", command],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise SystemExit("the server did not start within 60 s")

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.base}/api/v1/workspaces/bench", headers={"Authorization": f"Bearer {self.key}"}
        )

    def hook(self, name: str) -> str:
        with self.api() as api:
            api.post("/workflows", json={"name": name, "files": {"main.py": THREE_STEPS}}).raise_for_status()
            api.post(f"/workflows/{name}/deploy").raise_for_status()
            url: str = api.post(f"/workflows/{name}/webhook").json()["url"]
            return url

    def wait_idle(self, timeout: float = 300) -> float:
        """Seconds until no run is queued or running."""
        start = time.monotonic()
        with self.api() as api:
            while time.monotonic() - start < timeout:
                active = api.get("/runs", params={"status": ["queued", "running"], "limit": 1}).json()["items"]
                if not active:
                    return time.monotonic() - start
                time.sleep(0.05)
        raise SystemExit("runs did not finish")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--node",
        choices=["server", "api"],
        default="server",
        help="server: the node also executes the runs it accepts; api: an API-only node (runs stay queued)",
    )
    parser.add_argument("--ingest-concurrency", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "webhook.json")
    parser.add_argument("--tool", choices=["wrk", "loadgen"], default="wrk" if shutil.which("wrk") else "loadgen")
    args = parser.parse_args()
    ingest_requests, wait_requests = (1000, 50) if args.quick else (5000, 200)
    ingest_seconds = 3.0 if args.quick else 10.0

    with tempfile.TemporaryDirectory(prefix="lw-webhook-bench-") as tmp:
        server = Server(Path(tmp), args.synchronous, args.workers, args.node)
        executes = args.node == "server"
        try:
            ingest_url = server.hook("ingest")
            wait_url = server.hook("three") + "&wait=10"
            results: dict[str, Any] = {
                "system": "loomwork",
                "sqlite_synchronous": args.synchronous,
                "workers": args.workers,
                "node": args.node,
                "ingest": [],
            }
            for concurrency in args.ingest_concurrency:
                if executes:
                    server.wait_idle()
                cpu0 = cpu_seconds(server.proc.pid)
                log(f"ingest at concurrency {concurrency} ...")
                if args.tool == "wrk":
                    measured = wrk(ingest_url, concurrency=concurrency, seconds=ingest_seconds)
                else:
                    measured = loadgen(
                        ingest_url, concurrency=concurrency, requests=ingest_requests, warmup=200, ok_status="202"
                    )
                measured["concurrency"] = concurrency
                if executes:
                    drain = server.wait_idle()
                    measured["drain_seconds_after_last_202"] = round(drain, 3)
                    measured["completed_runs_per_second"] = round(measured["ok"] / (measured["seconds"] + drain), 1)
                measured["server_cpu_seconds"] = round(cpu_seconds(server.proc.pid) - cpu0, 2)
                results["ingest"].append(measured)
                log(f"  {measured['per_second']:.0f} accepted/s, p50 {measured['p50_ms']} ms")
            if executes:
                server.wait_idle()
                log("trigger-with-wait, sequential ...")
                waited = loadgen(wait_url, concurrency=1, requests=wait_requests, warmup=20, ok_status="200")
                results["wait"] = waited
                log(f"  p50 {waited['p50_ms']} ms, p99 {waited['p99_ms']} ms")
        finally:
            server.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
