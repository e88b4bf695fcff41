"""Framework-neutral entry points called by `function_app.py` (and the CLI).

They load settings, build the runtime, run one unit of work and always close what they
opened. Returning plain data (a summary dict, a `Reply`) keeps `azure.functions` out
of this package.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sync_core import telemetry
from sync_core.cycle import QUOTA_TZ
from sync_core.progress import Progress, watching
from sync_core.runtime import Runtime, build_runtime, new_cycle
from sync_core.settings import Settings, load_settings

log = logging.getLogger("sync_core")


@dataclass
class Reply:
    status: int
    payload: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def body(self) -> bytes:
        return json.dumps(self.payload).encode()


class CycleFailed(RuntimeError):
    """Raised to the Functions host so a failed cycle shows as a failed invocation."""


async def run_cycle(
    settings: Settings | None = None, progress: Progress | None = None, **runtime_options: Any
) -> dict[str, Any]:
    settings = settings or load_settings()
    rt = await build_runtime(settings, **runtime_options)
    try:
        cycle = new_cycle(rt)
        if progress is None:
            summary = dict(await cycle.run())
        else:
            async with watching(cycle, progress):
                summary = dict(await cycle.run())
        if telemetry.exporting():
            await _cycle_metrics(rt, summary)
        return summary
    finally:
        await rt.aclose()


async def _cycle_metrics(rt: Runtime, summary: dict[str, Any]) -> None:
    s = rt.settings
    day = datetime.now(QUOTA_TZ).date().isoformat()
    used = int(await rt.store.get_value("quota", day) or 0)
    budget = s.sync_marketo_daily_quota * s.sync_marketo_quota_share
    lags = telemetry.cursor_lags(await rt.store.saved("cursor"))
    telemetry.record_cycle(summary, lags, used / budget if budget else None)


def configure_telemetry() -> bool:
    """Called once when the function app loads: OpenTelemetry export if configured."""
    return telemetry.configure()


async def run_scheduled_cycle() -> dict[str, Any]:
    with telemetry.correlation("cycle"):
        summary = await run_cycle()
        # Counts, ids and durations only: the summary holds no personal data.
        log.info(
            "sync cycle %s",
            json.dumps(summary, default=str),
            extra={"cycle_id": summary.get("cycleId"), "outcome": summary.get("outcome")},
        )
    if summary.get("outcome") == "failed":
        raise CycleFailed(summary.get("message") or "cycle failed")
    return summary


@dataclass
class Page:
    status: int
    html: str


async def status_document() -> Reply:
    """`GET /api/status`: the status document (schema in sync_core.health)."""
    from sync_core.health import read_status

    with telemetry.correlation("status"):
        return Reply(200, await read_status(load_settings()))


async def dashboard() -> Page:
    """`GET /api/dashboard`: the health page."""
    from sync_core.dashboard import dashboard_html

    with telemetry.correlation("dashboard"):
        return Page(200, await dashboard_html(load_settings()))


async def sync_person(body: bytes, headers: dict[str, str]) -> Reply:
    from sync_core.realtime import handle_sync_person

    with telemetry.correlation("webhook"):
        reply = await handle_sync_person(body, headers)
        telemetry.record_webhook(reply.status)
        return reply
