"""`python -m tests.simulation --seeds N [--from K] [--verbose]` (what `make simulate` runs).

Runs seeds K .. K+N-1 and prints one summary: seeds, steps, cycles, faults injected by
kind, invariant checks made, violations. Each failing seed prints its violations and the
one command line that replays it; the exit status is 1 when any seed failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

from tests.simulation.invariants import KNOWN, Violation
from tests.simulation.runner import SeedResult, replay_command, run_seed


def _counts(c: Counter[str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(c.items())) or "none"


def summarize(results: list[SeedResult], seconds: float) -> str:
    faults: Counter[str] = Counter()
    checks: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    for r in results:
        faults.update(r.faults)
        checks.update(r.checks)
        outcomes.update(r.outcomes)
    failed = [r for r in results if new_violations(r)]
    known: Counter[str] = Counter(
        v.known for r in results for v in r.violations if v.known in KNOWN
    )
    known_seeds = [r.seed for r in results if any(v.known in KNOWN for v in r.violations)]
    seeds = f"{results[0].seed}..{results[-1].seed}" if results else "-"
    return "\n".join(
        [
            f"simulate: {len(results)} seeds ({seeds}), {sum(r.steps for r in results)} steps, "
            f"{sum(r.cycles for r in results)} cycles, "
            f"{sum(r.deliveries for r in results)} sync-person deliveries, {seconds:.1f} s",
            f"  faults injected: {sum(faults.values())} ({_counts(faults)})",
            f"  cycle outcomes: {_counts(outcomes)}",
            f"  invariant checks: {sum(checks.values())} ({_counts(checks)})",
            f"  violations: {sum(len(new_violations(r)) for r in failed)} "
            f"in {len(failed)} seed(s)"
            + (f": {', '.join(str(r.seed) for r in failed)}" if failed else ""),
            f"  known engine bugs seen: {sum(known.values())} ({_counts(known)})"
            + (f" in {len(known_seeds)} seed(s), e.g. {known_seeds[:6]}" if known_seeds else ""),
        ]
    )


def new_violations(result: SeedResult) -> list[Violation]:
    """Violations that are not an engine bug already reported (see invariants.KNOWN)."""
    return [v for v in result.violations if v.known not in KNOWN]


def report(result: SeedResult, *, trace: bool = False) -> str:
    lines = [f"seed {result.seed}: {len(result.violations)} violation(s)"]
    lines += [f"  {v}" for v in result.violations]
    if trace:
        lines += ["  trace:"] + [f"    {t}" for t in result.trace]
    lines.append(f"  replay: {replay_command(result.seed)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.simulation")
    parser.add_argument("--seeds", type=int, default=100, help="how many seeds")
    parser.add_argument("--from", dest="first", type=int, default=0, help="first seed")
    parser.add_argument("--verbose", action="store_true", help="print every seed's trace")
    args = parser.parse_args(argv)
    started = time.monotonic()
    results = []
    for seed in range(args.first, args.first + args.seeds):
        result = run_seed(seed)
        results.append(result)
        if result.violations or args.verbose:
            print(report(result, trace=args.verbose), flush=True)
    print(summarize(results, time.monotonic() - started))
    return 1 if any(new_violations(r) for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
