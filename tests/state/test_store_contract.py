"""One contract for both state stores: Table Storage (on Azurite) and the in-memory one.

Every method of the `StateStore` protocol is exercised against both, through its async
API, so the simulation's store can never be kinder than the real one without a test here
failing first.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import AzureError, ServiceRequestError

from sync_core import state
from sync_core.memstore import MemoryStateStore
from sync_core.state import Link
from sync_core.tablestore import TableStateStore
from tests.support.blocking import run_async


@pytest.fixture(params=["table", "memory"])
def store(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        s: Any = MemoryStateStore()
    else:
        conn = request.getfixturevalue("azurite")
        s = TableStateStore.from_connection_string(conn, prefix="c" + uuid.uuid4().hex[:10])
    asyncio.run(s.ensure_tables())
    asyncio.run(s.ensure_tables())  # idempotent
    yield s
    s.close()


@run_async
async def test_values_and_cursors(store: Any) -> None:
    assert await store.get_value("meta", "x") is None
    await store.set_values("meta", {"x": "1", "odd/key#?": "2", "gone": None})
    assert await store.get_value("meta", "x") == "1"
    assert await store.get_value("meta", "odd/key#?") == "2"
    assert await store.get_value("other", "x") is None
    await store.set_values("meta", {"x": None})
    assert await store.get_value("meta", "x") is None
    await store.set_cursors({"dynamics-contact": "https://x/contacts?$deltatoken=1!2"})
    assert await store.get_cursor("dynamics-contact") == "https://x/contacts?$deltatoken=1!2"
    await store.set_cursors({"dynamics-contact": "next"})
    assert await store.get_cursor("dynamics-contact") == "next"
    await store.set_cursors({"dynamics-contact": None, "never-set": None})
    assert await store.get_cursor("dynamics-contact") is None


@run_async
async def test_hash_key_generated_once(store: Any) -> None:
    first = await store.hash_key()
    assert len(first) == 32 and await store.hash_key() == first
    assert await store.hash_key("configured-secret") == b"configured-secret"
    assert await store.hash_key() == first


@run_async
async def test_lease_excludes_others_until_released_or_expired(store: Any) -> None:
    assert await store.acquire_lease("a", 60)
    assert await store.acquire_lease("a", 60)  # the holder renews
    assert not await store.acquire_lease("b", 60)
    await store.release_lease("b")  # not the holder: no effect
    assert not await store.acquire_lease("b", 60)
    await store.release_lease("a")
    assert await store.acquire_lease("b", 0)  # expires at once
    await asyncio.sleep(0.01)
    assert await store.acquire_lease("c", 60)  # b's lease expired
    assert await store.acquire_lease("x", 60, name="person-7")  # leases are independent by name
    assert not await store.acquire_lease("y", 60, name="person-7")
    await store.release_lease("c")
    await store.release_lease("c")  # releasing twice is harmless


@run_async
async def test_lease_has_one_owner_among_racing_threads(store: Any) -> None:
    owners = [f"o{i}" for i in range(6)]
    won = await asyncio.gather(*(store.acquire_lease(o, 60, name="race") for o in owners))
    assert sum(won) == 1


@run_async
async def test_counter_adds_up_across_racing_writers(store: Any) -> None:
    # The timer and webhook deliveries in several workers count into one quota row
    # (Table Storage: each add runs in its own thread, so the writers really race).
    async def count() -> None:
        for _ in range(5):
            await store.add_to_value("quota", "2026-12-01", 3)

    await asyncio.gather(*(count() for _ in range(6)))
    assert await store.get_value("quota", "2026-12-01") == str(6 * 5 * 3)
    assert await store.add_to_value("quota", "2026-12-01", 10) == 100


@run_async
async def test_links_by_both_ids_with_base(store: Any) -> None:
    did = str(uuid.uuid4()).upper()
    await store.save_links([Link(12345, "contact", did, {"email": "h1"})], new=True)
    by_m = await store.links_by_marketo([12345, 999])
    assert list(by_m) == [12345]
    link = by_m[12345]
    assert (link.entity, link.dynamics_id, link.base) == ("contact", did.lower(), {"email": "h1"})
    assert link.linked_at
    by_d = await store.links_by_dynamics("contact", [did, did.lower()])
    assert list(by_d) == [did.lower()] and by_d[did.lower()].marketo_id == 12345
    assert await store.links_by_dynamics("lead", [did]) == {}
    # A returned link is a copy: changing it changes nothing stored.
    link.base["email"] = "changed"
    assert (await store.links_by_marketo([12345]))[12345].base == {"email": "h1"}


@run_async
async def test_base_update_keeps_linked_at_and_index(store: Any) -> None:
    did = str(uuid.uuid4())
    await store.save_links([Link(7, "lead", did, {"a": "1"})], new=True)
    first = (await store.links_by_marketo([7]))[7]
    first.base = {"a": "2"}
    await store.save_links([first])
    again = (await store.links_by_dynamics("lead", [did]))[did]
    assert again.base == {"a": "2"} and again.linked_at == first.linked_at


@run_async
async def test_link_without_index_is_not_found_by_dynamics_id(store: Any) -> None:
    did = str(uuid.uuid4())
    await store.save_links([Link(8, "lead", did)])
    assert 8 in await store.links_by_marketo([8])
    assert await store.links_by_dynamics("lead", [did]) == {}


@run_async
async def test_stale_index_after_relink_is_ignored(store: Any) -> None:
    old, new = str(uuid.uuid4()), str(uuid.uuid4())
    await store.save_links([Link(9, "contact", old)], new=True)
    await store.save_links([Link(9, "contact", new)], new=True)
    assert await store.links_by_dynamics("contact", [old]) == {}
    assert (await store.links_by_dynamics("contact", [new]))[new].marketo_id == 9


@run_async
async def test_hints_give_the_same_answer(store: Any) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    await store.save_links([Link(21, "lead", a), Link(22, "lead", b)], new=True)
    plain = await store.links_by_dynamics("lead", [a, b])
    hinted = await store.links_by_dynamics("lead", [a, b], {a: 21, b: 999})
    assert {k: v.marketo_id for k, v in plain.items()} == {a: 21, b: 22}
    assert {k: v.marketo_id for k, v in hinted.items()} == {a: 21, b: 22}


@run_async
@pytest.mark.parametrize("counted", [True, False])
async def test_a_page_of_records_is_looked_up_right(store: Any, counted: bool) -> None:
    # Enough ids to fill every index partition: Table Storage then reads whole
    # partitions where the link count says they are small, point reads otherwise.
    if counted:
        await store.ensure_link_counts()
    linked = [Link(5000 + i, "contact", str(uuid.uuid4())) for i in range(400)]
    await store.save_links(linked, new=True)
    stale, fresh = str(uuid.uuid4()), str(uuid.uuid4())
    await store.save_links([Link(7, "contact", stale)], new=True)
    await store.save_links([Link(7, "contact", fresh)], new=True)
    await store.save_links([Link(8, "lead", linked[0].dynamics_id.upper())], new=True)
    unknown = [str(uuid.uuid4()) for _ in range(400)]
    asked = [x.dynamics_id.upper() for x in linked] + unknown + [stale, fresh]
    found = await store.links_by_dynamics("contact", asked)
    expected = {x.dynamics_id: x.marketo_id for x in linked} | {fresh: 7}
    assert {k: v.marketo_id for k, v in found.items()} == expected


@run_async
async def test_many_links_in_one_bucket_and_iteration(store: Any) -> None:
    links = [Link(1000 + i, "lead", str(uuid.uuid4())) for i in range(120)]
    await store.save_links(links, new=True)
    found = await store.links_by_marketo(range(990, 1130))
    assert sorted(found) == list(range(1000, 1120))
    assert sorted([link.marketo_id async for link in store.iter_links()]) == list(range(1000, 1120))


@run_async
async def test_ids_spread_thinly_over_buckets_are_found_beside_dense_runs(store: Any) -> None:
    # A reconcile's page names people spread over many buckets (Table Storage reads them
    # by row key, 14 to a query); a first load's names a run of consecutive ids (one
    # range query). Both in one call, with ids that have no link among them.
    linked = [Link(m, "contact", str(uuid.uuid4())) for m in range(2000, 5000, 3)]
    await store.save_links(linked, new=True)
    sparse = list(range(2000, 5000, 51))  # about 20 a bucket, spread over it
    dense = list(range(4200, 4300))
    absent = [1, 999_999, 2001, 4999]
    found = await store.links_by_marketo([*sparse, *dense, *absent])
    expected = {m for m in [*sparse, *dense] if m % 3 == 2000 % 3}
    assert set(found) == expected
    assert all(found[m].dynamics_id == linked[(m - 2000) // 3].dynamics_id for m in expected)


@run_async
async def test_close_links_removes_both_rows(store: Any) -> None:
    did = str(uuid.uuid4())
    await store.save_links([Link(31, "contact", did)], new=True)
    link = (await store.links_by_marketo([31]))[31]
    await store.close_links([link])
    await store.close_links([link])  # already gone: harmless
    assert await store.links_by_marketo([31]) == {}
    assert await store.links_by_dynamics("contact", [did]) == {}
    assert [x async for x in store.iter_links()] == []


@run_async
async def test_sets(store: Any) -> None:
    assert await store.members("retry") == []
    await store.add_to_set("retry", ["3", "1", "a/b#c"])
    await store.add_to_set("retry", ["1"])  # already a member
    await store.add_to_set("intentlead", ["x"], {"note": "n"})
    assert sorted(await store.members("retry")) == ["1", "3", "a/b#c"]
    assert await store.members("intentlead") == ["x"]
    await store.remove_from_set("retry", ["1", "never-added", "a/b#c"])
    assert await store.members("retry") == ["3"]
    await store.remove_from_set("retry", [])


@run_async
async def test_cycle_log_newest_first(store: Any) -> None:
    t0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    for n in range(3):
        started = (t0 + timedelta(minutes=5 * n)).isoformat()
        await store.record_cycle(
            f"c{n}",
            {
                "started": started,
                "outcome": "succeeded",
                "counts": {"linked": n},
                "fullReconcile": [],
            },
        )
    rows = await store.recent_cycles(limit=2)
    assert [r["cycleId"] if "cycleId" in r else r["RowKey"][-2:] for r in rows] == ["c2", "c1"]
    assert rows[0]["outcome"] == "succeeded"
    assert rows[0]["counts"] == '{"linked": 2}' and rows[0]["fullReconcile"] == "[]"
    assert len(await store.recent_cycles()) == 3


@run_async
async def test_errors_with_since(store: Any) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    await store.record_errors(
        [
            {"code": "X1", "fields": ["email"], "marketoId": 5},
            {"code": "X2", "fields": [], "marketoId": 6},
        ]
    )
    rows = await store.list_errors()
    assert sorted(r["code"] for r in rows) == ["X1", "X2"]
    one = next(r for r in rows if r["code"] == "X1")
    assert one["fields"] == '["email"]' and one["marketoId"] == 5 and one["at"]
    assert len(await store.list_errors(since=before)) == 2
    assert await store.list_errors(since=datetime.now(UTC) + timedelta(hours=1)) == []


@run_async
async def test_a_signed_error_is_owed_to_the_activity_log_until_done(store: Any) -> None:
    signed = {"code": "0x80044331", "fields": ["title"], "marketoId": 7, "signature": "s1"}
    added = await store.record_errors([signed, {"code": "X", "marketoId": 8}])
    assert [r["code"] for r in added] == ["0x80044331", "X"]
    (owed,) = await store.pending_error_logs()  # unsigned rows are not kept owed
    assert owed == {**signed, "at": owed["at"]} and datetime.fromisoformat(owed["at"])
    # The same refusal met again (a rerun after a crash): no second row, no second line.
    assert await store.record_errors([signed]) == []
    assert await store.pending_error_logs() == [owed]
    await store.error_logs_done(["s1", "never-owed"])
    assert await store.pending_error_logs() == []
    assert await store.record_errors([signed]) == []  # still deduped once sent
    await store.record_errors([{**signed, "signature": f"s{n}"} for n in range(2, 6)])
    assert len(await store.pending_error_logs(limit=3)) == 3


@run_async
async def test_person_events_per_person(store: Any) -> None:
    await store.record_person_events(
        [
            {"marketoId": 41, "direction": "to-dynamics", "fields": ["title"]},
            {"marketoId": 42, "direction": "to-marketo", "fields": ["email"]},
        ]
    )
    await asyncio.sleep(0.002)  # newest first needs a later millisecond
    await store.record_person_events([{"marketoId": 41, "direction": "to-marketo", "fields": []}])
    mine = await store.person_events(41)
    assert len(mine) == 2 and all(r["marketoId"] == 41 for r in mine)
    assert mine[0]["direction"] == "to-marketo"  # newest first
    assert mine[1]["fields"] == '["title"]'
    assert len(await store.person_events(42)) == 1 and await store.person_events(43) == []


@run_async
async def test_two_person_log_batches_in_one_millisecond_both_kept(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixed = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    monkeypatch.setattr(state, "_now", lambda: fixed)
    await store.record_person_events([{"marketoId": 51, "direction": "to-dynamics", "fields": []}])
    await store.record_person_events([{"marketoId": 51, "direction": "to-marketo", "fields": []}])
    assert len(await store.person_events(51)) == 2


@run_async
async def test_tables_exist_after_ensure_tables(store: Any) -> None:
    assert await store.missing_tables() == []


@run_async
async def test_saved_rows_carry_when_they_were_written(store: Any) -> None:
    before = datetime.now(UTC) - timedelta(minutes=1)
    await store.set_cursors({"dynamics-lead": "https://x/leads?$deltatoken=9", "a/b": "2"})
    saved = await store.saved("cursor")
    assert {k: v for k, (v, _) in saved.items()} == {
        "dynamics-lead": "https://x/leads?$deltatoken=9",
        "a/b": "2",
    }
    assert all(at is not None and at > before for _, at in saved.values())
    assert await store.saved("nothing-here") == {}


@run_async
async def test_link_counts_follow_saves_relinks_and_closes(store: Any) -> None:
    assert await store.link_counts() == {}  # seeded (empty) by ensure_tables
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    await store.save_links([Link(61, "lead", a), Link(62, "lead", b)], new=True)
    await store.save_links([Link(61, "lead", a, {"x": "1"})])  # a base update counts nothing
    assert await store.link_counts() == {"lead": 2}
    # The lead qualified into a contact: the person's link moves, one link all the same.
    await store.save_links([Link(61, "contact", str(uuid.uuid4()))], new=True)
    assert await store.link_counts() == {"lead": 1, "contact": 1}
    await store.close_links([Link(62, "lead", b)])
    await store.close_links([Link(62, "lead", b)])  # already gone: counted once
    assert await store.link_counts() == {"lead": 0, "contact": 1}
    assert await store.ensure_link_counts() == {"lead": 0, "contact": 1}


@run_async
async def test_cycles_since_and_errors_limit(store: Any) -> None:
    t0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    for n in range(3):
        started = (t0 + timedelta(hours=n)).isoformat()
        await store.record_cycle(f"c{n}", {"started": started, "outcome": "succeeded"})
    since = await store.cycles_since(t0 + timedelta(minutes=30))
    assert [r["started"] for r in since] == [
        (t0 + timedelta(hours=2)).isoformat(),
        (t0 + timedelta(hours=1)).isoformat(),
    ]
    await store.record_errors([{"code": f"E{n}", "marketoId": n} for n in range(5)])
    assert len(await store.list_errors(limit=2)) == 2


# ---- the memory store's fault injection --------------------------------------------
@run_async
async def test_outage_raises_the_sdk_error_for_exactly_the_chosen_calls() -> None:
    store = MemoryStateStore()
    await store.set_values("meta", {"x": "1"})
    store.fail_calls(2, count=2)  # the 2nd and 3rd call from now
    assert await store.get_value("meta", "x") == "1"
    for _ in range(2):
        with pytest.raises(ServiceRequestError) as info:
            await store.get_value("meta", "x")
        assert isinstance(info.value, AzureError)
    assert await store.get_value("meta", "x") == "1"
    store.fail_calls(1, count=10**6)
    with pytest.raises(ServiceRequestError):
        await store.save_links([Link(1, "lead", "d")])
    store.heal()
    assert await store.links_by_marketo([1]) == {}  # the failed write left nothing behind


@run_async
async def test_lease_etag_conflict_loses_once() -> None:
    store = MemoryStateStore()
    store.lease_conflicts = 1
    assert not await store.acquire_lease("a", 60)
    assert await store.acquire_lease("a", 60)


@run_async
async def test_injected_clock_expires_leases() -> None:
    now = [1000.0]
    store = MemoryStateStore(clock=lambda: now[0])
    assert await store.acquire_lease("a", 900)
    assert store.lease_holder() == "a"
    now[0] += 899
    assert not await store.acquire_lease("b", 900)
    now[0] += 2
    assert store.lease_holder() is None
    assert await store.acquire_lease("b", 900)
