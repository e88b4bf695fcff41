"""One background delta cycle: read both change feeds, merge, write, commit.

Order of operations is what keeps a crash harmless: cursors (Dataverse delta links,
the Marketo paging token) are saved last, after every pair they cover has been
written and its link row saved; re-running a half-done cycle re-reads the same
changes, and the base comparison turns everything already applied into a no-op. A
lease row makes sure two overlapping runs (the platform may replay a timer) never
both write. Marketo-only people are never pushed to Dynamics here: that is the
real-time sync-person function's job.

This module is the orchestration only: the lease and time budget, field access, and
the order of the steps. The steps live in their own modules: the Marketo feeds
(marketofeed), the Dynamics feeds and their cursors (dynamicsfeed, dynamicscursor), a
page's way through the engine (pagesync, pairing, newlinks, merges, apply), deletes
(deletes), the mass-change guard (holds, guard) and what the run did (runrecord).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from sync_core import journal, quota
from sync_core.access import field_access, invalidate
from sync_core.activitylog import activity_log_state
from sync_core.apply import Applier
from sync_core.context import CycleContext
from sync_core.dataverse import DataverseClient
from sync_core.deletes import dynamics_deleted, marketo_deleted
from sync_core.dynamicsfeed import DynamicsFeed
from sync_core.errors import OutOfTime, QuotaExhausted, StopCycle, SyncError
from sync_core.guard import MassChangeGuard
from sync_core.holds import guard_marketo_changes
from sync_core.mapping import ENTITIES, Entity, Mapping
from sync_core.marketo import MarketoClient
from sync_core.marketofeed import MarketoChanges, read_feeds
from sync_core.marketomerges import follow_marketo_merges
from sync_core.pagesync import PageSync
from sync_core.planner import Hasher
from sync_core.runrecord import RunRecord
from sync_core.state import StateStore

log = logging.getLogger("sync_core")
MARKETO_CURSOR = "marketo-activities"
# Dataverse's measured seconds per write operation, kept from cycle to cycle (pacing.recall).
PACING = ("meta", "dataverse-seconds-per-op")


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
        self.configured = mapping  # as written; ctx.mapping is the effective set
        self.store = store
        self.marketo = marketo
        self.dataverse = dataverse
        self.lease_seconds = lease_seconds
        self.daily_quota = daily_quota
        self.quota_share = quota_share
        self.feed_overlap = feed_overlap
        self.deadline = time.monotonic() + time_budget
        self._leased_at = time.monotonic()
        self.id = uuid.uuid4().hex[:12]
        self.record = RunRecord()
        self.counts = self.record.counts  # read while running (progress line)
        self.ctx = CycleContext(
            store, marketo, dataverse, hasher, mapping, self.record, MarketoChanges()
        )
        self.guard = MassChangeGuard(store, limit=mass_change_limit, share=mass_change_share)
        self.applier = Applier(self.ctx)
        self.pages = PageSync(self.ctx, self.applier, self.guard, self._refresh_access)
        self.dynamics = DynamicsFeed(
            self.ctx, self.pages, self, self._force_access, self._dynamics_deleted
        )
        self.excluded: list[dict[str, str]] = []
        self.mapping_problems: list[dict[str, str]] = []
        self.access_refreshed = False
        self.first_run = False
        self.activity_log = "unknown"

    # ---- field access ------------------------------------------------------
    async def _load_access(self, *, force: bool = False) -> None:
        access = await field_access(
            self.store, self.configured, self.marketo, self.dataverse, force=force
        )
        self.ctx.mapping = access.mapping
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

    async def _force_access(self) -> None:
        await self._load_access(force=True)

    async def _refresh_access(self) -> bool:
        """Re-read field access unless this cycle did already; True if it did now."""
        if self.access_refreshed:
            return False
        await self._load_access(force=True)
        return True

    async def _dynamics_deleted(self, entity: Entity, ids: list[str]) -> None:
        await dynamics_deleted(self.ctx, entity, ids)

    # ---- lease and time budget ----------------------------------------------
    async def keep_lease(self) -> None:
        """Renew the lease on long cycles; if someone else holds it now, stop writing."""
        if time.monotonic() - self._leased_at < self.lease_seconds / 3:
            return
        if not await self.store.acquire_lease(self.id, self.lease_seconds):
            raise StopCycle("lost the cycle lease to another run; stopping")
        self._leased_at = time.monotonic()

    def spent(self) -> bool:
        return time.monotonic() > self.deadline

    # ---- entry -------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        started = datetime.now(UTC)
        clock = time.monotonic()
        summary: dict[str, Any] = {"cycleId": self.id, "started": started.isoformat()}
        if not await self.store.acquire_lease(self.id, self.lease_seconds):
            summary.update(outcome="skipped", message="another cycle holds the lease")
            return await self._finish(summary, clock, record=False)
        quota_day = quota.quota_day()
        # Everything the API user spent today, the webhook's calls included.
        spent = await self.store.get_value(quota.KIND, quota_day)
        paced = await self.store.get_value(*PACING)
        self.marketo.budget = max(0, int(self.daily_quota * self.quota_share) - int(spent or 0))
        self.dataverse.pacer.recall(paced)
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
                try:
                    # Writes that landed before a failure still get their link rows.
                    await self.pages.settle()
                except SyncError as exc:
                    # Only after the run stopped for an error of its own (a run that gets
                    # this far settles in _run): a slice still being written met one too.
                    # Its writes are in the journal for the next cycle; the run's outcome,
                    # the logs and the quota count below must not be lost to it.
                    log.warning("a slice in flight failed too: %s: %s", type(exc).__name__, exc)
                await self.record.flush(self.store, self.marketo)
                # Added, never set: webhook deliveries count into the same row meanwhile.
                await self.store.add_to_value(quota.KIND, quota_day, self.marketo.calls)
                measured = self.dataverse.pacer.remembered()
                if measured is not None and measured != paced:
                    await self.store.set_values(PACING[0], {PACING[1]: measured})
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
            fullReconcile=self.dynamics.full_reconcile,
            watermarkMode=self.dynamics.watermark_mode,
            excludedFields=self.excluded,
            mappingProblems=self.mapping_problems,
            held=[asdict(h) for h in self.guard.holds.values()],
            activityLog=self.activity_log,
        )
        if record:
            await self.store.record_cycle(self.id, summary)
        return summary

    async def _run(self) -> None:
        await self._load_access()
        # Writes a dead run may have landed without saving their base: mark them first.
        await journal.recover(self.store)
        _, off = await activity_log_state(self.marketo, self.store)
        self.activity_log = f"off: {off}" if off else "on"
        mk_cursor, deleted_people, merged = await self._read_marketo_feeds()
        retry_ids = [int(x) for x in await self.store.members("retry")]
        await self.pages.load_paused()
        for mid in retry_ids:
            self.ctx.changes.always(mid)
        await self.guard.load()
        for hold in self.guard.released():
            # Released: every change held under it is planned again, this time written.
            for mid in await self.guard.waiting(hold):
                self.ctx.changes.always(mid)
        await guard_marketo_changes(self.ctx, self.guard)
        await follow_marketo_merges(self.ctx, merged)
        for entity in ENTITIES:
            await self.dynamics.sync(entity)
        await self.pages.marketo_leftovers()
        # Every slice written and committed: a Marketo delete acts on saved links, and the
        # logs and the Marketo cursor below stand for committed pairs only.
        await self.pages.settle()
        await marketo_deleted(self.ctx, deleted_people)
        await self.record.flush(self.store, self.marketo)
        await self.store.set_cursors({MARKETO_CURSOR: mk_cursor})
        done = set(retry_ids) - self.applier.retried
        if done:
            await self.store.remove_from_set("retry", [str(i) for i in done])
        await self.pages.finish_resumed()
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

    async def _read_marketo_feeds(self) -> tuple[str, set[int], dict[int, int]]:
        saved = await self.store.get_cursor(MARKETO_CURSOR)
        # Only mapped fields: our own link fields (dynamicsId...) are not edits to sync.
        read = await read_feeds(
            self.marketo,
            saved,
            self.ctx.mapping.mapped_marketo_fields(),
            overlap=self.feed_overlap,
        )
        for mid, changes in read.changes.items():
            self.ctx.changes.add(mid, changes)
        self.first_run = read.fresh_start
        return read.cursor.dump(), read.deleted, read.merged
