"""The ASGI application: routing between Entra stand-in, Web API and admin API.

A small hand-written ASGI layer (no framework router) keeps per-call overhead low for the
2,000 calls/s target and lets every API call pass through one pipeline: authenticate,
service-protection limits, injected faults/latency, dispatch, statistics. Absolute URLs
are built from the request's own scheme and Host header so links work behind any port.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, unquote

from emulators.dynamics import faults, worldrun
from emulators.dynamics.admin import AdminError, handle_admin
from emulators.dynamics.auth import OAuthError, openid_configuration
from emulators.dynamics.batch import BatchRunner
from emulators.dynamics.config import DynamicsConfig
from emulators.dynamics.errors import DataverseError, throttled
from emulators.dynamics.messages import API_PREFIX, ApiRequest, ApiResponse
from emulators.dynamics.org import Org
from emulators.dynamics.state import EndpointBehaviour, EndpointStats
from emulators.dynamics.throttle import retry_after_header
from emulators.dynamics.timing import latency_ms

Scope = dict[str, Any]


class DynamicsApp(Org):
    """The org behind the HTTP surface: Entra stand-in, Web API pipeline, admin API."""

    def __init__(self, config: DynamicsConfig | None = None) -> None:
        super().__init__(config)
        self.batch = BatchRunner(self.webapi.handle, self.cfg.max_batch_operations)

    # -- ASGI plumbing ----------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host") or "{}:{}".format(*(scope.get("server") or ("127.0.0.1", 80)))
        base = f"{scope.get('scheme', 'http')}://{host}"
        path: str = scope["path"]
        qs = scope.get("query_string", b"").decode("latin-1")
        method: str = scope["method"]
        if len(base) + len(scope.get("raw_path") or path) + len(qs) + 1 > MAX_URL_CHARS:
            resp = _url_too_long()
        elif path.startswith(API_PREFIX) or path + "/" == API_PREFIX:
            resp = await self._api(method, path[len(API_PREFIX) :], qs, headers, body, base)
        elif path.startswith("/_emulator"):
            resp = self._admin(method, path[len("/_emulator") :], body)
        else:
            resp = await self._identity(method, path, headers, body, base)
        if resp.drop:
            await _drop_connection(send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": resp.status,
                "headers": [
                    (k.encode("latin-1"), v.encode("latin-1")) for k, v in resp.headers.items()
                ],
            }
        )
        await send({"type": "http.response.body", "body": resp.body})

    # -- Web API pipeline --------------------------------------------------------------
    def _behaviour(self, endpoint: str) -> EndpointBehaviour | None:
        b = self.state.behaviours
        return b.get(endpoint) or b.get("*")

    async def _api(
        self, method: str, path: str, qs: str, headers: dict[str, str], body: bytes, base: str
    ) -> ApiResponse:
        path = unquote(path)
        endpoint = self.webapi.endpoint_name(method, path)
        stats = self.state.stats.get(endpoint)
        if stats is None:
            stats = self.state.stats[endpoint] = EndpointStats()
        stats.calls += 1
        start = time.perf_counter()
        user_id: str | None = None
        counted_ms: float | None = None
        world = self.cfg.world
        try:
            user = self.tokens.authenticate(headers.get("authorization"))
            self.schedule.tick(self.state)
            self.throttle.enter(user.systemuserid)
            user_id = user.systemuserid
            beh = self._behaviour(endpoint)
            if beh is not None and beh.fault and beh.remaining != 0:
                if beh.remaining is not None:
                    beh.remaining -= 1
                await self._fault(beh)
            req = ApiRequest(method, path, qs, headers, body, base, user)
            if world.spend_time or world.fault_rates or world.enforce_request_timeout:
                outcome = await worldrun.run(self, req, endpoint, user_id)
                resp = outcome.resp
                counted_ms = outcome.counted_ms if world.spend_time else None
            elif path == "$batch" and method == "POST":
                try:
                    resp = self.batch.run(req)
                except DataverseError as e:
                    resp = _error_response(e)
            else:
                resp = self.webapi.handle(req)
            delay = self.cfg.base_latency_ms
            if beh is not None:
                delay += beh.latency_ms + beh.per_operation_ms * resp.operations
            if delay > 0:
                await asyncio.sleep(world.scale(delay) / 1000)
        except DataverseError as e:
            resp = _error_response(e)
        finally:
            elapsed = (time.perf_counter() - start) * 1000
            stats.execution_ms += elapsed
            if user_id is not None:
                self.throttle.leave(user_id, elapsed if counted_ms is None else counted_ms)
            if counted_ms is not None:
                stats.service_ms += counted_ms
        if resp.status == 429:
            stats.throttled += 1
        elif resp.status >= 400:
            stats.errors += 1
        rid = str(uuid.uuid4())
        resp.headers.setdefault("x-ms-service-request-id", rid)
        resp.headers.setdefault("REQ_ID", rid)
        if user_id is not None and self.throttle.limits.enabled:
            left, ms = self.throttle.snapshot(user_id)
            resp.headers["x-ms-ratelimit-burst-remaining-xrm-requests"] = str(max(0, left))
            resp.headers["x-ms-ratelimit-time-remaining-xrm-requests"] = f"{max(0.0, ms):.2f}"
        if world.dop_hint > 0:
            resp.headers["x-ms-dop-hint"] = str(world.dop_hint)
        return resp

    async def _fault(self, beh: EndpointBehaviour) -> None:
        if beh.fault == "429":
            lim = self.throttle.limits
            scale = self.cfg.world.time_scale
            raise throttled(
                "requests",
                retry_after_header(beh.retry_after * scale, scale),
                lim.max_requests,
                lim.window_seconds,
            )
        if beh.fault == "timeout":
            await asyncio.sleep(self.cfg.world.scale(self.cfg.fault_timeout_seconds))
            raise DataverseError(504, "", "The operation has timed out (injected fault).")
        status = int(beh.fault or 500)
        raise DataverseError(
            status,
            "0x80040216" if status == 500 else "",
            f"An unexpected error occurred (injected {status} fault).",
        )

    # -- admin ------------------------------------------------------------------------
    def _admin(self, method: str, path: str, body: bytes) -> ApiResponse:
        try:
            status, payload = handle_admin(self, method, path, body)
        except AdminError as e:
            status, payload = e.status, {"error": str(e)}
        except (ValueError, KeyError, TypeError) as e:
            status, payload = 400, {"error": f"bad admin request: {e!r}"}
        return ApiResponse(
            status, {"Content-Type": "application/json"}, json.dumps(payload).encode()
        )

    # -- Entra ID stand-in ------------------------------------------------------------
    async def _identity(
        self, method: str, path: str, headers: dict[str, str], body: bytes, base: str
    ) -> ApiResponse:
        parts = [p for p in path.split("/") if p]
        if not parts:
            return ApiResponse(
                200, {"Content-Type": "application/json"}, b'{"service":"dynamics-emulator"}'
            )
        tenant, rest = parts[0], "/".join(parts[1:])
        if method == "GET" and rest in (
            "v2.0/.well-known/openid-configuration",
            ".well-known/openid-configuration",
        ):
            doc = openid_configuration(base, tenant, v2=rest.startswith("v2.0"))
            return ApiResponse(200, {"Content-Type": "application/json"}, json.dumps(doc).encode())
        if method == "GET" and rest in ("discovery/v2.0/keys", "discovery/keys"):
            return ApiResponse(200, {"Content-Type": "application/json"}, b'{"keys":[]}')
        if method == "POST" and rest in ("oauth2/v2.0/token", "oauth2/token"):
            stats = self.state.stats.setdefault("POST token", EndpointStats())
            stats.calls += 1
            beh = self.state.behaviours.get("POST token")
            world = self.cfg.world
            if beh is not None and beh.latency_ms:
                await asyncio.sleep(world.scale(beh.latency_ms) / 1000)
            if world.latency_median_ms > 0:
                await asyncio.sleep(world.scale(latency_ms(world, self.dice)) / 1000)
            kind = faults.choose(world, self.dice, "POST token", "POST", ("500", "503"))
            if kind is not None:
                stats.errors += 1
                return ApiResponse(
                    int(kind),
                    {"Content-Type": "application/json"},
                    b'{"error":"temporarily_unavailable"}',
                )
            if beh is not None and beh.fault and beh.remaining != 0:
                if beh.remaining is not None:
                    beh.remaining -= 1
                stats.errors += 1
                code = 503 if beh.fault in ("timeout", "429") else int(beh.fault)
                return ApiResponse(
                    code,
                    {"Content-Type": "application/json"},
                    b'{"error":"temporarily_unavailable"}',
                )
            form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            basic = None
            auth = headers.get("authorization", "")
            if auth.lower().startswith("basic "):
                cid, _, sec = base64.b64decode(auth[6:]).decode().partition(":")
                basic = (unquote(cid), unquote(sec))
            try:
                payload = self.tokens.token_endpoint(
                    tenant, form, basic, base, v2=rest.startswith("oauth2/v2.0")
                )
                status = 200
            except OAuthError as e:
                stats.errors += 1
                status, payload = e.status, e.payload
            return ApiResponse(
                status,
                {
                    "Content-Type": "application/json; charset=utf-8",
                    "Cache-Control": "no-store, no-cache",
                },
                json.dumps(payload).encode(),
            )
        return ApiResponse(
            404,
            {"Content-Type": "application/json"},
            json.dumps({"error": "not_found", "path": path}).encode(),
        )


def _error_response(e: DataverseError) -> ApiResponse:
    h = {"Content-Type": "application/json; odata.metadata=minimal", "OData-Version": "4.0"}
    h.update(e.headers)
    return ApiResponse(e.status, h, e.body())


class _QuietDrops(logging.Filter):
    """Hide uvicorn's complaint about the responses we cut short on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing response" not in record.getMessage()


# Documented (compose-http-requests-handle-errors): a URL may be at most 32 KB. The
# answer to a longer one is not documented; 414 is what the web server in front answers.
MAX_URL_CHARS = 32_768


def _url_too_long() -> ApiResponse:
    return ApiResponse(414, {"Content-Type": "text/plain"}, b"URI Too Long")


async def _drop_connection(send: Any) -> None:
    # ASGI has no "abort": promise a body, send none, return. The server then closes the
    # connection and the client sees it cut mid-response, as with a dropped connection.
    logging.getLogger("uvicorn.error").addFilter(_QUIET)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", b"1024"), (b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": b"{", "more_body": True})


_QUIET = _QuietDrops()


def create_app(config: DynamicsConfig | None = None) -> DynamicsApp:
    """Build the emulator ASGI app (Web API under /api/data/v9.2, Entra under /{tenant})."""
    return DynamicsApp(config)
