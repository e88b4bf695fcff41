"""Service protection limits: requests, combined execution time, concurrency (per user).

Sliding 300 s windows held as deques of timestamps/durations; request-count and
execution-time limits trip only after being exceeded (clients can overshoot, as
documented), concurrency trips immediately. Retry-After is the time until enough of the
window expires; under a world profile it also grows with each 429 the same user got in
the window (the docs say continued requests lengthen the wait), and the window and
Retry-After follow the time scale while execution time is counted in service
milliseconds. The failure this prevents: a sync that never sees a 429 until production.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

from emulators.dynamics.config import LimitsConfig
from emulators.dynamics.errors import DataverseError, throttled
from emulators.dynamics.world import WorldConfig


@dataclass
class _UserWindow:
    requests: deque[float] = field(default_factory=deque)
    durations: deque[tuple[float, float]] = field(default_factory=deque)  # (end time, ms)
    total_ms: float = 0.0
    concurrent: int = 0
    strikes: deque[float] = field(default_factory=deque)  # times of 429s answered


def retry_after_header(wall_seconds: float, scale: float) -> str:
    """Whole service seconds (min 1), as the service sends; scaled, so fractional if < 1."""
    service = max(1, math.ceil(wall_seconds / scale - 1e-9))
    if scale == 1.0:
        return str(service)
    return format(round(service * scale, 6), "g")


class Throttle:
    def __init__(self, limits: LimitsConfig, world: WorldConfig | None = None) -> None:
        self.limits = limits
        self.world = world or WorldConfig()
        self.users: dict[str, _UserWindow] = {}

    def reset(self) -> None:
        self.users.clear()

    @property
    def window(self) -> float:
        """The window in wall seconds."""
        return self.limits.window_seconds * self.world.time_scale

    def _trim(self, w: _UserWindow, now: float) -> None:
        cutoff = now - self.window
        while w.requests and w.requests[0] <= cutoff:
            w.requests.popleft()
        while w.durations and w.durations[0][0] <= cutoff:
            w.total_ms -= w.durations.popleft()[1]
        while w.strikes and w.strikes[0] <= cutoff:
            w.strikes.popleft()

    def _reject(self, w: _UserWindow, kind: str, wall_retry: float, now: float) -> DataverseError:
        lim, world = self.limits, self.world
        if world.retry_after_step_seconds > 0:
            # The extra wait for sustained pressure is at most one more window.
            extra = world.scale(world.retry_after_step_seconds) * len(w.strikes)
            wall_retry += min(extra, self.window)
        w.strikes.append(now)
        limit = {"requests": lim.max_requests, "time": lim.max_execution_ms,
                 "concurrency": lim.max_concurrent}[kind]
        return throttled(kind, retry_after_header(wall_retry, world.time_scale), limit,
                         lim.window_seconds)

    def enter(self, user: str) -> None:
        """Admit a request or raise the 429 error; pair with `leave`."""
        lim = self.limits
        if not lim.enabled:
            return
        now = time.monotonic()
        w = self.users.setdefault(user, _UserWindow())
        self._trim(w, now)
        if len(w.requests) >= lim.max_requests:
            retry = w.requests[len(w.requests) - lim.max_requests] + self.window - now
            raise self._reject(w, "requests", retry, now)
        if w.total_ms >= lim.max_execution_ms:
            retry = w.durations[0][0] + self.window - now if w.durations else \
                self.world.scale(1.0)
            raise self._reject(w, "time", retry, now)
        if w.concurrent >= lim.max_concurrent:
            raise self._reject(w, "concurrency", self.world.scale(1.0), now)
        w.requests.append(now)
        w.concurrent += 1

    def inject(self, user: str, kind: str) -> DataverseError:
        """An injected 429 of `kind`: the error the limit would give, counted as a strike."""
        now = time.monotonic()
        w = self.users.setdefault(user, _UserWindow())
        self._trim(w, now)
        return self._reject(w, kind, self.world.scale(1.0), now)

    def leave(self, user: str, elapsed_ms: float) -> None:
        """End a request; `elapsed_ms` is its execution time in service milliseconds."""
        if not self.limits.enabled:
            return
        w = self.users.get(user)
        if w is None:
            return
        w.concurrent = max(0, w.concurrent - 1)
        w.durations.append((time.monotonic(), elapsed_ms))
        w.total_ms += elapsed_ms

    def snapshot(self, user: str) -> tuple[int, float]:
        w = self.users.get(user)
        if w is None:
            return self.limits.max_requests, self.limits.max_execution_ms
        return (self.limits.max_requests - len(w.requests),
                self.limits.max_execution_ms - w.total_ms)


__all__ = ["DataverseError", "Throttle", "retry_after_header"]
