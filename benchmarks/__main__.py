"""`make bench`: every benchmark, each in its own process (memory is measured per run).

    python -m benchmarks [--full]

Default sizes keep the run to a few minutes; --full uses the sizes the targets name
(1M people / records held by each emulator).
"""

from __future__ import annotations

import subprocess
import sys

RUNS = [
    ("planner (target >= 50,000 pairs/s)", ["-m", "benchmarks.planner"], []),
    ("a cycle through the whole local stack: initial load, then a delta",
     ["-m", "benchmarks.cycle", "--records", "20000", "--changed", "5000"],
     ["-m", "benchmarks.cycle", "--records", "100000", "--changed", "100000"]),
    ("Marketo emulator (target >= 2,000 calls/s; 1M people < 3 GB)",
     ["benchmarks/marketo_emulator.py", "--people", "200000"], ["--people", "1000000"]),
    ("Dynamics emulator (target >= 2,000 calls/s; 1M records < 3 GB)",
     ["benchmarks/dynamics_emulator.py", "--records", "200000"], ["--records", "1000000"]),
]  # fmt: skip


def main() -> int:
    full = "--full" in sys.argv[1:]
    failed = 0
    for title, args, full_args in RUNS:
        print(f"\n== {title}", flush=True)
        cmd = [sys.executable, *args]
        if full and full_args:
            cmd = [sys.executable, *(full_args if full_args[0] == "-m" else [args[0], *full_args])]
        failed += subprocess.call(cmd) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
