"""The engine tier's fixture: the real cycle in-process, against the emulator apps over
`httpx.ASGITransport`, on the memory store. No servers, no Azurite, no sockets: one
test is a few hundred milliseconds, so these run by the hundred.

It reuses the simulation's world (tests/simulation/world.py), without its faults or
random steps: a test makes its own edits through the vendors' APIs, runs cycles, and
looks at both systems and the stored state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sync_core.activitylog import ensure_types
from sync_core.runtime import new_cycle
from sync_core.state import Link
from tests.simulation.world import SimWorld


@dataclass
class Engine:
    world: SimWorld
    runs: int = 0

    async def cycle(self, **settings: Any) -> dict[str, Any]:
        """One timer invocation, with these settings changed for it (e.g. the budget)."""
        w = self.world
        self.runs += 1
        er = w.parts(f"cycle-{self.runs}")
        kept = w.settings
        w.settings = kept.model_copy(update=settings)
        try:
            cycle = new_cycle(await w.runtime(er))
            er.own(cycle.id)
            return await cycle.run()
        finally:
            w.settings = kept
            await er.aclose()

    def cursor(self, name: str) -> str | None:
        """A stored cursor row, read past the fault gate."""
        rows = self.world.store.table("state")
        found = [r for r in rows if r["PartitionKey"] == "cursor" and r["RowKey"] == name]
        return str(found[0]["value"]) if found else None

    def link(self, dynamics_id: str) -> Link:
        (link,) = [x for x in self.world.links() if x.dynamics_id == dynamics_id]
        return link

    def person(self, marketo_id: int) -> dict[str, Any]:
        return self.world.people()[marketo_id]

    def record(self, entity: str, dynamics_id: str) -> dict[str, Any]:
        return self.world.records(entity)[dynamics_id]


@asynccontextmanager
async def running_engine(seed: int = 1) -> AsyncIterator[Engine]:
    """A fresh world with the sync's activity types set up (setup's Marketo part)."""
    world = SimWorld(seed)
    try:
        er = world.parts("setup-types")
        await ensure_types((await world.runtime(er)).marketo)
        await er.aclose()
        yield Engine(world)
    finally:
        await world.aclose()
