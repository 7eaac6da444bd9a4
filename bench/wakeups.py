"""What a wake-up costs on this machine: the floor under per-step latency.

A step crosses three wake-ups (worker -> engine, engine loop -> writer thread, writer -> worker), so these
figures bound from below what any design with a separate worker process and a writer thread can reach.

    .venv/bin/python bench/wakeups.py
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import statistics
import tempfile
import threading
import time

N = 3000


def process_round_trip_blocking() -> float:
    a, b = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        a.close()
        while data := b.recv(100):
            b.send(data)
        os._exit(0)
    b.close()
    start = time.perf_counter()
    for _ in range(N):
        a.send(b"x" * 50)
        a.recv(100)
    elapsed = (time.perf_counter() - start) / N
    a.close()
    os.waitpid(pid, 0)
    return elapsed


def thread_round_trip() -> float:
    ping, pong = threading.Event(), threading.Event()

    def echo() -> None:
        for _ in range(N):
            ping.wait()
            ping.clear()
            pong.set()

    thread = threading.Thread(target=echo)
    thread.start()
    start = time.perf_counter()
    for _ in range(N):
        ping.set()
        pong.wait()
        pong.clear()
    elapsed = (time.perf_counter() - start) / N
    thread.join()
    return elapsed


async def executor_hop() -> float:
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    for _ in range(N):
        await loop.run_in_executor(None, int)
    return (time.perf_counter() - start) / N


def sqlite_commit(synchronous: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(f"{tmp}/x.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("CREATE TABLE t (a INTEGER, b TEXT)")
        samples = []
        for i in range(500):
            start = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t VALUES (?, ?)", (i, "x"))
            conn.execute("COMMIT")
            samples.append(time.perf_counter() - start)
        conn.close()
    return statistics.median(samples)


def main() -> None:
    result = {
        "process_round_trip_us": process_round_trip_blocking() * 1e6,
        "thread_round_trip_us": thread_round_trip() * 1e6,
        "asyncio_executor_hop_us": asyncio.run(executor_hop()) * 1e6,
        "sqlite_wal_commit_full_us": sqlite_commit("FULL") * 1e6,
        "sqlite_wal_commit_normal_us": sqlite_commit("NORMAL") * 1e6,
    }
    print(json.dumps({k: round(v, 1) for k, v in result.items()}))


if __name__ == "__main__":
    main()
