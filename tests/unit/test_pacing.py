"""Dataverse writes paced by execution time: batch size from the measured cost per
operation, parallelism from the dop hint, and never more server time than the budget."""

from __future__ import annotations

import asyncio

from sync_core.pacing import EXECUTION_LIMIT_S, WINDOW_S, ExecutionPacer


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def pacer(**kw: object) -> tuple[ExecutionPacer, Clock]:
    clock = Clock()
    return ExecutionPacer(clock=clock, sleep=clock.sleep, **kw), clock  # type: ignore[arg-type]


def test_batch_size_follows_the_measured_cost_per_operation():
    p, _ = pacer(target_batch_s=10.0)
    assert p.batch_size() == 100  # nothing measured yet: a modest first batch
    p.observe(100, 5.0, 0.0, {})  # 50 ms per operation
    assert p.batch_size() == 200
    for _ in range(20):
        p.observe(200, 40.0, 0.0, {})  # plug-ins make each operation cost 200 ms
    assert 45 <= p.batch_size() <= 55
    for _ in range(20):
        p.observe(1000, 1.0, 0.0, {})  # 1 ms per operation: capped at the service limit
    assert p.batch_size() == 1000


def test_parallelism_follows_the_dop_hint_within_the_configured_cap():
    p, _ = pacer(max_parallel=16)
    p.observe(10, 1.0, 0.0, {"x-ms-dop-hint": "4"})
    assert p.parallel == 4
    p.observe(10, 1.0, 0.0, {"x-ms-dop-hint": "50"})
    assert p.parallel == 16


def test_the_first_batch_is_sent_alone_until_its_cost_is_measured():
    p, _ = pacer(max_parallel=16)
    assert p.in_flight == 1
    p.observe(100, 3.0, 0.0, {})
    assert p.in_flight == 16


def test_sustained_writes_never_spend_more_than_the_budget_share():
    p, clock = pacer(share=0.5, target_batch_s=10.0)
    p.observe(100, 10.0, 0.0, {})  # 100 ms per operation, 10 s per batch
    spent = 0.0
    while clock.now < 3 * WINDOW_S:
        reserved = asyncio.run(p.reserve(100))
        p.observe(100, 10.0, reserved, {})
        spent += 10.0
    # After the initial burst the bucket only refills at budget/window.
    allowed = 0.5 * EXECUTION_LIMIT_S * (1 + clock.now / WINDOW_S)
    assert spent <= allowed + 10.0
    assert spent >= 0.9 * allowed  # and it does use what it may
    assert clock.slept  # it waited instead of meeting 429 0x80072321


def test_remaining_time_reported_by_the_server_lowers_the_budget():
    p, clock = pacer(share=1.0)
    p.observe(100, 10.0, 0.0, {"x-ms-ratelimit-time-remaining-xrm-requests": "15,000.00"})
    assert p.level <= 15.0
    asyncio.run(p.reserve(100))  # costs about 10 s
    reserved = asyncio.run(p.reserve(100))
    assert reserved > 0 and clock.slept  # the second had to wait for the refill


def test_a_measure_kept_from_an_earlier_process_replaces_the_probe():
    p, _ = pacer(target_batch_s=10.0)
    assert p.remembered() is None and p.in_flight == 1  # nothing measured: a probe alone
    p.observe(100, 5.0, 0.0, {})
    kept = p.remembered()
    fresh, _ = pacer(target_batch_s=10.0)
    fresh.recall(kept)
    assert fresh.batch_size() == 200 and fresh.in_flight > 1  # sized and parallel at once
    for bad in (None, "", "0", "-1", "fast"):
        q, _ = pacer()
        q.recall(bad)
        assert q.per_op is None and q.batch_size() == 100  # measured afresh
