"""The cycle's side of the mass-change guard: counting its writes and holding fields.

Marketo-to-Dynamics changes are counted per field before anything is written (they are
all known once the Marketo feed is read); Dynamics-to-Marketo writes are counted page by
page, as they stream in, and a field crossing the limit is taken out of the page's
writes. What it prevents: a mass edit in one system (an import, a bad workflow) being
copied onto every record of the other before anyone looks.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from sync_core.apply import PairWork
from sync_core.context import CycleContext
from sync_core.guard import MassChangeGuard
from sync_core.runrecord import SyncErrorRow

log = logging.getLogger("sync_core")


async def guard_marketo_changes(ctx: CycleContext, guard: MassChangeGuard) -> None:
    """Count Marketo-to-Dynamics changes per field before anything is written, so a
    mass change in Marketo is held before it reaches a single CRM record."""
    if guard.threshold() is None or not ctx.changes:
        return
    links = await ctx.store.links_by_marketo(ctx.changes.ids())
    fold = ctx.mapping.case_folded()
    writes: dict[str, list[int]] = defaultdict(list)
    for mid in ctx.changes.ids():
        link = links.get(mid)
        if link is None:
            continue
        for f in ctx.changes.changed_fields(link, ctx.hasher, fold):
            writes[f].append(mid)
    for field in await guard.count("to-dynamics", writes):
        report_hold(ctx, guard, field, "to-dynamics")


async def guard_page(ctx: CycleContext, guard: MassChangeGuard, work: list[PairWork]) -> None:
    """Dynamics-to-Marketo writes are counted page by page (they arrive as a stream);
    a field crossing the limit is taken out of this page's writes and held. Held
    changes, whichever direction, are kept for the release."""
    writes: dict[str, list[int]] = defaultdict(list)
    for w in work:
        if not w.new:
            for f in w.plan.to_marketo:
                writes[f].append(w.link.marketo_id)
    tripped = await guard.count("to-marketo", writes)
    for field in tripped:
        report_hold(ctx, guard, field, "to-marketo")
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
        ctx.record.counts.held += len(ids)
        await guard.keep(direction, field, ids)


def report_hold(ctx: CycleContext, guard: MassChangeGuard, field: str, direction: str) -> None:
    hold = guard.holds[f"{direction}:{field}"]
    log.warning("mass-change guard holds %s %s: %d writes > %d", field, direction,
                hold.count, hold.limit)  # fmt: skip
    ctx.record.error(
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
