"""Benchmark the Marketo emulator: in-process call rate and memory for N people.

    python benchmarks/marketo_emulator.py [--people 1000000] [--calls 5000]

Targets (issue): >= 2,000 simple calls/s in-process with limits off; 1M people < 3 GB.
Not run by the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import httpx

from emulators.marketo import MarketoConfig, create_app
from emulators.marketo.seed import seed_people


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def calls_per_second(app: object, calls: int, people: int) -> dict[str, float]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://marketo") as c:
        tok = (
            await c.get(
                "/identity/oauth/token",
                params={
                    "grant_type": "client_credentials",
                    "client_id": "sync-app",
                    "client_secret": "sync-app-secret",
                },
            )
        ).json()["access_token"]
        h = {"Authorization": f"Bearer {tok}"}
        out: dict[str, float] = {}
        t0 = time.perf_counter()
        for i in range(calls):
            r = await c.get(f"/rest/v1/lead/{i % max(people, 1) + 1}.json", headers=h)
            assert r.status_code == 200
        out["GET lead/{id}.json calls/s"] = calls / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i in range(calls):
            await c.get(
                "/rest/v1/leads.json",
                headers=h,
                params={
                    "filterType": "email",
                    "filterValues": f"nobody{i}@example.com",
                    "fields": "email,firstName",
                },
            )
        out["GET leads.json by email calls/s"] = calls / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i in range(calls // 5):
            await c.post(
                "/rest/v1/leads.json",
                headers=h,
                json={
                    "action": "createOrUpdate",
                    "input": [{"email": f"bench{i}@example.com", "firstName": "B"}],
                },
            )
        out["POST leads.json (1 record) calls/s"] = (calls // 5) / (time.perf_counter() - t0)
        # Concurrency of 10, as a pool of clients would do.
        t0 = time.perf_counter()

        async def worker(k: int) -> None:
            for i in range(k, calls, 10):
                await c.get(f"/rest/v1/lead/{i % max(people, 1) + 1}.json", headers=h)

        await asyncio.gather(*(worker(k) for k in range(10)))
        out["GET lead/{id}.json x10 concurrent calls/s"] = calls / (time.perf_counter() - t0)
        return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--people", type=int, default=1_000_000)
    ap.add_argument("--calls", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    gc.collect()
    base = rss_mb()
    app = create_app(MarketoConfig().limits_off())
    t0 = time.perf_counter()
    seed_people(app.state.emulator, args.people, args.seed, linked=0.5)
    gc.collect()
    seeded = time.perf_counter() - t0
    mem = rss_mb()
    print(f"people: {args.people:,}  seeded in {seeded:.1f} s")
    print(
        f"memory: RSS {mem:,.0f} MB total, {mem - base:,.0f} MB for the people "
        f"({(mem - base) * 1024 * 1024 / max(args.people, 1):,.0f} B/person)"
    )
    for name, rate in asyncio.run(calls_per_second(app, args.calls, args.people)).items():
        print(f"{name}: {rate:,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
