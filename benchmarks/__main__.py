"""`make bench`: the sync against the emulators' `production` world, measured.

    python -m benchmarks [--full] [--only NAME ...] [--population N] [--reconcile N]
                         [--time-scale F] [--no-idle] [--out DIR]

Runs the scenarios of benchmarks.scenarios (NAME: check, empty, linked, reconcile,
webhook) and writes
DIR/results.json (one object per scenario) and DIR/results.md (the table, how every
figure is computed, and which target each result meets). Default sizes keep the run to
a few minutes here; --full uses the sizes the issue names. Not part of `make test`.

The older micro-benchmarks stay runnable on their own: `python -m benchmarks.planner`
(the planner's pairs per second) and `python benchmarks/marketo_emulator.py`,
`python benchmarks/dynamics_emulator.py` (the emulators' own call rate and memory).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

from benchmarks import report, scenarios
from benchmarks.harness import running_storage
from emulators.azurite import ROOT

GROUPS = ("check", "empty", "linked", "reconcile", "webhook")
#: One real second is 50 ms here: short enough for a run of minutes, long enough that
#: a request's modelled server time stays well above the local stack's share of it.
TIME_SCALE = 0.05


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--full", action="store_true", help="the issue's sizes (takes hours)")
    ap.add_argument("--only", nargs="*", choices=GROUPS, default=list(GROUPS))
    ap.add_argument("--time-scale", type=float, default=TIME_SCALE)
    ap.add_argument(
        "--reconcile",
        type=int,
        metavar="N",
        help="people of the reconcile on state built in place (default: 1M with "
        "--full, none otherwise)",
    )
    ap.add_argument(
        "--population",
        type=int,
        metavar="N",
        help="people of the first-load worlds (default: 5,000; 100,000 with --full)",
    )
    ap.add_argument(
        "--no-idle",
        action="store_true",
        help="no idle cycle after the first load into an empty Marketo (in real time, "
        "`--time-scale 1`, it would wait out a real 5-minute interval first)",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench")
    args = ap.parse_args(argv)
    sizes = scenarios.FULL if args.full else scenarios.DEFAULT
    if args.population is not None:
        sizes = dataclasses.replace(sizes, population=args.population)
    if args.reconcile is not None:
        sizes = dataclasses.replace(sizes, reconcile=args.reconcile)
    args.out.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    meta: dict[str, Any] = {
        "sizes": "full" if args.full else "default",
        "population": sizes.population,
        "time_scale": args.time_scale,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        # Other work on the machine inflates the unscaled local part of wall_s.
        "load_average": [round(x, 1) for x in os.getloadavg()],
    }

    def record(row: dict[str, Any]) -> None:
        results.append(row)
        print(report.line(row), flush=True)
        meta["duration_s"] = round(time.monotonic() - started)
        meta["load_average_now"] = [round(x, 1) for x in os.getloadavg()]
        # Written after every scenario: a long run that is stopped keeps what it measured.
        (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
        (args.out / "results.md").write_text(report.markdown(results, meta))

    with running_storage() as storage:
        if "check" in args.only:
            scenarios.calibration(storage, args.time_scale, record)
        if "empty" in args.only:
            scenarios.first_load_empty(
                storage, sizes, args.time_scale, record, idle=not args.no_idle
            )
        if "linked" in args.only:
            scenarios.linked_world(storage, sizes, args.time_scale, record)
        if "reconcile" in args.only and sizes.reconcile:
            scenarios.big_reconcile(storage, sizes.reconcile, args.time_scale, record)
        if "webhook" in args.only:
            scenarios.webhooks(storage, sizes, record)
    print(
        f"wrote {args.out / 'results.json'} and {args.out / 'results.md'} "
        f"in {time.monotonic() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
