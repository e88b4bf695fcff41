"""One contract for both state stores: Table Storage (on Azurite) and the in-memory one.

Every public method is exercised against both, so the simulation's store can never be
kinder than the real one without a test here failing first.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import AzureError, ServiceRequestError

from sync_core.memstore import MemoryStateStore
from sync_core.state import Link, StateStore


@pytest.fixture(params=["table", "memory"])
def store(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        s: Any = MemoryStateStore()
    else:
        conn = request.getfixturevalue("azurite")
        s = StateStore.from_connection_string(conn, prefix="c" + uuid.uuid4().hex[:10])
    s.ensure_tables()
    s.ensure_tables()  # idempotent
    yield s
    s.close()


def test_values_and_cursors(store: Any) -> None:
    assert store.get_value("meta", "x") is None
    store.set_values("meta", {"x": "1", "odd/key#?": "2", "gone": None})
    assert store.get_value("meta", "x") == "1"
    assert store.get_value("meta", "odd/key#?") == "2"
    assert store.get_value("other", "x") is None
    store.set_values("meta", {"x": None})
    assert store.get_value("meta", "x") is None
    store.set_cursors({"dynamics-contact": "https://x/contacts?$deltatoken=1!2"})
    assert store.get_cursor("dynamics-contact") == "https://x/contacts?$deltatoken=1!2"
    store.set_cursors({"dynamics-contact": "next"})
    assert store.get_cursor("dynamics-contact") == "next"
    store.set_cursors({"dynamics-contact": None, "never-set": None})
    assert store.get_cursor("dynamics-contact") is None


def test_hash_key_generated_once(store: Any) -> None:
    first = store.hash_key()
    assert len(first) == 32 and store.hash_key() == first
    assert store.hash_key("configured-secret") == b"configured-secret"
    assert store.hash_key() == first


def test_lease_excludes_others_until_released_or_expired(store: Any) -> None:
    assert store.acquire_lease("a", 60)
    assert store.acquire_lease("a", 60)  # the holder renews
    assert not store.acquire_lease("b", 60)
    store.release_lease("b")  # not the holder: no effect
    assert not store.acquire_lease("b", 60)
    store.release_lease("a")
    assert store.acquire_lease("b", 0)  # expires at once
    time.sleep(0.01)
    assert store.acquire_lease("c", 60)  # b's lease expired
    assert store.acquire_lease("x", 60, name="person-7")  # leases are independent by name
    assert not store.acquire_lease("y", 60, name="person-7")
    store.release_lease("c")
    store.release_lease("c")  # releasing twice is harmless


def test_lease_has_one_owner_among_racing_threads(store: Any) -> None:
    results: dict[str, bool] = {}
    barrier = threading.Barrier(6)

    def take(owner: str) -> None:
        barrier.wait()
        results[owner] = store.acquire_lease(owner, 60, name="race")

    threads = [threading.Thread(target=take, args=(f"o{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results.values()) == 1


def test_counter_adds_up_across_racing_threads(store: Any) -> None:
    # The timer and webhook deliveries in several workers count into one quota row.
    barrier = threading.Barrier(6)

    def count() -> None:
        barrier.wait()
        for _ in range(5):
            store.add_to_value("quota", "2026-12-01", 3)

    threads = [threading.Thread(target=count) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get_value("quota", "2026-12-01") == str(6 * 5 * 3)
    assert store.add_to_value("quota", "2026-12-01", 10) == 100


def test_links_by_both_ids_with_base(store: Any) -> None:
    did = str(uuid.uuid4()).upper()
    store.save_links([Link(12345, "contact", did, {"email": "h1"})], new=True)
    by_m = store.links_by_marketo([12345, 999])
    assert list(by_m) == [12345]
    link = by_m[12345]
    assert (link.entity, link.dynamics_id, link.base) == ("contact", did.lower(), {"email": "h1"})
    assert link.linked_at
    by_d = store.links_by_dynamics("contact", [did, did.lower()])
    assert list(by_d) == [did.lower()] and by_d[did.lower()].marketo_id == 12345
    assert store.links_by_dynamics("lead", [did]) == {}
    # A returned link is a copy: changing it changes nothing stored.
    link.base["email"] = "changed"
    assert store.links_by_marketo([12345])[12345].base == {"email": "h1"}


def test_base_update_keeps_linked_at_and_index(store: Any) -> None:
    did = str(uuid.uuid4())
    store.save_links([Link(7, "lead", did, {"a": "1"})], new=True)
    first = store.links_by_marketo([7])[7]
    first.base = {"a": "2"}
    store.save_links([first])
    again = store.links_by_dynamics("lead", [did])[did]
    assert again.base == {"a": "2"} and again.linked_at == first.linked_at


def test_link_without_index_is_not_found_by_dynamics_id(store: Any) -> None:
    did = str(uuid.uuid4())
    store.save_links([Link(8, "lead", did)])
    assert 8 in store.links_by_marketo([8])
    assert store.links_by_dynamics("lead", [did]) == {}


def test_stale_index_after_relink_is_ignored(store: Any) -> None:
    old, new = str(uuid.uuid4()), str(uuid.uuid4())
    store.save_links([Link(9, "contact", old)], new=True)
    store.save_links([Link(9, "contact", new)], new=True)
    assert store.links_by_dynamics("contact", [old]) == {}
    assert store.links_by_dynamics("contact", [new])[new].marketo_id == 9


def test_hints_give_the_same_answer(store: Any) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    store.save_links([Link(21, "lead", a), Link(22, "lead", b)], new=True)
    plain = store.links_by_dynamics("lead", [a, b])
    hinted = store.links_by_dynamics("lead", [a, b], {a: 21, b: 999})
    assert {k: v.marketo_id for k, v in plain.items()} == {a: 21, b: 22}
    assert {k: v.marketo_id for k, v in hinted.items()} == {a: 21, b: 22}


def test_many_links_in_one_bucket_and_iteration(store: Any) -> None:
    links = [Link(1000 + i, "lead", str(uuid.uuid4())) for i in range(120)]
    store.save_links(links, new=True)
    found = store.links_by_marketo(range(990, 1130))
    assert sorted(found) == list(range(1000, 1120))
    assert sorted(link.marketo_id for link in store.iter_links()) == list(range(1000, 1120))


def test_close_links_removes_both_rows(store: Any) -> None:
    did = str(uuid.uuid4())
    store.save_links([Link(31, "contact", did)], new=True)
    link = store.links_by_marketo([31])[31]
    store.close_links([link])
    store.close_links([link])  # already gone: harmless
    assert store.links_by_marketo([31]) == {}
    assert store.links_by_dynamics("contact", [did]) == {}
    assert list(store.iter_links()) == []


def test_sets(store: Any) -> None:
    assert store.members("retry") == []
    store.add_to_set("retry", ["3", "1", "a/b#c"])
    store.add_to_set("retry", ["1"])  # already a member
    store.add_to_set("intentlead", ["x"], {"note": "n"})
    assert sorted(store.members("retry")) == ["1", "3", "a/b#c"]
    assert store.members("intentlead") == ["x"]
    store.remove_from_set("retry", ["1", "never-added", "a/b#c"])
    assert store.members("retry") == ["3"]
    store.remove_from_set("retry", [])


def test_cycle_log_newest_first(store: Any) -> None:
    t0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    for n in range(3):
        started = (t0 + timedelta(minutes=5 * n)).isoformat()
        store.record_cycle(
            f"c{n}",
            {
                "started": started,
                "outcome": "succeeded",
                "counts": {"linked": n},
                "fullReconcile": [],
            },
        )
    rows = store.recent_cycles(limit=2)
    assert [r["cycleId"] if "cycleId" in r else r["RowKey"][-2:] for r in rows] == ["c2", "c1"]
    assert rows[0]["outcome"] == "succeeded"
    assert rows[0]["counts"] == '{"linked": 2}' and rows[0]["fullReconcile"] == "[]"
    assert len(store.recent_cycles()) == 3


def test_errors_with_since(store: Any) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    store.record_errors(
        [
            {"code": "X1", "fields": ["email"], "marketoId": 5},
            {"code": "X2", "fields": [], "marketoId": 6},
        ]
    )
    rows = store.list_errors()
    assert sorted(r["code"] for r in rows) == ["X1", "X2"]
    one = next(r for r in rows if r["code"] == "X1")
    assert one["fields"] == '["email"]' and one["marketoId"] == 5 and one["at"]
    assert len(store.list_errors(since=before)) == 2
    assert store.list_errors(since=datetime.now(UTC) + timedelta(hours=1)) == []


def test_person_events_per_person(store: Any) -> None:
    store.record_person_events(
        [
            {"marketoId": 41, "direction": "to-dynamics", "fields": ["title"]},
            {"marketoId": 42, "direction": "to-marketo", "fields": ["email"]},
        ]
    )
    time.sleep(0.002)  # newest first needs a later millisecond
    store.record_person_events([{"marketoId": 41, "direction": "to-marketo", "fields": []}])
    mine = store.person_events(41)
    assert len(mine) == 2 and all(r["marketoId"] == 41 for r in mine)
    assert mine[0]["direction"] == "to-marketo"  # newest first
    assert mine[1]["fields"] == '["title"]'
    assert len(store.person_events(42)) == 1 and store.person_events(43) == []


def test_two_person_log_batches_in_one_millisecond_both_kept(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sync_core import state

    fixed = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    monkeypatch.setattr(state, "_now", lambda: fixed)
    store.record_person_events([{"marketoId": 51, "direction": "to-dynamics", "fields": []}])
    store.record_person_events([{"marketoId": 51, "direction": "to-marketo", "fields": []}])
    assert len(store.person_events(51)) == 2


# ---- the memory store's fault injection --------------------------------------------
def test_outage_raises_the_sdk_error_for_exactly_the_chosen_calls() -> None:
    store = MemoryStateStore()
    store.set_values("meta", {"x": "1"})
    store.fail_calls(2, count=2)  # the 2nd and 3rd call from now
    assert store.get_value("meta", "x") == "1"
    for _ in range(2):
        with pytest.raises(ServiceRequestError) as info:
            store.get_value("meta", "x")
        assert isinstance(info.value, AzureError)
    assert store.get_value("meta", "x") == "1"
    store.fail_calls(1, count=10**6)
    with pytest.raises(ServiceRequestError):
        store.save_links([Link(1, "lead", "d")])
    store.heal()
    assert store.links_by_marketo([1]) == {}  # the failed write left nothing behind


def test_lease_etag_conflict_loses_once() -> None:
    store = MemoryStateStore()
    store.lease_conflicts = 1
    assert not store.acquire_lease("a", 60)
    assert store.acquire_lease("a", 60)


def test_injected_clock_expires_leases() -> None:
    now = [1000.0]
    store = MemoryStateStore(clock=lambda: now[0])
    assert store.acquire_lease("a", 900)
    assert store.lease_holder() == "a"
    now[0] += 899
    assert not store.acquire_lease("b", 900)
    now[0] += 2
    assert store.lease_holder() is None
    assert store.acquire_lease("b", 900)
