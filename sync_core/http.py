"""The shared HTTP layer under both vendor clients: pacing, retries and call counting.

Each client classifies a response into an action (see errors.py); this module only
carries out the generic part: wait out `Throttled`, back off on `TransientError`,
give up after a bounded number of attempts or seconds. Pacing to the documented rate
limit *before* sending keeps us from burning quota on 606/429 answers at all. A refused
token never gets here: each client's `httpx.Auth` flow renews it and resends once.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TypeVar

import httpx

from sync_core.errors import Throttled, TransientError

T = TypeVar("T")

Sleep = Callable[[float], Awaitable[None]]


# Set by the real-time webhook for its own calls: they go before queued cycle calls, so
# a delivery answered within Marketo's 30 s is not stuck behind a cycle's backlog.
URGENT: ContextVar[bool] = ContextVar("sync_urgent", default=False)


class SlidingWindow:
    """At most `calls` starts per rolling `period` seconds, and `concurrent` in flight.
    Waiters are served urgent ones first (URGENT), then in arrival order.

    A heap of waiters rather than asyncio.Semaphore: a semaphore serves strictly first
    come, and the webhook shares this window with a cycle that may queue hundreds."""

    def __init__(self, calls: int, period: float, concurrent: int) -> None:
        self.calls, self.period, self.concurrent = calls, period, concurrent
        self._starts: deque[float] = deque()
        self._running = 0
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def _free(self) -> bool:
        now = time.monotonic()
        while self._starts and self._starts[0] + self.period <= now:
            self._starts.popleft()
        return self._running < self.concurrent and len(self._starts) < self.calls

    def _take(self) -> None:
        self._running += 1
        self._starts.append(time.monotonic())

    def _wake(self) -> None:
        while self._waiting:
            first = self._waiting[0][2]
            if first.done():  # its waiter was cancelled
                heapq.heappop(self._waiting)
                continue
            if not self._free():
                break
            heapq.heappop(self._waiting)
            self._take()
            first.set_result(None)
        loop = asyncio.get_running_loop()
        if self._timer is not None and self._timer_loop is not loop:
            self._timer = None  # set on an event loop that is gone
        if self._waiting and self._running < self.concurrent and self._timer is None:
            # Held by the rate window alone: look again when its oldest start ages out.
            delay = self._starts[0] + self.period - time.monotonic()
            self._timer, self._timer_loop = loop.call_later(max(delay, 0.0), self._tick), loop

    def _tick(self) -> None:
        self._timer = None
        self._wake()

    def _release(self) -> None:
        self._running -= 1
        self._wake()

    async def __aenter__(self) -> None:
        if not self._waiting and self._free():
            self._take()
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        rank = 0 if URGENT.get() else 1
        heapq.heappush(self._waiting, (rank, next(self._order), granted))
        self._wake()
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self._release()  # granted as it was cancelled: the slot goes back
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._release()


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
