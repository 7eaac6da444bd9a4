#!/usr/bin/env python3
"""Per-call overhead of a query step over the raw driver call.

    .venv/bin/python bench/query_bench.py [--calls 1000] [--synchronous FULL|NORMAL] [--out FILE]

For each datasource (SQLite file, PostgreSQL at LOOMWORK_BENCH_POSTGRES_URL, a local REST endpoint):
  raw   the driver's own call on an open connection, ``--calls`` times (sqlite3 / psycopg async / httpx),
        median per call;
  step  one run of a workflow that calls the saved query ``--calls`` times in sequence, on an engine with an
        embedded SQLite store: (run wall time) / calls, and the median of the journaled steps' durations;
  overhead = step per call - raw median.
The engine runs in this process (and its worker process); the REST endpoint is uvicorn in another process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

from loomwork.engine import Engine, EngineConfig
from loomwork.model import RunStatus
from loomwork.server.runner import wire_engine
from loomwork.service.accounts import Accounts
from loomwork.service.datasources import Datasources

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get("LOOMWORK_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

MAIN_PY = """from loomwork import wf


async def execute_workflow(data):
    for _ in range(data["calls"]):
        await wf.queries.q.run()
    return data["calls"]
"""


def log(message: str) -> None:
    print(f"[query-bench] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


REST_APP = """
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def ping(request):
    return JSONResponse({"ok": 1})


uvicorn.run(Starlette(routes=[Route("/ping", ping)]), host="127.0.0.1", port=PORT, log_level="warning")
"""


def rest_server() -> tuple[str, subprocess.Popen[bytes]]:
    """A local REST endpoint in a process of its own (in this process it would compete for the GIL)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", REST_APP.replace("PORT", str(port))])
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base}/ping", timeout=1)
            return base, proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the REST endpoint did not start")


async def raw_sqlite(path: Path, calls: int) -> list[float]:
    conn = sqlite3.connect(path, check_same_thread=False)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        await asyncio.to_thread(lambda: conn.execute("SELECT 1").fetchall())
        times.append(time.perf_counter() - start)
    conn.close()
    return times


async def raw_postgres(calls: int) -> list[float]:
    times = []
    async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as conn:
        for _ in range(calls):
            start = time.perf_counter()
            await (await conn.execute("SELECT 1")).fetchall()
            times.append(time.perf_counter() - start)
    return times


async def raw_rest(base: str, calls: int) -> list[float]:
    times = []
    async with httpx.AsyncClient(base_url=base) as client:
        for _ in range(calls):
            start = time.perf_counter()
            (await client.get("/ping")).json()
            times.append(time.perf_counter() - start)
    return times


async def through_steps(
    engine: Engine, access: Any, name: str, kind: str, config: dict[str, Any], query_file: tuple[str, str], calls: int
) -> dict[str, float]:
    await Datasources(engine).create(access, name, kind, config, {})
    path, text = query_file
    files = {"main.py": MAIN_PY, path: text}
    version = await engine.deploy(f"bench-{name}", files, workspace="bench")
    await engine.start_run(f"bench-{name}", {"calls": 20}, workspace="bench", version=version)  # warm-up
    await asyncio.sleep(0)
    start = time.perf_counter()
    run = await engine.start_run(f"bench-{name}", {"calls": calls}, workspace="bench", version=version)
    done = await engine.wait_for_run(run.id, timeout=600)
    wall = time.perf_counter() - start
    assert done.status == RunStatus.SUCCEEDED, done.error
    steps = [s for s in await engine.list_steps(run.id) if s.started_at and s.finished_at]
    durations = [(s.finished_at - s.started_at).total_seconds() for s in steps]  # type: ignore[operator]
    return {"per_call_ms": wall / calls * 1000, "journaled_step_median_ms": statistics.median(durations) * 1000}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "query.json")
    args = parser.parse_args()
    base, server = rest_server()
    results: dict[str, Any] = {"calls": args.calls, "sqlite_synchronous": args.synchronous, "kinds": {}}
    with tempfile.TemporaryDirectory(prefix="lw-query-bench-") as tmp:
        data = Path(tmp)
        target = data / "target.db"
        sqlite3.connect(target).close()
        config = EngineConfig(data_dir=data / "lw", workers=1, sqlite_synchronous=args.synchronous, secret_key=b"bench")
        engine = wire_engine(Engine(config))
        async with engine:
            accounts = Accounts(engine)
            created = await accounts.bootstrap("bench@example.com", "bench-pass-1", "bench")
            access = await accounts.access(await accounts.authenticate(created.secret), "bench")
            cases = [
                ("sqlite", "sqlite", {"path": str(target)}, ("queries/q.sql", "-- datasource: sqlite\nSELECT 1\n")),
                (
                    "postgres",
                    "postgres",
                    {"host": "127.0.0.1", "port": 5432, "database": "test", "user": "postgres"},
                    ("queries/q.sql", "-- datasource: postgres\nSELECT 1\n"),
                ),
                (
                    "rest",
                    "rest",
                    {"base_url": base},
                    ("queries/q.toml", 'datasource = "rest"\nmethod = "GET"\npath = "/ping"\n'),
                ),
            ]
            raw = {
                "sqlite": lambda: raw_sqlite(target, args.calls),
                "postgres": lambda: raw_postgres(args.calls),
                "rest": lambda: raw_rest(base, args.calls),
            }
            for name, kind, ds_config, query_file in cases:
                log(f"{name}: raw driver ...")
                raw_ms = statistics.median(await raw[name]()) * 1000
                log(f"{name}: through query steps ...")
                step = await through_steps(engine, access, name, kind, ds_config, query_file, args.calls)
                entry = {
                    "raw_median_ms": round(raw_ms, 4),
                    "step_per_call_ms": round(step["per_call_ms"], 4),
                    "journaled_step_median_ms": round(step["journaled_step_median_ms"], 4),
                    "overhead_ms": round(step["per_call_ms"] - raw_ms, 4),
                }
                results["kinds"][name] = entry
                log(f"  {entry}")
    server.terminate()
    server.wait(10)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
