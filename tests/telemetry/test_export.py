"""OpenTelemetry export: with APPLICATIONINSIGHTS_CONNECTION_STRING the sync's log
records (with their correlation id) and custom metrics reach the ingestion endpoint;
without it nothing is configured, imported or sent."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.servers import running_server

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import logging, sys
import function_app  # configures telemetry on import, as the Functions worker does
from sync_core import telemetry
summary = {"counts": {"to_marketo": 3, "to_dynamics": 2, "collisions": 1, "rejected": 4},
           "apiCalls": {"marketo": 7, "dynamics": 5}, "outcome": "failed",
           "durationSeconds": 1.5}
telemetry.record_cycle(summary, {"dynamics-lead": 42.0}, 0.25)
with telemetry.correlation("cycle", "corr-0001"):
    logging.getLogger("sync_core").warning("cycle finished")
print("exporting" if telemetry.exporting() else "off",
      "azure.monitor.opentelemetry" in sys.modules)
"""


def ingestion_app(received: list[dict]) -> Starlette:
    async def track(request: Request) -> JSONResponse:
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        items = json.loads(body)
        received.extend(items)
        return JSONResponse({"itemsReceived": len(items), "itemsAccepted": len(items),
                             "errors": []})  # fmt: skip

    # The exporter posts to <IngestionEndpoint>/v2.1/track (a trailing slash doubles it).
    return Starlette(routes=[Route("/{prefix:path}v2.1/track", track, methods=["POST"])])


def run_app(extra_env: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLICATIONINSIGHTS_")}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env={**env, **extra_env},
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_metrics_and_logs_reach_application_insights():
    received: list[dict] = []
    with running_server(ingestion_app(received)) as url:
        out = run_app({
            "APPLICATIONINSIGHTS_CONNECTION_STRING":
                f"InstrumentationKey=00000000-0000-4000-8000-000000000001;IngestionEndpoint={url}/",
            "OTEL_METRIC_EXPORT_INTERVAL": "200",
        })  # fmt: skip
    assert out == "exporting True"
    metrics: dict[str, list[dict]] = {}
    for item in received:
        if item["data"]["baseType"] == "MetricData":
            for m in item["data"]["baseData"]["metrics"]:
                metrics.setdefault(m["name"], []).append(
                    {"value": m["value"], **item["data"]["baseData"].get("properties", {})}
                )

    # Several export intervals may pass before exit: counters are deltas (sum them),
    # gauges repeat their last value.
    def total(name: str, **dims: str) -> float:
        points = metrics[name]
        return sum(p["value"] for p in points if all(p.get(k) == v for k, v in dims.items()))

    def gauge(name: str) -> set[tuple]:
        return {tuple(sorted(p.items())) for p in metrics[name]}

    assert total("sync.people", direction="to-marketo") == 3
    assert total("sync.people", direction="to-dynamics") == 2
    assert total("sync.collisions") == 1 and total("sync.rejections") == 4
    assert total("sync.api_calls", system="marketo") == 7
    assert total("sync.api_calls", system="dynamics") == 5
    assert total("sync.cycles", outcome="failed") == 1
    assert gauge("sync.cycle.failed") == {(("value", 1),)}
    assert gauge("sync.cursor.lag") == {(("cursor", "dynamics-lead"), ("value", 42.0))}
    assert gauge("sync.marketo.quota_used") == {(("value", 0.25),)}
    messages = [i["data"]["baseData"] for i in received if i["data"]["baseType"] == "MessageData"]
    (log,) = [m for m in messages if m["message"] == "cycle finished"]
    assert log["properties"]["correlation_id"] == "corr-0001"
    assert log["properties"]["operation"] == "cycle"


def test_off_and_silent_without_a_connection_string():
    assert run_app({}) == "off False"
