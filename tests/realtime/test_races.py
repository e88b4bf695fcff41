"""Retries and races never make a second Dynamics record: duplicate deliveries,
concurrent deliveries for one person (same or different table), and a background
cycle started by the timer at the same moment."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.realtime.support import (
    MASTER_KEY,
    Webhook,
    activities,
    dynamics_records,
)
from tests.scenarios.world import World


def test_concurrent_duplicate_deliveries_create_one_record(world: World, hook: Webhook):
    mid = world.marketo_create(email="twice@example.com", firstName="Echo", lastName="Twice")
    with ThreadPoolExecutor(8) as pool:
        replies = [r.json() for r in pool.map(lambda _: hook.sync(mid), range(8))]
    statuses = sorted(r["status"] for r in replies)
    assert statuses == ["already-synced"] * 7 + ["created"], replies
    assert len({r["dynamicsId"] for r in replies}) == 1
    (record,) = dynamics_records(world, "lead", mid)
    assert record["leadid"] == replies[0]["dynamicsId"]
    assert world.person(mid)["dynamicsId"] == record["leadid"]  # type: ignore[index]
    assert len(activities(world, mid, "Sync Person to Microsoft")) == 1


def test_concurrent_deliveries_for_lead_and_contact_create_one_record(world: World, hook: Webhook):
    mid = world.marketo_create(email="both@example.com", lastName="Undecided")
    bodies = [{"leadId": mid, "syncAs": "lead" if n % 2 else "contact"} for n in range(6)]
    with ThreadPoolExecutor(6) as pool:
        replies = [r.json() for r in pool.map(hook.call, bodies)]
    assert [r["status"] for r in replies].count("created") == 1, replies
    assert len({(r["dynamicsId"], r["dynamicsType"]) for r in replies}) == 1
    records = dynamics_records(world, "lead", mid) + dynamics_records(world, "contact", mid)
    assert len(records) == 1


def run_timer(functions_url: str) -> int:
    # The host's admin endpoint runs the timer function to completion.
    with httpx.Client(base_url=functions_url, timeout=60) as c:
        r = c.post("/admin/functions/sync_timer?wait=true", headers={"x-functions-key": MASTER_KEY})
        return r.status_code


def assert_one_record_each(world: World, ids: list[int]) -> None:
    links = world.store().links_by_marketo(ids)
    for mid in ids:
        (record,) = dynamics_records(world, "lead", mid)
        person = world.person(mid)
        assert person is not None and person["dynamicsId"] == record["leadid"]
        assert links[mid].dynamics_id == record["leadid"] and links[mid].entity == "lead"
    assert world.dyn_count("lead") == len(ids)


def test_timer_cycle_between_the_create_and_the_link_creates_no_duplicates(
    world: World, hook: Webhook, functions_url: str
):
    """The cycle sees the new Dynamics leads while the webhook is still writing the id
    back to Marketo: it links them to their people (by the Marketo id they carry)
    instead of creating new Marketo people, and both writers agree."""
    world.cycle()  # cursors exist: the timer's cycle reads deltas, as in production
    ids = [
        world.marketo_create(email=f"race{n}@example.com", firstName=f"R{n}", lastName="Acer")
        for n in range(4)
    ]
    people_before = world.marketo_admin("GET", "stats")["people"]
    # Hold every Marketo write for a while: the webhook's write-back comes after the
    # Dynamics create, so the records are visible before the links exist.
    world.marketo_admin(
        "POST", "latency", json={"endpoint": "POST /rest/v1/leads.json", "fixed_s": 0.8}
    )
    with ThreadPoolExecutor(4) as pool:
        replies = pool.map(hook.sync, ids)
        for _ in range(100):
            if world.dyn_count("lead") == len(ids):
                break
            time.sleep(0.02)
        assert run_timer(functions_url) == 200
        assert all(r.json()["status"] == "created" for r in replies)
    (cycle,) = world.store().recent_cycles(1)
    assert json.loads(cycle["counts"])["linked"] == len(ids), cycle  # the race happened
    world.marketo_admin("DELETE", "latency")
    world.cycle()
    assert world.marketo_admin("GET", "stats")["people"] == people_before
    assert_one_record_each(world, ids)


def test_timer_cycles_and_deliveries_all_at_once_create_no_duplicates(
    world: World, hook: Webhook, functions_url: str
):
    world.cycle()
    ids = [
        world.marketo_create(email=f"race{n}@example.com", firstName=f"R{n}", lastName="Acer")
        for n in range(6)
    ]
    people_before = world.marketo_admin("GET", "stats")["people"]
    with ThreadPoolExecutor(8) as pool:
        cycles = [pool.submit(run_timer, functions_url) for _ in range(2)]
        replies = list(pool.map(hook.sync, ids + ids))
        assert [c.result() for c in cycles] == [200, 200]
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
    world.cycle()  # and one more after everything settled
    assert world.marketo_admin("GET", "stats")["people"] == people_before
    assert_one_record_each(world, ids)
