"""Service protection limits: requests, combined execution time, concurrency (per user).

Sliding 300 s windows held as deques of timestamps/durations; request-count and
execution-time limits trip only after being exceeded (clients can overshoot, as
documented), concurrency trips immediately. Retry-After is the time until enough of the
window expires. The failure this prevents: a sync that never sees a 429 until production.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

from emulators.dynamics.config import LimitsConfig
from emulators.dynamics.errors import DataverseError, throttled


@dataclass
class _UserWindow:
    requests: deque[float] = field(default_factory=deque)
    durations: deque[tuple[float, float]] = field(default_factory=deque)  # (end time, ms)
    total_ms: float = 0.0
    concurrent: int = 0


class Throttle:
    def __init__(self, limits: LimitsConfig) -> None:
        self.limits = limits
        self.users: dict[str, _UserWindow] = {}

    def reset(self) -> None:
        self.users.clear()

    def _trim(self, w: _UserWindow, now: float) -> None:
        cutoff = now - self.limits.window_seconds
        while w.requests and w.requests[0] <= cutoff:
            w.requests.popleft()
        while w.durations and w.durations[0][0] <= cutoff:
            w.total_ms -= w.durations.popleft()[1]

    def enter(self, user: str) -> None:
        """Admit a request or raise the 429 error; pair with `leave`."""
        lim = self.limits
        if not lim.enabled:
            return
        now = time.monotonic()
        w = self.users.setdefault(user, _UserWindow())
        self._trim(w, now)
        if len(w.requests) >= lim.max_requests:
            retry = w.requests[len(w.requests) - lim.max_requests] + lim.window_seconds - now
            raise throttled("requests", math.ceil(retry), lim.max_requests, lim.window_seconds)
        if w.total_ms >= lim.max_execution_ms:
            retry = w.durations[0][0] + lim.window_seconds - now if w.durations else 1
            raise throttled("time", math.ceil(retry), lim.max_execution_ms, lim.window_seconds)
        if w.concurrent >= lim.max_concurrent:
            raise throttled("concurrency", 1, lim.max_concurrent, lim.window_seconds)
        w.requests.append(now)
        w.concurrent += 1

    def leave(self, user: str, elapsed_ms: float) -> None:
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


__all__ = ["DataverseError", "Throttle"]
