"""Reading one Dynamics table's changes from where its cursor stands, page by page.

The state machine over `dynamicscursor`: a complete read with change tracking ends on a
delta link; an expired delta link or changed columns mean one full re-read compared
against every base (and, after it, links whose record it did not see are deletes); a
table without change tracking is read by `modifiedon` from a watermark, with an overlap
window for late commits; a read the time budget cuts short saves where it continues.
The cursor is saved only after every page it covers is applied and committed. What it
prevents: changes skipped for ever (an expiry resumed silently, a late commit under the
watermark), and re-reading a whole table because a long first load never finished.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sync_core.context import CycleContext
from sync_core.dataverse import ChangePage
from sync_core.dynamicscursor import (
    DeltaLink,
    Position,
    ResumeLink,
    TableCursor,
    Watermark,
    finished_rows,
    resume_rows,
)
from sync_core.errors import ChangeTrackingOff, DeltaExpired, OutOfTime, RecordRejected
from sync_core.mapping import ENTITY_KEY, ENTITY_SET, Entity
from sync_core.pairing import Prepared
from sync_core.snapshot import SeenIds, unseen_links

UNKNOWN_COLUMN = "0x80060888"  # Dataverse: a $select/$filter names a column that is gone
# modifiedon fallback: re-read this many seconds before the watermark every cycle, and
# keep at most this many (id, modifiedon) pairs from that window to skip re-processing.
WATERMARK_OVERLAP = 300
WATERMARK_SEEN_CAP = 800


class Pages(Protocol):
    """Where the pages go (the cycle's page sync)."""

    compare_all: set[Entity]  # tables whose linked pairs are all planned in full

    async def prepare(self, entity: Entity, rows: list[dict[str, Any]]) -> Prepared: ...
    async def apply_page(
        self, entity: Entity, page: ChangePage, prepared: Prepared | None = None
    ) -> None: ...
    async def sync_rows(self, entity: Entity, rows: list[dict[str, Any]]) -> None: ...
    def then(self, action: Callable[[], Awaitable[object]]) -> None: ...
    async def settle(self) -> None: ...


class Budget(Protocol):
    """The cycle's lease and time budget."""

    async def keep_lease(self) -> None: ...
    def spent(self) -> bool: ...


class DynamicsFeed:
    def __init__(
        self,
        ctx: CycleContext,
        pages: Pages,
        budget: Budget,
        refresh_access: Callable[[], Awaitable[object]],
        deleted: Callable[[Entity, list[str]], Awaitable[None]],
    ) -> None:
        self.ctx, self.pages, self.budget = ctx, pages, budget
        self.refresh_access = refresh_access  # force a re-read of field access
        self.deleted = deleted  # records gone from Dynamics
        self.full_reconcile: list[str] = []  # tables re-read in full this cycle
        # The columns each table's read selected (field access can be re-read while a
        # table is read: a value that suddenly reads as empty).
        self.read_with: dict[Entity, list[str]] = {}
        self.watermark_mode: list[str] = []  # tables read by modifiedon

    async def sync(self, entity: Entity) -> None:
        """Read and apply the table's changes, then save where the next read starts."""
        position = await self._read(entity)
        rows = finished_rows(entity, position, self._kept(entity))
        # Saved once every page it covers is committed, while the next table is read.
        self.pages.then(lambda: self.ctx.store.set_cursors(rows))

    def _columns(self, entity: Entity) -> str:
        return ",".join(self.ctx.mapping.columns(entity))

    def _kept(self, entity: Entity) -> str:
        """The columns to save with the cursor: those the read selected and the sync
        still holds. A column given back mid-read was not read, one taken away mid-read
        was left out of some rows' plans: either way the next cycle must see it come
        back (see _read), or a Marketo edit made while it was out never syncs."""
        now = set(self.ctx.mapping.columns(entity))
        read = self.read_with.get(entity, self.ctx.mapping.columns(entity))
        return ",".join(c for c in read if c in now)

    async def _read(self, entity: Entity) -> Position | None:
        main, resume, columns = TableCursor.names(entity)
        store = self.ctx.store
        cursor = TableCursor.parse(
            await store.get_cursor(main), await store.get_cursor(resume), None
        )
        position: Position | None = cursor.position
        start: Position | ResumeLink | None = cursor.resume or position
        saved = await store.get_cursor(columns) if start is not None else None
        if start is not None and saved != self._columns(entity):
            # The selected columns changed (mapping edited, access changed): a delta
            # would lack the new columns, so re-read the table once and compare all.
            self.full_reconcile.append(entity)
            start = None
            if set(self._columns(entity).split(",")) - set((saved or "").split(",")):
                # A column back in the sync (its grant given back) still has the base
                # from before it was left out, and a Marketo edit made meanwhile left
                # nothing on the Dynamics row: comparing only rows that differ from
                # their base would lose that edit for good, so every pair is planned.
                self.pages.compare_all.add(entity)
        # A resume link: an earlier cycle ran out of time here; its pages before are done.
        try:
            return await self._read_from(entity, start)
        except RecordRejected as exc:
            if exc.code != UNKNOWN_COLUMN:
                raise
            # A mapped column was deleted: learn the new field set, then re-read all.
            await self.refresh_access()
            self.full_reconcile.append(entity)
            return await self._read_from(entity, None)

    async def _read_from(
        self, entity: Entity, start: Position | ResumeLink | None
    ) -> Position | None:
        if isinstance(start, Watermark):
            return await self._consume_watermark(entity, start)
        try:
            return await self._consume(entity, start)
        except DeltaExpired:
            # Never resume silently after expiry: re-read the table and compare all.
            self.full_reconcile.append(entity)
            return await self._consume(entity, None)
        except ChangeTrackingOff:
            return await self._consume_watermark(entity, Watermark())

    async def _consume(
        self, entity: Entity, start: DeltaLink | ResumeLink | None
    ) -> DeltaLink | None:
        link = start.url if start is not None else None
        key = ENTITY_KEY[entity]
        # A whole-table read within this cycle: note what it saw, to find deletes after.
        seen = SeenIds() if start is None else None
        began = datetime.now(UTC).isoformat()
        columns = self.ctx.mapping.columns(entity)
        self.read_with[entity] = columns
        changes = self.ctx.dataverse.changes(ENTITY_SET[entity], columns, link)
        async for page, prepared in self._read_ahead(entity, changes):
            if seen is not None:
                seen.add(str(r[key]) for r in page.rows)
            await self.pages.apply_page(entity, page, prepared)
            await self.budget.keep_lease()
            if page.delta_link:
                link = page.delta_link
            elif page.next_link and self.budget.spent():
                await self.pages.settle()
                rows = resume_rows(entity, ResumeLink(page.next_link), self._kept(entity))
                await self.ctx.store.set_cursors(rows)
                raise OutOfTime(f"time budget used up in {entity}s; the next cycle continues")
        if seen is not None and link:
            # No need to wait for the slices in flight: their links are of records the
            # read saw, or newer than it, and neither kind is taken for a delete.
            gone = await unseen_links(self.ctx.store, entity, seen, began)
            if gone:
                await self.deleted(entity, [x.dynamics_id for x in gone])
        return DeltaLink(link) if link else None

    async def _consume_watermark(self, entity: Entity, mark: Watermark) -> Watermark:
        """Fallback when change tracking is off: rows with modifiedon >= watermark minus
        an overlap window (commits can land late with an older timestamp). Rows already
        handled at the same row version are skipped (boundary de-duplication; modifiedon
        has only whole seconds, so two edits in one second share it). Deletes
        are invisible this way; enabling change tracking is the fix `doctor` suggests."""
        if entity not in self.watermark_mode:
            self.watermark_mode.append(entity)
        key = ENTITY_KEY[entity]
        since, seen = mark.since, mark.seen
        query_from = _shift(since, -WATERMARK_OVERLAP) if since else None
        newest = since
        recent: dict[str, tuple[str, str]] = {}
        columns = self.ctx.mapping.columns(entity)
        self.read_with[entity] = columns
        async for rows in self.ctx.dataverse.modified_since(
            ENTITY_SET[entity], key, columns, query_from
        ):
            fresh = [r for r in rows if seen.get(str(r[key]).lower()) != _version(r)]
            if fresh:
                await self.pages.sync_rows(entity, fresh)
            for r in rows:
                stamp = str(r.get("modifiedon") or "")
                if stamp and (newest is None or stamp > newest):
                    newest = stamp
                recent[str(r[key]).lower()] = (stamp, _version(r))
            floor = _shift(newest, -WATERMARK_OVERLAP) if newest else ""
            recent = {k: v for k, v in recent.items() if v[0] >= floor}
        if len(recent) > WATERMARK_SEEN_CAP:
            recent = {}  # too many to keep in one row: re-reading them is merely slower
        return Watermark(newest, {k: v[1] for k, v in recent.items()})

    async def _read_ahead(
        self, entity: Entity, pages: AsyncIterator[ChangePage]
    ) -> AsyncIterator[tuple[ChangePage, Prepared]]:
        """Pages with their links looked up, the next one fetched and prepared while the
        caller applies the current one (Dataverse and Table Storage reads then overlap
        Marketo's rate-limited calls instead of adding to them)."""

        async def fetch() -> tuple[ChangePage, Prepared] | None:
            try:
                page = await anext(pages)
            except StopAsyncIteration:
                return None
            return page, await self.pages.prepare(entity, page.rows)

        ahead = asyncio.create_task(fetch())
        try:
            while (item := await ahead) is not None:
                ahead = asyncio.create_task(fetch())
                yield item
        finally:
            ahead.cancel()
            await asyncio.gather(ahead, return_exceptions=True)


def _version(row: dict[str, Any]) -> str:
    return str(row.get("versionnumber") or row.get("@odata.etag") or row.get("modifiedon"))


def _shift(stamp: str, seconds: int) -> str:
    """Move a Dataverse UTC timestamp; same format out, so strings compare in time order."""
    moved = datetime.fromisoformat(stamp.replace("Z", "+00:00")) + timedelta(seconds=seconds)
    return moved.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
