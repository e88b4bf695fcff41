"""The shared HTTP layer under both vendor clients: pacing, retries and call counting.

Each client classifies a response into an action (see errors.py); this module only
carries out the generic part: wait out `Throttled`, back off on `TransientError`,
give up after a bounded number of attempts or seconds. Pacing to the documented rate
limit *before* sending keeps us from burning quota on 606/429 answers at all. A refused
token never gets here: each client's `httpx.Auth` flow renews it and resends once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx

from sync_core.errors import Throttled, TransientError

T = TypeVar("T")

Sleep = Callable[[float], Awaitable[None]]


class SlidingWindow:
    """At most `calls` starts per rolling `period` seconds, and `concurrent` in flight."""

    def __init__(self, calls: int, period: float, concurrent: int) -> None:
        self.calls, self.period = calls, period
        self._starts: deque[float] = deque()
        self._gate = asyncio.Semaphore(concurrent)
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> None:
        await self._gate.acquire()
        async with self._lock:
            while len(self._starts) >= self.calls:
                wait = self._starts[0] + self.period - time.monotonic()
                if wait <= 0:
                    self._starts.popleft()
                    continue
                await asyncio.sleep(wait)
            self._starts.append(time.monotonic())

    async def __aexit__(self, *exc: object) -> None:
        self._gate.release()


class RetryPolicy:
    """Bounded retries: exponential backoff with jitter for transient errors, the
    server's own wait for throttling, and an overall ceiling so a cycle cannot hang."""

    def __init__(
        self,
        attempts: int = 6,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        max_total_wait: float = 120.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_total_wait = max_total_wait
        self.sleep = sleep

    def scaled(self, factor: float) -> RetryPolicy:
        """The same policy with every wait multiplied (compressed-time test worlds)."""
        return RetryPolicy(
            self.attempts,
            self.base_delay * factor,
            self.max_delay * factor,
            self.max_total_wait * factor,
            self.sleep,
        )

    async def run(self, attempt: Callable[[], Awaitable[T]]) -> T:
        waited = 0.0
        for n in range(1, self.attempts + 1):
            try:
                return await attempt()
            except Throttled as exc:
                delay = max(exc.retry_after, 0.0)
                last: Exception = exc
            except TransientError as exc:
                delay = min(self.max_delay, self.base_delay * 2 ** (n - 1))
                delay *= 0.5 + random.random() / 2
                last = exc
            if n == self.attempts or waited + delay > self.max_total_wait:
                raise last
            waited += delay
            await self.sleep(delay)
        raise AssertionError("unreachable")


def transport_error(exc: httpx.HTTPError) -> TransientError:
    """A network-level failure as 'retry it'. Only for idempotent requests: for a write
    that must not run twice the answer may be lost after it ran, so the client raises
    OutcomeUnknown instead."""
    return TransientError(f"{type(exc).__name__}: {exc}")


class CallCounter:
    """API calls made, per system, reported in the cycle summary."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, system: str, n: int = 1) -> None:
        self.counts[system] = self.counts.get(system, 0) + n
