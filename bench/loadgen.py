#!/usr/bin/env python3
"""A small, generic HTTP load generator (httpx + asyncio, bounded concurrency).

    python bench/loadgen.py --url URL [--method POST] [--body JSON] [--header 'K: V']...
                            [--concurrency C] [--requests N] [--duration SECONDS] [--warmup W]

C workers share one keep-alive connection pool of C connections and take requests from one counter until N
requests have been sent or the duration cap has passed (requests in flight at the cap are still awaited and
counted).  `--warmup W` first sends W requests with the same concurrency that are not counted.

Prints ONE JSON line on stdout:
    {"requests", "ok", "errors", "seconds", "per_second", "p50_ms", "p99_ms", "status_counts", ...}
`ok` counts responses whose status is in `--ok-status` (default: any 2xx); `errors` counts everything else
(other statuses and transport errors, the latter under `error_counts`).  `per_second` is ok / seconds, where
seconds is the wall time from the first request sent to the last response received.  Latencies (all requests
that got a response, ok or not) are in milliseconds, percentiles by nearest rank.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Spec:
    url: str
    method: str = "POST"
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    concurrency: int = 1
    requests: int = 100
    duration: float = 60.0
    timeout: float = 30.0
    ok_status: frozenset[int] | None = None  # None: any 2xx


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    status_counts: Counter[int] = field(default_factory=Counter)
    error_counts: Counter[str] = field(default_factory=Counter)
    ok: int = 0
    sent: int = 0
    sample_response: str | None = None


def percentile(sorted_xs: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_xs:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(sorted_xs)))
    return sorted_xs[min(rank, len(sorted_xs)) - 1]


def _is_ok(spec: Spec, status: int) -> bool:
    return status in spec.ok_status if spec.ok_status is not None else 200 <= status < 300


async def _drive(client: httpx.AsyncClient, spec: Spec, total: int, cap: float, tally: Tally) -> float:
    """Send `total` requests with `spec.concurrency` workers; returns the wall seconds taken."""
    deadline = time.perf_counter() + cap
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < total and time.perf_counter() < deadline:
            next_index += 1
            tally.sent += 1
            t0 = time.perf_counter()
            try:
                resp = await client.request(spec.method, spec.url, content=spec.body, headers=spec.headers)
            except httpx.HTTPError as exc:
                tally.error_counts[type(exc).__name__] += 1
                continue
            tally.latencies_ms.append((time.perf_counter() - t0) * 1000.0)
            tally.status_counts[resp.status_code] += 1
            if _is_ok(spec, resp.status_code):
                tally.ok += 1
            if tally.sample_response is None or _is_ok(spec, resp.status_code):
                tally.sample_response = resp.text[:500]

    t_start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(max(1, spec.concurrency))))
    return time.perf_counter() - t_start


async def run(spec: Spec, warmup: int = 0) -> dict[str, Any]:
    """Run the load described by `spec` (after `warmup` uncounted requests) and return the result dict."""
    limits = httpx.Limits(max_connections=spec.concurrency, max_keepalive_connections=spec.concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=spec.timeout, trust_env=False) as client:
        if warmup > 0:
            await _drive(client, spec, warmup, spec.duration, Tally())
        tally = Tally()
        seconds = await _drive(client, spec, spec.requests, spec.duration, tally)
    lat = sorted(tally.latencies_ms)
    errors = tally.sent - tally.ok

    def rnd(x: float | None) -> float | None:
        return None if x is None else round(x, 3)

    return {
        "requests": tally.sent,
        "ok": tally.ok,
        "errors": errors,
        "seconds": round(seconds, 4),
        "per_second": round(tally.ok / seconds, 2) if seconds > 0 else None,
        "p50_ms": rnd(percentile(lat, 50)),
        "p99_ms": rnd(percentile(lat, 99)),
        "status_counts": {str(k): v for k, v in sorted(tally.status_counts.items())},
        "p90_ms": rnd(percentile(lat, 90)),
        "mean_ms": rnd(sum(lat) / len(lat)) if lat else None,
        "min_ms": rnd(lat[0]) if lat else None,
        "max_ms": rnd(lat[-1]) if lat else None,
        "error_counts": dict(tally.error_counts),
        "concurrency": spec.concurrency,
        "requests_planned": spec.requests,
        "warmup": warmup,
        "duration_cap_hit": tally.sent < spec.requests,
        "method": spec.method,
        "url": spec.url,
        "sample_response": tally.sample_response,
    }


def parse_args(argv: list[str] | None = None) -> tuple[Spec, int]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--method", default="POST")
    ap.add_argument("--body", default=None, help="JSON text sent as the body (Content-Type: application/json)")
    ap.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--duration", type=float, default=60.0, help="cap in seconds on the measured phase")
    ap.add_argument("--warmup", type=int, default=0, help="uncounted requests sent first")
    ap.add_argument("--timeout", type=float, default=30.0, help="per-request timeout in seconds")
    ap.add_argument("--ok-status", default=None, help="comma-separated statuses that count as ok (default: 2xx)")
    a = ap.parse_args(argv)
    headers: dict[str, str] = {}
    body: bytes | None = None
    if a.body is not None:
        body = json.dumps(json.loads(a.body)).encode()  # validate and normalise
        headers["Content-Type"] = "application/json"
    for h in a.header:
        name, sep, value = h.partition(":")
        if not sep:
            ap.error(f"--header needs 'Name: value', got {h!r}")
        headers[name.strip()] = value.strip()
    ok_status = frozenset(int(s) for s in a.ok_status.split(",")) if a.ok_status else None
    spec = Spec(
        url=a.url,
        method=a.method.upper(),
        body=body,
        headers=headers,
        concurrency=max(1, a.concurrency),
        requests=a.requests,
        duration=a.duration,
        timeout=a.timeout,
        ok_status=ok_status,
    )
    return spec, a.warmup


def main(argv: list[str] | None = None) -> int:
    spec, warmup = parse_args(argv)
    result = asyncio.run(run(spec, warmup))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
