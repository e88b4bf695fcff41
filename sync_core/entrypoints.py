"""Framework-neutral entry points called by `function_app.py` (and the CLI).

Each runs one unit of work and returns plain data (a summary dict, a `Reply`, a
`Page`), which keeps `azure.functions` out of this package. The function app passes its
process's `Worker` (the composition root its timer and webhook share); the CLI and tests
call without one and get a runtime of their own, built and closed around the call.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sync_core import quota, telemetry
from sync_core.errors import CycleFailed
from sync_core.progress import Progress, watching
from sync_core.replies import Page, Reply
from sync_core.runtime import Runtime, build_runtime, new_cycle
from sync_core.settings import Settings, load_settings
from sync_core.worker import Worker

log = logging.getLogger("sync_core")

__all__ = ["CycleFailed", "Page", "Reply", "Worker", "run_cycle", "run_scheduled_cycle"]


@asynccontextmanager
async def _runtime(
    settings: Settings, worker: Worker | None, options: dict[str, Any]
) -> AsyncIterator[Runtime]:
    if worker is not None:
        async with worker.runtime(settings, **options) as rt:
            yield rt
        return
    rt = await build_runtime(settings, **options)
    try:
        yield rt
    finally:
        await rt.aclose()


async def run_cycle(
    settings: Settings | None = None,
    progress: Progress | None = None,
    *,
    worker: Worker | None = None,
    **runtime_options: Any,
) -> dict[str, Any]:
    settings = settings or (worker.settings() if worker else load_settings())
    async with _runtime(settings, worker, runtime_options) as rt:
        cycle = new_cycle(rt)
        if progress is None:
            summary = dict(await cycle.run())
        else:
            async with watching(cycle, progress):
                summary = dict(await cycle.run())
        if telemetry.exporting():
            await _cycle_metrics(rt, summary)
        return summary


async def _cycle_metrics(rt: Runtime, summary: dict[str, Any]) -> None:
    s = rt.settings
    used = int(await rt.store.get_value(quota.KIND, quota.quota_day()) or 0)
    budget = s.sync_marketo_daily_quota * s.sync_marketo_quota_share
    lags = telemetry.cursor_lags(await rt.store.saved("cursor"))
    telemetry.record_cycle(summary, lags, used / budget if budget else None)


def configure_telemetry() -> bool:
    """Called once when the function app loads: OpenTelemetry export if configured."""
    return telemetry.configure()


async def run_scheduled_cycle(worker: Worker | None = None) -> dict[str, Any]:
    with telemetry.correlation("cycle"):
        summary = await run_cycle(worker=worker)
        # Counts, ids and durations only: the summary holds no personal data.
        log.info(
            "sync cycle %s",
            json.dumps(summary, default=str),
            extra={"cycle_id": summary.get("cycleId"), "outcome": summary.get("outcome")},
        )
    if summary.get("outcome") == "failed":
        raise CycleFailed(summary.get("message") or "cycle failed")
    return summary


async def status_document(worker: Worker | None = None) -> Reply:
    """`GET /api/status`: the status document (schema in sync_core.health)."""
    from sync_core.health import read_status

    with telemetry.correlation("status"):
        settings = worker.settings() if worker else load_settings()
        return Reply(200, await read_status(settings))


async def dashboard(worker: Worker | None = None) -> Page:
    """`GET /api/dashboard`: the health page."""
    from sync_core.dashboard import dashboard_html

    with telemetry.correlation("dashboard"):
        settings = worker.settings() if worker else load_settings()
        return Page(200, await dashboard_html(settings))


async def sync_person(body: bytes, headers: dict[str, str], worker: Worker | None = None) -> Reply:
    from sync_core.realtime import handle_sync_person

    with telemetry.correlation("webhook"):
        reply = await handle_sync_person(body, headers, worker=worker)
        telemetry.record_webhook(reply.status)
        return reply
