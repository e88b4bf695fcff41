"""The shared rate window: never more starts per period or calls in flight than allowed,
the webhook's urgent calls served before a cycle's queued ones, and no slot lost to a
caller cancelled while it waited."""

from __future__ import annotations

import asyncio
import time

from sync_core.http import URGENT, SlidingWindow
from tests.support.blocking import run_async


@run_async
async def test_starts_per_period_and_calls_in_flight_stay_within_the_limits() -> None:
    window = SlidingWindow(calls=4, period=0.3, concurrent=2)
    starts: list[float] = []
    running = peak = 0

    async def call() -> None:
        nonlocal running, peak
        async with window:
            starts.append(time.monotonic())
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1

    await asyncio.gather(*(call() for _ in range(12)))
    assert peak == 2
    for i in range(len(starts) - 4):
        assert starts[i + 4] - starts[i] >= 0.3 - 0.01  # a 5th start waits for the 1st to age


@run_async
async def test_an_urgent_caller_goes_before_the_calls_queued_ahead_of_it() -> None:
    window = SlidingWindow(calls=100, period=1.0, concurrent=1)
    order: list[str] = []
    hold = asyncio.Event()

    async def call(name: str, urgent: bool = False) -> None:
        URGENT.set(urgent)
        async with window:
            order.append(name)
            if name == "first":
                await hold.wait()

    first = asyncio.create_task(call("first"))
    await asyncio.sleep(0)
    queued = [asyncio.create_task(call(f"cycle-{n}")) for n in range(5)]
    await asyncio.sleep(0)
    webhook = asyncio.create_task(call("webhook", urgent=True))
    await asyncio.sleep(0)
    hold.set()
    await asyncio.gather(first, webhook, *queued)
    assert order == ["first", "webhook", *(f"cycle-{n}" for n in range(5))]


@run_async
async def test_a_caller_cancelled_while_waiting_leaves_no_slot_taken() -> None:
    window = SlidingWindow(calls=100, period=1.0, concurrent=1)
    hold = asyncio.Event()

    async def holder() -> None:
        async with window:
            await hold.wait()

    task = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(window.__aenter__())
    await asyncio.sleep(0)
    waiter.cancel()
    hold.set()
    await task
    await asyncio.gather(waiter, return_exceptions=True)
    async with asyncio.timeout(1):
        async with window:  # the only slot is free again
            pass
