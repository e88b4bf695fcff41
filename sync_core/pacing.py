"""Pacing Dataverse writes by the server time they cost, not only by request count.

A `$batch` counts as one request against 6,000 per 5 minutes, but its operations' execution
time counts in full against 1,200 s per 5 minutes per user, and a request running past
2 minutes fails. Full 1,000-operation batches sent at the request rate therefore spend the
execution budget in seconds and then meet 429 `0x80072321` with a Retry-After that grows
under sustained pressure. This module prevents that:

- **batch size** follows the measured seconds per operation, so one batch takes about
  `target_batch_s` (30 s: a quarter of the 2-minute limit, so a server four times slower
  than measured still answers; batches in parallel rather than one huge one, as Microsoft
  recommends, yet few enough that a 5,000-row change is a handful of calls);
- **parallelism** follows the server's `x-ms-dop-hint`, capped by configuration; until
  one batch has been measured only that first, modest batch is in flight (otherwise the
  first 16 batches would all be sent at the unmeasured first size);
- **an execution-time bucket** (capacity: our share of 1,200 s; refill: that share per
  300 s) is debited by each batch's estimated cost before it is sent and corrected by
  its measured time afterwards; `x-ms-ratelimit-time-remaining-xrm-requests` lowers it
  when other work of the same user has spent budget we did not see.

No library paces by a server-reported cost budget; this is a token bucket in 60 lines.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping

WINDOW_S = 300.0
EXECUTION_LIMIT_S = 1200.0
REMAINING_HEADER = "x-ms-ratelimit-time-remaining-xrm-requests"
DOP_HEADER = "x-ms-dop-hint"


class ExecutionPacer:
    def __init__(
        self,
        *,
        share: float = 0.8,
        target_batch_s: float = 30.0,
        min_ops: int = 10,
        max_ops: int = 1000,
        first_ops: int = 100,
        max_parallel: int = 16,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        time_scale: float = 1.0,
    ) -> None:
        # Budget and window shrink together in compressed time: the refill rate stays.
        self.capacity = EXECUTION_LIMIT_S * share * time_scale
        self.refill = self.capacity / (WINDOW_S * time_scale)  # execution s per second
        self.level = self.capacity
        self.target_batch_s = target_batch_s * time_scale
        self.min_ops, self.max_ops, self.first_ops = min_ops, max_ops, first_ops
        self.max_parallel = max_parallel
        self.parallel = max_parallel
        self.per_op: float | None = None  # measured seconds per operation (smoothed)
        self._clock = clock
        self._sleep = sleep
        self._at = clock()

    def _fill(self) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._at) * self.refill)
        self._at = now

    @property
    def in_flight(self) -> int:
        """Batches to run at once: the first alone, then the server's hint."""
        return self.parallel if self.per_op is not None else 1

    def batch_size(self) -> int:
        if self.per_op is None:
            return self.first_ops
        ops = int(self.target_batch_s / max(self.per_op, 1e-6))
        return max(self.min_ops, min(self.max_ops, ops))

    def remembered(self) -> str | None:
        """The measured seconds per operation, for the next process to start from."""
        return None if self.per_op is None else f"{self.per_op:.6g}"

    def recall(self, saved: str | None) -> None:
        """Start from an earlier process's measure. Each timer run is often a fresh
        worker: unmeasured, it sends a 100-operation probe alone before anything else,
        which costs a call and a batch's time every cycle. A stale measure is corrected
        by the first batch answered (and a batch that runs too long is split)."""
        if self.per_op is not None or not saved:
            return
        try:
            value = float(saved)
        except ValueError:
            return  # an unreadable row: measure afresh
        if value > 0:
            self.per_op = value

    def estimate(self, ops: int) -> float:
        return ops * (self.per_op if self.per_op is not None else 0.0)

    async def reserve(self, ops: int) -> float:
        """Wait until the bucket holds this batch's estimated cost, then debit it."""
        cost = self.estimate(ops)
        while True:
            self._fill()
            if self.level >= min(cost, self.capacity):
                self.level -= cost
                return cost
            await self._sleep((min(cost, self.capacity) - self.level) / self.refill)

    def observe(
        self, ops: int, elapsed: float, reserved: float, headers: Mapping[str, str]
    ) -> None:
        """Learn from one answered batch: its real cost, the server's hints."""
        self._fill()
        self.level -= elapsed - reserved  # correct the estimate by the measured time
        if ops:
            sample = elapsed / ops
            self.per_op = sample if self.per_op is None else 0.7 * self.per_op + 0.3 * sample
        remaining = _number(headers.get(REMAINING_HEADER))
        if remaining is not None:
            # Milliseconds the user has left in the window: other work may have spent it.
            # (capacity / limit = share x time scale: the header is in service time)
            self.level = min(self.level, remaining / 1000.0 * (self.capacity / EXECUTION_LIMIT_S))
        dop = _number(headers.get(DOP_HEADER))
        if dop is not None and dop >= 1:
            self.parallel = max(1, min(self.max_parallel, int(dop)))


def _number(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None
