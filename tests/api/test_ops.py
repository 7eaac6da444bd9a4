"""``/healthz`` and ``/metrics``: no authentication, outside ``/api/v1``."""

from __future__ import annotations

import collections
import re

import httpx

from loomwork import __version__
from loomwork.model import RunStatus
from loomwork.store import Store

from .conftest import WORKSPACE, Api

MAIN = """
from loomwork import wf

def double(x):
    return 2 * x

async def execute_workflow(data):
    return await wf.step(double, data["i"])
"""

_SAMPLE = re.compile(
    r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\})?'
    r" (?P<value>[-+]?(?:[0-9.]+(?:e[-+]?[0-9]+)?|Inf|NaN))$"
)
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def root_client(api: Api) -> httpx.AsyncClient:
    """No credentials, no /api/v1 prefix."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url="http://loomwork.test")  # type: ignore[arg-type]


def parse_prometheus(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Strictly parse the text format: comments are HELP/TYPE, every other line ``name{labels} value``."""
    assert text.endswith("\n")
    typed: dict[str, str] = {}
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            parts = line.split(" ", 3)
            assert parts[1] in ("HELP", "TYPE") and len(parts) >= 3, line
            if parts[1] == "TYPE":
                assert parts[3] in ("gauge", "counter", "summary", "histogram", "untyped"), line
                typed[parts[2]] = parts[3]
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name = match["name"]
        assert name in typed or re.sub(r"_(sum|count|bucket)$", "", name) in typed, f"no TYPE for {name}"
        labels = frozenset(_LABEL.findall(match["labels"] or ""))
        key = (name, labels)
        assert key not in samples, f"duplicate sample {line!r}"
        samples[key] = float(match["value"])
    return samples


async def test_healthz_answers_without_credentials(api: Api) -> None:
    async with root_client(api) as client:
        for path in ("/healthz", "/api/v1/healthz"):
            response = await client.get(path)
            assert response.status_code == 200, response.text
            assert response.json() == {"status": "ok", "database": "ok", "version": __version__}


async def test_healthz_is_503_when_the_database_is_unreachable(api: Api, tmp_path: object) -> None:
    real = api.engine.store
    unreachable = Store("sqlite:////nonexistent-loomwork-dir/db.sqlite")
    api.engine.store = unreachable
    try:
        async with root_client(api) as client:
            response = await client.get("/healthz")
    finally:
        api.engine.store = real
        unreachable.close()
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "the database is not reachable"


async def test_metrics_count_runs_by_status_in_prometheus_text(api: Api) -> None:
    engine = api.engine
    await engine.deploy("metered", {"main.py": MAIN}, workspace=WORKSPACE)
    runs = [await engine.start_run("metered", {"i": i}, workspace=WORKSPACE) for i in range(2)]
    for run in runs:
        assert (await engine.wait_for_run(run.id, 30)).status == RunStatus.SUCCEEDED
    api.app.state.context.triggers.webhook_counts = collections.Counter({"accepted": 3, "unauthorized": 1})  # type: ignore[attr-defined]
    assert (await api.client.get("/workspaces/acme/nowhere")).status_code == 404
    async with root_client(api) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = parse_prometheus(response.text)

    def value(name: str, **labels: str) -> float:
        return samples[(name, frozenset(labels.items()))]

    assert value("loomwork_runs", status="succeeded") == 2
    assert value("loomwork_runs", status="failed") == 0
    assert value("loomwork_queue_depth") == 0
    assert value("loomwork_requests_pending") == 0
    assert value("loomwork_info", version=__version__) == 1
    assert value("loomwork_webhook_requests_total", result="accepted") == 3
    assert value("loomwork_step_duration_sample_steps", kind="step") == 2
    for q in ("0.5", "0.9", "0.99"):
        assert 0 <= value("loomwork_step_duration_seconds", kind="step", quantile=q) < 30
    assert value("loomwork_db_write_ops_total") > 0
    assert value("loomwork_http_requests_total", method="GET", status="404") >= 1


async def test_api_docs_are_served_without_a_cdn(api: Api) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url="http://t") as raw:  # type: ignore[arg-type]
        page = await raw.get("/api/docs")
        assert page.status_code == 200
        assert "/api/v1/openapi.json" in page.text
        assert "cdn" not in page.text.lower() and "https://" not in page.text.split("<body>")[-1]
        script = await raw.get("/api/docs/assets/swagger-ui-bundle.js")
        assert script.status_code == 200 and len(script.content) > 100_000
        assert (await raw.get("/api/docs/assets/swagger-ui.css")).status_code == 200
