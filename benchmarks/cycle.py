"""A real initial load and a delta through the whole local stack, measured.

    python -m benchmarks.cycle [--records 20000] [--changed 5000]

Starts Azurite and the emulators (Dynamics over TLS) as in `make demo`, seeds N Dynamics
contacts, runs the first cycle (every contact becomes a Marketo person), then changes
`--changed` people in Marketo and runs a delta cycle. Reports wall time, API calls per
system against the minimum the batch and page limits allow, the time Marketo's rate limit
imposes on that many calls (50 calls / 20 s, the sync's share), and peak memory.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import resource
import time

from emulators.actors import People
from emulators.stack import DYNAMICS_TENANT, running_stack
from sync_core.entrypoints import run_cycle
from sync_core.settings import load_settings

MARKETO_RATE = 50 / 20  # calls per second the sync allows itself


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report(title: str, summary: dict, minimum: dict[str, int], took: float) -> None:
    calls = summary["apiCalls"]
    floor = minimum["marketo"] / MARKETO_RATE
    print(f"\n{title}: {summary['outcome']} in {took:.1f} s (Marketo rate floor {floor:.1f} s)")
    for system in ("marketo", "dynamics"):
        ratio = calls[system] / max(1, minimum[system])
        print(
            f"  {system:<8} {calls[system]:>6} calls, minimum {minimum[system]:>6} ({ratio:.2f}x)"
        )
    print(f"  counts: { {k: v for k, v in summary['counts'].items() if v} }")
    print(f"  peak RSS of the sync process so far: {peak_mb():.0f} MB")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--changed", type=int, default=5_000)
    args = ap.parse_args()
    n, changed = args.records, min(args.changed, args.records)
    with running_stack() as stack:
        os.environ.update(stack.env)
        people = People(stack.marketo_url, stack.dynamics_url, stack.ca_bundle, DYNAMICS_TENANT)
        people.marketo_admin("POST", "limits", json={"rate_limit_calls": 0, "daily_quota": 0})
        people.dynamics_admin("POST", "seed", json={"contacts": n, "leads": 0, "seed": 3})
        settings = load_settings()

        started = time.monotonic()
        first = asyncio.run(run_cycle(settings))
        pages = math.ceil(n / 5000)
        # paging token + 2 feeds; email look-ups and creates in 300s; metadata (5 calls)
        minimum = {
            "marketo": 1 + 2 * math.ceil(n / 300) + 1,
            "dynamics": 2 * pages + 2 + math.ceil(n / 1000) + 4,
        }
        report("initial load", first, minimum, time.monotonic() - started)

        ids = [link for link in range(1, changed + 1)]
        for i in range(0, len(ids), 300):
            people.marketo(
                "POST", "/rest/v1/leads.json",
                json={"action": "updateOnly", "lookupField": "id",
                      "input": [{"id": x, "title": f"Changed {x}"} for x in ids[i:i + 300]]},
            )  # fmt: skip
        started = time.monotonic()
        delta = asyncio.run(run_cycle(settings))
        minimum = {
            # the two feeds (a page per 300 changes) + a re-read of the changed people
            "marketo": 1 + 2 * math.ceil(changed / 300),
            # the two delta reads + the writes in full $batch requests
            "dynamics": 2 + math.ceil(changed / 1000),
        }
        report(f"delta, {changed} changed in Marketo", delta, minimum, time.monotonic() - started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
