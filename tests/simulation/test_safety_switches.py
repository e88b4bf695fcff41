"""Proof that the simulation catches bugs: switch off one safety mechanism of the engine
and seeds from the `make test` range (0..299) break the promise it keeps.

Each mechanism is switched off here, at its narrowest seam, with monkeypatch (the engine
has no switch for it): the `If-Match` etag on Dataverse updates, the cycle lease, the
order "a cursor moves only after the pages it covers are committed" (Dynamics and
Marketo), the create intent, and the Marketo feed's overlap window. Each test first runs
its seeds with the mechanism on (they keep every promise, so the violation below is the
switch's doing), then off (each seed breaks the named invariant).

The seeds tell stories only as long as the simulation draws the same dice. When a change
to the simulation makes a test here fail with "no longer break", pick new seeds: run
seeds 0..299 with the switch applied (`with pytest.MonkeyPatch.context() as mp:
SWITCH(mp)`, then `run_seed(seed)`) and keep two or three whose violations name the
invariant.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import tests.simulation.world as sim_world
from sync_core import apply, marketofeed
from sync_core.cycle import MARKETO_CURSOR, Cycle
from sync_core.dataverse import ChangePage
from sync_core.dynamicscursor import DeltaLink, finished_rows
from sync_core.dynamicsfeed import DynamicsFeed
from sync_core.mapping import Entity
from sync_core.memstore import MemoryStateStore
from sync_core.pairing import Prepared
from tests.simulation.__main__ import new_violations, report
from tests.simulation.runner import run_seed

Switch = Callable[[pytest.MonkeyPatch], None]


# ---- the switches --------------------------------------------------------------------
def etag_condition_off(mp: pytest.MonkeyPatch) -> None:
    """Dataverse updates carry `If-Match: *` (update if it exists) instead of the etag."""
    real = apply.Op

    def unconditional(
        method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        return real(method, path, body, {**(headers or {}), "If-Match": "*"})

    mp.setattr(apply, "Op", unconditional)


def lease_off(mp: pytest.MonkeyPatch) -> None:
    """The cycle lease is granted to whoever asks (and recorded as theirs)."""
    real = MemoryStateStore.acquire_lease

    async def grant(self: MemoryStateStore, owner: str, seconds: int, name: str = "cycle") -> bool:
        if name != "cycle":
            return await real(self, owner, seconds, name)  # per-person delivery leases
        self._enter("acquire_lease")
        row = {"PartitionKey": "lease", "RowKey": name, "owner": owner}
        self._put("state", {**row, "expires": self.clock() + seconds})
        return True

    mp.setattr(MemoryStateStore, "acquire_lease", grant)


def dynamics_cursor_first(mp: pytest.MonkeyPatch) -> None:
    """A table's cursor is saved as soon as the page with the delta link is read."""
    real = DynamicsFeed._read_ahead

    async def eager(
        self: DynamicsFeed, entity: Entity, pages: AsyncIterator[ChangePage]
    ) -> AsyncIterator[tuple[ChangePage, Prepared]]:
        async for page, prepared in real(self, entity, pages):
            if page.delta_link:
                rows = finished_rows(entity, DeltaLink(page.delta_link), self._columns(entity))
                await self.ctx.store.set_cursors(rows)
            yield page, prepared

    mp.setattr(DynamicsFeed, "_read_ahead", eager)


def marketo_cursor_first(mp: pytest.MonkeyPatch) -> None:
    """The Marketo feed cursor is saved as soon as the feeds are read."""
    real = Cycle._read_marketo_feeds

    async def eager(self: Cycle) -> tuple[str, set[int], dict[int, int]]:
        read = await real(self)
        await self.store.set_cursors({MARKETO_CURSOR: read[0]})
        return read

    mp.setattr(Cycle, "_read_marketo_feeds", eager)


def create_intent_off(mp: pytest.MonkeyPatch) -> None:
    """No create intent is noted before Marketo creates people for new records."""
    real = MemoryStateStore.add_to_set

    async def add(self: MemoryStateStore, kind: str, keys: Any, data: Any = None) -> None:
        if kind.startswith("intent"):
            self._enter("add_to_set")  # the call still happens; nothing is noted
            return
        await real(self, kind, keys, data)

    mp.setattr(MemoryStateStore, "add_to_set", add)


def feed_overlap_off(mp: pytest.MonkeyPatch) -> None:
    """The deployment sets SYNC_MARKETO_FEED_OVERLAP_SECONDS to 0."""
    real = sim_world.load_settings

    def settings(environ: dict[str, str]) -> Any:
        return real({**environ, "SYNC_MARKETO_FEED_OVERLAP_SECONDS": "0"})

    mp.setattr(sim_world, "load_settings", settings)


def feed_resumes_at_its_end(mp: pytest.MonkeyPatch) -> None:
    """Each Marketo read starts where the last one ended: no overlap at all."""

    async def at_end(client: Any, cursor: marketofeed.FeedCursor, overlap: float) -> str:
        return cursor.legacy_token or cursor.marks[-1].token

    mp.setattr(marketofeed, "start_token", at_end)


# ---- the proof -----------------------------------------------------------------------
def _proves(mp: pytest.MonkeyPatch, switch: Switch, seeds: list[int], *invariants: str) -> None:
    kept = [run_seed(s) for s in seeds]
    failed = [r for r in kept if new_violations(r)]
    assert not failed, "with the mechanism on:\n" + "\n".join(report(r) for r in failed)
    switch(mp)
    broken = {s: {v.invariant for v in new_violations(run_seed(s))} for s in seeds}
    missed = {s: sorted(found) for s, found in broken.items() if not set(invariants) <= found}
    assert not missed, (
        f"with {switch.__name__}, these seeds no longer break {', '.join(invariants)} "
        f"(violations seen: {missed}); see this module's docstring for new seeds"
    )


def test_etag_condition(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without it, a cycle's update overwrites a salesperson's edit saved after its read."""
    _proves(monkeypatch, etag_condition_off, [15, 35, 207], "collision-rule")


def test_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without it, overlapping cycles both write, and both create a person for one record."""
    _proves(monkeypatch, lease_off, [67, 210, 251], "single-writer", "no-duplicates")


def test_dynamics_cursor_moves_after_its_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Saved first, a table's cursor skips for ever a new record a dead run never linked."""
    _proves(monkeypatch, dynamics_cursor_first, [144, 198, 227], "linked")


def test_marketo_cursor_moves_after_its_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Saved first, the Marketo cursor loses a marketer's edit when the run dies."""
    _proves(monkeypatch, marketo_cursor_first, [21, 30, 36], "convergence")


def test_create_intent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without it, a run dying right after creating a person makes the next create another."""
    _proves(monkeypatch, create_intent_off, [287], "no-duplicates")


def test_feed_overlap_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without it, a Marketo change committed late, during a long read, is never read."""
    _proves(monkeypatch, feed_overlap_off, [68, 80, 106], "convergence")


def test_feed_overlap_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resuming where the last read ended, a Marketo change committed late is never read."""
    _proves(monkeypatch, feed_resumes_at_its_end, [3, 68, 80], "convergence")
