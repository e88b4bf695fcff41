"""One background delta cycle: read both change feeds, merge, write, commit.

Order of operations is what keeps a crash harmless: cursors (Dataverse delta links,
the Marketo paging token) are saved last, after every pair they cover has been
written and its link row saved; re-running a half-done cycle re-reads the same
changes, and the base comparison turns everything already applied into a no-op. A
lease row makes sure two overlapping runs (the platform may replay a timer) never
both write. Marketo-only people are never pushed to Dynamics here: that is the
real-time sync-person function's job.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, NamedTuple

from sync_core import journal
from sync_core.access import decode_row, field_access, invalidate
from sync_core.activitylog import activity_log_state
from sync_core.apply import Applier, PairWork
from sync_core.context import CycleContext
from sync_core.dataverse import ChangePage, DataverseClient
from sync_core.errors import (
    ChangeTrackingOff,
    DeltaExpired,
    OutOfTime,
    QuotaExhausted,
    RecordRejected,
    StopCycle,
    SyncError,
)
from sync_core.guard import MassChangeGuard
from sync_core.mapping import ENTITIES, ENTITY_KEY, ENTITY_SET, Entity, Mapping
from sync_core.marketo import MarketoClient
from sync_core.marketofeed import MarketoChanges, read_feeds
from sync_core.merges import follow_dynamics_merges, follow_marketo_merges
from sync_core.newlinks import clear_intents, link_new_records
from sync_core.pairing import dynamics_link_fields, marketo_link_fields
from sync_core.planner import Hasher, as_id, comparable, plan_pair
from sync_core.runrecord import PersonEvent, RunRecord, SyncErrorRow
from sync_core.snapshot import SeenIds, unseen_links
from sync_core.state import Link, StateStore

log = logging.getLogger("sync_core")
MARKETO_CURSOR = "marketo-activities"
PAUSED = "paused"  # state set: linked records held back by their sync filter
# Marketo's quota day starts at midnight US Central; a fixed UTC-6 is close enough for a
# budget (it never under-counts by more than the hour of DST).
QUOTA_TZ = timezone(timedelta(hours=-6))
UNKNOWN_COLUMN = "0x80060888"  # Dataverse: a $select/$filter names a column that is gone
# modifiedon fallback: re-read this many seconds before the watermark every cycle, and
# keep at most this many (id, modifiedon) pairs from that window to skip re-processing.
WATERMARK_OVERLAP = 300
WATERMARK_SEEN_CAP = 800


class Prepared(NamedTuple):
    filtered: list[dict[str, Any]]  # rows whose sync filter says No
    live: list[dict[str, Any]]  # the rest, option sets decoded
    links: dict[str, Link]  # record id -> its link, where one exists


class Cycle:
    def __init__(
        self,
        mapping: Mapping,
        store: StateStore,
        marketo: MarketoClient,
        dataverse: DataverseClient,
        hasher: Hasher,
        *,
        lease_seconds: int = 900,
        daily_quota: int = 50_000,
        quota_share: float = 0.8,
        time_budget: float = 480.0,
        feed_overlap: float = 120.0,
        mass_change_limit: int = 0,
        mass_change_share: float = 0.25,
    ) -> None:
        self.configured = mapping  # as written; self.mapping is the effective set
        self.mapping = mapping
        self.store = store
        self.marketo = marketo
        self.dataverse = dataverse
        self.hasher = hasher
        self.lease_seconds = lease_seconds
        self.daily_quota = daily_quota
        self.quota_share = quota_share
        self.feed_overlap = feed_overlap
        self.guard = MassChangeGuard(store, limit=mass_change_limit, share=mass_change_share)
        self.deadline = time.monotonic() + time_budget
        self._leased_at = time.monotonic()
        self.id = uuid.uuid4().hex[:12]
        self.record = RunRecord()
        self.counts = self.record.counts
        self.changes = MarketoChanges()
        self.ctx = CycleContext(store, marketo, dataverse, hasher, mapping, self.record,
                                self.changes)  # fmt: skip
        self.applier = Applier(self.ctx)
        self.full_reconcile: list[str] = []
        self.watermark_mode: list[str] = []
        self.fold = mapping.case_folded()
        self.excluded: list[dict[str, str]] = []
        self.mapping_problems: list[dict[str, str]] = []
        self.access_refreshed = False
        self._commit: asyncio.Task[None] | None = None
        # Marketo ids of linked records whose sync filter said No in some cycle. Their
        # Marketo edits were passed over by the feed cursor, so when the filter lets them
        # through again the pair is re-planned in full, not only on this cycle's changes.
        self.paused: set[int] = set()
        self.resumed: set[int] = set()
        self.first_run = False
        self.marketo_merged: dict[int, int] = {}
        self.activity_log = "unknown"

    async def _load_access(self, *, force: bool = False) -> None:
        access = await field_access(
            self.store, self.configured, self.marketo, self.dataverse, force=force
        )
        self.mapping = self.ctx.mapping = access.mapping
        self.fold = access.mapping.case_folded()
        self.excluded = access.excluded
        self.access_refreshed = self.access_refreshed or access.refreshed
        if access.refreshed:
            # Reported whenever metadata is read (start-up, hourly, on access changes):
            # errors one by one, warnings (mostly the usual length differences) in one line.
            self.mapping_problems = access.problems
            warnings = [p for p in access.problems if p["severity"] != "error"]
            for p in access.problems:
                if p["severity"] == "error":
                    log.error("mapping error: %s %s: %s Fix: %s", p["entity"], p["field"],
                              p["message"], p["fix"])  # fmt: skip
            if warnings:
                fields = ", ".join(sorted({f"{p['entity']} {p['field']}" for p in warnings}))
                log.warning("mapping: %d warning(s) (%s); details: python -m sync_core "
                            "doctor", len(warnings), fields)  # fmt: skip

    # ---- entry -------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        started = datetime.now(UTC)
        clock = time.monotonic()
        summary: dict[str, Any] = {"cycleId": self.id, "started": started.isoformat()}
        if not await self.store.acquire_lease(self.id, self.lease_seconds):
            summary.update(outcome="skipped", message="another cycle holds the lease")
            return await self._finish(summary, clock, record=False)
        quota_day = datetime.now(QUOTA_TZ).date().isoformat()
        used = int(await self.store.get_value("quota", quota_day) or 0)
        self.marketo.budget = max(0, int(self.daily_quota * self.quota_share) - used)
        try:
            await self._run()
            summary.update(outcome="succeeded", message="")
        except OutOfTime as exc:
            summary.update(outcome="partial", message=str(exc))
        except QuotaExhausted as exc:
            summary.update(outcome="stopped", message=str(exc))
        except StopCycle as exc:
            summary.update(outcome="failed", message=str(exc))
        except SyncError as exc:
            summary.update(outcome="failed", message=f"{type(exc).__name__}: {exc}")
        finally:
            try:
                # Writes that landed before a failure still get their link rows.
                await self._settle()
                await self._flush_logs()
                await self.store.set_values("quota", {quota_day: str(used + self.marketo.calls)})
            finally:
                await self.store.release_lease(self.id)
        return await self._finish(summary, clock, record=True)

    async def _finish(
        self, summary: dict[str, Any], clock: float, *, record: bool
    ) -> dict[str, Any]:
        summary.update(
            ended=datetime.now(UTC).isoformat(),
            durationSeconds=round(time.monotonic() - clock, 3),
            counts=self.counts.as_dict(),
            apiCalls={"marketo": self.marketo.calls, "dynamics": self.dataverse.calls},
            fullReconcile=self.full_reconcile,
            watermarkMode=self.watermark_mode,
            excludedFields=self.excluded,
            mappingProblems=self.mapping_problems,
            held=[asdict(h) for h in self.guard.holds.values()],
            activityLog=self.activity_log,
        )
        if record:
            await self.store.record_cycle(self.id, summary)
        return summary

    async def _flush_logs(self) -> None:
        await self.record.flush(self.store, self.marketo)

    async def _run(self) -> None:
        cursors: dict[str, str | None] = {}
        await self._load_access()
        # Writes a dead run may have landed without saving their base: mark them first.
        await journal.recover(self.store)
        _, off = await activity_log_state(self.marketo)
        self.activity_log = f"off: {off}" if off else "on"
        mk_token, deleted_people = await self._read_marketo_feeds()
        retry_ids = [int(x) for x in await self.store.members("retry")]
        self.paused = {int(x) for x in await self.store.members(PAUSED)}
        for mid in retry_ids:
            self.changes.always(mid)
        await self.guard.load()
        for hold in self.guard.released():
            # Released: every change held under it is planned again, this time written.
            for mid in await self.guard.waiting(hold):
                self.changes.always(mid)
        await self._guard_marketo_changes()
        await follow_marketo_merges(self.ctx, self.marketo_merged)
        for entity in ENTITIES:
            link = await self._sync_dynamics_changes(entity)
            await self._settle()
            # All its pages are applied: this entity's cursor may advance on its own.
            await self.store.set_cursors(
                {
                    f"dynamics-{entity}": link,
                    f"dynamics-{entity}-columns": ",".join(self.mapping.columns(entity)),
                    f"dynamics-{entity}-resume": None,
                },
            )
        await self._sync_marketo_leftovers()
        await self._close_marketo_deleted(deleted_people)
        await self._settle()
        await self._flush_logs()
        cursors[MARKETO_CURSOR] = mk_token
        await self.store.set_cursors(cursors)
        done = set(retry_ids) - self.applier.retried
        if done:
            await self.store.remove_from_set("retry", [str(i) for i in done])
        if self.resumed:
            # Only now: every resumed pair's writes and links are committed above.
            await self.store.remove_from_set(PAUSED, [str(i) for i in self.resumed])
        if self.applier.access_changed:
            await invalidate(self.store)
        c = self.counts
        if self.first_run and self.guard.linked is None:
            self.guard.linked = 0  # a new installation: count links from here on
        self.guard.adjust_linked(
            c.linked + c.created_in_marketo - c.deleted_in_dynamics - c.deleted_in_marketo
        )
        await self.guard.finish_released()
        await self.guard.save()

    # ---- mass-change guard -------------------------------------------------
    async def _guard_marketo_changes(self) -> None:
        """Count Marketo-to-Dynamics changes per field before anything is written, so a
        mass change in Marketo is held before it reaches a single CRM record."""
        if self.guard.threshold() is None or not self.changes:
            return
        links = await self.store.links_by_marketo(self.changes.ids())
        writes: dict[str, list[int]] = defaultdict(list)
        for mid in self.changes.ids():
            link = links.get(mid)
            if link is None:
                continue
            for f in self.changes.changed_fields(link, self.hasher, self.fold):
                writes[f].append(mid)
        for field in await self.guard.count("to-dynamics", writes):
            self._report_hold(field, "to-dynamics")

    async def _guard_page(self, work: list[PairWork]) -> None:
        """Dynamics-to-Marketo writes are counted page by page (they arrive as a stream);
        a field crossing the limit is taken out of this page's writes and held. Held
        changes, whichever direction, are kept for the release."""
        writes: dict[str, list[int]] = defaultdict(list)
        for w in work:
            if not w.new:
                for f in w.plan.to_marketo:
                    writes[f].append(w.link.marketo_id)
        tripped = await self.guard.count("to-marketo", writes)
        for field in tripped:
            self._report_hold(field, "to-marketo")
            for w in work:
                if not w.new and field in w.plan.to_marketo:
                    del w.plan.to_marketo[field]
                    w.plan.pending_marketo.pop(field, None)
                    w.plan.held.append(("to-marketo", field))
        kept: dict[tuple[str, str], list[int]] = defaultdict(list)
        for w in work:
            for direction, field in w.plan.held:
                kept[(direction, field)].append(w.link.marketo_id)
        for (direction, field), ids in kept.items():
            self.counts.held += len(ids)
            await self.guard.keep(direction, field, ids)

    def _report_hold(self, field: str, direction: str) -> None:
        hold = self.guard.holds[f"{direction}:{field}"]
        log.warning("mass-change guard holds %s %s: %d writes > %d", field, direction,
                    hold.count, hold.limit)  # fmt: skip
        self.record.error(
            SyncErrorRow(
                operation="hold",
                direction=direction,
                entity="",
                fields=[field],
                code="mass-change",
                message=(
                    f"one cycle would write {field} {direction} on more than {hold.limit} "
                    f"records: held, nothing written for it; release with "
                    f"`{hold.release_command()}` or raise SYNC_MASS_CHANGE_LIMIT"
                ),
            )
        )

    # ---- Marketo feeds -----------------------------------------------------
    async def _read_marketo_feeds(self) -> tuple[str, set[int]]:
        saved = await self.store.get_cursor(MARKETO_CURSOR)
        # Only mapped fields: our own link fields (dynamicsId...) are not edits to sync.
        read = await read_feeds(
            self.marketo, saved, self.mapping.mapped_marketo_fields(), overlap=self.feed_overlap
        )
        for mid, changes in read.changes.items():
            self.changes.add(mid, changes)
        self.first_run = read.fresh_start
        self.marketo_merged = read.merged
        return read.cursor.dump(), read.deleted

    def _marketo_dirty(self, link: Link) -> bool:
        return self.changes.dirty(link, self.hasher, self.fold)

    # ---- Dynamics side -----------------------------------------------------
    async def _sync_dynamics_changes(self, entity: Entity) -> str | None:
        name = f"dynamics-{entity}"
        cursor = await self.store.get_cursor(name)
        resume = await self.store.get_cursor(f"{name}-resume")
        columns = ",".join(self.mapping.columns(entity))
        if (cursor or resume) and await self.store.get_cursor(f"{name}-columns") != columns:
            # The selected columns changed (mapping edited, access changed): a delta
            # would lack the new columns, so re-read the table once and compare all.
            self.full_reconcile.append(entity)
            cursor = resume = None
        if resume:
            # An earlier cycle ran out of time here; its pages before this one are done.
            cursor = resume
        try:
            return await self._read_changes(entity, cursor)
        except RecordRejected as exc:
            if exc.code != UNKNOWN_COLUMN:
                raise
            # A mapped column was deleted: learn the new field set, then re-read all.
            await self._load_access(force=True)
            self.full_reconcile.append(entity)
            return await self._read_changes(entity, None)

    async def _read_changes(self, entity: Entity, cursor: str | None) -> str | None:
        if cursor and cursor.startswith("{"):
            return await self._consume_watermark(entity, json.loads(cursor))
        try:
            return await self._consume(entity, cursor)
        except DeltaExpired:
            # Never resume silently after expiry: re-read the table and compare all.
            self.full_reconcile.append(entity)
            return await self._consume(entity, None)
        except ChangeTrackingOff:
            return await self._consume_watermark(entity, None)

    async def _consume_watermark(self, entity: Entity, state: dict[str, Any] | None) -> str:
        """Fallback when change tracking is off: rows with modifiedon >= watermark minus
        an overlap window (commits can land late with an older timestamp). Rows already
        handled at the same row version are skipped (boundary de-duplication; modifiedon
        has only whole seconds, so two edits in one second share it). Deletes
        are invisible this way; enabling change tracking is the fix `doctor` suggests."""
        if entity not in self.watermark_mode:
            self.watermark_mode.append(entity)
        key = ENTITY_KEY[entity]
        since = state.get("since") if state else None
        seen: dict[str, str] = dict(state.get("seen", {})) if state else {}
        query_from = _shift(since, -WATERMARK_OVERLAP) if since else None
        newest = since
        recent: dict[str, tuple[str, str]] = {}
        async for rows in self.dataverse.modified_since(
            ENTITY_SET[entity], key, self.mapping.columns(entity), query_from
        ):
            fresh = [r for r in rows if seen.get(str(r[key]).lower()) != _version(r)]
            if fresh:
                await self._sync_rows(entity, fresh)
            for r in rows:
                stamp = str(r.get("modifiedon") or "")
                if stamp and (newest is None or stamp > newest):
                    newest = stamp
                recent[str(r[key]).lower()] = (stamp, _version(r))
            floor = _shift(newest, -WATERMARK_OVERLAP) if newest else ""
            recent = {k: v for k, v in recent.items() if v[0] >= floor}
        if len(recent) > WATERMARK_SEEN_CAP:
            recent = {}  # too many to keep in one row: re-reading them is merely slower
        seen_now = {k: v[1] for k, v in recent.items()}
        return json.dumps({"mode": "modifiedon", "since": newest, "seen": seen_now})

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
            return page, await self._prepare(entity, page.rows)

        ahead = asyncio.create_task(fetch())
        try:
            while (item := await ahead) is not None:
                ahead = asyncio.create_task(fetch())
                yield item
        finally:
            ahead.cancel()
            await asyncio.gather(ahead, return_exceptions=True)

    async def _consume(self, entity: Entity, delta: str | None) -> str | None:
        link: str | None = delta
        key = ENTITY_KEY[entity]
        # A whole-table read within this cycle: note what it saw, to find deletes after.
        seen = SeenIds() if delta is None else None
        began = datetime.now(UTC).isoformat()
        pages = self.dataverse.changes(ENTITY_SET[entity], self.mapping.columns(entity), delta)
        async for page, prepared in self._read_ahead(entity, pages):
            if seen is not None:
                seen.add(str(r[key]) for r in page.rows)
            await self._apply_page(entity, page, prepared)
            await self._keep_lease()
            if page.delta_link:
                link = page.delta_link
            elif page.next_link and time.monotonic() > self.deadline:
                await self._settle()
                columns = ",".join(self.mapping.columns(entity))
                await self.store.set_cursors(
                    {
                        f"dynamics-{entity}-resume": page.next_link,
                        f"dynamics-{entity}-columns": columns,
                    },
                )
                raise OutOfTime(f"time budget used up in {entity}s; the next cycle continues")
        if seen is not None and link:
            await self._settle()
            gone = await unseen_links(self.store, entity, seen, began)
            if gone:
                await self._dynamics_deleted(entity, [x.dynamics_id for x in gone])
        return link

    async def _keep_lease(self) -> None:
        """Renew the lease on long cycles; if someone else holds it now, stop writing."""
        if time.monotonic() - self._leased_at < self.lease_seconds / 3:
            return
        if not await self.store.acquire_lease(self.id, self.lease_seconds):
            raise StopCycle("lost the cycle lease to another run; stopping")
        self._leased_at = time.monotonic()

    async def _apply_page(
        self, entity: Entity, page: ChangePage, prepared: Prepared | None = None
    ) -> None:
        if page.deleted:
            await self._dynamics_deleted(entity, page.deleted)
        if page.rows:
            await self._sync_rows(entity, page.rows, prepared)

    async def _prepare(self, entity: Entity, rows: list[dict[str, Any]]) -> Prepared:
        """The read-only part of a page: split off filtered rows, look up links. Safe to
        run ahead of the previous page, whose records are never this page's."""
        key = ENTITY_KEY[entity]
        fcol, mcol = self.mapping.sync_filter_column, self.mapping.marketo_id_column
        rules = self.mapping.fields[entity]
        filtered = [r for r in rows if r.get(fcol) is False]
        live = [decode_row(rules, r) for r in rows if r.get(fcol) is not False]
        if not live:
            return Prepared(filtered, live, {})
        # The Marketo id a linked record carries lets most lookups skip the index read.
        hints = {str(r[key]).lower(): as_id(r.get(mcol)) for r in live}
        links = await self.store.links_by_dynamics(entity, [r[key] for r in live], hints)
        return Prepared(filtered, live, links)

    async def _sync_rows(
        self, entity: Entity, rows: list[dict[str, Any]], prepared: Prepared | None = None
    ) -> None:
        key = ENTITY_KEY[entity]
        filtered, live, links = prepared or await self._prepare(entity, rows)
        newly_paused: list[str] = []
        for row in filtered:
            self.counts.filtered_out += 1
            mid = as_id(row.get(self.mapping.marketo_id_column))
            if mid is not None:
                self.changes.pop(mid)
                if mid not in self.paused:
                    self.paused.add(mid)
                    newly_paused.append(str(mid))
        if newly_paused:
            # Durable before the Marketo cursor moves past the edits dropped above.
            await self.store.add_to_set(PAUSED, newly_paused)
        if not live:
            return
        merged = await follow_dynamics_merges(self.ctx, entity, live, links)
        if merged:
            live = [r for r in live if str(r[key]).lower() not in merged]
        linked, unlinked = [], []
        for row in live:
            link = links.get(str(row[key]).lower())
            if link is None:
                unlinked.append(row)
                continue
            dirty = self._marketo_dirty(link)
            if link.marketo_id in self.paused:
                dirty = True
                self.resumed.add(link.marketo_id)
            self.changes.pop(link.marketo_id)
            if dirty or not self._dynamics_matches_base(entity, row, link):
                linked.append((row, link))
        work = await self._pair_work(entity, linked)
        if unlinked:
            work += await link_new_records(self.ctx, entity, unlinked)
        await self._guard_page(work)
        if work:
            commit = await self.applier.apply(entity, work)
            await self._settle()  # at most one page's commit in flight
            self._commit = asyncio.create_task(self._commit_page(entity, work, commit))

    async def _commit_page(self, entity: Entity, work: list[PairWork], commit: Any) -> None:
        await commit()
        await clear_intents(self.ctx, entity, work)

    async def _settle(self) -> None:
        """Wait for the page commit running in the background (its error surfaces here).
        Called before anything that relies on committed links: cursors, logs, the end."""
        task, self._commit = self._commit, None
        if task is not None:
            await task

    def _dynamics_matches_base(self, entity: Entity, row: dict[str, Any], link: Link) -> bool:
        """True when this Dynamics row carries nothing new for the pair: every mapped
        value equals the base (our own write coming back, or an unmapped edit)."""
        if as_id(row.get(self.mapping.marketo_id_column)) != link.marketo_id:
            return False
        return all(
            self.hasher(comparable(row.get(r.column), r.fold_case)) == link.base.get(r.marketo)
            for r in self.mapping.fields[entity]
        )

    async def _pair_work(
        self, entity: Entity, pairs: list[tuple[dict[str, Any], Link]]
    ) -> list[PairWork]:
        if not pairs:
            return []
        people = await self.marketo.get_leads(
            "id", [link.marketo_id for _, link in pairs], self.mapping.marketo_fields()
        )
        by_id = {int(p["id"]): p for p in people}
        work = self._plan_pairs(entity, pairs, by_id)
        if not self.access_refreshed and any(
            v is None for w in work for v in w.plan.to_marketo.values()
        ):
            # A value that suddenly reads as empty may be a column secured since the
            # metadata was read: check access before copying the blank to Marketo.
            await self._load_access(force=True)
            work = self._plan_pairs(entity, pairs, by_id)
        return work

    def _plan_pairs(
        self,
        entity: Entity,
        pairs: list[tuple[dict[str, Any], Link]],
        by_id: dict[int, dict[str, Any]],
    ) -> list[PairWork]:
        rules = self.mapping.fields[entity]
        work = []
        for row, link in pairs:
            person = by_id.get(link.marketo_id)
            if person is None:
                continue  # deleted in Marketo; the deleted-leads feed closes the link
            plan = plan_pair(
                rules, row, person, link.base, self.hasher,
                hold_to_marketo=self.guard.held("to-marketo"),
                hold_to_dynamics=self.guard.held("to-dynamics"),
            )  # fmt: skip
            work.append(
                PairWork(
                    link,
                    plan,
                    row.get("@odata.etag"),
                    extra_marketo=marketo_link_fields(
                        self.mapping, person, entity, link.dynamics_id
                    ),
                    extra_dynamics=dynamics_link_fields(self.mapping, row, link.marketo_id),
                )
            )
        return work

    async def _dynamics_deleted(self, entity: Entity, ids: list[str]) -> None:
        links = await self.store.links_by_dynamics(entity, ids)
        if not links:
            return
        flag = self.mapping.dynamics_deleted_field
        records = [{"id": link.marketo_id, flag: True} for link in links.values()]
        # A transient failure here propagates: the delta link is not saved, so the
        # delete is read again next cycle instead of being lost.
        await self.marketo.sync_leads("updateOnly", records, "id")
        await self.store.close_links(list(links.values()))
        self.counts.deleted_in_dynamics += len(links)
        for link in links.values():
            self.changes.pop(link.marketo_id)
            self.record.event(
                PersonEvent(
                    link.marketo_id,
                    entity,
                    link.dynamics_id,
                    "to-marketo",
                    [flag],
                    note="deleted in Dynamics; link closed",
                )
            )

    # ---- Marketo-only changes of linked people -----------------------------
    async def _sync_marketo_leftovers(self) -> None:
        if not self.changes:
            return
        links = await self.store.links_by_marketo(self.changes.ids())
        by_entity: dict[Entity, list[Link]] = defaultdict(list)
        for link in links.values():
            if self._marketo_dirty(link):
                by_entity[link.entity].append(link)
        for entity, group in by_entity.items():
            key = ENTITY_KEY[entity]
            rows = await self.dataverse.get_by_ids(
                ENTITY_SET[entity],
                key,
                [link.dynamics_id for link in group],
                self.mapping.columns(entity),
            )
            await self._sync_rows(entity, rows)

    async def _close_marketo_deleted(self, deleted: set[int]) -> None:
        if not deleted:
            return
        links = await self.store.links_by_marketo(deleted)
        if links:
            # Nothing changes in Dynamics (as the native connector): only the link closes.
            await self.store.close_links(list(links.values()))
            self.counts.deleted_in_marketo += len(links)


def _version(row: dict[str, Any]) -> str:
    return str(row.get("versionnumber") or row.get("@odata.etag") or row.get("modifiedon"))


def _shift(stamp: str, seconds: int) -> str:
    """Move a Dataverse UTC timestamp; same format out, so strings compare in time order."""
    moved = datetime.fromisoformat(stamp.replace("Z", "+00:00")) + timedelta(seconds=seconds)
    return moved.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
