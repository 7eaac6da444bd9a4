"""``/metrics`` in the Prometheus text format 0.0.4, written by hand (a few gauges and counters).

What each family means:

- ``loomwork_runs{status}``, ``loomwork_queue_depth``, ``loomwork_requests_pending``,
  ``loomwork_schedules_enabled``: gauges read from the database at scrape time, over all workspaces (so every
  node reports the same values; aggregate with ``max``, not ``sum``).
- ``loomwork_step_duration_seconds{kind,quantile}``: a *gauge* holding quantiles (0.5, 0.9, 0.99) of the
  durations (``finished_at - started_at``) of the finished steps of runs created in the last 15 minutes, at most
  the 10,000 newest; ``loomwork_step_duration_sample_steps{kind}`` says how many steps that was. It is a recent
  window recomputed at each scrape, not a cumulative histogram, so ``rate()`` does not apply. For ``request``
  and ``sleep`` steps the duration is the wait (for a person, for a timer).
- ``loomwork_webhook_requests_total{result}``, ``loomwork_db_write_*_total``, ``loomwork_node_active_runs``:
  this process only, since it started.
- ``loomwork_info{version}``: always 1.
"""

from __future__ import annotations

import collections
import math
from collections import defaultdict
from collections.abc import Mapping
from datetime import timedelta

from .. import __version__
from ..engine import Engine
from ..model import RunStatus
from ..store import stats, utcnow

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STEP_WINDOW = timedelta(minutes=15)
STEP_SAMPLE = 10_000
QUANTILES = (0.5, 0.9, 0.99)

Labels = Mapping[str, str]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(float(value))


class _Text:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: list[tuple[Labels, float]]) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.sample(name, labels, value)

    def sample(self, name: str, labels: Labels, value: float) -> None:
        if labels:
            rendered = ",".join(f'{key}="{_escape(str(val))}"' for key, val in labels.items())
            self.lines.append(f"{name}{{{rendered}}} {_number(value)}")
        else:
            self.lines.append(f"{name} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def quantile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank quantile of a sorted, non-empty list."""
    rank = max(math.ceil(q * len(sorted_values)), 1)
    return sorted_values[rank - 1]


class Metrics:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        #: (method, status) -> count of HTTP answers, filled by the edge middleware (``limits.BodySizeLimit``).
        self.http_requests: collections.Counter[tuple[str, int]] = collections.Counter()

    async def render(self, *, webhook_counts: Mapping[str, int] | None = None) -> str:
        snap = await self.engine.db.read(stats.snapshot, utcnow() - STEP_WINDOW, STEP_SAMPLE)
        out = _Text()
        out.family("loomwork_info", "gauge", "Loomwork version.", [({"version": __version__}, 1)])
        statuses = [s.value for s in RunStatus] + sorted(set(snap.runs_by_status) - {s.value for s in RunStatus})
        out.family(
            "loomwork_runs",
            "gauge",
            "Runs by status, all workspaces.",
            [({"status": s}, snap.runs_by_status.get(s, 0)) for s in statuses],
        )
        out.family(
            "loomwork_queue_depth",
            "gauge",
            "Queued runs waiting for a worker, all workspaces.",
            [({}, snap.runs_by_status.get(RunStatus.QUEUED.value, 0))],
        )
        out.family(
            "loomwork_requests_pending", "gauge", "Pending requests, all workspaces.", [({}, snap.requests_pending)]
        )
        out.family("loomwork_schedules_enabled", "gauge", "Enabled cron schedules.", [({}, snap.schedules_enabled)])
        self._step_durations(out, snap.step_durations)
        out.family(
            "loomwork_webhook_requests_total",
            "counter",
            "Webhook requests by result, this process since it started.",
            [({"result": str(result)}, count) for result, count in sorted((webhook_counts or {}).items())],
        )
        out.family(
            "loomwork_http_requests_total",
            "counter",
            "HTTP answers by method and status, this process since it started.",
            [({"method": m, "status": str(c)}, n) for (m, c), n in sorted(self.http_requests.items())],
        )
        out.family(
            "loomwork_node_active_runs",
            "gauge",
            "Runs this process is executing now.",
            [({}, self.engine.dispatcher.active_count if self.engine.config.execute else 0)],
        )
        out.family(
            "loomwork_db_write_batches_total",
            "counter",
            "Write transactions (group commits) of this process.",
            [({}, self.engine.db.batches)],
        )
        out.family(
            "loomwork_db_write_ops_total",
            "counter",
            "Write operations of this process (several share one transaction).",
            [({}, self.engine.db.ops)],
        )
        return out.text()

    @staticmethod
    def _step_durations(out: _Text, durations: list[tuple[str, float]]) -> None:
        by_kind: dict[str, list[float]] = defaultdict(list)
        for kind, seconds in durations:
            by_kind[kind].append(seconds)
        window = int(STEP_WINDOW.total_seconds())
        samples: list[tuple[Labels, float]] = []
        for kind in sorted(by_kind):
            values = sorted(by_kind[kind])
            samples += [({"kind": kind, "quantile": str(q)}, quantile(values, q)) for q in QUANTILES]
        out.family(
            "loomwork_step_duration_seconds",
            "gauge",
            f"Quantiles of the durations of finished steps of runs created in the last {window} s "
            f"(at most {STEP_SAMPLE} steps); a recent window, not cumulative.",
            samples,
        )
        out.family(
            "loomwork_step_duration_sample_steps",
            "gauge",
            "How many steps loomwork_step_duration_seconds was computed from.",
            [({"kind": kind}, len(by_kind[kind])) for kind in sorted(by_kind)],
        )
