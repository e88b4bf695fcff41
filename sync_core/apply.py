"""Apply planned writes for a group of pairs and commit what landed.

The one place where "advance state only after the effect is durable" is enforced: a
pair's base moves forward only for the fields whose write succeeded on that side, and
the link rows are saved after both sides answered. A rejected write leaves the base
as it was (the record is logged, not retried until something changes); a transient
failure puts the person in the retry set for the next cycle; a stale etag (someone
edited the record after we read it) is simply re-planned next cycle.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sync_core.dataverse import DataverseClient, Op
from sync_core.errors import RecordRejected, StaleRecord, SyncError, TransientError
from sync_core.mapping import ENTITY_SET, Entity, Mapping
from sync_core.marketo import MarketoClient
from sync_core.planner import PairPlan
from sync_core.state import Link, StateStore


@dataclass
class Counts:
    to_marketo: int = 0
    to_dynamics: int = 0
    fields_to_marketo: int = 0
    fields_to_dynamics: int = 0
    collisions: int = 0
    rejected: int = 0
    stale: int = 0
    retry_later: int = 0
    linked: int = 0
    created_in_marketo: int = 0
    filtered_out: int = 0
    deleted_in_dynamics: int = 0
    deleted_in_marketo: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(eq=False)
class PairWork:
    link: Link
    plan: PairPlan
    etag: str | None
    # Link fields to (re)write alongside the plan, e.g. a missing new_marketoid.
    extra_marketo: dict[str, Any] = field(default_factory=dict)
    extra_dynamics: dict[str, Any] = field(default_factory=dict)
    new: bool = False


class Applier:
    def __init__(
        self,
        mapping: Mapping,
        store: StateStore,
        marketo: MarketoClient,
        dataverse: DataverseClient,
        counts: Counts,
    ) -> None:
        self.mapping = mapping
        self.store = store
        self.marketo = marketo
        self.dataverse = dataverse
        self.counts = counts
        self.errors: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.retried: set[int] = set()  # Marketo ids put (back) into the retry set

    async def apply(self, entity: Entity, work: list[PairWork]) -> None:
        mk_items = [w for w in work if w.plan.to_marketo or w.extra_marketo]
        dy_items = [w for w in work if w.plan.to_dynamics or w.extra_dynamics]
        mk_outcome, dy_outcome = await asyncio.gather(
            self._write_marketo(mk_items), self._write_dynamics(entity, dy_items)
        )
        mk_ids, dy_ids = {id(w) for w in mk_items}, {id(w) for w in dy_items}
        to_save_new: list[Link] = []
        to_save: list[Link] = []
        retry: list[str] = []
        for w in work:
            base = dict(w.link.base)
            base.update(w.plan.settled)
            failed = False
            for side, ids, outcome, pending, direction in (
                ("marketo", mk_ids, mk_outcome, w.plan.pending_marketo, "to-marketo"),
                ("dynamics", dy_ids, dy_outcome, w.plan.pending_dynamics, "to-dynamics"),
            ):
                if id(w) not in ids:
                    continue
                err = outcome.get(id(w))
                if err is None:
                    base.update(pending)
                    fields = sorted(pending)
                    if fields:
                        self._event(w, entity, direction, fields)
                        if side == "marketo":
                            self.counts.to_marketo += 1
                            self.counts.fields_to_marketo += len(fields)
                        else:
                            self.counts.to_dynamics += 1
                            self.counts.fields_to_dynamics += len(fields)
                elif isinstance(err, StaleRecord):
                    self.counts.stale += 1
                elif isinstance(err, RecordRejected):
                    self.counts.rejected += 1
                    self._error(w, entity, direction, sorted(pending), err)
                else:
                    failed = True
            self.counts.collisions += len(w.plan.collisions)
            if failed:
                retry.append(str(w.link.marketo_id))
            w.link.base = base
            (to_save_new if w.new else to_save).append(w.link)
        await asyncio.to_thread(self.store.save_links, to_save_new, new=True)
        await asyncio.to_thread(self.store.save_links, to_save)
        if retry:
            self.counts.retry_later += len(retry)
            self.retried.update(int(r) for r in retry)
            await asyncio.to_thread(self.store.add_to_set, "retry", retry)

    async def _write_marketo(self, items: list[PairWork]) -> dict[int, SyncError | None]:
        if not items:
            return {}
        records = [{"id": w.link.marketo_id, **w.plan.to_marketo, **w.extra_marketo} for w in items]
        try:
            results = await self.marketo.sync_leads("updateOnly", records, "id")
        except TransientError as exc:
            return {id(w): exc for w in items}
        out: dict[int, SyncError | None] = {}
        for w, res in zip(items, results, strict=True):
            if res.get("status") in ("updated", "created"):
                out[id(w)] = None
            else:
                reason = (res.get("reasons") or res.get("errors") or [{}])[0]
                out[id(w)] = RecordRejected(
                    str(reason.get("code", "?")), str(reason.get("message", "skipped"))
                )
        return out

    async def _write_dynamics(
        self, entity: Entity, items: list[PairWork]
    ) -> dict[int, SyncError | None]:
        if not items:
            return {}
        ops = [
            Op(
                "PATCH",
                f"{ENTITY_SET[entity]}({w.link.dynamics_id})",
                {**w.plan.to_dynamics, **w.extra_dynamics},
                # Conditional on what we read: an edit since then is re-planned, never lost.
                {"If-Match": w.etag or "*"},
            )
            for w in items
        ]
        try:
            results = await self.dataverse.batch(ops)
        except TransientError as exc:
            return {id(w): exc for w in items}
        return {id(w): r.error for w, r in zip(items, results, strict=True)}

    def _event(self, w: PairWork, entity: Entity, direction: str, fields: list[str]) -> None:
        self.events.append(
            {
                "marketoId": w.link.marketo_id,
                "entity": entity,
                "dynamicsId": w.link.dynamics_id,
                "direction": direction,
                "fields": fields,
                "collisions": [c.field for c in w.plan.collisions],
            }
        )

    def _error(
        self, w: PairWork, entity: Entity, direction: str, fields: list[str], err: RecordRejected
    ) -> None:
        self.errors.append(
            {
                "operation": "update",
                "direction": direction,
                "entity": entity,
                "fields": fields,
                "code": err.code,
                "message": err.message,
                "marketoId": w.link.marketo_id,
                "dynamicsId": w.link.dynamics_id,
            }
        )
