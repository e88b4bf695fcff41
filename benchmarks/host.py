"""The Functions host of the webhook benchmark, with each delivery's API calls timed.

    python -m benchmarks.host

Serves `function_app` (the local functions host) on a free port and prints one JSON line
with its URL. Each `sync-person` invocation notes its own start and end and the interval
of every HTTP call it waited for: its own (the httpx client both vendor clients use),
the shared Marketo calls its requests rode in (`marketobatch` sends them from a task of
its own, so they are handed to each delivery whose items were in the call), its Table
Storage requests (the azure-core transport), and every wait for the Marketo or Dataverse
rate window before a call. The driver splits a delivery's latency into API calls, rate
waits, Table Storage and the rest. `GET /_bench/deliveries` returns them. Settings come
from the environment, as in Azure.
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
    _instrument_tables()
    _instrument_rate_waits()
    _instrument_group_commit()

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


def _note(kind: str, began: float, port: Any = None, path: str = "") -> None:
    bucket = _CALLS.get()
    if bucket is not None:
        bucket.append([began, time.monotonic(), kind, port, path])


def _instrument_tables() -> None:
    # Table Storage requests run in worker threads (asyncio.to_thread copies the context).
    from azure.core.pipeline.transport import RequestsTransport

    send = RequestsTransport.send

    def timed(self: Any, request: Any, **kw: Any) -> Any:
        began = time.monotonic()
        try:
            return send(self, request, **kw)
        finally:
            _note("TABLE", began)

    RequestsTransport.send = timed


def _instrument_rate_waits() -> None:
    from sync_core.http import SlidingWindow

    enter = SlidingWindow.__aenter__

    async def timed(self: SlidingWindow) -> None:
        began = time.monotonic()
        try:
            await enter(self)
        finally:
            if time.monotonic() - began > 0.001:
                _note("RATE", began)

    SlidingWindow.__aenter__ = timed  # type: ignore[method-assign]


def _instrument_group_commit() -> None:
    from sync_core.marketobatch import GroupCommit

    submit, commit = GroupCommit.submit, GroupCommit._commit
    riders: dict[int, tuple[Any, list[list[Any]]]] = {}

    async def timed_submit(self: GroupCommit[Any, Any], item: Any) -> Any:
        bucket = _CALLS.get()
        if bucket is not None:
            riders[id(item)] = (item, bucket)  # the item is kept alive until its call
        began = time.monotonic()
        try:
            return await submit(self, item)
        finally:
            _note("QUEUED", began)

    async def timed_commit(self: GroupCommit[Any, Any], batch: list[Any]) -> None:
        buckets = [riders.pop(id(item), (None, None))[1] for item, _ in batch]
        mine: list[list[Any]] = []
        _CALLS.set(mine)  # the batcher's own task: its context is its own
        try:
            await commit(self, batch)
        finally:
            seen: set[int] = set()
            for bucket in buckets:
                if bucket is not None and id(bucket) not in seen:
                    seen.add(id(bucket))
                    bucket.extend(mine)

    GroupCommit.submit = timed_submit  # type: ignore[method-assign]
    GroupCommit._commit = timed_commit  # type: ignore[method-assign]


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
