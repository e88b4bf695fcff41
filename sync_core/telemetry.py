"""Structured, personal-data-free telemetry: correlation ids on every log record, and
OpenTelemetry export (logs of the `sync_core` logger and custom metrics) to Application
Insights when APPLICATIONINSIGHTS_CONNECTION_STRING is set.

Two failures it prevents. Without a correlation id, the log lines of one cycle or one
webhook call cannot be told apart from the next one's in App Insights. And without
redaction, the HTTP client's own INFO line ("HTTP Request: GET <url>") would carry
OData `$filter` values (an owner's email, a person's email looked up by `explain`) into
the log store: query strings are cut from those lines here. Nothing in `sync_core`
logs names, emails or field values; a test scans everything a demo-sized run logs.

Without the connection string nothing is imported or configured and every metric call
is a no-op; with it, Entra-only ingestion works through the exporter's own
APPLICATIONINSIGHTS_AUTHENTICATION_STRING setting (the Bicep sets both).
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("sync_core")

CONNECTION_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
CORRELATION: ContextVar[str] = ContextVar("sync_correlation_id", default="")
OPERATION: ContextVar[str] = ContextVar("sync_operation", default="")
_state: dict[str, Any] = {"factory": None, "exporting": False, "instruments": None}


@contextlib.contextmanager
def correlation(operation: str, correlation_id: str | None = None) -> Iterator[str]:
    """Tag every log record made inside (any logger, any thread started from here with
    a copied context, e.g. asyncio.to_thread) with one id and the operation name."""
    cid = correlation_id or uuid.uuid4().hex[:16]
    tokens = CORRELATION.set(cid), OPERATION.set(operation)
    try:
        yield cid
    finally:
        CORRELATION.reset(tokens[0])
        OPERATION.reset(tokens[1])


class _RedactQuery(logging.Filter):
    """httpx's request line without the query string (OData filters carry values)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(_strip_query(a) for a in record.args)
        return True


def _strip_query(value: Any) -> Any:
    text = str(value)
    if "?" in text and text.startswith(("http://", "https://")):
        return text.split("?", 1)[0] + "?<query redacted>"
    return value


def install_log_context() -> None:
    """Once per process: correlation fields on every record, query strings cut from
    the HTTP client's request lines."""
    if _state["factory"] is not None:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.correlation_id = CORRELATION.get()
        record.operation = OPERATION.get()
        return record

    logging.setLogRecordFactory(factory)
    _state["factory"] = factory
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).addFilter(_RedactQuery())


def configure(environ: Mapping[str, str] | None = None) -> bool:
    """Start OpenTelemetry export when the connection string is set; True if it did."""
    install_log_context()
    env = os.environ if environ is None else environ
    connection = str(env.get(CONNECTION_SETTING) or "").strip()
    if not connection or _state["exporting"]:
        return bool(_state["exporting"])
    from azure.monitor.opentelemetry import configure_azure_monitor

    configure_azure_monitor(
        connection_string=connection,
        logger_name="sync_core",  # only the sync's own records, not every library's
        disable_tracing=True,  # no auto-instrumented spans: their URLs carry filters
        enable_live_metrics=False,
        enable_performance_counters=False,  # the platform reports CPU and memory
    )
    _state["exporting"] = True
    return True


def exporting() -> bool:
    return bool(_state["exporting"])


def _instruments() -> dict[str, Any] | None:
    if not _state["exporting"]:
        return None
    if _state["instruments"] is None:
        from opentelemetry import metrics

        meter = metrics.get_meter("sync_core")
        _state["instruments"] = {
            "people": meter.create_counter("sync.people", unit="{person}",
                                           description="people synced, per direction"),
            "collisions": meter.create_counter("sync.collisions", unit="{field}"),
            "rejections": meter.create_counter("sync.rejections", unit="{write}"),
            "api_calls": meter.create_counter("sync.api_calls", unit="{call}"),
            "cycles": meter.create_counter("sync.cycles", unit="{cycle}"),
            "failed": meter.create_gauge("sync.cycle.failed", unit="1",
                                         description="1 if the last cycle failed, else 0"),
            "duration": meter.create_histogram("sync.cycle.duration", unit="s"),
            "lag": meter.create_gauge("sync.cursor.lag", unit="s",
                                      description="age of each cursor when a cycle ends"),
            "quota": meter.create_gauge("sync.marketo.quota_used", unit="1",
                                        description="share of the sync's daily budget used"),
            "webhook": meter.create_counter("sync.webhook.calls", unit="{call}"),
        }  # fmt: skip
    return dict(_state["instruments"])


def cursor_lags(saved: Mapping[str, tuple[str, datetime | None]]) -> dict[str, float]:
    """Seconds since each main cursor was saved (state rows from StateStore.saved)."""
    now = datetime.now(UTC)
    return {
        name: (now - at).total_seconds()
        for name, (_, at) in saved.items()
        if at is not None and not name.endswith(("-columns", "-resume"))
    }


def record_cycle(
    summary: Mapping[str, Any], lags: Mapping[str, float], quota_used: float | None = None
) -> None:
    """Custom metrics for one cycle (no-op unless exporting). Counts only, no values."""
    inst = _instruments()
    if inst is None:
        return
    counts = summary.get("counts") or {}
    outcome = str(summary.get("outcome"))
    for direction, key in (("to-marketo", "to_marketo"), ("to-dynamics", "to_dynamics"),
                           ("created-in-marketo", "created_in_marketo")):  # fmt: skip
        inst["people"].add(int(counts.get(key, 0)), {"direction": direction})
    inst["collisions"].add(int(counts.get("collisions", 0)))
    inst["rejections"].add(int(counts.get("rejected", 0)))
    for system, n in (summary.get("apiCalls") or {}).items():
        inst["api_calls"].add(int(n), {"system": system})
    inst["cycles"].add(1, {"outcome": outcome})
    inst["failed"].set(1 if outcome in ("failed", "stopped") else 0)
    inst["duration"].record(float(summary.get("durationSeconds") or 0), {"outcome": outcome})
    for name, seconds in lags.items():
        inst["lag"].set(seconds, {"cursor": name})
    if quota_used is not None:
        inst["quota"].set(quota_used)


def record_webhook(status: int) -> None:
    inst = _instruments()
    if inst is not None:
        inst["webhook"].add(1, {"status": str(status)})
