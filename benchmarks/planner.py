"""Planner throughput: pairs planned per second on one core (target: >= 50,000/s).

python -m benchmarks.planner [--pairs 200000]
"""

from __future__ import annotations

import argparse
import random
import time

from sync_core.mapping import load_mapping
from sync_core.planner import Hasher, plan_pair
from sync_core.settings import DEFAULT_MAPPING_FILE


def make_pairs(n: int, rules: list, hasher: Hasher) -> list[tuple[dict, dict, dict]]:
    rng = random.Random(1)
    out = []
    for i in range(n):
        mk = {r.marketo: f"{r.marketo}-{i}" for r in rules}
        dyn = {r.column: f"{r.marketo}-{i}" for r in rules}
        base = {r.marketo: hasher(f"{r.marketo}-{i}") for r in rules}
        # A realistic delta: most pairs idle, some one-sided edits, a few collisions.
        roll = rng.random()
        if roll < 0.3:
            dyn[rules[i % len(rules)].column] = f"edited-{i}"
        elif roll < 0.5:
            mk[rules[(i + 1) % len(rules)].marketo] = f"edited-{i}"
        elif roll < 0.52:
            dyn[rules[0].column], mk[rules[0].marketo] = "a", "b"
        out.append((dyn, mk, base))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pairs", type=int, default=200_000)
    args = ap.parse_args()
    rules = list(load_mapping(DEFAULT_MAPPING_FILE).fields["contact"])
    hasher = Hasher(b"benchmark-key-0123456789abcdef")
    pairs = make_pairs(args.pairs, rules, hasher)
    start = time.perf_counter()
    writes = 0
    for dyn, mk, base in pairs:
        plan = plan_pair(rules, dyn, mk, base, hasher)
        writes += bool(plan.to_marketo or plan.to_dynamics)
    took = time.perf_counter() - start
    rate = args.pairs / took
    print(
        f"planner: {args.pairs} pairs x {len(rules)} fields in {took:.2f} s = {rate:,.0f} pairs/s "
        f"({writes} with writes) -> {'OK' if rate >= 50_000 else 'BELOW'} target 50,000/s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
