"""The sync's process in a benchmark: one cycle (or the one-time setup), measured.

    python -m benchmarks.syncrun --out FILE [--setup]

Settings come from the environment, as in Azure. One process per cycle, like a cold
Functions worker, so `peak_rss_mb` is that cycle's peak and `cpu_s` its CPU alone (the
emulators and Azurite run elsewhere). The sync's own waits (pacing, Retry-After,
back-off) are recorded for the real-time conversion (benchmarks.waits), which is why the
recorder is installed before anything of `sync_core` is imported.

Diagnosis: with `BENCH_PROFILE_DIR` set, each cycle also writes a cProfile of itself
there (`cycle-<pid>.prof`; slows the cycle down, so its figures are not comparable).
With `BENCH_TRACE_MEMORY_DIR` set, the harness passes `--trace-memory`: the allocations
live at the cycle's highest sample and at its end, largest first (much slower still).
With `BENCH_TRACE_CALLS_DIR` set, each API request's start, end, method, path and status
(monotonic seconds) go to `calls-<pid>.jsonl` there: the timeline a bound_ratio hides.
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
        _watch_peak()
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

        # CPU time of the thread, not wall time: a wall-clock profile of threads that
        # wait for the GIL or a socket shows the waits, not what costs CPU.
        profiler = cProfile.Profile(time.thread_time)
        profiler.enable()
        # Table Storage calls run in worker threads, which cProfile does not follow:
        # each thread gets a profiler of its own, started from its first profile event.
        threads: list[cProfile.Profile] = []
        started = threading.local()

        def in_thread(*_: object) -> None:
            if getattr(started, "profile", None) is None:
                started.profile = cProfile.Profile(time.thread_time)
                threads.append(started.profile)
                started.profile.enable()

        threading.setprofile(in_thread)
    calls_dir = os.environ.get("BENCH_TRACE_CALLS_DIR")
    if calls_dir:
        _trace_calls(Path(calls_dir) / f"calls-{os.getpid()}.jsonl")
    t0 = time.monotonic()
    summary = asyncio.run(run_cycle(settings))
    t1 = time.monotonic()
    if profile_dir:
        profiler.disable()
        profiler.dump_stats(Path(profile_dir) / f"cycle-{os.getpid()}.prof")
        threading.setprofile(None)
        import pstats

        for prof in threads:
            prof.disable()
        if threads:  # one file for all worker threads (a pool may start hundreds)
            merged = pstats.Stats(threads[0])
            for prof in threads[1:]:
                merged.add(prof)
            merged.dump_stats(Path(profile_dir) / f"cycle-{os.getpid()}-threads.prof")
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


_PEAK: dict[str, object] = {}


def _trace_calls(path: Path) -> None:
    """Note every request the sync's httpx clients send (Table Storage goes through
    the Azure SDK, not httpx, and is not noted)."""
    import httpx

    send = httpx.AsyncClient.send
    out = path.open("a")

    async def traced(self: httpx.AsyncClient, request: httpx.Request, **kw: object) -> object:
        start = time.monotonic()
        status: int | str = "error"
        try:
            response = await send(self, request, **kw)  # type: ignore[arg-type]
            status = response.status_code
            return response
        finally:
            line = {
                "start": start,
                "end": time.monotonic(),
                "method": request.method,
                "host": request.url.host,
                "path": request.url.path,
                "status": status,
            }
            out.write(json.dumps(line) + "\n")
            out.flush()

    httpx.AsyncClient.send = traced  # type: ignore[method-assign,assignment]


def _watch_peak() -> None:
    """Snapshot the live allocations whenever they reach a new high (checked twice a
    second): what is live at the peak, which the end of the cycle no longer shows."""
    import threading
    import tracemalloc

    def watch() -> None:
        high = 0
        while True:
            time.sleep(0.5)
            current, _ = tracemalloc.get_traced_memory()
            if current > high * 1.05:
                high = current
                _PEAK["mb"] = current / 2**20
                _PEAK["snapshot"] = tracemalloc.take_snapshot()

    threading.Thread(target=watch, daemon=True).start()


def _write_trace(path: Path) -> None:
    import gc
    import tracemalloc

    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    lines = [f"traced now {current / 2**20:.1f} MB, peak {peak / 2**20:.1f} MB"]
    views: list[tuple[str, object]] = [("live at the end", tracemalloc.take_snapshot())]
    if "snapshot" in _PEAK:
        views.insert(0, (f"live at the highest sample ({_PEAK['mb']:.1f} MB)", _PEAK["snapshot"]))
    for title, snap in views:
        lines.append(f"== {title}")
        assert isinstance(snap, tracemalloc.Snapshot)
        for stat in snap.statistics("traceback")[:15]:
            lines.append(f"{stat.size / 2**20:8.1f} MB {stat.count:9,} blocks")
            lines += [f"    {frame}" for frame in stat.traceback.format()[-6:]]
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
