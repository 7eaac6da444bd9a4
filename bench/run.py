"""Run the side-by-side benchmark: Loomwork (fsync on every commit, and its default mode) against DBOS and
Temporal on this machine, in one go, and print a table of medians and ratios.

    bench/peers/setup_venvs.sh          # once: makes bench/.venvs/{dbos,temporal}
    .venv/bin/python bench/run.py [--quick] [--workloads a,b,c,d,e] [--peers dbos,temporal]

Results are written to bench/results/latest.json; docs/performance.md quotes them.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

WORKLOADS = {
    "a": ("per-step overhead, one run of 40 sequential steps", "ms/step", "lower"),
    "b": ("1,000 runs of 3 steps started at once", "runs/s", "higher"),
    "c": ("resolve → run finished", "ms", "lower"),
    "d": ("memory of 10,000 runs parked on requests", "MB above idle", "lower"),
    "e": ("recover 1,000 in-flight runs after kill -9", "s", "lower"),
}


def run_json(command: list[str], timeout: float) -> dict[str, Any]:
    started = time.monotonic()
    print(f"$ {' '.join(command)}", file=sys.stderr, flush=True)
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        return {"error": f"exit code {done.returncode}", "stderr": done.stderr[-2000:]}
    lines = [line for line in done.stdout.strip().splitlines() if line.startswith("{")]
    result: dict[str, Any] = json.loads(lines[-1])
    result["wall_seconds"] = round(time.monotonic() - started, 1)
    return result


def median_of(result: dict[str, Any], workload: str) -> float | None:
    entry = result.get(workload)
    if isinstance(entry, dict) and isinstance(entry.get("median"), int | float):
        return float(entry["median"])
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workloads", default="a,b,c,d,e")
    parser.add_argument("--peers", default="dbos,temporal")
    args = parser.parse_args()
    quick = ["--quick"] if args.quick else []
    results: dict[str, dict[str, Any]] = {}
    python = sys.executable
    for mode in ("FULL", "NORMAL"):
        results[f"loomwork-{mode.lower()}"] = run_json(
            [python, str(HERE / "loomwork_bench.py"), "--synchronous", mode, "--workloads", args.workloads, *quick],
            timeout=1800,
        )
    for peer in [p for p in args.peers.split(",") if p]:
        venv_python = HERE / ".venvs" / peer / "bin" / "python"
        if not venv_python.exists():
            results[peer] = {"error": f"{venv_python} missing: run bench/peers/setup_venvs.sh"}
            continue
        results[peer] = run_json(
            [str(venv_python), str(HERE / "peers" / f"{peer}_bench.py"), "--workloads", args.workloads, *quick],
            timeout=2400,
        )
    report = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {
            "cpus": __import__("os").cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "quick": args.quick,
        "results": results,
    }
    out = HERE / "results" / "latest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(results))


def table(results: dict[str, dict[str, Any]]) -> str:
    systems = list(results)
    header = "| workload | unit | " + " | ".join(systems) + " | Loomwork (fsync) vs best peer |"
    lines = [header, "|" + "---|" * (len(systems) + 3)]
    for key, (title, unit, better) in WORKLOADS.items():
        values = {s: median_of(results[s], key) for s in systems}
        if all(v is None for v in values.values()):
            continue
        cells = [f"{values[s]:.3g}" if values[s] is not None else "-" for s in systems]
        ours = values.get("loomwork-full")
        peers = [v for s, v in values.items() if not s.startswith("loomwork") and v is not None]
        ratio = "-"
        if ours is not None and peers:
            best = min(peers) if better == "lower" else max(peers)
            factor = best / ours if better == "lower" else ours / best
            ratio = f"{factor:.1f}x {'better' if factor >= 1 else 'worse'}"
        lines.append(f"| ({key}) {title} | {unit} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
