"""Crashes, overlapping runs, expired delta tokens, throttling, quota and rejections.

Crashes are injected at our own seams (the state store) with a BaseException, which
nothing in the engine catches: the run dies mid-way like a killed worker, and the
lease is left behind as a dead process would leave it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sync_core.entrypoints import run_cycle
from sync_core.tablestore import TableStateStore
from tests.scenarios.test_delta_sync import linked_contact, linked_lead
from tests.scenarios.world import World


class Crash(BaseException):
    """The worker died here."""


def crash_once(monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    original: Callable[..., Any] = getattr(TableStateStore, method)
    state = {"armed": True}

    async def dying(self: TableStateStore, *args: Any, **kwargs: Any) -> Any:
        if state["armed"]:
            state["armed"] = False
            raise Crash(method)
        return await original(self, *args, **kwargs)

    async def keep_lease(*args: Any, **kwargs: Any) -> None:
        return None

    monkeypatch.setattr(TableStateStore, method, dying)
    # A killed worker never releases its lease.
    monkeypatch.setattr(TableStateStore, "release_lease", keep_lease)


def crashed_cycle(world: World, monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    with monkeypatch.context() as m:
        crash_once(m, method)
        with pytest.raises(Crash):
            world.cycle()
    # Time passes: the dead run's lease expires.
    store = world.store()
    row = store._t("state").get_entity("lease", "cycle")
    row["expires"] = 0.0
    store._t("state").upsert_entity(row)


def test_crash_between_marketo_create_and_link_commit_creates_no_duplicate(
    world: World, monkeypatch: pytest.MonkeyPatch
):
    cid = world.dyn_create("contact", lastname="Noether", emailaddress1=None)
    crashed_cycle(world, monkeypatch, "save_links")
    summary = world.cycle()
    assert summary["counts"]["created_in_marketo"] == 0 and summary["counts"]["linked"] == 1
    record = world.dyn_get("contact", cid)
    assert record and record["new_marketoid"]
    person = world.person(int(record["new_marketoid"]))
    assert person and person["dynamicsId"] == cid and person["lastName"] == "Noether"
    stats = world.marketo_admin("GET", "stats")
    assert stats["people"] == 1


def test_crash_after_write_before_commit_resumes_without_rewriting(
    world: World, monkeypatch: pytest.MonkeyPatch
):
    cid, mid = linked_contact(world)
    world.marketo_edit(mid, title="Mathematician")
    crashed_cycle(world, monkeypatch, "save_links")
    assert world.dyn_get("contact", cid)["jobtitle"] == "Mathematician"  # type: ignore[index]
    summary = world.cycle()
    assert summary["counts"]["to_dynamics"] == 0 and summary["counts"]["to_marketo"] == 0
    assert world.cycle()["counts"]["to_dynamics"] == 0


def test_crash_before_cursor_commit_loses_nothing(world: World, monkeypatch: pytest.MonkeyPatch):
    cid, mid = linked_contact(world)
    world.dyn_edit("contact", cid, jobtitle="Poet")
    world.marketo_edit(mid, city="Bath")
    crashed_cycle(world, monkeypatch, "set_cursors")
    world.cycle()
    assert world.person(mid)["title"] == "Poet"  # type: ignore[index]
    assert world.dyn_get("contact", cid)["address1_city"] == "Bath"  # type: ignore[index]
    assert len(world.people_by_email("ada@example.com")) == 1


def test_two_overlapping_cycles_never_both_write(world: World):
    for n in range(5):
        world.dyn_create("lead", lastname=f"L{n}", emailaddress1=f"l{n}@example.com")
    results: list[dict[str, Any]] = []
    start = threading.Barrier(2)

    def run() -> None:
        start.wait()
        results.append(world.cycle())

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    outcomes = sorted(r["outcome"] for r in results)
    assert outcomes == ["skipped", "succeeded"], results
    assert world.marketo_admin("GET", "stats")["people"] == 5


def test_expired_delta_token_triggers_a_full_reconcile(world: World):
    cid, mid = linked_contact(world)
    world.dyn_edit("contact", cid, jobtitle="Edited while away")
    world.dynamics_admin("POST", "change-tracking/age", json={"days": 30})
    summary = world.cycle()
    assert "contact" in summary["fullReconcile"]
    assert world.person(mid)["title"] == "Edited while away"  # type: ignore[index]
    assert len(world.people_by_email("ada@example.com")) == 1
    assert world.cycle()["fullReconcile"] == []


def test_a_record_deleted_while_the_delta_token_was_dead_is_still_flagged(world: World):
    # The full re-read after expiry has no deletes in it: the engine finds them itself.
    cid, mid = linked_contact(world)
    keep, _ = linked_lead(world)
    world.dynamics_admin("POST", "change-tracking/age", json={"days": 30})
    world.dyn_delete("contact", cid)
    summary = world.cycle()
    assert "contact" in summary["fullReconcile"]
    assert summary["counts"]["deleted_in_dynamics"] == 1
    person = world.person(mid)
    assert person is not None and person["dynamicsDeleted"] is True
    assert world.store().links_by_marketo([mid]) == {}
    assert world.dyn_get("lead", keep) is not None  # the lead's link is untouched
    assert world.cycle()["counts"]["deleted_in_dynamics"] == 0


class LoseFirstCreate(httpx.AsyncHTTPTransport):
    """The network between the sync and Marketo: the first create of one action reaches
    Marketo and is applied, but its answer never comes back (a timeout)."""

    def __init__(self, action: str) -> None:
        super().__init__()
        self.action = f'"{action}"'.encode()
        self.lost = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if not self.lost and self.action in request.content:
            self.lost += 1
            await response.aread()
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return response


@pytest.mark.parametrize("action", ["createOnly", "createDuplicate"])
def test_a_create_whose_answer_was_lost_is_found_not_repeated(world: World, action: str):
    # createOnly creates the first record of an email no person has; the second record
    # of that email gets its own person from createDuplicate.
    ids = [
        world.dyn_create("contact", lastname=f"Lost{n}", emailaddress1="lost@example.com")
        for n in range(2)
    ]
    network = LoseFirstCreate(action)
    summary = asyncio.run(
        run_cycle(world.settings(), ca_bundle=world.ca_bundle, marketo_transport=network)
    )
    assert network.lost == 1 and summary["outcome"] == "succeeded", summary["message"]
    assert summary["counts"]["created_in_marketo"] == 2
    people = world.people_by_email("lost@example.com")
    assert len(people) == 2
    links = world.store().links_by_marketo([int(p["id"]) for p in people])
    assert sorted(link.dynamics_id for link in links.values()) == sorted(ids)


def test_dynamics_429_is_waited_out(world: World):
    cid, mid = linked_contact(world)
    world.marketo_edit(mid, title="Throttled")
    world.dynamics_admin(
        "PUT",
        "faults",
        json={"endpoint": "POST $batch", "fault": "429", "count": 1, "retry_after": 1},
    )
    summary = world.cycle()
    assert summary["counts"]["to_dynamics"] == 1
    assert world.dyn_get("contact", cid)["jobtitle"] == "Throttled"  # type: ignore[index]
    assert world.dynamics_admin("GET", "stats")["POST $batch"]["throttled"] == 1


def test_marketo_concurrency_limit_and_server_errors_are_retried(world: World):
    cid, mid = linked_contact(world)
    world.dyn_edit("contact", cid, jobtitle="Retried")
    world.marketo_admin(
        "POST", "faults", json={"endpoint": "POST /rest/v1/leads.json", "kind": "615", "count": 1}
    )
    world.marketo_admin(
        "POST",
        "faults",
        json={"endpoint": "POST /rest/v1/leads.json", "kind": "http503", "count": 1},
    )
    summary = world.cycle()
    assert summary["outcome"] == "succeeded"
    assert world.person(mid)["title"] == "Retried"  # type: ignore[index]


def test_quota_budget_stops_the_cycle_and_the_next_one_catches_up(world: World):
    world.extra_env.update(SYNC_MARKETO_DAILY_QUOTA="2", SYNC_MARKETO_QUOTA_SHARE="1")
    for n in range(3):
        world.dyn_create("contact", lastname=f"Q{n}", emailaddress1=f"q{n}@example.com")
    summary = world.cycle()
    assert summary["outcome"] == "stopped" and "budget" in summary["message"]
    world.extra_env.update(SYNC_MARKETO_DAILY_QUOTA="50000")
    summary = world.cycle()
    assert summary["outcome"] == "succeeded"
    assert world.marketo_admin("GET", "stats")["people"] == 3
    for n in range(3):
        assert len(world.people_by_email(f"q{n}@example.com")) == 1


def test_dynamics_rejection_is_logged_and_the_rest_of_the_batch_goes_through(world: World):
    world.setup()
    lid, bad = linked_lead(world)
    cid, good = linked_contact(world)
    other_lid, other = linked_lead(world, emailaddress1="other@example.com", lastname="Other")
    world.dynamics_admin(
        "POST",
        "rules",
        json={"table": "lead", "condition": "jobtitle eq 'Forbidden'",
              "message": "Job title not allowed", "on": ["update"]},
    )  # fmt: skip
    world.marketo_edit(bad, title="Forbidden")
    world.marketo_edit(other, title="Allowed")
    world.marketo_edit(good, title="Fine")
    summary = world.cycle()
    assert summary["counts"]["rejected"] == 1
    assert world.dyn_get("lead", lid)["jobtitle"] != "Forbidden"  # type: ignore[index]
    assert world.dyn_get("lead", other_lid)["jobtitle"] == "Allowed"  # type: ignore[index]
    assert world.dyn_get("contact", cid)["jobtitle"] == "Fine"  # type: ignore[index]
    errors = world.store().list_errors()
    assert [(e["code"], int(e["marketoId"])) for e in errors] == [("0x80040265", bad)]
    log = world.marketo_admin("GET", f"people/{bad}/activities")
    assert any("0x80040265" in str(a) and "Job title not allowed" in str(a) for a in log), log
    # The same rejected value is not retried every cycle.
    again = world.cycle()
    assert again["counts"]["rejected"] == 0 and len(world.store().list_errors()) == 1


def test_lost_state_table_rebuilds_links_from_the_records(world: World):
    cid, mid = linked_contact(world)
    world.prefix = "lost" + world.prefix[:8]  # a brand-new, empty state store
    summary = world.cycle()
    assert summary["counts"]["created_in_marketo"] == 0 and summary["counts"]["linked"] == 1
    assert len(world.people_by_email("ada@example.com")) == 1
    assert world.store().links_by_marketo([mid])[mid].dynamics_id == cid
    world.marketo_edit(mid, title="After rebuild")
    world.cycle()
    assert world.dyn_get("contact", cid)["jobtitle"] == "After rebuild"  # type: ignore[index]


def test_expired_marketo_token_is_refreshed(world: World):
    cid, mid = linked_contact(world)
    world.marketo_admin("POST", "tokens/expire")
    world.dyn_edit("contact", cid, jobtitle="Fresh token")
    summary = world.cycle()
    assert summary["outcome"] == "succeeded"
    assert world.person(mid)["title"] == "Fresh token"  # type: ignore[index]


def test_a_load_larger_than_one_run_continues_where_it_stopped(world: World):
    world.extra_env.update(SYNC_DYNAMICS_PAGE_SIZE="2", SYNC_CYCLE_BUDGET_SECONDS="0")
    for n in range(5):
        world.dyn_create("contact", lastname=f"P{n}", emailaddress1=f"p{n}@example.com")
    outcomes = [world.cycle()["outcome"] for _ in range(3)]
    assert outcomes == ["partial", "partial", "succeeded"]
    assert world.marketo_admin("GET", "stats")["people"] == 5
    world.extra_env.update(SYNC_CYCLE_BUDGET_SECONDS="480")
    idle = world.cycle()
    assert idle["counts"]["created_in_marketo"] == 0 and idle["fullReconcile"] == []
