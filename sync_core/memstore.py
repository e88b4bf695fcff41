"""An in-memory state store with the public methods and semantics of `StateStore`.

It holds the same rows the Table Storage store holds (one dict per table, keyed by
PartitionKey and RowKey, with the same key encoding, ordering and index rows), so code
that runs against it behaves as it would against Table Storage: a link saved without
its Dynamics-id index is not found by Dynamics id, a stale index row is ignored, logs
list newest first. What it prevents: simulations and fast tests passing against a store
that is kinder than the real one.

It can also misbehave on demand, the way Table Storage does: an outage (every call
raises `ServiceRequestError`, the Azure SDK's "could not reach the service"), a fault at
the N-th call, and an ETag conflict on the lease (the racer that loses gets False). The
clock is injectable so a simulation can let leases expire without waiting.

It implements the `StateStore` protocol directly: its calls are coroutines that never
wait, so each one is atomic on the event loop (which is all the engine runs on). Its
tables always exist (`missing_tables` is empty); everything else behaves as stored.
"""

from __future__ import annotations

import copy
import json
import secrets
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ServiceRequestError

from sync_core import state
from sync_core.mapping import Entity
from sync_core.state import (
    TABLES,
    Link,
    StateStore,
    d_key,
    index_row,
    link_from_row,
    link_row,
    m_key,
    newest_first,
    safe_key,
    unsafe_key,
)
from sync_core.tables import COUNTER_PK, LINKS_COUNTER

Row = dict[str, Any]
Fault = Callable[[str], BaseException | None]


def outage(method: str) -> BaseException:
    """What the Azure SDK raises when Table Storage cannot be reached."""
    return ServiceRequestError(f"simulated Table Storage outage during {method}")


class MemoryStateStore:
    TABLES = TABLES

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._rows: dict[str, dict[tuple[str, str], Row]] = {t: {} for t in self.TABLES}
        self._written: dict[tuple[str, str, str], datetime] = {}  # the service's Timestamp
        self.clock = clock
        self.calls = 0
        # Each call asks `fault(method)`; an exception it returns is raised instead.
        self.fault: Fault | None = None
        self.lease_conflicts = 0  # this many next lease acquisitions lose an ETag race

    # ---- fault injection ----------------------------------------------------
    def _enter(self, method: str) -> None:
        self.calls += 1
        exc = self.fault(method) if self.fault is not None else None
        if exc is not None:
            raise exc

    def fail_calls(self, first: int, count: int = 1) -> None:
        """Calls number `first` .. `first + count - 1` (from now, 1-based) raise an outage."""
        start = self.calls + first

        def fault(method: str) -> BaseException | None:
            return outage(method) if start <= self.calls < start + count else None

        self.fault = fault

    def heal(self) -> None:
        self.fault = None
        self.lease_conflicts = 0

    # ---- lifecycle ------------------------------------------------------------
    def close(self) -> None:
        """Nothing to release; the store stays usable (callers close per invocation)."""

    async def ensure_tables(self) -> None:
        self._enter("ensure_tables")
        self._ensure_link_counts()

    async def missing_tables(self) -> list[str]:
        self._enter("missing_tables")
        return []

    def table(self, name: str) -> list[Row]:
        """Every row of one table (a copy), for tests and invariant checks."""
        return [copy.deepcopy(r) for _, r in sorted(self._rows[name].items())]

    # ---- row primitives -----------------------------------------------------------
    def _put(self, table: str, row: Row) -> None:
        key = (row["PartitionKey"], row["RowKey"])
        self._rows[table][key] = copy.deepcopy(row)
        self._written[(table, *key)] = state._now()

    def _get(self, table: str, pk: str, rk: str) -> Row | None:
        row = self._rows[table].get((pk, rk))
        return copy.deepcopy(row) if row is not None else None

    def _delete(self, table: str, pk: str, rk: str) -> bool:
        return self._rows[table].pop((pk, rk), None) is not None

    def _partition(self, table: str, pk: str) -> list[Row]:
        return [copy.deepcopy(r) for (p, _), r in sorted(self._rows[table].items()) if p == pk]

    # ---- small key/value rows -------------------------------------------------
    async def get_value(self, kind: str, name: str) -> str | None:
        self._enter("get_value")
        row = self._get("state", kind, safe_key(name))
        return None if row is None else str(row["value"])

    async def set_values(self, kind: str, values: dict[str, str | None]) -> None:
        self._enter("set_values")
        for k, v in values.items():
            if v is None:
                self._delete("state", kind, safe_key(k))
            else:
                self._put("state", {"PartitionKey": kind, "RowKey": safe_key(k), "value": v})

    async def add_to_value(self, kind: str, name: str, amount: int) -> int:
        self._enter("add_to_value")
        row = self._get("state", kind, safe_key(name))
        total = (int(row["value"] or 0) if row else 0) + amount
        self._put("state", {"PartitionKey": kind, "RowKey": safe_key(name), "value": str(total)})
        return total

    async def get_cursor(self, name: str) -> str | None:
        return await self.get_value("cursor", name)

    async def set_cursors(self, values: dict[str, str | None]) -> None:
        await self.set_values("cursor", values)

    async def hash_key(self, configured: str = "") -> bytes:
        if configured:
            return configured.encode()
        self._enter("hash_key")
        row = self._get("state", "meta", "hashkey")
        if row is None:
            row = {"PartitionKey": "meta", "RowKey": "hashkey", "value": secrets.token_hex(32)}
            self._put("state", row)
        return bytes.fromhex(str(row["value"]))

    async def saved(self, kind: str) -> dict[str, tuple[str, datetime | None]]:
        self._enter("saved")
        return {
            unsafe_key(str(r["RowKey"])): (
                str(r.get("value") or ""),
                self._written.get(("state", kind, r["RowKey"])),
            )
            for r in self._partition("state", kind)
        }

    # ---- counters -----------------------------------------------------------------
    def _counts(self) -> dict[str, int] | None:
        row = self._get("state", COUNTER_PK, LINKS_COUNTER)
        if row is None:
            return None
        return {str(k): int(v) for k, v in json.loads(row["value"]).items()}

    def _ensure_link_counts(self) -> dict[str, int]:
        current = self._counts()
        if current is not None:
            return current
        counts: dict[str, int] = defaultdict(int)
        for row in self._link_rows():
            counts[row["entity"]] += 1
        self._put_counts(counts)
        return dict(counts)

    def _put_counts(self, counts: dict[str, int]) -> None:
        self._put("state", {"PartitionKey": COUNTER_PK, "RowKey": LINKS_COUNTER,
                            "value": json.dumps(counts)})  # fmt: skip

    def _adjust_link_counts(self, deltas: dict[str, int]) -> None:
        counts = self._counts()
        if counts is None:
            return  # not seeded: the seeding scan will count these links
        for k, v in deltas.items():
            counts[k] = max(0, counts.get(k, 0) + v)
        self._put_counts(counts)

    async def link_counts(self) -> dict[str, int] | None:
        self._enter("link_counts")
        return self._counts()

    async def ensure_link_counts(self) -> dict[str, int]:
        self._enter("ensure_link_counts")
        return self._ensure_link_counts()

    # ---- lease ------------------------------------------------------------------
    async def acquire_lease(self, owner: str, seconds: int, name: str = "cycle") -> bool:
        self._enter("acquire_lease")
        now = self.clock()
        current = self._get("state", "lease", name)
        held = current is not None and current.get("owner") != owner
        if held and float(current.get("expires", 0)) > now:  # type: ignore[union-attr]
            return False
        if self.lease_conflicts > 0:
            # Someone else's write landed between our read and our conditional update.
            self.lease_conflicts -= 1
            return False
        row = {"PartitionKey": "lease", "RowKey": name, "owner": owner}
        self._put("state", {**row, "expires": now + seconds})
        return True

    async def release_lease(self, owner: str, name: str = "cycle") -> None:
        self._enter("release_lease")
        current = self._get("state", "lease", name)
        if current is not None and current.get("owner") == owner:
            self._delete("state", "lease", name)

    def lease_holder(self, name: str = "cycle") -> str | None:
        """Who holds the lease now (None when free or expired); no fault injection."""
        row = self._get("state", "lease", name)
        if row is None or float(row.get("expires", 0)) <= self.clock():
            return None
        return str(row["owner"])

    # ---- links ------------------------------------------------------------------
    def _main_rows(self, ids: Iterable[int]) -> list[Row]:
        found = (self._get("links", *m_key(int(i))) for i in set(ids))
        return [r for r in found if r is not None]

    def _link_rows(self) -> list[Row]:
        rows = [r for (pk, _), r in sorted(self._rows["links"].items()) if pk.startswith("m")]
        return copy.deepcopy(rows)

    async def links_by_marketo(self, ids: Iterable[int]) -> dict[int, Link]:
        ids = list(ids)
        self._enter("links_by_marketo")
        return {link.marketo_id: link for link in map(link_from_row, self._main_rows(ids))}

    async def links_by_dynamics(
        self, entity: Entity, ids: Iterable[str], hints: Mapping[str, int | None] | None = None
    ) -> dict[str, Link]:
        # Hints only save reads in Table Storage; the answer is the same without them.
        ids = list(ids)
        self._enter("links_by_dynamics")
        found: dict[str, Link] = {}
        for did in dict.fromkeys(i.lower() for i in ids):
            index = self._get("links", *d_key(entity, did))
            if index is None:
                continue
            main = self._get("links", *m_key(int(index["marketoId"])))
            if main is None:
                continue
            link = link_from_row(main)
            # The index can outlive a re-linked person; only a matching main row counts.
            if link.dynamics_id.lower() == did and link.entity == entity:
                found[did] = link
        return found

    async def save_links(self, links: Iterable[Link], *, new: bool = False) -> None:
        links = list(links)
        self._enter("save_links")
        stamp = state._now().isoformat()
        deltas: dict[str, int] = defaultdict(int)
        if new:
            before = {r["RowKey"]: r for r in self._main_rows(x.marketo_id for x in links)}
            for link in links:
                old = before.get(m_key(link.marketo_id)[1])
                if old is None or old["entity"] != link.entity:
                    deltas[link.entity] += 1
                    if old is not None:
                        deltas[old["entity"]] -= 1
                self._put("links", index_row(link))
        for link in links:
            self._put("links", link_row(link, stamp))
        self._adjust_link_counts(deltas)

    async def close_links(self, links: Iterable[Link]) -> None:
        links = list(links)
        self._enter("close_links")
        deltas: dict[str, int] = defaultdict(int)
        for link in links:
            if self._delete("links", *m_key(link.marketo_id)):
                deltas[link.entity] -= 1
            self._delete("links", *d_key(link.entity, link.dynamics_id))
        self._adjust_link_counts(deltas)

    async def iter_links(self) -> AsyncIterator[Link]:
        self._enter("iter_links")
        for row in self._link_rows():
            yield link_from_row(row)

    # ---- sets -------------------------------------------------------------------
    async def add_to_set(
        self, kind: str, keys: Iterable[str], data: dict[str, str] | None = None
    ) -> None:
        keys = list(keys)
        self._enter("add_to_set")
        for k in keys:
            self._put("state", {"PartitionKey": kind, "RowKey": safe_key(k), **(data or {})})

    async def members(self, kind: str) -> list[str]:
        self._enter("members")
        return [unsafe_key(str(r["RowKey"])) for r in self._partition("state", kind)]

    async def remove_from_set(self, kind: str, keys: Iterable[str]) -> None:
        keys = list(keys)
        self._enter("remove_from_set")
        for k in keys:
            self._delete("state", kind, safe_key(k))

    # ---- logs -------------------------------------------------------------------
    async def record_cycle(self, cycle_id: str, summary: dict[str, Any]) -> None:
        self._enter("record_cycle")
        self._put("cycles", state.cycle_row(cycle_id, summary))

    async def recent_cycles(self, limit: int = 20) -> list[dict[str, Any]]:
        self._enter("recent_cycles")
        return self._partition("cycles", "cycle")[:limit]

    async def cycles_since(self, since: datetime) -> list[dict[str, Any]]:
        self._enter("cycles_since")
        bound = newest_first(since) + "~"
        return [r for r in self._partition("cycles", "cycle") if r["RowKey"] < bound]

    async def record_errors(self, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        rows = list(rows)
        self._enter("record_errors")
        stamp = state._now()
        added = []
        for n, row in enumerate(rows):
            sig = row.get("signature")
            if sig:
                if self._get("state", state.ERROR_SIG, sig) is not None:
                    continue
                self._put("state", {"PartitionKey": state.ERROR_SIG, "RowKey": sig})
                self._put("state", state.pending_log_row(row, stamp))
            added.append(row)
            self._put("errors", state.error_row(row, n, stamp))
        return added

    async def pending_error_logs(self, limit: int = 300) -> list[dict[str, Any]]:
        self._enter("pending_error_logs")
        rows = self._partition("state", state.ERROR_SIG)
        owed = [r for r in rows if r["RowKey"].startswith(state.PENDING_LOG)]
        return [json.loads(r["row"]) for r in owed[:limit]]

    async def error_logs_done(self, signatures: Iterable[str]) -> None:
        signatures = list(signatures)
        self._enter("error_logs_done")
        for sig in signatures:
            self._delete("state", state.ERROR_SIG, state.PENDING_LOG + sig)

    async def list_errors(
        self, since: datetime | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        self._enter("list_errors")
        rows = self._partition("errors", "error")
        if since is not None:
            bound = newest_first(since) + "~"
            rows = [r for r in rows if r["RowKey"] < bound]
        return rows if limit is None else rows[:limit]

    async def record_person_events(self, events: Iterable[dict[str, Any]]) -> None:
        events = list(events)
        self._enter("record_person_events")
        for row in state.person_event_rows(events):
            self._put("personlog", row)

    async def person_events(self, marketo_id: int) -> list[dict[str, Any]]:
        self._enter("person_events")
        pk, lo, hi = state.person_range(marketo_id)
        return [r for r in self._partition("personlog", pk) if lo < r["RowKey"] < hi]


if TYPE_CHECKING:
    _conforms: StateStore = MemoryStateStore()  # mypy holds it to the protocol
