"""Throttled, unavailable or slow peers: the webhook answers 503 with Retry-After
before Marketo's 30 s timeout and leaves nothing half-written; the next delivery
finishes the job, whatever point the failed one reached."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

import sync_core.realtime as realtime
import sync_core.syncperson as syncperson
from tests.realtime.support import (
    Webhook,
    activities,
    dynamics_records,
    snapshot,
)
from tests.scenarios.world import World


def person(world: World) -> int:
    return world.marketo_create(email="wait@example.com", firstName="Wai", lastName="Ting")


def assert_unavailable(r: httpx.Response, retry_after: int | None = None) -> None:
    assert r.status_code == 503, r.text
    assert r.json()["status"] == "unavailable"
    seconds = int(r.headers["retry-after"])
    assert seconds >= 1
    if retry_after is not None:
        assert seconds == retry_after


def assert_nothing_written(world: World, mid: int, before: dict[str, Any]) -> None:
    after = snapshot(world)
    assert after == before | {"dynamics_writes": after["dynamics_writes"]}
    assert dynamics_records(world, "lead", mid) == []
    assert "dynamicsId" not in (world.person(mid) or {})


def test_dynamics_throttling_is_a_503_with_its_retry_after(world: World, hook: Webhook):
    mid = person(world)
    world.dynamics_admin(
        "PUT", "faults", json={"endpoint": "PATCH leads", "fault": "429", "retry_after": 7}
    )
    before = snapshot(world)
    started = time.monotonic()
    r = hook.sync(mid)
    assert time.monotonic() - started < 3, "waited out a throttle Marketo cannot wait for"
    assert_unavailable(r, retry_after=7)
    assert_nothing_written(world, mid, before)
    world.dynamics_admin("DELETE", "faults")
    assert hook.sync(mid).json()["status"] == "created"
    assert len(dynamics_records(world, "lead", mid)) == 1


def test_dynamics_down_is_a_503_and_nothing_is_written(world: World, hook: Webhook):
    mid = person(world)
    world.dynamics_admin("PUT", "faults", json={"endpoint": "PATCH leads", "fault": "503"})
    before = snapshot(world)
    assert_unavailable(hook.sync(mid))
    assert_nothing_written(world, mid, before)
    assert activities(world, mid, "Dynamics Sync Error") == []


def test_one_transient_dynamics_failure_is_absorbed(world: World, hook: Webhook):
    mid = person(world)
    world.dynamics_admin(
        "PUT", "faults", json={"endpoint": "PATCH leads", "fault": "502", "count": 1}
    )
    r = hook.sync(mid)
    assert r.status_code == 200 and r.json()["status"] == "created", r.text
    assert len(dynamics_records(world, "lead", mid)) == 1


def test_marketo_throttling_on_the_read_is_a_503(world: World, hook: Webhook):
    mid = person(world)
    world.marketo_admin(
        "POST", "faults", json={"endpoint": "GET /rest/v1/leads.json", "kind": "606"}
    )
    before = snapshot(world)
    _, dynamics_calls = world.api_calls()
    assert_unavailable(hook.sync(mid), retry_after=20)
    world.marketo_admin("DELETE", "faults")  # so the checks below can read the person
    assert world.api_calls()[1] == dynamics_calls  # Dynamics was not even asked
    assert_nothing_written(world, mid, before)


def test_failure_after_the_create_is_finished_by_the_next_delivery(world: World, hook: Webhook):
    """The create is the commit point: if writing the id back to Marketo fails, the
    answer is 503 and the retry completes the person and the link (no second record)."""
    mid = person(world)
    world.marketo_admin(
        "POST", "faults", json={"endpoint": "POST /rest/v1/leads.json", "kind": "606"}
    )
    assert_unavailable(hook.sync(mid))
    (record,) = dynamics_records(world, "lead", mid)
    assert "dynamicsId" not in (world.person(mid) or {})
    assert world.store().links_by_marketo([mid]) == {}
    world.marketo_admin("DELETE", "faults")
    r = hook.sync(mid)
    assert r.json() == {
        "status": "already-synced",
        "dynamicsId": record["leadid"],
        "dynamicsType": "lead",
    }
    assert len(dynamics_records(world, "lead", mid)) == 1
    assert world.person(mid)["dynamicsId"] == record["leadid"]  # type: ignore[index]
    assert world.store().links_by_marketo([mid])[mid].dynamics_id == record["leadid"]
    # The activity was written by the delivery that created the record, once.
    assert len(activities(world, mid, "Sync Person to Microsoft")) == 1


def test_a_slow_dynamics_gets_a_503_before_marketo_gives_up_and_a_safe_retry(
    world: World, hook: Webhook, monkeypatch: pytest.MonkeyPatch
):
    """Past the deadline the outcome is unknown (here: the create lands after the
    answer); the retry finds the record instead of creating a second one."""
    monkeypatch.setattr(realtime, "DEADLINE_SECONDS", 1.0)
    mid = person(world)
    world.dynamics_admin("PUT", "latency", json={"endpoint": "PATCH leads", "latency_ms": 1500})
    started = time.monotonic()
    r = hook.sync(mid)
    assert time.monotonic() - started < 1.5
    assert_unavailable(r)
    time.sleep(0.8)  # the emulator finishes the create it was holding
    world.dynamics_admin("PUT", "latency", json={"endpoint": "PATCH leads", "latency_ms": 0})
    (record,) = dynamics_records(world, "lead", mid)
    r = hook.sync(mid)
    assert r.status_code == 200 and r.json()["dynamicsId"] == record["leadid"], r.text
    assert len(dynamics_records(world, "lead", mid)) == 1
    assert world.person(mid)["dynamicsId"] == record["leadid"]  # type: ignore[index]


def test_a_delivery_waiting_on_another_for_too_long_is_a_503(
    world: World, hook: Webhook, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(syncperson, "LEASE_WAIT_SECONDS", 0.3)
    mid = person(world)
    world.dynamics_admin("PUT", "latency", json={"endpoint": "PATCH leads", "latency_ms": 1200})
    first: list[int] = []
    slow = threading.Thread(target=lambda: first.append(hook.sync(mid).status_code))
    slow.start()
    time.sleep(0.4)
    r = hook.sync(mid)
    slow.join()
    assert first == [200]
    assert_unavailable(r, retry_after=syncperson.RETRY_AFTER_BUSY)
    assert len(dynamics_records(world, "lead", mid)) == 1


def concurrently(hook: Webhook, ids: list[int]) -> list[httpx.Response]:
    with ThreadPoolExecutor(len(ids)) as pool:
        return list(pool.map(hook.sync, ids))


def test_a_throttled_shared_read_is_a_503_for_each_delivery_that_joined_it(
    world: World, hook: Webhook
):
    """Concurrent deliveries share the worker's Marketo calls; when that call fails,
    each of them answers as it would alone, and the next ones are served normally."""
    ids = [world.marketo_create(email=f"t{n}@example.com", lastName=f"T{n}") for n in range(6)]
    world.marketo_admin(
        "POST", "faults", json={"endpoint": "GET /rest/v1/leads.json", "kind": "606"}
    )
    for r in concurrently(hook, ids):
        assert_unavailable(r, retry_after=20)
    world.marketo_admin("DELETE", "faults")
    assert {r.json()["status"] for r in concurrently(hook, ids)} == {"created"}


def test_deliveries_past_their_deadline_in_a_shared_call_leave_it_working(
    world: World, hook: Webhook, monkeypatch: pytest.MonkeyPatch
):
    """A delivery that gives up while it waits on the worker's Marketo call answers 503
    (as it would alone); the call and the deliveries after it are unaffected."""
    monkeypatch.setattr(realtime, "DEADLINE_SECONDS", 1.0)
    ids = [world.marketo_create(email=f"d{n}@example.com", lastName=f"D{n}") for n in range(6)]
    world.marketo_admin(
        "POST", "latency", json={"endpoint": "GET /rest/v1/leads.json", "fixed_s": 1.5}
    )
    for r in concurrently(hook, ids[:3]):
        assert_unavailable(r)
    world.marketo_admin("DELETE", "latency")
    monkeypatch.setattr(realtime, "DEADLINE_SECONDS", 25.0)
    # The call the first ones gave up on still finishes; these queue behind it and go.
    assert {r.json()["status"] for r in concurrently(hook, ids)} == {"created"}
