"""§6 Service protection limits (429 + Retry-After + codes) and injected faults/latency."""

from __future__ import annotations

import asyncio
import time

import httpx

from emulators.dynamics import DynamicsConfig, create_app
from tests.emulators.dynamics.conftest import Dv


def test_request_count_limit(dv: Dv, admin: httpx.Client) -> None:
    admin.put("/limits", json={"max_requests": 3, "window_seconds": 60})
    assert all(dv.get("WhoAmI").status_code == 200 for _ in range(3))
    r = dv.get("WhoAmI")
    assert r.status_code == 429
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert r.json()["error"]["code"] == "0x80072322"
    assert r.json()["error"]["message"] == \
        "Number of requests exceeded the limit of 3 over time window of 60 seconds."
    stats = admin.get("/stats").json()
    assert stats["GET WhoAmI"]["throttled"] == 1


def test_limits_are_per_user(dv: Dv, sales: Dv, admin: httpx.Client) -> None:
    admin.put("/limits", json={"max_requests": 1})
    assert dv.get("WhoAmI").status_code == 200
    assert dv.get("WhoAmI").status_code == 429
    assert sales.get("WhoAmI").status_code == 200


def test_execution_time_limit(dv: Dv, admin: httpx.Client) -> None:
    admin.put("/limits", json={"max_execution_ms": 50})
    admin.put("/latency", json={"endpoint": "GET WhoAmI", "latency_ms": 60})
    assert dv.get("WhoAmI").status_code == 200
    r = dv.get("WhoAmI")
    assert r.status_code == 429 and r.json()["error"]["code"] == "0x80072321"
    assert "Retry-After" in r.headers


def test_concurrency_limit_in_process() -> None:
    cfg = DynamicsConfig()
    cfg.limits.max_concurrent = 2
    app = create_app(cfg)

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://t") as c:
            await c.put("/_emulator/latency", json={"endpoint": "GET WhoAmI",
                                                     "latency_ms": 100})
            tok = (await c.post(f"/{cfg.tenant_id}/oauth2/v2.0/token", data={
                "grant_type": "client_credentials", "client_id": "sync-app",
                "client_secret": "sync-app-secret", "scope": "http://t/.default"})).json()
            h = {"Authorization": "Bearer " + tok["access_token"]}
            return list(await asyncio.gather(*[c.get("/api/data/v9.2/WhoAmI", headers=h)
                                               for _ in range(4)]))

    codes = sorted(r.status_code for r in asyncio.run(run()))
    assert codes == [200, 200, 429, 429]


def test_concurrency_error_code(dv: Dv, app) -> None:  # type: ignore[no-untyped-def]
    app.cfg.limits.max_concurrent = 0
    r = dv.get("WhoAmI")
    assert r.status_code == 429 and r.json()["error"]["code"] == "0x80072326"


def test_injected_faults_per_endpoint(dv: Dv, admin: httpx.Client) -> None:
    admin.put("/faults", json={"endpoint": "POST contacts", "fault": "503", "count": 1})
    assert dv.post("contacts", json={"lastname": "a"}).status_code == 503
    assert dv.post("contacts", json={"lastname": "a"}).status_code == 204
    admin.put("/faults", json={"endpoint": "GET contacts", "fault": "429", "retry_after": 7})
    r = dv.get("contacts")
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"
    assert dv.get("WhoAmI").status_code == 200  # other endpoints unaffected
    admin.delete("/faults")
    assert dv.get("contacts").status_code == 200


def test_latency_per_call(dv: Dv, admin: httpx.Client) -> None:
    admin.put("/latency", json={"endpoint": "GET WhoAmI", "latency_ms": 150})
    t = time.perf_counter()
    dv.get("WhoAmI")
    assert time.perf_counter() - t >= 0.14


def test_timeout_fault(app, dv: Dv, admin: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    app.cfg.fault_timeout_seconds = 0.2
    admin.put("/faults", json={"endpoint": "GET WhoAmI", "fault": "timeout", "count": 1})
    assert dv.get("WhoAmI").status_code == 504
    app.cfg.fault_timeout_seconds = 130.0
