"""The blocking half of the Table Storage store: every azure-data-tables call it makes.

Only `sync_core.tablestore.TableStateStore` calls this, always in a worker thread, so
no SDK call ever blocks the event loop. (The SDK's async client would need aiohttp,
which the project does not ship.)

Kept here, with the reasons they exist: every multi-row write is chunked into
entity-group transactions of at most 100 (the service limit, which the SDK does not
enforce and Azurite answers with a malformed response), sent by `tablebatch` (the SDK's
multipart codec cost a millisecond of CPU per row); the lease and the link
counters are ETag-guarded, so two racing writers never both win; links of a page are
read with one range query per crowded bucket, else 14 row keys a query, instead of a
point read per person, and like index rows and set members through `tablequery` (the
SDK's deserializer cost half a millisecond a row).
"""

from __future__ import annotations

import json
import secrets
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableServiceClient, TableTransactionError, UpdateMode

from sync_core import state, tablebatch, tablequery
from sync_core.mapping import Entity
from sync_core.state import (
    BUCKET,
    TABLES,
    Link,
    d_key,
    index_row,
    link_from_row,
    link_row,
    m_key,
    safe_key,
    unsafe_key,
)

BATCH_LIMIT = 100
# What a look-up costs is round trips and rows: one round trip takes about the client CPU
# of 30 rows of a query page (measured against Azurite: a point read 4.2 ms, a link row
# 0.11 ms, an index row 0.04 ms). A $filter may hold at most 15 discrete comparisons
# (Query Entities), so one query fetches up to 14 row keys of one partition: keys spread
# thinly over a partition cost a round trip per 14, not one each; a range or a whole
# partition is read only where its rows cost less than those round trips. (A range read
# for 10 ids spread over a bucket of 1,000 made a million-people reconcile read the
# whole links table once a page.)
ROWS_PER_ROUND_TRIP = 30
PAGE_ROWS = 1000  # a query answers at most 1,000 entities a page
KEYS_PER_QUERY = 14
# The Dynamics-id index has 256 partitions per table (two hex digits of the record id).
INDEX_PARTITIONS = 256
COUNTER_PK, LINKS_COUNTER = "counter", "links"


class TableRows:
    """The state tables, read and written with blocking SDK calls."""

    def __init__(self, service: TableServiceClient, prefix: str) -> None:
        self.service = service
        self.prefix = prefix
        self._tables: dict[str, TableClient] = {
            name: service.get_table_client(f"{prefix}{name}") for name in TABLES
        }
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="state")

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self.service.close()

    def ensure_tables(self) -> None:
        for name in TABLES:
            self.service.create_table_if_not_exists(f"{self.prefix}{name}")
        self.ensure_link_counts()

    def missing_tables(self) -> list[str]:
        names = {f"{self.prefix}{n}" for n in TABLES}
        found = {t.name for t in self.service.list_tables() if t.name in names}
        return sorted(names - found)

    def table(self, name: str) -> TableClient:
        return self._tables[name]

    def write(self, table: str, entities: Iterable[dict[str, Any]], op: str = "upsert") -> None:
        """Write entities in per-partition transactions of <= 100 (each one atomic)."""
        by_pk: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for e in entities:
            by_pk[e["PartitionKey"]].append(e)
        client = self.table(table)
        for rows in by_pk.values():
            for i in range(0, len(rows), BATCH_LIMIT):
                chunk = rows[i : i + BATCH_LIMIT]
                if len(chunk) == 1 and op == "upsert":
                    client.upsert_entity(chunk[0], mode=UpdateMode.REPLACE)
                else:
                    tablebatch.submit(client, [(op, e) for e in chunk])

    # ---- small key/value rows ---------------------------------------------
    def get_value(self, kind: str, name: str) -> str | None:
        try:
            return str(self.table("state").get_entity(kind, safe_key(name))["value"])
        except ResourceNotFoundError:
            return None

    def set_values(self, kind: str, values: dict[str, str | None]) -> None:
        upserts = [
            {"PartitionKey": kind, "RowKey": safe_key(k), "value": v}
            for k, v in values.items()
            if v is not None
        ]
        self.write("state", upserts)
        for k, v in values.items():
            if v is None:
                self.table("state").delete_entity(kind, safe_key(k))

    def add_to_value(self, kind: str, name: str, amount: int) -> int:
        """Add to an integer row and return the new total, ETag-guarded: the timer and
        every webhook delivery (in any worker) count into the same Marketo quota row."""
        table, key = self.table("state"), safe_key(name)
        for _ in range(50):
            try:
                row = table.get_entity(kind, key)
            except ResourceNotFoundError:
                try:
                    table.create_entity({"PartitionKey": kind, "RowKey": key, "value": str(amount)})
                    return amount
                except ResourceExistsError:
                    continue
            total = int(row["value"] or 0) + amount
            try:
                table.update_entity(
                    {"PartitionKey": kind, "RowKey": key, "value": str(total)},
                    mode=UpdateMode.REPLACE,
                    etag=row.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
                return total
            except (ResourceModifiedError, ResourceNotFoundError):
                continue  # another writer counted in between: read again
        raise ResourceModifiedError(f"{kind}/{name}: 50 writers in a row counted first")

    def hash_key(self, configured: str = "") -> bytes:
        if configured:
            return configured.encode()
        existing = self.get_value("meta", "hashkey")
        if existing:
            return bytes.fromhex(existing)
        key = secrets.token_hex(32)
        try:
            self.table("state").create_entity(
                {"PartitionKey": "meta", "RowKey": "hashkey", "value": key}
            )
        except ResourceExistsError:
            # Another process created it first; everybody must use that one.
            return bytes.fromhex(str(self.get_value("meta", "hashkey")))
        return bytes.fromhex(key)

    def saved(self, kind: str) -> dict[str, tuple[str, datetime | None]]:
        out: dict[str, tuple[str, datetime | None]] = {}
        rows = self.table("state").query_entities("PartitionKey eq @pk", parameters={"pk": kind})
        for row in rows:
            stamp = row.metadata.get("timestamp")
            out[unsafe_key(str(row["RowKey"]))] = (
                str(row.get("value") or ""),
                stamp if isinstance(stamp, datetime) else None,
            )
        return out

    # ---- counters: link counts kept as writes commit ----------------------
    def link_counts(self) -> dict[str, int] | None:
        try:
            row = self.table("state").get_entity(COUNTER_PK, LINKS_COUNTER)
        except ResourceNotFoundError:
            return None
        return {str(k): int(v) for k, v in json.loads(str(row["value"])).items()}

    def ensure_link_counts(self) -> dict[str, int]:
        current = self.link_counts()
        if current is not None:
            return current
        counts: dict[str, int] = defaultdict(int)
        for link in self.iter_links():
            counts[link.entity] += 1
        row = {"PartitionKey": COUNTER_PK, "RowKey": LINKS_COUNTER, "value": json.dumps(counts)}
        try:
            self.table("state").create_entity(row)
        except ResourceExistsError:
            return self.link_counts() or dict(counts)
        return dict(counts)

    def _adjust_link_counts(self, deltas: dict[str, int]) -> None:
        """Add to the counters, ETag-guarded: the cycle and the webhook both save links."""
        deltas = {k: v for k, v in deltas.items() if v}
        if not deltas:
            return
        table = self.table("state")
        for _ in range(20):
            try:
                row = table.get_entity(COUNTER_PK, LINKS_COUNTER)
            except ResourceNotFoundError:
                return  # not seeded: the seeding scan will count these links
            counts = {str(k): int(v) for k, v in json.loads(str(row["value"])).items()}
            for k, v in deltas.items():
                counts[k] = max(0, counts.get(k, 0) + v)
            try:
                table.update_entity(
                    {"PartitionKey": COUNTER_PK, "RowKey": LINKS_COUNTER,
                     "value": json.dumps(counts)},
                    mode=UpdateMode.REPLACE,
                    etag=row.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )  # fmt: skip
                return
            except ResourceModifiedError:
                continue  # someone else counted in between: read again

    # ---- lease: one writer at a time --------------------------------------
    def acquire_lease(self, owner: str, seconds: int, name: str = "cycle") -> bool:
        """ETag-guarded, so of two racing cycles exactly one wins even when both read
        the same expired row."""
        table = self.table("state")
        now = time.time()
        row = {"PartitionKey": "lease", "RowKey": name, "owner": owner, "expires": now + seconds}
        try:
            current = table.get_entity("lease", name)
        except ResourceNotFoundError:
            try:
                table.create_entity(row)
                return True
            except ResourceExistsError:
                return False
        if current.get("owner") != owner and float(current.get("expires", 0)) > now:
            return False
        try:
            table.update_entity(
                row,
                mode=UpdateMode.REPLACE,
                etag=current.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
            return True
        except (ResourceModifiedError, ResourceNotFoundError):
            return False

    def release_lease(self, owner: str, name: str = "cycle") -> None:
        table = self.table("state")
        try:
            current = table.get_entity("lease", name)
            if current.get("owner") == owner:
                table.delete_entity(
                    "lease",
                    name,
                    etag=current.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceNotFoundError, ResourceModifiedError):
            pass

    # ---- links ------------------------------------------------------------
    def _keyed(
        self, table: str, keys: Mapping[str, list[str]], select: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """The rows with these row keys of each partition (absent ones left out), in
        queries of KEYS_PER_QUERY keys of one partition, all in the pool at once; a
        single key is a point read."""
        client = self.table(table)

        def query(part: tuple[str, list[str]]) -> list[dict[str, Any]]:
            pk, keys = part
            if len(keys) == 1:
                try:
                    return [dict(client.get_entity(pk, keys[0], select=select))]
                except ResourceNotFoundError:
                    return []
            wanted = " or ".join(f"RowKey eq @k{n}" for n in range(len(keys)))
            params = {"pk": pk, **{f"k{n}": k for n, k in enumerate(keys)}}
            return tablequery.rows(client, f"PartitionKey eq @pk and ({wanted})", params, select)

        chunks = [
            (pk, row_keys[i : i + KEYS_PER_QUERY])
            for pk, row_keys in keys.items()
            for i in range(0, len(row_keys), KEYS_PER_QUERY)
        ]
        return [row for rows in self._pool.map(query, chunks) for row in rows]

    def _bucket_rows(self, bucket: int, low: int, high: int) -> list[dict[str, Any]]:
        pk = f"m{bucket:012d}"
        query = "PartitionKey eq @pk and RowKey ge @lo and RowKey le @hi"
        params = {"pk": pk, "lo": f"{low:012d}", "hi": f"{high:012d}"}
        return tablequery.rows(self.table("links"), query, params)

    def links_by_marketo(self, ids: Iterable[int]) -> dict[int, Link]:
        """Ids that crowd a stretch of one bucket are read with one range query (a page
        of new people is mostly consecutive ids); ids spread over it by row key."""
        wanted = set(ids)
        by_bucket: dict[int, list[int]] = defaultdict(list)
        for i in wanted:
            by_bucket[i // BUCKET].append(i)
        ranged, keyed = [], {}
        for b, v in by_bucket.items():
            span = max(v) - min(v) + 1
            # One id: a point read (the webhook's look-up), which every store indexes.
            if len(v) > 1 and span - len(v) <= (_queries(len(v)) - 1) * ROWS_PER_ROUND_TRIP:
                ranged.append((b, min(v), max(v)))
            else:
                keyed[f"m{b:012d}"] = [m_key(i)[1] for i in sorted(v)]
        rows: list[dict[str, Any]] = []
        for chunk in self._pool.map(lambda r: self._bucket_rows(*r), ranged):
            rows.extend(chunk)
        rows.extend(self._keyed("links", keyed))
        links = (link_from_row(r) for r in rows)
        return {link.marketo_id: link for link in links if link.marketo_id in wanted}

    def links_by_dynamics(
        self, entity: Entity, ids: Iterable[str], hints: Mapping[str, int | None] | None = None
    ) -> dict[str, Link]:
        """`hints` (record id -> the Marketo id the record carries) saves the index
        read; a hint that does not check out falls back to it."""
        ids = [i.lower() for i in dict.fromkeys(ids)]
        hinted = {i: m for i, m in (hints or {}).items() if m is not None}
        found: dict[str, Link] = {}
        if hinted:
            links = self.links_by_marketo(hinted.values())
            for d, m in hinted.items():
                link = links.get(m)
                if link and link.dynamics_id.lower() == d.lower() and link.entity == entity:
                    found[d.lower()] = link
        rest = [i for i in ids if i not in found]
        marketo_ids = self._index(entity, rest)
        links = self.links_by_marketo(marketo_ids.values())
        # The index can outlive a re-linked person; only a matching main row counts.
        found.update(
            (d, links[m])
            for d, m in marketo_ids.items()
            if m in links and links[m].dynamics_id.lower() == d and links[m].entity == entity
        )
        return found

    def _index(self, entity: Entity, ids: list[str]) -> dict[str, int]:
        """Record id -> Marketo id from the index rows. A first load or a page of new
        records asks for thousands of ids that have no row: one query per partition
        where the partition is small enough, else the partition's wanted keys 14 to a
        query, instead of a point read (a 404) each."""
        if not ids:
            return {}
        by_part: dict[str, list[str]] = defaultdict(list)
        for i in ids:
            by_part[d_key(entity, i)[0]].append(i)
        counts = self.link_counts() if len(by_part) > 2 else None
        # Unknown counts (not seeded yet): by key, the cost of which is known.
        total = counts.get(entity, 0) if counts is not None else None
        per_part = total / INDEX_PARTITIONS if total is not None else None
        whole = {
            pk for pk, v in by_part.items()
            if per_part is not None and per_part <= _queries(len(v)) * ROWS_PER_ROUND_TRIP
        }  # fmt: skip
        if total is not None and per_part is not None:
            # Cost in round trips (a row costs 1/30 of one): partition by partition, or
            # the table's whole index in one query (a first load asks for 256 partitions
            # that are all empty; a quiet org's index is a few pages).
            split = sum(
                1 + per_part / ROWS_PER_ROUND_TRIP if pk in whole else _queries(len(v))
                for pk, v in by_part.items()
            )
            if -(-max(total, 1) // PAGE_ROWS) + total / ROWS_PER_ROUND_TRIP <= split:
                wanted = set(ids)
                return {i: m for i, m in self._entity_index(entity).items() if i in wanted}
        out: dict[str, int] = {}
        for rows in self._pool.map(self._partition_index, sorted(whole)):
            out.update(rows)
        keyed = {
            pk: [d_key(entity, i)[1] for i in v] for pk, v in by_part.items() if pk not in whole
        }
        found = self._keyed("links", keyed, ["RowKey", "marketoId"])
        out.update((unsafe_key(str(r["RowKey"])), int(r["marketoId"])) for r in found)
        wanted = set(ids)
        return {i: m for i, m in out.items() if i in wanted}

    def _entity_index(self, entity: Entity) -> dict[str, int]:
        first = d_key(entity, "")[0]  # "dc": every index partition of the table
        rows = tablequery.rows(
            self.table("links"),
            "PartitionKey ge @lo and PartitionKey lt @hi",
            {"lo": first, "hi": first[:-1] + chr(ord(first[-1]) + 1)},
            ["RowKey", "marketoId"],
        )
        return {unsafe_key(str(r["RowKey"])): int(r["marketoId"]) for r in rows}

    def _partition_index(self, pk: str) -> dict[str, int]:
        rows = tablequery.rows(
            self.table("links"), "PartitionKey eq @pk", {"pk": pk}, ["RowKey", "marketoId"]
        )
        return {unsafe_key(str(r["RowKey"])): int(r["marketoId"]) for r in rows}

    def save_links(self, links: Iterable[Link], *, new: bool = False) -> None:
        links = list(links)
        stamp = state._now().isoformat()
        deltas: dict[str, int] = defaultdict(int)
        if new:
            # A new link may replace a person's earlier one (a lead qualified into a
            # contact, a re-link): only a person without a main row adds to the count.
            before = self.links_by_marketo(link.marketo_id for link in links)
            for link in links:
                old = before.get(link.marketo_id)
                if old is None or old.entity != link.entity:
                    deltas[link.entity] += 1
                    if old is not None:
                        deltas[old.entity] -= 1
            self.write("links", [index_row(link) for link in links])
        self.write("links", [link_row(link, stamp) for link in links])
        self._adjust_link_counts(deltas)

    def close_links(self, links: Iterable[Link]) -> None:
        client = self.table("links")
        deltas: dict[str, int] = defaultdict(int)
        for link in links:
            for main, (pk, rk) in (
                (True, m_key(link.marketo_id)),
                (False, d_key(link.entity, link.dynamics_id)),
            ):
                try:
                    client.delete_entity(pk, rk)
                except ResourceNotFoundError:
                    continue
                if main:
                    deltas[link.entity] -= 1
        self._adjust_link_counts(deltas)

    def iter_links(self) -> Iterator[Link]:
        """Every open link, page by page (memory stays bounded by the page size)."""
        for page in self.link_pages():
            yield from page

    def link_pages(self) -> Iterator[list[Link]]:
        query = "PartitionKey ge 'm' and PartitionKey lt 'n'"
        for page in tablequery.pages(self.table("links"), query):
            yield [link_from_row(row) for row in page]

    # ---- intents and retries (sets of keys) -------------------------------
    def add_to_set(
        self, kind: str, keys: Iterable[str], data: dict[str, str] | None = None
    ) -> None:
        self.write(
            "state",
            [{"PartitionKey": kind, "RowKey": safe_key(k), **(data or {})} for k in keys],
        )

    def members(self, kind: str) -> list[str]:
        rows = tablequery.rows(self.table("state"), "PartitionKey eq @pk", {"pk": kind}, ["RowKey"])
        return [unsafe_key(str(r["RowKey"])) for r in rows]

    def remove_from_set(self, kind: str, keys: Iterable[str]) -> None:
        client = self.table("state")
        rows = [{"PartitionKey": kind, "RowKey": safe_key(k)} for k in keys]
        for i in range(0, len(rows), BATCH_LIMIT):
            chunk = rows[i : i + BATCH_LIMIT]
            try:
                tablebatch.submit(client, [("delete", r) for r in chunk])
            except (TableTransactionError, ResourceNotFoundError):
                # One key was already gone, which fails the whole transaction: go one by one.
                for r in chunk:
                    try:
                        client.delete_entity(r["PartitionKey"], r["RowKey"])
                    except ResourceNotFoundError:
                        pass


def _queries(keys: int) -> int:
    """Queries that read `keys` row keys of one partition."""
    return -(-keys // KEYS_PER_QUERY)
