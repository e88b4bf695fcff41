"""Run one or more ASGI apps with uvicorn in a single process.

Several servers share one event loop so `python -m emulators all` is one PID to stop;
each server gets its own port (and optionally TLS) exactly as it would standalone.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import uvicorn


@dataclass
class ServerSpec:
    """One app to serve. `on_started` runs once the socket listens (e.g. to start timers)."""

    name: str
    app: Any
    host: str = "127.0.0.1"
    port: int = 0
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    on_started: list[Callable[[], Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_certfile else "http"
        return f"{scheme}://{self.host}:{self.port}"


def _server(spec: ServerSpec) -> uvicorn.Server:
    config = uvicorn.Config(
        spec.app,
        host=spec.host,
        port=spec.port,
        log_level="warning",
        access_log=False,
        ssl_certfile=spec.ssl_certfile,
        ssl_keyfile=spec.ssl_keyfile,
        lifespan="on",
        # The emulators, not h11, decide how long a request line may be (Dataverse
        # takes URLs up to 32 KB; h11 refuses a head past 16 KB that arrives in pieces).
        h11_max_incomplete_event_size=128 * 1024,
    )
    server = uvicorn.Server(config)
    # We install our own signal handling so one Ctrl-C stops every server together.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    return server


async def serve_all(specs: Sequence[ServerSpec]) -> None:
    """Serve every spec until SIGINT/SIGTERM, then shut all of them down."""
    servers = [_server(s) for s in specs]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)

    tasks = [asyncio.create_task(s.serve()) for s in servers]
    while not all(s.started for s in servers):
        if any(t.done() for t in tasks):
            break
        await asyncio.sleep(0.02)
    for spec, server in zip(specs, servers, strict=True):
        if server.started:
            print(f"{spec.name} listening on {spec.url}", flush=True)
            for hook in spec.on_started:
                result = hook()
                if asyncio.iscoroutine(result):
                    await result
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for server in servers:
        server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)
    waiter.cancel()
    failed = [spec.name for spec, t in zip(specs, tasks, strict=True) if t.done() and t.exception()]
    if failed:
        raise SystemExit(f"server(s) failed: {', '.join(failed)}")
