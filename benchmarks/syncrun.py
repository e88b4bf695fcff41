"""The sync's process in a benchmark: one cycle (or the one-time setup), measured.

    python -m benchmarks.syncrun --out FILE [--setup]

Settings come from the environment, as in Azure. One process per cycle, like a cold
Functions worker, so `peak_rss_mb` is that cycle's peak and `cpu_s` its CPU alone (the
emulators and Azurite run elsewhere). The sync's own waits (pacing, Retry-After,
back-off) are recorded for the real-time conversion (benchmarks.waits), which is why the
recorder is installed before anything of `sync_core` is imported.

Diagnosis: with `BENCH_PROFILE_DIR` set, each cycle also writes a cProfile of itself
there (`cycle-<pid>.prof`; slows the cycle down, so its figures are not comparable).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import time
from pathlib import Path

from benchmarks import waits


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--setup", action="store_true", help="run `setup` instead of a cycle")
    ap.add_argument(
        "--trace-memory",
        type=Path,
        metavar="FILE",
        help="diagnosis: trace allocations and write the largest sites live at "
        "the end of the cycle, and the peak (slows the cycle down)",
    )
    args = ap.parse_args(argv)
    if args.trace_memory:
        import tracemalloc

        tracemalloc.start(8)
    waits.install(("sync_core",))

    from sync_core.admin.setup import run_setup
    from sync_core.entrypoints import run_cycle
    from sync_core.settings import load_settings

    settings = load_settings()
    if args.setup:
        asyncio.run(run_setup(settings))
        args.out.write_text("{}")
        return 0
    before = resource.getrusage(resource.RUSAGE_SELF)
    baseline_mb = before.ru_maxrss / 1024
    profile_dir = os.environ.get("BENCH_PROFILE_DIR")
    if profile_dir:
        import cProfile
        import threading

        profiler = cProfile.Profile()
        profiler.enable()
        # Table Storage calls run in worker threads, which cProfile does not follow:
        # each thread gets a profiler of its own, started from its first profile event.
        threads: list[cProfile.Profile] = []
        started = threading.local()

        def in_thread(*_: object) -> None:
            if getattr(started, "profile", None) is None:
                started.profile = cProfile.Profile()
                threads.append(started.profile)
                started.profile.enable()

        threading.setprofile(in_thread)
    t0 = time.monotonic()
    summary = asyncio.run(run_cycle(settings))
    t1 = time.monotonic()
    if profile_dir:
        profiler.disable()
        profiler.dump_stats(Path(profile_dir) / f"cycle-{os.getpid()}.prof")
        threading.setprofile(None)
        for n, prof in enumerate(threads):
            prof.disable()
            prof.dump_stats(Path(profile_dir) / f"cycle-{os.getpid()}-thread{n}.prof")
    after = resource.getrusage(resource.RUSAGE_SELF)
    if args.trace_memory:
        _write_trace(args.trace_memory)
    found = waits.recorded(t0, t1)
    args.out.write_text(
        json.dumps(
            {
                "t0": t0,
                "t1": t1,
                "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
                "peak_rss_mb": after.ru_maxrss / 1024,
                "baseline_rss_mb": baseline_mb,
                "segments": waits.segments(found, t0, t1),
                "waited_s": waits.total(found, "sync_core"),
                "summary": summary,
            },
            default=str,
        )
    )
    return 0


def _write_trace(path: Path) -> None:
    import gc
    import tracemalloc

    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    top = tracemalloc.take_snapshot().statistics("traceback")[:15]
    lines = [f"traced now {current / 2**20:.1f} MB, peak {peak / 2**20:.1f} MB"]
    for stat in top:
        lines.append(f"{stat.size / 2**20:8.1f} MB {stat.count:9,} blocks")
        lines += [f"    {frame}" for frame in stat.traceback.format()[-6:]]
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
