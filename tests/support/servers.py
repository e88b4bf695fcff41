"""Serve an ASGI app over real HTTP (loopback, free port) inside the test process.

Conformance and end-to-end tests talk to the emulators through real sockets so the
same httpx clients as in production are exercised; a background thread keeps the
server's lifetime tied to a `with` block, so no process is ever left behind.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(
    app: Any,
    *,
    port: int | None = None,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
) -> Iterator[str]:
    """Yield the base URL (no trailing slash) while `app` is served on 127.0.0.1."""
    port = port or free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        # Clients that keep connections alive (azure-identity's requests session) must
        # not hold the shutdown for uvicorn's default graceful wait.
        timeout_graceful_shutdown=1,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        # The emulators, not h11, decide how long a request line may be (Dataverse
        # takes URLs up to 32 KB; h11 refuses a head past 16 KB that arrives in pieces).
        h11_max_incomplete_event_size=128 * 1024,
    )
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"server on port {port} did not start")
        time.sleep(0.01)
    scheme = "https" if ssl_certfile else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
