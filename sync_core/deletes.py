"""Deletes in either system: the person flagged or the link closed, never a delete.

Deleted in Dynamics (a delta's removed entries, or a link a full re-read did not find):
the person gets the `dynamicsDeleted` flag and the link closes. Deleted in Marketo: the
link closes and nothing changes in Dynamics, as the native connector does. What it
prevents: a deleted record's person synced on (or re-created) as if it still existed,
and a delete in one system spreading into a delete in the other.
"""

from __future__ import annotations

from sync_core.context import CycleContext
from sync_core.mapping import Entity
from sync_core.runrecord import PersonEvent


async def dynamics_deleted(ctx: CycleContext, entity: Entity, ids: list[str]) -> None:
    links = await ctx.store.links_by_dynamics(entity, ids)
    if not links:
        return
    flag = ctx.mapping.dynamics_deleted_field
    records = [{"id": link.marketo_id, flag: True} for link in links.values()]
    # A transient failure here propagates: the delta link is not saved, so the
    # delete is read again next cycle instead of being lost.
    await ctx.marketo.sync_leads("updateOnly", records, "id")
    await ctx.store.close_links(list(links.values()))
    ctx.record.counts.deleted_in_dynamics += len(links)
    for link in links.values():
        ctx.changes.pop(link.marketo_id)
        ctx.record.event(
            PersonEvent(
                link.marketo_id,
                entity,
                link.dynamics_id,
                "to-marketo",
                [flag],
                note="deleted in Dynamics; link closed",
            )
        )


async def marketo_deleted(ctx: CycleContext, deleted: set[int]) -> None:
    if not deleted:
        return
    links = await ctx.store.links_by_marketo(deleted)
    if links:
        # Nothing changes in Dynamics (as the native connector): only the link closes.
        await ctx.store.close_links(list(links.values()))
        ctx.record.counts.deleted_in_marketo += len(links)
