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

Thread-safe: the engine calls it through `asyncio.to_thread`, several calls at once.
"""

from __future__ import annotations

import copy
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from azure.core.exceptions import ServiceRequestError

from sync_core import state as table_state
from sync_core.mapping import Entity
from sync_core.state import BUCKET, Link, StateStore, _newest_first, _unsafe, safe_key

Row = dict[str, Any]
Fault = Callable[[str], BaseException | None]


def outage(method: str) -> BaseException:
    """What the Azure SDK raises when Table Storage cannot be reached."""
    return ServiceRequestError(f"simulated Table Storage outage during {method}")


class MemoryStateStore:
    TABLES = StateStore.TABLES

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._rows: dict[str, dict[tuple[str, str], Row]] = {t: {} for t in self.TABLES}
        self._lock = threading.RLock()
        self.clock = clock
        self.calls = 0
        # Each call asks `fault(method)`; an exception it returns is raised instead.
        self.fault: Fault | None = None
        self.lease_conflicts = 0  # this many next lease acquisitions lose an ETag race

    # ---- fault injection ----------------------------------------------------
    def _enter(self, method: str) -> None:
        with self._lock:
            self.calls += 1
            fault = self.fault
        exc = fault(method) if fault is not None else None
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

    def ensure_tables(self) -> None:
        self._enter("ensure_tables")

    def table(self, name: str) -> list[Row]:
        """Every row of one table (a copy), for tests and invariant checks."""
        with self._lock:
            return [copy.deepcopy(r) for _, r in sorted(self._rows[name].items())]

    # ---- row primitives (called with the lock held) -------------------------------
    def _put(self, table: str, row: Row) -> None:
        self._rows[table][(row["PartitionKey"], row["RowKey"])] = copy.deepcopy(row)

    def _get(self, table: str, pk: str, rk: str) -> Row | None:
        row = self._rows[table].get((pk, rk))
        return copy.deepcopy(row) if row is not None else None

    def _delete(self, table: str, pk: str, rk: str) -> None:
        self._rows[table].pop((pk, rk), None)

    def _partition(self, table: str, pk: str) -> list[Row]:
        return [copy.deepcopy(r) for (p, _), r in sorted(self._rows[table].items()) if p == pk]

    # ---- small key/value rows -------------------------------------------------
    def get_value(self, kind: str, name: str) -> str | None:
        self._enter("get_value")
        with self._lock:
            row = self._get("state", kind, safe_key(name))
        return None if row is None else str(row["value"])

    def set_values(self, kind: str, values: dict[str, str | None]) -> None:
        self._enter("set_values")
        with self._lock:
            for k, v in values.items():
                if v is None:
                    self._delete("state", kind, safe_key(k))
                else:
                    self._put("state", {"PartitionKey": kind, "RowKey": safe_key(k), "value": v})

    def add_to_value(self, kind: str, name: str, amount: int) -> int:
        self._enter("add_to_value")
        with self._lock:
            row = self._get("state", kind, safe_key(name))
            total = (int(row["value"] or 0) if row else 0) + amount
            row = {"PartitionKey": kind, "RowKey": safe_key(name), "value": str(total)}
            self._put("state", row)
        return total

    def get_cursor(self, name: str) -> str | None:
        return self.get_value("cursor", name)

    def set_cursors(self, values: dict[str, str | None]) -> None:
        self.set_values("cursor", values)

    def hash_key(self, configured: str = "") -> bytes:
        if configured:
            return configured.encode()
        self._enter("hash_key")
        with self._lock:
            row = self._get("state", "meta", "hashkey")
            if row is None:
                row = {"PartitionKey": "meta", "RowKey": "hashkey", "value": secrets.token_hex(32)}
                self._put("state", row)
        return bytes.fromhex(str(row["value"]))

    # ---- lease ------------------------------------------------------------------
    def acquire_lease(self, owner: str, seconds: int, name: str = "cycle") -> bool:
        self._enter("acquire_lease")
        with self._lock:
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

    def release_lease(self, owner: str, name: str = "cycle") -> None:
        self._enter("release_lease")
        with self._lock:
            current = self._get("state", "lease", name)
            if current is not None and current.get("owner") == owner:
                self._delete("state", "lease", name)

    def lease_holder(self, name: str = "cycle") -> str | None:
        """Who holds the lease now (None when free or expired); no fault injection."""
        with self._lock:
            row = self._get("state", "lease", name)
            if row is None or float(row.get("expires", 0)) <= self.clock():
                return None
            return str(row["owner"])

    # ---- links ------------------------------------------------------------------
    _m_key = staticmethod(StateStore._m_key)
    _d_key = staticmethod(StateStore._d_key)
    _link = staticmethod(StateStore._link)

    def _main_rows(self, ids: Iterable[int]) -> list[Row]:
        found = (self._get("links", *self._m_key(int(i))) for i in set(ids))
        return [r for r in found if r is not None]

    def links_by_marketo(self, ids: Iterable[int]) -> dict[int, Link]:
        self._enter("links_by_marketo")
        with self._lock:
            rows = self._main_rows(ids)
        return {link.marketo_id: link for link in map(self._link, rows)}

    def links_by_dynamics(
        self, entity: Entity, ids: Iterable[str], hints: dict[str, int] | None = None
    ) -> dict[str, Link]:
        # Hints only save reads in Table Storage; the answer is the same without them.
        self._enter("links_by_dynamics")
        found: dict[str, Link] = {}
        with self._lock:
            for did in dict.fromkeys(i.lower() for i in ids):
                index = self._get("links", *self._d_key(entity, did))
                if index is None:
                    continue
                main = self._get("links", *self._m_key(int(index["marketoId"])))
                if main is None:
                    continue
                link = self._link(main)
                # The index can outlive a re-linked person; only a matching main row counts.
                if link.dynamics_id.lower() == did and link.entity == entity:
                    found[did] = link
        return found

    def save_links(self, links: Iterable[Link], *, new: bool = False) -> None:
        links = list(links)
        self._enter("save_links")
        stamp = table_state._now().isoformat()
        with self._lock:
            if new:
                for link in links:
                    pk, rk = self._d_key(link.entity, link.dynamics_id)
                    self._put(
                        "links",
                        {"PartitionKey": pk, "RowKey": rk, "marketoId": str(link.marketo_id)},
                    )
            for link in links:
                pk, rk = self._m_key(link.marketo_id)
                self._put(
                    "links",
                    {
                        "PartitionKey": pk,
                        "RowKey": rk,
                        "entity": link.entity,
                        "dynamicsId": link.dynamics_id.lower(),
                        "base": json.dumps(link.base, separators=(",", ":"), sort_keys=True),
                        "linkedAt": link.linked_at or stamp,
                        "updatedAt": stamp,
                    },
                )

    def close_links(self, links: Iterable[Link]) -> None:
        links = list(links)
        self._enter("close_links")
        with self._lock:
            for link in links:
                self._delete("links", *self._m_key(link.marketo_id))
                self._delete("links", *self._d_key(link.entity, link.dynamics_id))

    def iter_links(self) -> Iterator[Link]:
        self._enter("iter_links")
        with self._lock:
            rows = [r for (pk, _), r in sorted(self._rows["links"].items()) if pk.startswith("m")]
            rows = copy.deepcopy(rows)
        yield from map(self._link, rows)

    # ---- sets -------------------------------------------------------------------
    def add_to_set(
        self, kind: str, keys: Iterable[str], data: dict[str, str] | None = None
    ) -> None:
        keys = list(keys)
        self._enter("add_to_set")
        with self._lock:
            for k in keys:
                self._put("state", {"PartitionKey": kind, "RowKey": safe_key(k), **(data or {})})

    def members(self, kind: str) -> list[str]:
        self._enter("members")
        with self._lock:
            return [_unsafe(str(r["RowKey"])) for r in self._partition("state", kind)]

    def remove_from_set(self, kind: str, keys: Iterable[str]) -> None:
        keys = list(keys)
        self._enter("remove_from_set")
        with self._lock:
            for k in keys:
                self._delete("state", kind, safe_key(k))

    # ---- logs -------------------------------------------------------------------
    @staticmethod
    def _flat(values: dict[str, Any]) -> Row:
        return {k: (json.dumps(v) if isinstance(v, list | dict) else v) for k, v in values.items()}

    def record_cycle(self, cycle_id: str, summary: dict[str, Any]) -> None:
        self._enter("record_cycle")
        started = datetime.fromisoformat(summary["started"])
        row = {"PartitionKey": "cycle", "RowKey": f"{_newest_first(started)}-{cycle_id}"}
        row.update(self._flat(summary))
        with self._lock:
            self._put("cycles", row)

    def recent_cycles(self, limit: int = 20) -> list[dict[str, Any]]:
        self._enter("recent_cycles")
        with self._lock:
            return self._partition("cycles", "cycle")[:limit]

    def record_errors(self, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        rows = list(rows)
        self._enter("record_errors")
        stamp = table_state._now()
        added = []
        with self._lock:
            for n, row in enumerate(rows):
                sig = row.get("signature")
                if sig:
                    if self._get("state", "errorsig", sig) is not None:
                        continue
                    self._put("state", {"PartitionKey": "errorsig", "RowKey": sig})
                added.append(row)
                key = f"{_newest_first(stamp)}-{n:05d}-{secrets.token_hex(3)}"
                entity = {"PartitionKey": "error", "RowKey": key, "at": stamp.isoformat()}
                entity.update(self._flat(row))
                self._put("errors", entity)
        return added

    def list_errors(self, since: datetime | None = None) -> list[dict[str, Any]]:
        self._enter("list_errors")
        with self._lock:
            rows = self._partition("errors", "error")
        if since is not None:
            bound = _newest_first(since) + "~"
            rows = [r for r in rows if r["RowKey"] < bound]
        return rows

    def record_person_events(self, events: Iterable[dict[str, Any]]) -> None:
        events = list(events)
        self._enter("record_person_events")
        stamp = table_state._now()
        tag = secrets.token_hex(3)  # two batches in one millisecond must not collide
        with self._lock:
            for n, ev in enumerate(events):
                mid = int(ev["marketoId"])
                row: Row = {
                    "PartitionKey": f"p{mid // BUCKET:012d}",
                    "RowKey": f"{mid:012d}-{_newest_first(stamp)}-{n:06d}-{tag}",
                    "marketoId": mid,
                    "at": stamp.isoformat(),
                }
                row.update(self._flat({k: v for k, v in ev.items() if k != "marketoId"}))
                self._put("personlog", row)

    def person_events(self, marketo_id: int) -> list[dict[str, Any]]:
        self._enter("person_events")
        mid = int(marketo_id)
        lo, hi = f"{mid:012d}-", f"{mid:012d}."
        with self._lock:
            rows = self._partition("personlog", f"p{mid // BUCKET:012d}")
        return [r for r in rows if lo < r["RowKey"] < hi]
