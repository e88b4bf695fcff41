"""The benchmark's measurement core: how compressed wall time becomes real time, and the
fewest calls a piece of work needs. A slip here would make every figure in
bench/results.md wrong while the run still looks fine."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks import limits, waits
from benchmarks.harness import Measured
from benchmarks.limits import Work, min_calls


def test_waits_of_several_processes_count_once_within_the_window():
    sync = [(0.0, 2.0, "sync_core")]
    emulators = [[1.0, 3.0], [5.0, 6.0]]  # overlapping the sync's, then alone
    assert waits.covered([*sync, *emulators], 0.5, 5.5) == pytest.approx(2.5 + 0.5)
    assert waits.segments([*sync, *emulators], 0.0, 10.0) == [[0.0, 3.0], [5.0, 6.0]]


def test_the_requested_sleep_of_the_named_package_is_recorded_not_others():
    async def ours() -> None:
        await asyncio.sleep(0.02)

    async def main() -> None:
        await ours()
        # Started by the event loop, not awaited by our code: not attributed to us.
        await asyncio.ensure_future(asyncio.sleep(0.01))

    waits.clear()
    waits.install(("tests.unit.test_benchmarks",))
    try:
        asyncio.run(main())
    finally:
        waits.uninstall()
    ((start, end, prefix),) = waits.recorded()
    assert prefix == "tests.unit.test_benchmarks"
    assert end - start == pytest.approx(0.02)  # what was asked for, not how long it took
    waits.clear()


def test_only_the_waiting_part_of_the_wall_time_is_scaled_back():
    m = Measured(
        summary={},
        wall_s=10.0,
        waited_s=1.0,
        time_scale=0.01,
        cpu_s=0.0,
        peak_rss_mb=0.0,
        baseline_rss_mb=0.0,
        marketo={},
        dynamics={},
        marketo_server_s=0.0,
        dynamics_server_s=0.0,
        dynamics_execution_s=0.0,
    )
    assert m.real_wall_s == pytest.approx(9.0 + 100.0)


def test_minimum_calls_follow_the_batch_and_page_limits():
    first_load = Work(
        contacts_read=5000,
        leads_read=5000,
        first_run=True,
        marketo_writes=10_000,
        dynamics_writes=10_000,
    )
    # Marketo: a paging token, 34 creates of 300; Dataverse: one page per table, 10 batches.
    assert min_calls(first_load) == {"marketo": 35, "dynamics": 12}
    assert min_calls(Work()) == {"marketo": 2, "dynamics": 2}  # an idle cycle
    reconcile = Work(contacts_read=12_000, leads_read=0, expired=True)
    assert min_calls(reconcile)["dynamics"] == 3 + 1 + 2


def test_the_binding_limit_is_the_largest_time_a_limit_imposes():
    b = limits.bounds(
        marketo_calls=500,
        dynamics_calls=10,
        marketo_server_s=100.0,
        dynamics_server_s=5.0,
        dynamics_execution_s=40.0,
    )
    assert max(b, key=lambda k: b[k]) == "Marketo rate (50 calls / 20 s)"
    assert b["Marketo rate (50 calls / 20 s)"] == pytest.approx(200.0)
    assert b["Marketo daily quota (40,000)"] == 0
    assert limits.bounds(90_000, 0, 0, 0, 0)["Marketo daily quota (40,000)"] == 2 * 86_400
