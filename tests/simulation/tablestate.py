"""The simulation on Table Storage: `TableStateStore` (on Azurite) with the hooks the
memory store gives the simulation.

Those hooks: an outage window and a lost lease race armed as faults (the way
`MemoryStateStore` misbehaves on demand), the lease expiring on the simulated clock, and
whole tables read past the engine for the invariant checks. Everything else is the
production store: its ETag-guarded lease, its entity-group transactions, its thread hops
interleaving the engine's calls. What it prevents: promises kept only against the memory
store, never against the service the engine runs on.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

from azure.core.exceptions import ResourceNotFoundError

from sync_core.memstore import outage
from sync_core.state import TABLES, Link
from sync_core.tablestore import TableStateStore
from tests.simulation.world import SimStore


class LeaseClock:
    """Stands in for the `time` module in `sync_core.tables` (its lease expiry reads
    `time.time()`): the simulated clock of the store made last."""

    def __init__(self) -> None:
        self.clock: Callable[[], float] = time.time

    def time(self) -> float:
        return self.clock()


class SimTableStore:
    TABLES = TABLES

    def __init__(self, inner: TableStateStore, clock: Callable[[], float]) -> None:
        self._inner, self.clock = inner, clock
        self.calls = 0
        self._outage: tuple[int, int] | None = None  # calls first .. first + count - 1
        self.lease_conflicts = 0

    # ---- fault injection, as MemoryStateStore does it -----------------------------
    def _enter(self, method: str) -> None:
        self.calls += 1
        if self._outage is not None and self._outage[0] <= self.calls < sum(self._outage):
            raise outage(method)

    def fail_calls(self, first: int, count: int = 1) -> None:
        self._outage = (self.calls + first, count)

    def heal(self) -> None:
        self._outage = None
        self.lease_conflicts = 0

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if name.startswith("_") or not callable(target):
            return target

        async def call(*args: Any, **kwargs: Any) -> Any:
            self._enter(name)
            return await target(*args, **kwargs)

        return call

    def close(self) -> None:
        """Every engine run closes its store; this one serves all runs of the world (as
        the memory store does), so `TableStores.close` releases it at the end."""

    async def iter_links(self) -> AsyncIterator[Link]:
        self._enter("iter_links")
        async for link in self._inner.iter_links():
            yield link

    async def acquire_lease(self, owner: str, seconds: int, name: str = "cycle") -> bool:
        self._enter("acquire_lease")
        if self.lease_conflicts > 0 and self.lease_holder(name) in (None, owner):
            # Someone else's write landed between our read and our conditional update.
            self.lease_conflicts -= 1
            return False
        return await self._inner.acquire_lease(owner, seconds, name)

    # ---- the truth, read past the engine (no faults) ------------------------------
    def table(self, name: str) -> list[dict[str, Any]]:
        rows = [dict(e) for e in self._inner._t(name).list_entities()]
        return sorted(rows, key=lambda r: (r["PartitionKey"], r["RowKey"]))

    def lease_holder(self, name: str = "cycle") -> str | None:
        try:
            row = self._inner._t("state").get_entity("lease", name)
        except ResourceNotFoundError:
            return None
        if float(row.get("expires", 0)) <= self.clock():
            return None
        return str(row["owner"])


class TableStores:
    """The store factory for `run_seed`: fresh tables per world, leases on its clock."""

    def __init__(self, connection: str, lease_clock: LeaseClock) -> None:
        self.connection, self.lease_clock = connection, lease_clock
        self.made: list[TableStateStore] = []

    def __call__(self, clock: Callable[[], float]) -> SimStore:
        self.lease_clock.clock = clock
        inner = TableStateStore.from_connection_string(
            self.connection, prefix="sim" + uuid.uuid4().hex[:10]
        )
        inner._rows.ensure_tables()  # what `setup` does once, before any cycle
        self.made.append(inner)
        return cast(SimStore, SimTableStore(inner, clock))

    def close(self) -> None:
        for inner in self.made:
            inner.close()
