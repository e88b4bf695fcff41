"""Benchmark the Dynamics emulator: in-process calls/s (limits off) and memory for N records.

Usage: python benchmarks/dynamics_emulator.py [--records 1000000] [--calls 5000]
Not run by tests. Prints simple-call throughput through httpx.ASGITransport and the
resident memory after seeding N contacts (the target is >= 2,000 calls/s and 1M records
within 3 GB).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from emulators.dynamics import DynamicsConfig, create_app
from emulators.dynamics.seed import seed


def rss_mb() -> float:
    try:
        with open(f"/proc/{os.getpid()}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def throughput(calls: int) -> None:
    cfg = DynamicsConfig()
    cfg.limits.enabled = False
    app = create_app(cfg)
    seed(app.state, 1000, 0)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://b") as c:
        tok = (
            await c.post(
                f"/{cfg.tenant_id}/oauth2/v2.0/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": "sync-app",
                    "client_secret": "sync-app-secret",
                    "scope": "http://b/.default",
                },
            )
        ).json()
        c.headers["Authorization"] = "Bearer " + tok["access_token"]
        ids = [
            r["contactid"]
            for r in (await c.get("/api/data/v9.2/contacts?$select=contactid&$top=100")).json()[
                "value"
            ]
        ]
        for name, make in (
            (
                "GET by id",
                lambda i: c.get(
                    f"/api/data/v9.2/contacts({ids[i % 100]})?$select=firstname,lastname"
                ),
            ),
            (
                "PATCH by id",
                lambda i: c.patch(
                    f"/api/data/v9.2/contacts({ids[i % 100]})",
                    json={"jobtitle": f"t{i}"},
                    headers={"If-Match": "*"},
                ),
            ),
            (
                "POST create",
                lambda i: c.post("/api/data/v9.2/contacts", json={"lastname": f"n{i}"}),
            ),
            ("GET WhoAmI", lambda i: c.get("/api/data/v9.2/WhoAmI")),
        ):
            start = time.perf_counter()
            for i in range(calls):
                r = await make(i)
                assert r.status_code < 300, r.text
            dt = time.perf_counter() - start
            print(f"{name:12s} {calls / dt:8.0f} calls/s (sequential, in-process)")


def memory(records: int) -> None:
    app = create_app()
    before = rss_mb()
    start = time.perf_counter()
    seed(app.state, records, 0)
    took = time.perf_counter() - start
    after = rss_mb()
    store = app.state.stores["contact"]
    t = time.perf_counter()
    store.sorted_ids()
    print(
        f"seeded {records:,} contacts in {took:.1f}s; RSS {before:.0f} MB -> {after:.0f} MB "
        f"({(after - before) * 1024 * 1024 / max(1, records):.0f} bytes/record); "
        f"pk index built in {time.perf_counter() - t:.1f}s"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--records", type=int, default=1_000_000)
    p.add_argument("--calls", type=int, default=5000)
    a = p.parse_args()
    asyncio.run(throughput(a.calls))
    memory(a.records)


if __name__ == "__main__":
    main()
