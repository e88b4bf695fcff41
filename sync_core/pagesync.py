"""One page of Dynamics rows through the engine: filter, merges, pairing, new links,
the guard, the writes, and the commit, in slices written while the next is planned.

A page's records go through in slices of `SLICE`: while one slice's writes and commit
run, the next slice is planned (its Marketo look-ups and creates), across pages of a
table and into the next. So Marketo and Dataverse work at once instead of taking turns,
and a slice's write-back is still a few full `$batch` requests. At most `DEPTH` slices
are in flight, and they commit in order. `settle` waits for all of them; everything
that relies on committed link rows (logs, following a merge, the end of the cycle)
settles first, and a table's cursor waits for its slices (`then`) while the next table
is read. Records linked in a slice still being written are passed on to the next
(`taken`): their people's link fields are not written yet.

Linked records whose sync filter says No are remembered as paused, durably before the
Marketo cursor moves past their dropped edits, so when the filter lets them through
again the pair is re-planned in full. What it prevents: a cursor saved past writes
whose link rows are not, and a paused person's Marketo edits lost for ever.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from sync_core.apply import Applier, PairWork
from sync_core.context import CycleContext
from sync_core.dataverse import BATCH_OPS, ChangePage
from sync_core.deletes import dynamics_deleted
from sync_core.dynamicsmerges import follow_dynamics_merges
from sync_core.guard import MassChangeGuard
from sync_core.holds import guard_page
from sync_core.mapping import ENTITY_KEY, ENTITY_SET, Entity
from sync_core.marketo import BATCH as MARKETO_BATCH
from sync_core.mergestate import MASTER, ORIGIN
from sync_core.newlinks import clear_intents, link_new_records
from sync_core.pairing import Prepared, matches_base, plan_pairs, prepare
from sync_core.planner import as_id
from sync_core.state import Link

T = TypeVar("T")
PAUSED = "paused"  # state set: linked records held back by their sync filter
# Records per slice at most: three full Dataverse batches (dataverse.BATCH_OPS) and ten
# Marketo calls of 300, two rounds of Marketo's five in flight. Where the pacer sends
# smaller batches, a slice is three of those, in whole Marketo calls (`_slices`).
SLICE = 3 * BATCH_OPS
# Slices written at once. Three keep Dataverse's four batches in flight busy while the
# next slice is planned (with two, a 20,000-person load kept 2.7 of 4 busy on average).
DEPTH = 3


class PageSync:
    def __init__(
        self,
        ctx: CycleContext,
        applier: Applier,
        guard: MassChangeGuard,
        refresh_access: Callable[[], Awaitable[bool]],
    ) -> None:
        self.ctx = ctx
        self.applier = applier
        self.guard = guard
        # Re-read field access; False when it was read in this cycle already.
        self.refresh_access = refresh_access
        # Slices being written and committed, oldest first (each commits after the one
        # before it); and the people their new links took.
        self._writing: list[asyncio.Task[None]] = []
        self._after: list[asyncio.Task[None]] = []  # what waits for them (`then`)
        self.taken: set[int] = set()
        # Marketo ids of linked records whose sync filter said No in some cycle. Their
        # Marketo edits were passed over by the feed cursor, so when the filter lets them
        # through again the pair is re-planned in full, not only on this cycle's changes.
        self.paused: set[int] = set()
        self.resumed: set[int] = set()
        # Tables whose every linked row is planned in full this cycle, whatever its
        # base says (a column came back into the sync: dynamicsfeed._read).
        self.compare_all: set[Entity] = set()

    async def load_paused(self) -> None:
        self.paused = {int(x) for x in await self.ctx.store.members(PAUSED)}

    async def finish_resumed(self) -> None:
        """Only once every resumed pair's writes and links are committed."""
        if self.resumed:
            await self.ctx.store.remove_from_set(PAUSED, [str(i) for i in self.resumed])

    async def prepare(self, entity: Entity, rows: list[dict[str, Any]]) -> Prepared:
        return await prepare(self.ctx, entity, rows)

    async def apply_page(
        self, entity: Entity, page: ChangePage, prepared: Prepared | None = None
    ) -> None:
        if page.deleted:
            await dynamics_deleted(self.ctx, entity, page.deleted)
        if page.rows:
            await self.sync_rows(entity, page.rows, prepared)

    async def sync_rows(
        self, entity: Entity, rows: list[dict[str, Any]], prepared: Prepared | None = None
    ) -> None:
        ctx = self.ctx
        key = ENTITY_KEY[entity]
        filtered, live, links = prepared or await prepare(ctx, entity, rows)
        newly_paused: list[str] = []
        held = await self._held_for(entity, filtered) if filtered else {}
        for row in filtered:
            ctx.record.counts.filtered_out += 1
            mid = held.get(str(row[key]).lower())
            if mid is not None:
                ctx.changes.pop(mid)
                if mid not in self.paused:
                    self.paused.add(mid)
                    newly_paused.append(str(mid))
        if newly_paused:
            # Durable before the Marketo cursor moves past the edits dropped above.
            await ctx.store.add_to_set(PAUSED, newly_paused)
        if not live:
            return
        if any(r.get(MASTER) for r in live):
            # A merge moves links: the slices in flight must have saved theirs.
            await self.settle()
        merged = await follow_dynamics_merges(ctx, entity, live, links)
        if merged:
            live = [r for r in live if str(r[key]).lower() not in merged]
        fold = ctx.mapping.case_folded()
        linked, unlinked = [], []
        for row in live:
            link = links.get(str(row[key]).lower())
            if link is None:
                unlinked.append(row)
                continue
            dirty = ctx.changes.dirty(link, ctx.hasher, fold)
            if link.marketo_id in self.paused:
                dirty = True
                self.resumed.add(link.marketo_id)
            dirty = dirty or entity in self.compare_all
            ctx.changes.pop(link.marketo_id)
            if dirty or not matches_base(ctx.mapping, ctx.hasher, entity, row, link):
                linked.append((row, link))
        for pairs in self._slices(linked):
            await self._room()
            await self._write(entity, await self._pair_work(entity, pairs))
        if entity == "contact" and any(r.get(ORIGIN) for r in unlinked):
            # Qualified from a lead (newlinks step 0): that lead's link must be saved.
            await self.settle()
        for part in self._slices(unlinked):
            await self._room()
            await self._write(entity, await link_new_records(ctx, entity, part, self.taken))

    def _slices(self, items: list[T]) -> Iterator[list[T]]:
        """`items` in slices of three of the pacer's batches, in whole Marketo calls;
        SLICE before the first batch is measured. Slices of 3,000 ended in a small batch
        of their own where the pacer sends fewer than 1,000 a batch: a 20,000-person load
        made 33 Dataverse calls, 30 in these slices (24 at the least)."""
        lo = 0
        while lo < len(items):
            pacer = self.ctx.dataverse.pacer
            size = SLICE
            if pacer.per_op is not None:
                batches = 3 * min(pacer.batch_size(), BATCH_OPS) // MARKETO_BATCH * MARKETO_BATCH
                size = min(SLICE, max(MARKETO_BATCH, batches))
            yield items[lo : lo + size]
            lo += size

    async def _room(self) -> None:
        """Wait until fewer than DEPTH slices are in flight; a failed one stops here."""
        while True:
            for tasks in (self._writing, self._after):
                for task in [t for t in tasks if t.done()]:
                    tasks.remove(task)
                    task.result()  # its error stops the cycle (settle does not raise it again)
            if len(self._writing) < DEPTH:
                return
            await asyncio.wait([self._writing[0]])

    async def _write(self, entity: Entity, work: list[PairWork]) -> None:
        await guard_page(self.ctx, self.guard, work)
        if work:
            before = self._writing[-1] if self._writing else None
            self._writing.append(asyncio.create_task(self._apply(entity, work, before)))

    async def _apply(
        self, entity: Entity, work: list[PairWork], before: asyncio.Task[None] | None
    ) -> None:
        commit = await self.applier.apply(entity, work)
        if before is not None:
            await asyncio.wait([before])  # commits in order; its own error surfaces itself
        await commit()
        await clear_intents(self.ctx, entity, work)

    async def _held_for(self, entity: Entity, rows: list[dict[str, Any]]) -> dict[str, int]:
        """Record id -> the person its sync filter holds back: the one its Marketo id
        names, unless that person's link is to another record now. A record merged away
        or a qualified lead keeps the Marketo id it had; holding back that person (who
        lives on elsewhere) dropped its pending changes, a link a Marketo merge had just
        moved among them, until its own record happened to change."""
        key, column = ENTITY_KEY[entity], self.ctx.mapping.marketo_id_column
        named: dict[str, int] = {}
        for row in rows:
            mid = as_id(row.get(column))
            if mid is not None:
                named[str(row[key]).lower()] = mid
        if not named:
            return {}
        links = await self.ctx.store.links_by_marketo(set(named.values()))
        return {
            rid: mid
            for rid, mid in named.items()
            if (link := links.get(mid)) is None or (link.entity, link.dynamics_id) == (entity, rid)
        }

    def then(self, action: Callable[[], Awaitable[object]]) -> None:
        """Run `action` once every slice in flight now has committed; not at all if one
        failed (its error surfaces where the slices are waited for)."""
        before = list(self._writing)

        async def after() -> None:
            if not any(await asyncio.gather(*before, return_exceptions=True)):
                await action()

        self._after.append(asyncio.create_task(after()))

    async def settle(self) -> None:
        """Wait for the slices being written and committed (the first error surfaces
        here, once every slice has ended). Called before anything that relies on
        committed links: cursors, logs, merges, the end."""
        tasks = [*self._writing, *self._after]
        self._writing, self._after = [], []
        self.taken = set()  # their link fields are written now
        failed = [r for r in await asyncio.gather(*tasks, return_exceptions=True) if r]
        if failed:
            raise failed[0]

    async def _pair_work(
        self, entity: Entity, pairs: list[tuple[dict[str, Any], Link]]
    ) -> list[PairWork]:
        if not pairs:
            return []
        ctx = self.ctx
        people = await ctx.marketo.get_leads(
            "id", [link.marketo_id for _, link in pairs], ctx.mapping.marketo_fields()
        )
        by_id = {int(p["id"]): p for p in people}
        work = plan_pairs(ctx, self.guard, entity, pairs, by_id)
        blank = any(v is None for w in work for v in w.plan.to_marketo.values())
        # A value that suddenly reads as empty may be a column secured since the
        # metadata was read: check access before copying the blank to Marketo.
        if blank and await self.refresh_access():
            work = plan_pairs(ctx, self.guard, entity, pairs, by_id)
        return work

    async def marketo_leftovers(self) -> None:
        """Linked people changed in Marketo whose record no Dynamics page brought."""
        ctx = self.ctx
        if not ctx.changes:
            return
        await self.settle()  # the links the tables' pages made, saved
        links = await ctx.store.links_by_marketo(ctx.changes.ids())
        fold = ctx.mapping.case_folded()
        by_entity: dict[Entity, list[Link]] = defaultdict(list)
        for link in links.values():
            if ctx.changes.dirty(link, ctx.hasher, fold):
                by_entity[link.entity].append(link)
        for entity, group in by_entity.items():
            rows = await ctx.dataverse.get_by_ids(
                ENTITY_SET[entity],
                ENTITY_KEY[entity],
                [link.dynamics_id for link in group],
                ctx.mapping.columns(entity),
            )
            await self.sync_rows(entity, rows)
