"""The waits a compressed-time run spends, recorded so they can be scaled back.

Under a time scale every duration the emulators spend (latency, server time) and every
wait the sync sits out (pacing, Retry-After, back-off) is shrunk by the same factor,
while the CPU of the local stack is not. To turn a measured wall time into a real-time
equivalent, only the waiting part may be divided by the scale. This module records that
part: `install(prefixes)` wraps `asyncio.sleep` so that every sleep requested by code of
the given packages is noted as the interval [start, start + requested] on the system-wide
monotonic clock (comparable across processes); `covered` measures the union of such
intervals from several processes within a window. The requested duration, not the time
the sleep actually took, is noted: an overrun is the event loop being busy, which is
local CPU and must not be scaled. Without this, a benchmark either reports compressed
seconds (meaningless) or divides CPU time by the scale (a hundredfold overstatement).

`install` must run before the recorded packages are imported: some of them bind
`asyncio.sleep` as a default argument at import time. A sleep is attributed to the code
that awaits it, so one wrapped in a task of its own (started by the event loop) is not
recorded; every wait in the sync and the emulators is awaited directly.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any

Interval = tuple[float, float, str]  # start, end (monotonic seconds), recording package

_RECORDED: list[Interval] = []
_ORIGINAL = asyncio.sleep


def install(prefixes: tuple[str, ...]) -> None:
    """Record every `asyncio.sleep(d > 0)` whose caller's module starts with a prefix."""

    async def sleep(delay: float, result: Any = None) -> Any:
        if delay > 0:
            caller = sys._getframe(1).f_globals.get("__name__", "")
            for prefix in prefixes:
                if caller.startswith(prefix):
                    start = time.monotonic()
                    _RECORDED.append((start, start + delay, prefix))
                    break
        return await _ORIGINAL(delay, result)

    asyncio.sleep = sleep


def uninstall() -> None:
    asyncio.sleep = _ORIGINAL


def recorded(since: float = 0.0, until: float = float("inf")) -> list[Interval]:
    """The intervals noted so far that overlap [since, until]."""
    return [iv for iv in _RECORDED if iv[1] > since and iv[0] < until]


def clear() -> None:
    _RECORDED.clear()


def total(intervals: Iterable[Interval], prefix: str) -> float:
    """Sum of the requested sleeps of one package (overlaps counted once per sleep)."""
    return sum(end - start for start, end, p in intervals if p == prefix)


def segments(intervals: Iterable[Sequence[Any]], since: float, until: float) -> list[list[float]]:
    """The union of the intervals within [since, until], as sorted disjoint [start, end]
    pairs (what one process hands the driver, which joins several processes')."""
    out: list[list[float]] = []
    for a, b in sorted((max(iv[0], since), min(iv[1], until)) for iv in intervals):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


def covered(intervals: Iterable[Sequence[Any]], since: float, until: float) -> float:
    """Seconds of [since, until] during which at least one interval was running."""
    return sum(b - a for a, b in segments(intervals, since, until))
