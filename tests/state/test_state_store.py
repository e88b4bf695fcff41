"""The Table Storage state store against a real Azurite, through its async API."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from sync_core.state import Link, safe_key
from sync_core.tablestore import TableStateStore as StateStore
from tests.support.blocking import run_async


@pytest.fixture
def store(azurite: str):
    s = StateStore.from_connection_string(azurite, prefix="t" + uuid.uuid4().hex[:10])
    asyncio.run(s.ensure_tables())
    yield s
    s.close()


@run_async
async def test_cursor_round_trip_and_clear(store: StateStore):
    assert await store.get_cursor("dyn/contacts?delta#1") is None
    await store.set_cursors(
        {"dyn/contacts?delta#1": "https://x/api/data/v9.2/contacts?$deltatoken=1!2"}
    )
    assert (
        await store.get_cursor("dyn/contacts?delta#1")
        == "https://x/api/data/v9.2/contacts?$deltatoken=1!2"
    )
    await store.set_cursors({"dyn/contacts?delta#1": None})
    assert await store.get_cursor("dyn/contacts?delta#1") is None


@run_async
async def test_forbidden_key_characters_are_encoded_not_fatal(store: StateStore):
    odd = "a/b\\c#d?e%f\x01g"
    await store.add_to_set("retry", [odd])
    assert await store.members("retry") == [odd]
    assert not set("/\\#?") & set(safe_key(odd))


@run_async
async def test_links_by_both_ids_and_base_survives(store: StateStore):
    did = str(uuid.uuid4()).upper()
    await store.save_links([Link(12345, "contact", did, {"email": "h1"})], new=True)
    by_m = await store.links_by_marketo([12345, 999])
    assert list(by_m) == [12345] and by_m[12345].base == {"email": "h1"}
    by_d = await store.links_by_dynamics("contact", [did])
    assert by_d[did.lower()].marketo_id == 12345
    assert await store.links_by_dynamics("lead", [did]) == {}
    await store.close_links([by_m[12345]])
    assert await store.links_by_marketo([12345]) == {}
    assert await store.links_by_dynamics("contact", [did]) == {}


@run_async
async def test_more_than_one_transaction_worth_of_links(store: StateStore):
    links = [Link(1000 + i, "lead", str(uuid.uuid4())) for i in range(250)]
    await store.save_links(links, new=True)
    assert len(await store.links_by_marketo(range(1000, 1250))) == 250
    assert len([x async for x in store.iter_links()]) == 250


@run_async
async def test_hash_key_is_generated_once_and_reused(store: StateStore):
    first = await store.hash_key()
    assert len(first) == 32 and await store.hash_key() == first
    assert await store.hash_key("configured-secret-value") == b"configured-secret-value"


@run_async
async def test_lease_has_exactly_one_owner_among_racers(store: StateStore):
    owners = [f"o{i}" for i in range(6)]
    # Each call runs in its own worker thread: the six reads and writes really race.
    won = await asyncio.gather(*(store.acquire_lease(o, 60) for o in owners))
    results = dict(zip(owners, won, strict=True))
    assert sum(results.values()) == 1
    winner = next(o for o, ok in results.items() if ok)
    assert await store.acquire_lease("late", 60) is False
    await store.release_lease(winner)
    assert await store.acquire_lease("late", 60) is True


@run_async
async def test_expired_lease_can_be_taken_over(store: StateStore):
    assert await store.acquire_lease("crashed", 30)
    row = store._t("state").get_entity("lease", "cycle")
    row["expires"] = 0.0
    store._t("state").upsert_entity(row)
    assert await store.acquire_lease("next", 30)


@run_async
async def test_cycle_and_error_logs_list_newest_first(store: StateStore):
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(3):
        started = (t0 + timedelta(minutes=5 * n)).isoformat()
        await store.record_cycle(f"c{n}", {"started": started, "outcome": "ok", "counts": {"n": n}})
    assert [c["outcome"] for c in await store.recent_cycles(2)] == ["ok", "ok"]
    assert (await store.recent_cycles(1))[0]["started"].endswith("00:10:00+00:00")
    await store.record_errors([{"code": "0x80044331", "message": "too long", "marketoId": 5}])
    errs = await store.list_errors()
    assert errs[0]["code"] == "0x80044331"
    assert await store.list_errors(since=datetime.now(UTC) + timedelta(hours=1)) == []


@run_async
async def test_removing_many_set_members_including_missing_ones(store: StateStore):
    await store.add_to_set("intentlead", [f"id{n}" for n in range(250)])
    await store.remove_from_set(
        "intentlead", [f"id{n}" for n in range(0, 250, 2)] + ["never-added"]
    )
    assert sorted(await store.members("intentlead")) == sorted(f"id{n}" for n in range(1, 250, 2))
    await store.remove_from_set("intentlead", [f"id{n}" for n in range(250)])
    assert await store.members("intentlead") == []


def test_ids_spread_over_buckets_cost_few_rows_and_round_trips(azurite: str):
    """A reconcile's page names people spread thinly over the buckets. Reading each
    bucket's range for them returned the whole bucket (a million-people reconcile read
    the links table once a page); they are read 14 row keys to a query instead."""
    from azure.data.tables import TableServiceClient

    seen = {"requests": 0, "rows": 0, "queries": 0}

    def count(response: object) -> None:
        http = response.http_response  # type: ignore[attr-defined]
        if http.request.method == "GET":
            seen["requests"] += 1
            seen["queries"] += "filter=" in http.request.url
            http.read()  # a streamed answer (tablequery) is read here first
            body = http.text()
            seen["rows"] += body.count('"RowKey"') if body else 0

    service = TableServiceClient.from_connection_string(azurite, raw_response_hook=count)
    s = StateStore(service, prefix="t" + uuid.uuid4().hex[:10])
    try:
        asyncio.run(s.ensure_tables())
        links = [Link(m, "contact", str(uuid.uuid4())) for m in range(3000, 6000, 3)]
        asyncio.run(s.save_links(links, new=True))
        wanted = list(range(3000, 6000, 60))  # 50 people, about 17 in each of 3 buckets
        seen.update(requests=0, rows=0, queries=0)
        found = asyncio.run(s.links_by_marketo(wanted))
        assert set(found) == set(wanted)
        # Two queries a bucket, each row read once (a range read: 3 queries, 1,000 rows).
        assert seen == {"requests": 6, "rows": 50, "queries": 6}
        seen.update(requests=0, rows=0, queries=0)
        assert set(asyncio.run(s.links_by_marketo([3003]))) == {3003}
        assert seen == {"requests": 1, "rows": 1, "queries": 0}  # one id: a point read
    finally:
        s.close()



def test_a_first_loads_index_look_up_is_one_query_not_one_a_partition(azurite: str):
    """A first load asks the Dynamics-id index for a thousand records that have no link
    yet. Read partition by partition, that was one query for each of the 256 partitions
    they fall in (437 of them for a 1,000-record load), all answering nothing; the
    table's whole index, known from the link count to be empty or small, is one."""
    from azure.data.tables import TableServiceClient

    seen = {"requests": 0}

    def count(response: object) -> None:
        if response.http_response.request.method == "GET":  # type: ignore[attr-defined]
            seen["requests"] += 1

    service = TableServiceClient.from_connection_string(azurite, raw_response_hook=count)
    s = StateStore(service, prefix="t" + uuid.uuid4().hex[:10])
    try:
        asyncio.run(s.ensure_tables())
        fresh = [str(uuid.uuid4()) for _ in range(1000)]
        seen["requests"] = 0
        assert asyncio.run(s.links_by_dynamics("contact", fresh)) == {}
        assert seen["requests"] == 2  # the link count, then the (empty) index
        linked = [Link(10_000 + n, "contact", d) for n, d in enumerate(fresh[:300])]
        asyncio.run(s.save_links(linked, new=True))
        asyncio.run(s.save_links([Link(99, "lead", fresh[300])], new=True))
        seen["requests"] = 0
        found = asyncio.run(s.links_by_dynamics("contact", fresh[250:450]))
        assert {d: link.marketo_id for d, link in found.items()} == {
            d: 10_000 + n for n, d in enumerate(fresh[:300]) if n >= 250
        }
        # the count, the index in one query, the 50 main rows (consecutive: one range)
        assert seen["requests"] == 3
    finally:
        s.close()


def test_proxy_and_ca_variables_are_honoured_only_when_set(monkeypatch: pytest.MonkeyPatch):
    import os

    from sync_core.tablestore import transport_options

    for name in list(os.environ):
        if name.lower() in {"http_proxy", "https_proxy", "all_proxy", "no_proxy"} | {
            "requests_ca_bundle",
            "curl_ca_bundle",
        }:
            monkeypatch.delenv(name)
    quiet = transport_options()["transport"]
    assert quiet._use_env_settings is False  # nothing to find: the scan is skipped
    assert quiet.connection_config.verify is True
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/private-ca.pem")
    pinned = transport_options()["transport"]  # the bundle is read once, not per request
    assert pinned._use_env_settings is False
    assert pinned.connection_config.verify == "/etc/ssl/private-ca.pem"
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert transport_options() == {}  # the SDK's default transport reads it
