#!/usr/bin/env python3
"""Peer benchmark for webhooks: n8n (regular mode, SQLite), loopback only.

    bash bench/peers/setup_n8n.sh                                  # once: bench/.venvs/n8n
    .venv/bin/python bench/peers/n8n_bench.py [--quick] [--out FILE]

What it does, in a fresh temp dir used as N8N_USER_FOLDER (so a fresh SQLite database):
  1. `n8n import:workflow --separate --input=bench/peers/n8n` and `n8n publish:workflow --id=...` for both
     workflows (CLI, before the server starts: the server reads published workflows at start-up);
  2. `n8n start` on free loopback ports, waits (with a deadline) for /healthz/readiness and then for both
     production webhooks to answer something other than 404;
  3. runs bench/loadgen.py in a separate process against
       ingest: POST /webhook/bench-ingest  (Webhook "Respond: Immediately", 202, then 3 Set nodes run)
               at each --ingest-concurrency: accepted requests/s and latency; then the time until every
               execution it started has finished in the database (completed runs/s);
       wait:   POST /webhook/bench-wait    (Webhook "Respond: When Last Node Finishes" after 3 Set nodes)
               sequentially (concurrency 1) after a warm-up: p50/p99 latency of trigger -> output;
  4. stops the server (SIGTERM to its process group, SIGKILL after a grace period).

Progress goes to stderr; the last stdout line is one JSON object, also written to --out
(default bench/peers/last_results/n8n.json).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

SCRIPT = os.path.abspath(__file__)
HERE = os.path.dirname(SCRIPT)
BENCH = os.path.dirname(HERE)
WORKFLOW_DIR = os.path.join(HERE, "n8n")
LOADGEN = os.path.join(BENCH, "loadgen.py")
DEFAULT_N8N_DIR = os.path.join(BENCH, ".venvs", "n8n")
DEFAULT_OUT = os.path.join(HERE, "last_results", "n8n.json")
INGEST_ID = "LwBenchIngest001"
WAIT_ID = "LwBenchWait00001"
INGEST_PATH = "bench-ingest"
WAIT_PATH = "bench-wait"
BODY = '{"n": 1}'
EXPECTED_WAIT_OUTPUT = {"x": 4}


def log(msg: str) -> None:
    print(f"[n8n_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _set_pdeathsig() -> None:
    # If the benchmark dies, the kernel kills the n8n main process too.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def proc_tree(pid: int) -> list[int]:
    out = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            for c in f.read().split():
                out.extend(proc_tree(int(c)))
    except OSError:
        pass
    return out


def tree_usage(pid: int) -> dict[str, float]:
    """RSS (MB) and CPU seconds (user + system) of a process and its descendants."""
    rss_kb = 0
    ticks = 0
    for p in proc_tree(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss_kb += int(line.split()[1])
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return {"rss_mb": round(rss_kb / 1024, 1), "cpu_seconds": ticks / os.sysconf("SC_CLK_TCK")}


def children_cpu() -> float:
    """CPU seconds of this process's waited-for children (the loadgen and CLI processes)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def cpu_busy() -> float:
    """Machine-wide busy CPU seconds (all processes), from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return (sum(vals[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_quiet(max_wait: float, own_pid: int | None) -> None:
    """Wait (bounded) until processes other than ours (this one, n8n) use < 10% of the machine."""
    if max_wait <= 0:
        return
    t_end = time.time() + max_wait
    ncpu = os.cpu_count() or 1
    while True:
        b0, o0 = cpu_busy(), (tree_usage(own_pid)["cpu_seconds"] if own_pid else 0.0)
        time.sleep(3.0)
        own = (tree_usage(own_pid)["cpu_seconds"] if own_pid else 0.0) - o0
        frac = max(0.0, cpu_busy() - b0 - own) / (3.0 * ncpu)
        if frac < 0.10 or time.time() > t_end:
            log(f"other processes' CPU fraction {frac:.2f}" + ("" if frac < 0.10 else " (gave up waiting for quiet)"))
            return


@contextlib.contextmanager
def cpu_accounting(n8n_pid: int | None) -> Iterator[dict[str, float]]:
    """Fills the yielded dict on exit: wall seconds, CPU seconds of n8n and of the loadgen, and the share of the
    machine's CPU used by every other process meanwhile (a noise indicator: 0 = we had the machine alone)."""
    out: dict[str, float] = {}
    t0, b0, c0 = time.perf_counter(), cpu_busy(), children_cpu()
    n0 = tree_usage(n8n_pid)["cpu_seconds"] if n8n_pid else 0.0
    try:
        yield out
    finally:
        wall = time.perf_counter() - t0
        n8n_cpu = (tree_usage(n8n_pid)["cpu_seconds"] if n8n_pid else 0.0) - n0
        loadgen_cpu = children_cpu() - c0
        other = max(0.0, cpu_busy() - b0 - n8n_cpu - loadgen_cpu)
        out.update(
            {
                "wall_seconds": round(wall, 2),
                "n8n_cpu_seconds": round(n8n_cpu, 2),
                "loadgen_cpu_seconds": round(loadgen_cpu, 2),
                "other_processes_cpu_fraction": round(other / (wall * (os.cpu_count() or 1)), 3) if wall > 0 else 0,
            }
        )


class N8n:
    """One n8n instance: CLI commands and the `n8n start` server, all on one fresh user folder."""

    def __init__(self, n8n_dir: str, user_folder: str) -> None:
        self.n8n_dir = os.path.abspath(n8n_dir)
        self.bin = os.path.join(self.n8n_dir, "node_modules", "n8n", "bin", "n8n")
        if not os.path.isfile(self.bin):
            raise SystemExit(f"n8n not found at {self.bin}; run: bash bench/peers/setup_n8n.sh")
        self.user_folder = user_folder
        self.port = free_port()
        self.broker_port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = os.path.join(user_folder, "server.log")
        self.env = {
            **os.environ,
            "N8N_USER_FOLDER": user_folder,
            "N8N_PORT": str(self.port),
            "N8N_LISTEN_ADDRESS": "127.0.0.1",
            "N8N_HOST": "127.0.0.1",
            "N8N_PROTOCOL": "http",
            "N8N_RUNNERS_BROKER_PORT": str(self.broker_port),
            "N8N_RUNNERS_BROKER_LISTEN_ADDRESS": "127.0.0.1",
            "N8N_ENCRYPTION_KEY": "loomwork-bench-not-a-secret",
            "DB_TYPE": "sqlite",
            "EXECUTIONS_MODE": "regular",
            "N8N_DIAGNOSTICS_ENABLED": "false",
            "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
            "N8N_PERSONALIZATION_ENABLED": "false",
            "N8N_TEMPLATES_ENABLED": "false",
            "N8N_HIRING_BANNER_ENABLED": "false",
            "N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS": "true",
            "N8N_LOG_LEVEL": "info",
            "GENERIC_TIMEZONE": "UTC",
            "NODE_ENV": "production",
        }

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def node(self) -> str:
        return os.environ.get("N8N_NODE", "node")

    def cli(self, *args: str, timeout: float = 180.0) -> str:
        cmd = [self.node(), self.bin, *args]
        log("$ n8n " + " ".join(args))
        r = subprocess.run(cmd, env=self.env, cwd=self.user_folder, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"n8n {' '.join(args)} failed ({r.returncode}):\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
        return r.stdout

    def start(self, deadline_s: float) -> float:
        """Start `n8n start`; returns seconds until both webhooks answered (not 404)."""
        t0 = time.perf_counter()
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen(
                [self.node(), self.bin, "start"],
                env=self.env,
                cwd=self.user_folder,
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_set_pdeathsig,
            )
        deadline = t0 + deadline_s
        self._wait_until(lambda: self._status("GET", "/healthz/readiness") == 200, deadline, "readiness")
        for path in (INGEST_PATH, WAIT_PATH):
            # Published workflows are activated after readiness; until then their webhook answers 404.
            def registered(path: str = path) -> bool:
                return self._status("POST", f"/webhook/{path}", BODY) not in (None, 404)

            self._wait_until(registered, deadline, f"webhook {path}")
        return time.perf_counter() - t0

    def _wait_until(self, pred: Callable[[], bool], deadline: float, what: str) -> None:
        while time.perf_counter() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"n8n exited with {self.proc.returncode} waiting for {what}:\n{self.log_tail()}")
            if pred():
                return
            time.sleep(0.2)
        raise TimeoutError(f"n8n not ready ({what}) by the deadline:\n{self.log_tail()}")

    def _status(self, method: str, path: str, body: str | None = None) -> int | None:
        req = urllib.request.Request(self.base + path, method=method, data=body.encode() if body else None)
        if body:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                status: int = resp.status
                return status
        except urllib.error.HTTPError as e:
            return e.code
        except (OSError, urllib.error.URLError):
            return None

    def log_tail(self, n: int = 4000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self, grace: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            log("n8n did not stop in time; SIGKILL")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # also whatever is left of the group (task runner)
        self.proc.wait(timeout=10)

    def finished_executions(self, workflow_id: str) -> int:
        """Executions of the workflow with a stoppedAt (soft-deleted ones included), read from the SQLite file."""
        db = os.path.join(self.user_folder, ".n8n", "database.sqlite")
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            row = con.execute(
                "SELECT count(*) FROM execution_entity WHERE workflowId = ? AND stoppedAt IS NOT NULL", (workflow_id,)
            ).fetchone()
            return int(row[0])
        finally:
            con.close()

    def wait_finished(self, workflow_id: str, target: int, cap_s: float) -> tuple[int, float]:
        t0 = time.perf_counter()
        n = self.finished_executions(workflow_id)
        while n < target and time.perf_counter() - t0 < cap_s:
            time.sleep(0.05)
            n = self.finished_executions(workflow_id)
        return n, time.perf_counter() - t0


def loadgen(python: str, url: str, concurrency: int, requests: int, warmup: int, duration: float) -> dict[str, Any]:
    cmd = [
        python,
        LOADGEN,
        "--url",
        url,
        "--body",
        BODY,
        "--concurrency",
        str(concurrency),
        "--requests",
        str(requests),
        "--warmup",
        str(warmup),
        "--duration",
        str(duration),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=duration * 2 + 120)
    if r.returncode != 0:
        raise RuntimeError(f"loadgen failed ({r.returncode}): {r.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    return result


def run_ingest(n8n: N8n, args: argparse.Namespace, concurrency: int) -> dict[str, Any]:
    url = f"{n8n.base}/webhook/{INGEST_PATH}"
    # Warm-up in its own loadgen run, then let its executions finish so they don't overlap the measurement.
    n_start = n8n.finished_executions(INGEST_ID)
    warm = loadgen(args.loadgen_python, url, concurrency, args.ingest_warmup, 0, args.duration)
    n8n.wait_finished(INGEST_ID, n_start + warm["ok"], args.drain_cap)
    time.sleep(0.5)  # let stragglers (e.g. the readiness probe's execution) land before the baseline
    n_before = n8n.finished_executions(INGEST_ID)
    wait_quiet(args.wait_quiet, n8n.pid)
    with cpu_accounting(n8n.pid) as cpu:
        t0 = time.perf_counter()
        res = loadgen(args.loadgen_python, url, concurrency, args.ingest_requests, 0, args.duration)
        t_loadgen = time.perf_counter() - t0
    n_after, drain = n8n.wait_finished(INGEST_ID, n_before + res["ok"], args.drain_cap)
    completed = n_after - n_before
    total_s = t_loadgen + drain
    res.update(
        {
            "executions_finished": completed,
            "drain_seconds_after_load": round(drain, 3),
            "completed_per_second": round(completed / total_s, 2) if total_s > 0 else None,
            "completed_per_second_note": "finished executions / (loadgen process wall time + drain after it)",
            "n8n_rss_mb_after_load": tree_usage(n8n.pid)["rss_mb"] if n8n.pid else None,
            **cpu,
            "n8n_cpu_ms_per_request": round(cpu["n8n_cpu_seconds"] * 1000 / res["ok"], 2) if res["ok"] else None,
        }
    )
    res.pop("sample_response", None)
    log(
        f"ingest c={concurrency}: {res['per_second']} accepted/s, p50 {res['p50_ms']} ms, p99 {res['p99_ms']} ms, "
        f"{completed} finished, drain {drain:.2f}s, completed {res['completed_per_second']}/s"
    )
    return res


def run_wait(n8n: N8n, args: argparse.Namespace) -> dict[str, Any]:
    url = f"{n8n.base}/webhook/{WAIT_PATH}"
    wait_quiet(args.wait_quiet, n8n.pid)
    with cpu_accounting(n8n.pid) as cpu:
        res = loadgen(args.loadgen_python, url, 1, args.wait_requests, args.wait_warmup, args.duration)
    res.update(cpu)
    sent = res["requests"] + res["warmup"]  # the accounting window includes the warm-up requests
    res["n8n_cpu_ms_per_request"] = round(cpu["n8n_cpu_seconds"] * 1000 / sent, 2) if sent else None
    sample = res.get("sample_response")
    try:
        res["output_ok"] = json.loads(sample or "null") == EXPECTED_WAIT_OUTPUT
    except ValueError:
        res["output_ok"] = False
    log(f"wait c=1: p50 {res['p50_ms']} ms, p99 {res['p99_ms']} ms, output {sample!r}")
    return res


def versions(n8n_dir: str) -> dict[str, str]:
    out: dict[str, str] = {}
    with (
        contextlib.suppress(OSError, ValueError),
        open(os.path.join(n8n_dir, "node_modules", "n8n", "package.json")) as f,
    ):
        out["n8n"] = json.load(f)["version"]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        node = os.environ.get("N8N_NODE", "node")
        out["node"] = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    out["python_loadgen"] = sys.version.split()[0]
    return out


@contextlib.contextmanager
def temp_user_folder(keep: bool) -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="n8n-bench-")
    try:
        yield d
    finally:
        if keep:
            log(f"kept {d}")
        else:
            subprocess.run(["rm", "-rf", d], check=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n8n-dir", default=DEFAULT_N8N_DIR, help="npm prefix holding node_modules/n8n")
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--quick", action="store_true", help="small numbers, a smoke run")
    ap.add_argument("--ingest-concurrency", default="32,64", help="comma-separated concurrency levels")
    ap.add_argument("--ingest-requests", type=int, default=3000)
    ap.add_argument("--ingest-warmup", type=int, default=200)
    ap.add_argument("--wait-requests", type=int, default=200)
    ap.add_argument("--wait-warmup", type=int, default=20)
    ap.add_argument("--duration", type=float, default=120.0, help="cap in seconds on each loadgen phase")
    ap.add_argument("--drain-cap", type=float, default=120.0, help="cap in seconds on waiting for executions")
    ap.add_argument("--start-deadline", type=float, default=180.0)
    ap.add_argument("--loadgen-python", default=sys.executable, help="interpreter with httpx for bench/loadgen.py")
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        help="before each phase, wait up to this long for the "
        "machine to be otherwise idle (< 10%% CPU used by other processes)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the n8n user folder (database, server log)")
    args = ap.parse_args(argv)
    if args.quick:
        args.ingest_requests = min(args.ingest_requests, 500)
        args.ingest_warmup = min(args.ingest_warmup, 50)
        args.wait_requests = min(args.wait_requests, 50)
        args.wait_warmup = min(args.wait_warmup, 5)
    levels = [int(c) for c in args.ingest_concurrency.split(",") if c.strip()]

    result: dict[str, Any] = {"peer": "n8n", "version": None, "meta": {}}
    with temp_user_folder(args.keep) as folder:
        n8n = N8n(args.n8n_dir, folder)
        vers = versions(n8n.n8n_dir)
        result["version"] = vers.get("n8n")
        try:
            t0 = time.perf_counter()
            n8n.cli("import:workflow", "--separate", f"--input={WORKFLOW_DIR}")
            for wid in (INGEST_ID, WAIT_ID):
                n8n.cli("publish:workflow", f"--id={wid}")
            setup_s = time.perf_counter() - t0
            ready_s = n8n.start(args.start_deadline)
            log(f"n8n ready on {n8n.base} ({ready_s:.1f}s to webhooks registered)")
            idle = tree_usage(n8n.pid) if n8n.pid else {}
            load0 = os.getloadavg()
            result["ingest"] = {str(c): run_ingest(n8n, args, c) for c in levels}
            result["wait"] = run_wait(n8n, args)
            load1 = os.getloadavg()
        finally:
            n8n.stop()
        result["meta"] = {
            "versions": vers,
            "mode": "regular (single main process; executions run in it), SQLite in a fresh user folder",
            "params": {k: v for k, v in vars(args).items() if k not in ("out", "n8n_dir", "keep")},
            "import_and_publish_seconds": round(setup_s, 2),
            "start_to_webhooks_ready_seconds": round(ready_s, 2),
            "n8n_idle_rss_mb": idle.get("rss_mb"),
            "loadavg_before": [round(x, 2) for x in load0],
            "loadavg_after": [round(x, 2) for x in load1],
            "cpus": os.cpu_count(),
            "endpoints": {
                "ingest": f"POST /webhook/{INGEST_PATH} (Respond: Immediately, 202; then 3 Set nodes)",
                "wait": f"POST /webhook/{WAIT_PATH} (Respond: When Last Node Finishes; 3 Set nodes; output {{x: 4}})",
            },
        }
    line = json.dumps(result)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
