#!/usr/bin/env python3
"""Peer benchmark: DBOS Transact with an SQLite system database.

Run with the dbos venv's interpreter:

    bench/.venvs/dbos/bin/python bench/peers/dbos_bench.py [--workloads a,b,c,d,e] [--quick]

Every workload runs in a fresh child process with a fresh SQLite system
database in a temporary directory, so memory baselines and database sizes do
not leak from one workload into the next.  The parent prints ONE JSON object
(on the last stdout line) with a key per workload; progress goes to stderr.

Workloads (see README.md for what each number means):
  a   one workflow of 40 sequential trivial steps -> ms per step
  b   1,000 workflows of 3 trivial steps started at once -> completed runs/s
  c   DBOS.send -> workflow blocked in DBOS.recv finishes -> ms
  c_fastpoll  same as c with notification_listener_polling_interval_sec=0.01
      (NOT a default setting; reported separately, only when c is selected)
  d   RSS and threads of 10,000 workflows parked in DBOS.recv; then release all
  e   recovery of 1,000 in-flight workflows after kill -9 of their process
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
APP_VERSION = "peer-bench-1"

# --------------------------------------------------------------------------
# helpers usable without dbos imported


def proc_status() -> dict[str, int]:
    out: dict[str, int] = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "Threads"):
                out[k] = int(v.split()[0])
    return out


def rss_mb() -> float:
    return proc_status()["VmRSS"] / 1024.0


def log(msg: str) -> None:
    print(f"[dbos_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def result(
    workload: str, median_v: float | None, unit: str, samples: list[Any], notes: str, **extra: Any
) -> dict[str, Any]:
    import importlib.metadata as md

    d = {
        "peer": "dbos",
        "version": md.version("dbos"),
        "workload": workload,
        "median": median_v,
        "unit": unit,
        "samples": samples,
        "notes": notes,
    }
    d.update(extra)
    return d


# --------------------------------------------------------------------------
# DBOS side (imported lazily so the orchestrator stays light)

COUNTERS = {"pre_recv": 0, "step1": 0, "step2": 0}
COUNTER_LOCK = threading.Lock()


def _define_workflows():
    from dbos import DBOS

    @DBOS.step()
    def step_inc(x: int) -> int:
        return x + 1

    @DBOS.step()
    def step_inc_counted(x: int) -> int:
        with COUNTER_LOCK:
            COUNTERS["step1"] += 1
        return x + 1

    @DBOS.workflow()
    def wf_seq(n: int) -> int:
        x = 0
        for _ in range(n):
            x = step_inc(x)
        return x

    @DBOS.workflow()
    def wf_three(x: int) -> int:
        x = step_inc(x)
        x = step_inc(x)
        x = step_inc(x)
        return x

    @DBOS.workflow()
    def wf_wait(timeout_s: float) -> int:
        with COUNTER_LOCK:
            COUNTERS["pre_recv"] += 1
        msg = DBOS.recv("go", timeout_seconds=timeout_s)
        if msg is None:
            return -1  # timed out
        return step_inc(int(msg))

    @DBOS.step()
    def step_inc_counted2(x: int) -> int:
        with COUNTER_LOCK:
            COUNTERS["step2"] += 1
        return x + 1

    @DBOS.workflow()
    def wf_recover(x: int, wake_at: float) -> int:
        x = step_inc_counted(x)
        # durable sleep until a common wall-clock time (the wake-up time is checkpointed)
        DBOS.sleep(max(0.1, wake_at - time.time()))
        x = step_inc_counted2(x)
        return x

    return {"wf_seq": wf_seq, "wf_three": wf_three, "wf_wait": wf_wait, "wf_recover": wf_recover}


def _dbos_launch(db_path: str, extra_cfg: dict[str, Any] | None = None):
    from dbos import DBOS, DBOSConfig

    cfg: DBOSConfig = {
        "name": "peer-bench",
        "system_database_url": f"sqlite:///{db_path}",
        "log_level": "WARNING",
        "application_version": APP_VERSION,
    }
    if extra_cfg:
        cfg.update(extra_cfg)  # type: ignore[typeddict-item]
    DBOS(config=cfg)
    wfs = _define_workflows()
    DBOS.launch()
    return DBOS, wfs


def _sys_db():
    from dbos import _dbos as dmod

    return dmod._dbos_global_instance._sys_db  # internal, read-only use


def _pragmas() -> dict[str, Any]:
    """journal_mode / synchronous etc. as seen on a connection of DBOS's own engine."""
    import sqlalchemy as sa

    eng = _sys_db().engine
    out = {}
    with eng.connect() as c:
        for p in (
            "journal_mode",
            "synchronous",
            "busy_timeout",
            "foreign_keys",
            "locking_mode",
            "page_size",
            "cache_size",
        ):
            out[p] = c.execute(sa.text(f"PRAGMA {p}")).scalar()
    out["synchronous_meaning"] = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(out["synchronous"], "?")
    out["isolation_level_on_connect"] = "IMMEDIATE (set by DBOS connect hook)"
    out["pool"] = type(eng.pool).__name__ + f"(size={getattr(eng.pool, 'size', lambda: '?')()})"
    out["sqlite_version"] = sqlite3.sqlite_version
    return out


def _parked() -> int:
    return len(_sys_db().notifications_map._dict)


def _recv_timeouts_recorded(db: str, wfid: str | None = None) -> int:
    """Rows DBOS writes at the END of recv setup (the durable timeout), i.e. waiters that
    have finished registering and checked for an existing message."""
    c = sqlite3.connect(db, timeout=30)
    try:
        q = "SELECT count(*) FROM operation_outputs WHERE function_name = 'DBOS.sleep'" + (
            " AND workflow_uuid = ?" if wfid else ""
        )
        return c.execute(q, (wfid,) if wfid else ()).fetchone()[0]
    finally:
        c.close()


def _wait_recv_registered(db: str, wfid: str, cap: float = 30.0) -> None:
    t0 = time.perf_counter()
    while _parked() < 1:
        if time.perf_counter() - t0 > cap:
            raise RuntimeError("workflow never parked in recv")
        time.sleep(0.001)
    # the in-memory waiter is added before the DB check and the timeout row; wait for the row
    time.sleep(0.02)
    while _recv_timeouts_recorded(db, wfid) < 1:
        if time.perf_counter() - t0 > cap:
            raise RuntimeError("recv setup never finished")
        time.sleep(0.01)
    time.sleep(0.005)


def _prepare_db(db_path: str, journal: str) -> None:
    if journal == "default":
        return
    c = sqlite3.connect(db_path)
    mode = c.execute(f"PRAGMA journal_mode={journal}").fetchone()[0]
    c.close()
    log(f"pre-set journal_mode={mode} on {db_path}")


# ---------------- workloads (each runs in its own child process) ----------


def run_a(p: dict[str, Any]) -> dict[str, Any]:
    _, wfs = _dbos_launch(p["db"])
    n_steps, reps = 40, p["reps_a"]
    wfs["wf_seq"](n_steps)  # warm-up, not counted
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        r = wfs["wf_seq"](n_steps)
        dt = time.perf_counter() - t0
        assert r == n_steps
        samples.append(dt * 1000 / n_steps)
    return result(
        "a_seq_40_steps",
        median(samples),
        "ms/step",
        [round(s, 4) for s in samples],
        f"one workflow of {n_steps} sequential steps called directly in the caller's "
        f"thread; wall time of the whole call / {n_steps}; {reps} runs after 1 warm-up run",
        pragmas=_pragmas(),
    )


def run_b(p: dict[str, Any]) -> dict[str, Any]:
    DBOS, wfs = _dbos_launch(p["db"])
    n, reps = p["n_b"], p["reps_b"]
    samples, start_phase = [], []
    wfs["wf_three"](0)  # warm-up
    for r in range(reps):
        t0 = time.perf_counter()
        handles = [DBOS.start_workflow(wfs["wf_three"], i) for i in range(n)]
        t1 = time.perf_counter()
        for i, h in enumerate(handles):
            assert h.get_result() == i + 3
        dt = time.perf_counter() - t0
        samples.append(n / dt)
        start_phase.append(t1 - t0)
        log(f"b rep {r}: {n} in {dt:.2f}s (start_workflow loop {t1 - t0:.2f}s), threads={threading.active_count()}")
    return result(
        "b_1000_wf_3_steps",
        median(samples),
        "runs/s",
        [round(s, 2) for s in samples],
        f"{n} workflows x 3 steps, DBOS.start_workflow for all (each runs on its own "
        f"executor thread) then get_result for all; runs/s = {n}/wall time; {reps} reps "
        f"in one process against a growing database",
        start_loop_seconds=[round(x, 3) for x in start_phase],
    )


def run_c(p: dict[str, Any]) -> dict[str, Any]:
    extra = {}
    if p.get("fastpoll"):
        extra["notification_listener_polling_interval_sec"] = 0.01
    DBOS, wfs = _dbos_launch(p["db"], extra)
    n = p["n_c"]
    samples, park_waits = [], []
    import random

    rng = random.Random(12345)
    poll = extra.get("notification_listener_polling_interval_sec", 1.0)
    for i in range(n + 1):  # first is a warm-up
        h = DBOS.start_workflow(wfs["wf_wait"], 60.0)
        tp = time.perf_counter()
        _wait_recv_registered(p["db"], h.get_workflow_id())
        park_waits.append(time.perf_counter() - tp)
        # random phase against the notification polling thread (otherwise every sample
        # is taken at the same point of its cycle)
        time.sleep(rng.uniform(0, poll))
        DBOS.send(h.get_workflow_id(), i, "go")
        t0 = time.perf_counter()
        r = h.get_result()
        dt = time.perf_counter() - t0
        assert r == i + 1, r
        if i > 0:
            samples.append(dt * 1000)
        while _parked() > 0:
            time.sleep(0.0005)
    return result(
        "c_send_to_finish" + ("_fastpoll" if p.get("fastpoll") else ""),
        median(samples),
        "ms",
        [round(s, 3) for s in samples],
        f"time from DBOS.send() returning to handle.get_result() returning, for a workflow "
        f"parked in DBOS.recv (confirmed registered as a waiter before send) that then runs "
        f"one step; {n} samples after 1 warm-up; before each send a random pause uniform in "
        f"[0, polling interval) so samples are not phase-locked to the poller. SQLite has no "
        f"LISTEN/NOTIFY, so the waiter is woken by DBOS's notification polling thread, interval {poll}s "
        + ("(NON-DEFAULT, lowered from 1.0s)" if p.get("fastpoll") else "(default)"),
        p95=round(sorted(samples)[int(0.95 * (len(samples) - 1))], 3) if samples else None,
        min=round(min(samples), 3) if samples else None,
        max=round(max(samples), 3) if samples else None,
        notification_listener_polling_interval_sec=poll,
    )


def run_d(p: dict[str, Any]) -> dict[str, Any]:
    import gc

    DBOS, wfs = _dbos_launch(p["db"])
    n, cap = p["n_d"], p["cap_d"]
    # warm-up: one complete wait/send cycle so lazily-initialised machinery is counted in idle
    h = DBOS.start_workflow(wfs["wf_wait"], 30.0)
    while _parked() < 1:
        time.sleep(0.001)
    DBOS.send(h.get_workflow_id(), 0, "go")
    h.get_result()
    gc.collect()
    time.sleep(0.5)
    idle = proc_status()
    idle_threads = threading.active_count()
    log(f"d idle: RSS {idle['VmRSS'] / 1024:.1f} MB, threads {idle['Threads']}")
    t0 = time.perf_counter()
    deadline = t0 + cap
    handles = []
    err = None
    try:
        for i in range(n):
            if time.perf_counter() > deadline:
                break
            handles.append(DBOS.start_workflow(wfs["wf_wait"], 900.0))
            if i % 1000 == 999:
                log(
                    f"d started {i + 1}, parked {_parked()}, threads {threading.active_count()}, "
                    f"RSS {rss_mb():.0f} MB, t={time.perf_counter() - t0:.1f}s"
                )
    except Exception as e:  # e.g. "can't start new thread"
        err = f"{type(e).__name__}: {e}"
        log(f"d start failed after {len(handles)}: {err}")
    t_started = time.perf_counter() - t0
    while _parked() < len(handles) and time.perf_counter() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    while (
        _recv_timeouts_recorded(p["db"]) < len(handles) + 1  # +1: warm-up workflow
        and time.perf_counter() < deadline
    ):
        time.sleep(0.5)
    parked = min(_parked(), _recv_timeouts_recorded(p["db"]) - 1)
    t_parked = time.perf_counter() - t0
    time.sleep(1.0)
    gc.collect()
    st = proc_status()
    threads_py = threading.active_count()
    log(
        f"d parked {parked}/{len(handles)} in {t_parked:.1f}s; RSS {st['VmRSS'] / 1024:.1f} MB, threads {st['Threads']}"
    )
    # release everyone
    t1 = time.perf_counter()
    release_cap = p["release_cap_d"]
    finish_deadline = t1 + release_cap
    sent = 0
    for i, h in enumerate(handles):
        if time.perf_counter() > finish_deadline:
            break
        DBOS.send(h.get_workflow_id(), i, "go")
        sent += 1
    t_sent = time.perf_counter() - t1
    log(f"d sent {sent}/{len(handles)} in {t_sent:.1f}s")
    done = 0
    timed_out = sent < len(handles)
    finish_deadline = time.perf_counter() + p["finish_cap_d"]
    for i, h in enumerate(handles[:sent]):
        # get_result on a local handle blocks on the executor future
        remaining = finish_deadline - time.perf_counter()
        if remaining <= 0:
            timed_out = True
            break
        try:
            r = h.future.result(timeout=remaining)  # type: ignore[attr-defined]
        except Exception:
            timed_out = True
            break
        assert r == i + 1, r
        done += 1
    t_done = time.perf_counter() - t1
    delta = (st["VmRSS"] - idle["VmRSS"]) / 1024.0
    notes = (
        f"{n} workflows started with DBOS.start_workflow, each blocks in DBOS.recv "
        f"(one executor thread per parked workflow); RSS delta = VmRSS after all parked "
        f"(+1 s settle, gc) minus VmRSS at idle after launch and one warm-up cycle; cap "
        f"{cap}s for start+park, {release_cap}s for DBOS.send to each (sequentially from "
        f"the main thread), then {p['finish_cap_d']}s more for the results of those sent"
    )
    if err:
        notes += f"; start error: {err}"
    return result(
        "d_parked_recv_memory",
        round(delta, 2),
        "MB",
        [round(delta, 2)],
        notes,
        target=n,
        started=len(handles),
        parked=parked,
        seconds_to_start=round(t_started, 2),
        seconds_to_park=round(t_parked, 2),
        rss_idle_mb=round(idle["VmRSS"] / 1024, 2),
        rss_parked_mb=round(st["VmRSS"] / 1024, 2),
        kb_per_parked_workflow=round((st["VmRSS"] - idle["VmRSS"]) / max(parked, 1), 2),
        threads_idle_proc=idle["Threads"],
        threads_parked_proc=st["Threads"],
        threads_idle_py=idle_threads,
        threads_parked_py=threads_py,
        released_sent=sent,
        release_send_seconds=round(t_sent, 2),
        release_all_done_seconds=round(t_done, 2),
        released_done=done,
        release_timed_out=timed_out,
        peak_rss_mb=round(proc_status()["VmHWM"] / 1024, 2),
    )


def run_e_child(p: dict[str, Any]) -> None:
    """Phase 1 of e: start N workflows, report progress, wait to be killed."""
    DBOS, wfs = _dbos_launch(p["db"])
    n, sleep_s = p["n_e"], p["sleep_e"]
    t_launched = time.time()
    print(f"LAUNCHED {t_launched:.6f}", flush=True)
    wake_at = t_launched + sleep_s
    for i in range(n):
        DBOS.start_workflow(wfs["wf_recover"], i, wake_at)
    print(f"STARTED {time.time():.6f}", flush=True)
    while True:
        with COUNTER_LOCK:
            k = COUNTERS["step1"]
        print(f"STEP1 {k} {time.time():.6f}", flush=True)
        if k >= n:
            break
        time.sleep(0.02)
    time.sleep(600)  # wait for kill -9


def _count_unfinished(db: str) -> int:
    c = sqlite3.connect(db, timeout=30)
    try:
        return c.execute("SELECT count(*) FROM workflow_status WHERE status IN ('PENDING','ENQUEUED')").fetchone()[0]
    finally:
        c.close()


def _count_wake_deadline(db: str) -> float:
    """Latest durable-sleep wake-up time (epoch s) recorded by DBOS.sleep, if readable."""
    c = sqlite3.connect(db, timeout=30)
    try:
        rows = c.execute("SELECT output FROM operation_outputs WHERE function_name LIKE '%sleep%'").fetchall()
    finally:
        c.close()
    latest = 0.0
    for (out,) in rows:
        try:
            v = json.loads(out)
        except ValueError:
            continue
        if isinstance(v, (int, float)):
            latest = max(latest, float(v))
    return latest


def run_e_recover(p: dict[str, Any]) -> None:
    """Phase 2 of e: a new process on the same system database; DBOS recovers at launch."""
    t_proc = p["t_popen"]
    t_import0 = time.time()
    _dbos_launch(p["db"])
    t_launched = time.time()
    n = p["n_e"]
    cap = p["cap_e"]
    # Wait in memory (no DB reads competing with recovery) until every last step ran here,
    # then poll the DB until no workflow is left PENDING/ENQUEUED.
    while COUNTERS["step2"] < n and time.time() - t_proc < cap:
        time.sleep(0.01)
    t_steps = time.time()
    while True:
        left = _count_unfinished(p["db"])
        if left == 0 or time.time() - t_proc > cap:
            break
        time.sleep(0.02)
    t_done = time.time()
    print(
        json.dumps(
            {
                "left": left,
                "t_import0": t_import0,
                "t_launched": t_launched,
                "t_done": t_done,
                "t_steps": t_steps,
                "step2_here": COUNTERS["step2"],
                "threads": threading.active_count(),
                "rss_mb": rss_mb(),
            }
        ),
        flush=True,
    )
    os._exit(0)


def run_e(p: dict[str, Any]) -> dict[str, Any]:
    """Orchestrates e (runs in the workload child; spawns the two phase processes)."""
    n, cap, sleep_s = p["n_e"], p["cap_e"], p["sleep_e"]
    py = sys.executable
    me = os.path.abspath(__file__)
    t_start = time.time()
    env = dict(os.environ)
    child = subprocess.Popen(
        [py, me, "--_phase", "e_child", "--_params", json.dumps(p)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    k = 0
    reached = False
    assert child.stdout is not None
    t_launched = None
    for line in child.stdout:
        parts = line.split()
        if parts[0] == "LAUNCHED":
            t_launched = float(parts[1])
        if parts[0] == "STEP1":
            k = int(parts[1])
            if k >= n:
                reached = True
                break
        if time.time() - t_start > cap:
            break
    # the counter moves inside the step, just before DBOS checkpoints it: wait (bounded)
    # until every workflow has recorded its durable sleep, i.e. is parked in DBOS.sleep
    parked_at_kill = 0
    while reached and time.time() - t_start < cap:
        parked_at_kill = _recv_timeouts_recorded(p["db"])
        if parked_at_kill >= n:
            break
        time.sleep(0.1)
    t_kill = time.time()
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    unfinished_at_kill = _count_unfinished(p["db"])
    wake = _count_wake_deadline(p["db"])
    log(
        f"e: killed phase-1 process after {k}/{n} first steps; {unfinished_at_kill} unfinished "
        f"in DB; latest durable wake-up {wake - t_kill:+.2f}s from kill"
    )
    # Start the new process only once every durable sleep is due, so the measured time is
    # recovery work, not the remaining intentional sleep.
    if wake > time.time():
        time.sleep(wake - time.time() + 0.1)
    t_popen = time.time()
    q = dict(p)
    q["t_popen"] = t_popen
    rec = subprocess.Popen(
        [py, me, "--_phase", "e_recover", "--_params", json.dumps(q)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        out, _ = rec.communicate(timeout=cap + 30)
    except subprocess.TimeoutExpired:
        rec.kill()
        out, _ = rec.communicate()
    info = json.loads(out.strip().splitlines()[-1])
    total = info["t_done"] - t_popen
    return result(
        "e_recovery_after_kill9",
        round(total, 3),
        "s",
        [round(total, 3)],
        f"{n} workflows (step; DBOS.sleep until launch+{sleep_s}s; step) started in a process that is "
        f"killed with SIGKILL once all first steps are done; a new process on the same SQLite "
        f"file is started after every durable sleep is already due (so no intentional waiting "
        f"is measured); median = seconds from Popen of the new process (before import/launch) "
        f"until no workflow is PENDING/ENQUEUED (checked with a separate sqlite3 connection, "
        f"every 20 ms once all last steps have run in memory)",
        in_flight_at_kill=unfinished_at_kill,
        first_steps_done_at_kill=k,
        parked_in_durable_sleep_at_kill=parked_at_kill,
        reached_all_first_steps=reached,
        unfinished_at_end=info["left"],
        seconds_popen_to_launch_done=round(info["t_launched"] - t_popen, 3),
        seconds_import_to_launch_done=round(info["t_launched"] - info["t_import0"], 3),
        seconds_launch_done_to_all_finished=round(info["t_done"] - info["t_launched"], 3),
        seconds_launch_done_to_last_step=round(info["t_steps"] - info["t_launched"], 3),
        last_steps_run_in_new_process=info["step2_here"],
        seconds_kill_to_restart=round(t_popen - t_kill, 3),
        phase1_start_seconds=round((t_kill - t_launched) if t_launched else -1, 3),
        recovery_process_rss_mb=round(info["rss_mb"], 1),
    )


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


WORKLOADS = {
    "a": run_a,
    "b": run_b,
    "c": run_c,
    "d": run_d,
    "e": run_e,
}


def child_main(phase: str, params: dict[str, Any]) -> None:
    if phase == "e_child":
        run_e_child(params)
        return
    if phase == "e_recover":
        run_e_recover(params)
        return
    fn = WORKLOADS["c" if phase == "c_fastpoll" else phase]
    if phase == "c_fastpoll":
        params = dict(params, fastpoll=True)
    res = fn(params)
    print(json.dumps(res), flush=True)
    sys.stdout.flush()
    os._exit(0)  # don't wait for parked threads / DBOS shutdown


def params_for(quick: bool) -> dict[str, Any]:
    if quick:
        return dict(
            reps_a=3,
            n_b=200,
            reps_b=2,
            n_c=10,
            n_d=500,
            cap_d=60,
            release_cap_d=60,
            finish_cap_d=60,
            n_e=100,
            sleep_e=10.0,
            cap_e=120,
        )
    return dict(
        reps_a=5,
        n_b=1000,
        reps_b=3,
        n_c=50,
        n_d=10000,
        cap_d=120,
        release_cap_d=60,
        finish_cap_d=60,
        n_e=1000,
        sleep_e=60.0,
        cap_e=180,
    )


# hard wall-clock caps per workload child (seconds)
CHILD_CAPS = {"a": 120, "b": 300, "c": 180, "c_fastpoll": 120, "d": 300, "e": 420}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", default="a,b,c,d,e")
    ap.add_argument("--quick", action="store_true", help="small numbers for a smoke run")
    ap.add_argument(
        "--journal",
        default="default",
        help="'default' (what DBOS does: nothing) or a journal_mode such as 'wal' "
        "pre-set on the SQLite file before DBOS launches",
    )
    ap.add_argument("--out", help="also write the JSON to this file")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a workload parameter (see meta.params), e.g. n_b=200",
    )
    ap.add_argument("--no-fastpoll", action="store_true", help="skip the non-default c_fastpoll variant")
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="SECONDS",
        help="before each workload wait up to SECONDS for the machine to be quiet "
        "(other processes using < 10%% of the CPUs over 3 s)",
    )
    ap.add_argument("--_phase", help=argparse.SUPPRESS)
    ap.add_argument("--_params", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args._phase:
        child_main(args._phase, json.loads(args._params))
        return

    import importlib.metadata as md

    selected = [w.strip() for w in args.workloads.split(",") if w.strip()]
    runs = []
    for w in selected:
        if w not in WORKLOADS:
            ap.error(f"unknown workload {w}")
        runs.append(w)
        if w == "c" and not args.no_fastpoll:
            runs.append("c_fastpoll")
    base = params_for(args.quick)
    for kv in args.set:
        k, _, val = kv.partition("=")
        if k not in base:
            ap.error(f"unknown parameter {k}")
        base[k] = type(base[k])(val)
    out: dict[str, Any] = {
        "peer": "dbos",
        "version": md.version("dbos"),
        "meta": {
            "quick": args.quick,
            "journal_option": args.journal,
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "params": base,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "loadavg_start": loadavg(),
        },
    }
    t_all = time.time()
    for w in runs:
        tmp = tempfile.mkdtemp(prefix=f"dbos_bench_{w}_")
        db = os.path.join(tmp, "dbos_sys.sqlite")
        _prepare_db(db, args.journal)
        p = dict(base, db=db)
        log(f"workload {w} (db {db})")
        wait_quiet(args.wait_quiet)
        t0 = time.time()
        busy0, own0 = cpu_busy(), own_children_cpu()
        try:
            cp = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--_phase", w, "--_params", json.dumps(p)],
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
                "peer": "dbos",
                "workload": w,
                "median": None,
                "error": f"workload process exceeded its {CHILD_CAPS[w]}s cap and was killed",
            }
        except Exception as e:
            res = {"peer": "dbos", "workload": w, "median": None, "error": f"{type(e).__name__}: {e}"}
        wall = time.time() - t0
        busy, own = cpu_busy() - busy0, own_children_cpu() - own0
        res["wall_seconds"] = round(wall, 2)
        res["other_processes_cpu_fraction"] = round(max(0.0, busy - own) / (wall * (os.cpu_count() or 1)), 3)
        if "pragmas" in res:
            out["meta"]["sqlite_pragmas_seen_by_dbos"] = res.pop("pragmas")
        out[w] = res
        log(
            f"workload {w}: median={res.get('median')} {res.get('unit', '')} "
            f"({res['wall_seconds']}s) {res.get('error', '')}"
        )
        subprocess.run(["rm", "-rf", tmp])
    out["meta"]["loadavg_end"] = loadavg()
    out["meta"]["total_wall_seconds"] = round(time.time() - t_all, 1)
    text = json.dumps(out)
    if args.out:
        with open(args.out, "w") as f:
            f.write(json.dumps(out, indent=2) + "\n")
    print(text, flush=True)


if __name__ == "__main__":
    main()
