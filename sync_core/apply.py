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
import hashlib
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sync_core import journal, rejections
from sync_core.access import encode_values
from sync_core.context import CycleContext
from sync_core.dataverse import Op
from sync_core.errors import RecordRejected, StaleRecord, SyncError, TransientError
from sync_core.mapping import ENTITY_SET, Entity, Mapping
from sync_core.planner import REJECTED_BY, PairPlan
from sync_core.rules import field_rules
from sync_core.runrecord import PersonEvent, SyncErrorRow
from sync_core.state import Link

Commit = Callable[[], Awaitable[None]]
JOURNAL_MARKS = (*journal.LANDED_ON.values(), *journal.CONFIRMED.values())

# A record's write is resent at most this often, each time without the fields refused.
FIELD_ROUNDS = 4
# Field-level security refused a column, or a column no longer exists.
ACCESS_CODES = {"0x8004F502", "0x8004F507", "0x8004f502", "0x8004f507", "0x80060888"}


@dataclass(eq=False)
class PairWork:
    link: Link
    plan: PairPlan
    etag: str | None
    # Link fields to (re)write alongside the plan, e.g. a missing new_marketoid.
    extra_marketo: dict[str, Any] = field(default_factory=dict)
    extra_dynamics: dict[str, Any] = field(default_factory=dict)
    new: bool = False
    # A create intent row stands for this record until its link is saved (creates.py).
    intent: bool = False
    # Base entries recording a value one side rejected for one field (planner.REJECTED_BY).
    marks: dict[str, str] = field(default_factory=dict)


class Applier:
    def __init__(self, ctx: CycleContext) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.marketo = ctx.marketo
        self.dataverse = ctx.dataverse
        self.counts = ctx.record.counts
        self.retried: set[int] = set()  # Marketo ids put (back) into the retry set
        # A write failed in a way that says field access changed: re-read metadata.
        self.access_changed = False

    @property
    def mapping(self) -> Mapping:
        return self.ctx.mapping  # the effective one: it changes when access is re-read

    async def apply(self, entity: Entity, work: list[PairWork]) -> Commit:
        """Write both sides; return the commit (link rows, retry set) to run once the
        caller is ready. The caller may overlap it with the next page's reads: nothing
        later in the cycle reads these rows, and cursors wait for every commit."""
        mk_items = [w for w in work if w.plan.to_marketo or w.extra_marketo]
        dy_items = [w for w in work if w.plan.to_dynamics or w.extra_dynamics]
        # Noted before anything is written: if this run dies before the commit below,
        # the next cycle knows which of these writes may have landed.
        noted = await journal.note(
            self.store,
            {w.link.marketo_id: {"d": _sent(w.plan.pending_dynamics, w.plan.read_target),
                                 "m": _sent(w.plan.pending_marketo, w.plan.read_target)}
             for w in work},
        )  # fmt: skip
        sent = {id(w): (set(w.plan.pending_dynamics), set(w.plan.pending_marketo)) for w in work}
        mk_outcome, dy_outcome = await asyncio.gather(
            self._write_marketo(mk_items), self._write_dynamics(entity, dy_items)
        )
        mk_ids, dy_ids = {id(w) for w in mk_items}, {id(w) for w in dy_items}
        # What the answers said, noted at once: a run dying before the commit then
        # leaves a certainty for the next cycle, not a guess. That includes the writes
        # answered as not landed (a 412, a refusal): left as "sent", a 412's edit would
        # read next cycle as "landed, then edited" and win a collision it loses.
        noted += await journal.note(
            self.store,
            {w.link.marketo_id: {
                "d": _answered(w, sent[id(w)][0], w.plan.pending_dynamics, dy_outcome)
                if id(w) in dy_ids else {},
                "m": _answered(w, sent[id(w)][1], w.plan.pending_marketo, mk_outcome)
                if id(w) in mk_ids else {},
            } for w in work},
            landed=True,
        )  # fmt: skip
        to_save_new: list[Link] = []
        to_save: list[Link] = []
        retry: list[str] = []
        for w in work:
            # Journal markers served this plan; the new base replaces them.
            base = {k: v for k, v in w.link.base.items() if not k.startswith(JOURNAL_MARKS)}
            base.update(w.plan.settled)
            _forget_rejections(base, w.plan.settled)
            base.update(w.marks)
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
                    _forget_rejections(base, pending)
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
                    self._error(w, entity, direction, sorted(pending), err, pending)
                else:
                    failed = True
                    # No answer: the write may have landed with its answer lost. The
                    # next plan must judge it as a dead run's "sent" note (journal):
                    # else our own value, if it landed, passes for an edit there and
                    # a later edit on the other side loses to it.
                    sent_now = _sent(pending, w.plan.read_target)
                    base.update({journal.LANDED_ON[side] + n: v for n, v in sent_now.items()})
            self.counts.collisions += len(w.plan.collisions)
            if failed:
                retry.append(str(w.link.marketo_id))
            w.link.base = base
            (to_save_new if w.new else to_save).append(w.link)
        if retry:
            self.counts.retry_later += len(retry)
            self.retried.update(int(r) for r in retry)

        async def commit() -> None:
            # Rejections first: a link row carrying a refused-value mark is never saved
            # before the rejection it stands for is on record.
            await self.ctx.record.flush_errors(self.store, self.marketo)
            await self.store.save_links(to_save_new, new=True)
            await self.store.save_links(to_save)
            if retry:
                await self.store.add_to_set("retry", retry)
            await journal.clear(self.store, noted)

        return commit

    async def _write_marketo(self, items: list[PairWork]) -> dict[int, SyncError | None]:
        out: dict[int, SyncError | None] = {}
        pending = items
        for _ in range(FIELD_ROUNDS):
            if not pending:
                break
            records = [
                {"id": w.link.marketo_id, **w.plan.to_marketo, **w.extra_marketo} for w in pending
            ]
            try:
                results = await self.marketo.sync_leads("updateOnly", records, "id")
            except TransientError as exc:
                out.update({id(w): exc for w in pending})
                break
            again = []
            for w, rec, res in zip(pending, records, results, strict=True):
                if res.get("status") in ("updated", "created"):
                    out[id(w)] = None
                    continue
                reason = (res.get("reasons") or res.get("errors") or [{}])[0]
                err = RecordRejected(
                    str(reason.get("code", "?")), str(reason.get("message", "skipped"))
                )
                out[id(w)] = err
                names = sorted(rejections.marketo_fields(reason, rec) & set(w.plan.to_marketo))
                if names and self._reject_fields(w, "marketo", names, err, "to-marketo"):
                    again.append(w)  # the rest of the record goes in the next round
                elif names:
                    out[id(w)] = None  # every field it rejected is recorded; nothing left
            pending = again
        return out

    def _reject_fields(
        self, w: PairWork, side: str, names: list[str], err: RecordRejected, direction: str
    ) -> bool:
        """Record a field-level rejection and take those fields out of the write; True
        if anything is left to send."""
        entity = w.link.entity
        plan = w.plan
        values, pending = (
            (plan.to_marketo, plan.pending_marketo)
            if side == "marketo"
            else (plan.to_dynamics, plan.pending_dynamics)
        )
        column_of = {r.marketo: r.column for r in self.mapping.fields[entity]}
        for name in names:
            if name in pending:
                w.marks[REJECTED_BY[side] + name] = pending.pop(name)
            values.pop(name if side == "marketo" else column_of.get(name, name), None)
        self.counts.rejected += 1
        prefix = REJECTED_BY[side]
        self._error(w, entity, direction, names, err,
                    {n: w.marks.get(prefix + n, "") for n in names})  # fmt: skip
        extra = w.extra_marketo if side == "marketo" else w.extra_dynamics
        return bool(values or extra)

    async def _write_dynamics(
        self, entity: Entity, items: list[PairWork]
    ) -> dict[int, SyncError | None]:
        if not items:
            return {}
        rules = self.mapping.fields[entity]
        by_column = {r.column: r.marketo for r in rules}
        out: dict[int, SyncError | None] = {id(w): None for w in items}
        pending = []
        for w in items:
            _, bad = encode_values(rules, w.plan.to_dynamics)
            if bad:
                # Not an option of the set: that field is rejected, the others still go.
                err = RecordRejected("option-set", "; ".join(bad.values()))
                self._reject_fields(w, "dynamics", [by_column[c] for c in bad], err, "to-dynamics")
            if w.plan.to_dynamics or w.extra_dynamics:
                pending.append(w)
        for _ in range(FIELD_ROUNDS):
            if not pending:
                break
            bodies = [
                encode_values(rules, {**w.plan.to_dynamics, **w.extra_dynamics})[0] for w in pending
            ]
            # Conditional on what we read: an edit since then is re-planned, never lost.
            ops = [
                Op(
                    "PATCH",
                    f"{ENTITY_SET[entity]}({w.link.dynamics_id})",
                    body,
                    {"If-Match": w.etag or "*"},
                )
                for w, body in zip(pending, bodies, strict=True)
            ]
            results = await self.dataverse.batch(ops)
            again = []
            for w, body, r in zip(pending, bodies, results, strict=True):
                out[id(w)] = r.error
                if not isinstance(r.error, RecordRejected):
                    continue
                if r.error.code in ACCESS_CODES:
                    self.access_changed = True
                columns = rejections.dataverse_columns(r.error, body, rules)
                names = sorted(by_column[c] for c in columns if c in by_column)
                if names and self._reject_fields(w, "dynamics", names, r.error, "to-dynamics"):
                    again.append(w)  # the rest of the record goes in the next round
                elif names:
                    out[id(w)] = None  # every field it rejected is recorded; nothing left
            pending = again
        return out

    def _event(self, w: PairWork, entity: Entity, direction: str, fields: list[str]) -> None:
        details: dict[str, Any] = {"collisions": [c.field for c in w.plan.collisions]}
        # fit = truncate: these values were cut to fit the target column.
        if cut := [n for n in w.plan.truncated if n in fields]:
            details["truncated"] = cut
        details["rules"] = field_rules(w.plan, entity, direction, fields, new=w.new)
        self.ctx.record.event(
            PersonEvent(
                w.link.marketo_id, entity, w.link.dynamics_id, direction, fields, details=details
            )
        )

    def _error(
        self,
        w: PairWork,
        entity: Entity,
        direction: str,
        fields: list[str],
        err: RecordRejected,
        values: dict[str, str],
    ) -> None:
        """`values`: the refused value's hash per field, so a run that repeats the same
        refusal (it died before its link rows) records it once, not twice."""
        self.ctx.record.error(
            SyncErrorRow(
                "update", direction, entity, fields, err.code, err.message,
                marketo_id=w.link.marketo_id, dynamics_id=w.link.dynamics_id,
                signature=signature(w.link.marketo_id, direction, err.code, values),
            )
        )  # fmt: skip
        # The person's own history shows the rejection too (`explain` reads it).
        self.ctx.record.event(
            PersonEvent(
                w.link.marketo_id,
                entity,
                w.link.dynamics_id,
                direction,
                fields,
                note=f"rejected: {err.code}",
                details={"rules": dict.fromkeys(fields, "rejected")},
            )
        )


def _forget_rejections(base: dict[str, str], names: Iterable[str]) -> None:
    """A field that moved on (written or agreed) is no longer held by an old rejection."""
    for name in names:
        for prefix in REJECTED_BY.values():
            base.pop(prefix + name, None)


def signature(marketo_id: int, direction: str, code: str, values: dict[str, str]) -> str:
    """A stable name for one refusal of these values (hashes only, no personal data)."""
    text = json.dumps([marketo_id, direction, code, sorted(values.items())])
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def _answered(
    w: PairWork, sent: set[str], pending: dict[str, str], outcome: dict[int, SyncError | None]
) -> dict[str, str]:
    """The base for sure of each field whose write one side answered: the value written
    where it landed, the base it was planned from where the answer said it did not. No
    answer (a transient failure) says nothing: the note made before the write stands."""
    err = outcome.get(id(w))
    if err is not None and not isinstance(err, StaleRecord | RecordRejected):
        return {}
    landed = dict(pending) if err is None else {}
    for name in sent - landed.keys():  # refused, or the record changed since it was read
        # The base the planner used: the journal's restored one if any (plan.settled).
        planned_from = w.plan.settled.get(name, w.link.base.get(name))
        if planned_from is not None:
            landed[name] = planned_from
    return landed


def _sent(pending: dict[str, str], read: dict[str, str]) -> dict[str, str]:
    """Journal entries of writes about to be sent: "hash written|hash as read"."""
    return {name: f"{value}|{read.get(name, '')}" for name, value in pending.items()}
