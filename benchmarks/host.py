"""The Functions host of the webhook benchmark, with each delivery's API calls timed.

    python -m benchmarks.host

Serves `function_app` (the local functions host) on a free port and prints one JSON line
with its URL. Each `sync-person` invocation notes its own start and end and the interval
of every HTTP call it makes (the httpx client both vendor clients use), so the driver
can split a delivery's latency into the API calls it waited for and the rest, which is
the sync's own overhead (Table Storage, parsing, building the runtime). `GET
/_bench/deliveries` returns them. Settings come from the environment, as in Azure.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import socket
import time
from typing import Any

import httpx

_CALLS: contextvars.ContextVar[list[list[Any]] | None] = contextvars.ContextVar(
    "bench_calls", default=None
)
DELIVERIES: list[dict[str, Any]] = []


def _instrument() -> None:
    send = httpx.AsyncClient.send

    async def timed_send(self: httpx.AsyncClient, request: httpx.Request, **kw: Any) -> Any:
        bucket = _CALLS.get()
        began = time.monotonic()
        try:
            return await send(self, request, **kw)
        finally:
            if bucket is not None:
                bucket.append(
                    [began, time.monotonic(), request.method, request.url.port, request.url.path]
                )

    httpx.AsyncClient.send = timed_send  # type: ignore[method-assign]

    import sync_core.entrypoints as entrypoints

    handle = entrypoints.sync_person

    async def sync_person(
        body: bytes, headers: dict[str, str], worker: entrypoints.Worker | None = None
    ) -> Any:
        bucket: list[list[Any]] = []
        _CALLS.set(bucket)  # tasks and threads started below copy this context
        began = time.monotonic()
        reply = await handle(body, headers, worker)
        try:
            lead = int(json.loads(body).get("leadId"))
        except (ValueError, TypeError, AttributeError):
            lead = 0
        DELIVERIES.append(
            {
                "leadId": lead,
                "t0": began,
                "t1": time.monotonic(),
                "status": reply.status,
                "calls": bucket,
            }
        )
        return reply

    entrypoints.sync_person = sync_person  # function_app looks it up at call time


def main() -> int:
    _instrument()
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    from emulators.functions.host import create_host
    from emulators.serve import ServerSpec, serve_all

    async def deliveries(request: Request) -> JSONResponse:
        return JSONResponse(DELIVERIES)

    app = Starlette(
        routes=[
            Route("/_bench/deliveries", deliveries),
            Mount("/", app=create_host(run_timers=False)),
        ]
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    spec = ServerSpec("functions", app, port=port)
    spec.on_started.append(lambda: print(json.dumps({"url": spec.url}), flush=True))
    asyncio.run(serve_all([spec]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
