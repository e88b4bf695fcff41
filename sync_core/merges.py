"""Following merges made in either system, so a merge is never undone by a duplicate.

Without this, a Marketo merge left the loser's Dynamics record linked to a person that no
longer exists, and its next change minted a new person; a Dynamics merge left two people
for one surviving record. Here, as the native connector does:

- **Merged in Marketo** (a Merge Leads activity names the people merged away):
  both linked → the Dynamics records are merged too (Dataverse `Merge`; a lead and a
  contact: the contact survives and the lead is only unlinked, since Dataverse merges
  within one table); only the loser linked → its link moves to the winner.
- **Merged in Dynamics** (the subordinate turns up in change tracking with `masterid`
  set): both linked → the people are merged in Marketo, winner = the master's person;
  only the subordinate linked → its link moves to the master, unless the master's sync
  filter says No (the winner's flag decides).

The surviving link keeps its base; nothing is deleted that the native connector would
not delete. A merged-away record is remembered so it never gets a person of its own.
"""

from __future__ import annotations

from typing import Any

from sync_core.context import CycleContext
from sync_core.errors import RecordRejected, SyncError
from sync_core.mapping import ENTITY_KEY, ENTITY_SET, Entity
from sync_core.planner import normalize
from sync_core.runrecord import PersonEvent, SyncErrorRow
from sync_core.state import Link

MERGED_AWAY = "mergedaway"  # state set: "<entity>:<record id>" never to be linked again
MASTER = "_masterid_value"


def merged_away_key(entity: Entity, record_id: str) -> str:
    return f"{entity}:{record_id.lower()}"


def _event(ctx: CycleContext, link: Link, note: str, **ids: Any) -> None:
    ctx.record.event(
        PersonEvent(
            link.marketo_id, link.entity, link.dynamics_id, "merge", [], note=note, details=ids
        )
    )


async def _move(ctx: CycleContext, old: Link, marketo_id: int, entity: Entity, record: str) -> Link:
    """Re-point a link (its base kept) and have this cycle write both link fields."""
    moved = Link(marketo_id, entity, record.lower(), dict(old.base))
    await ctx.store.close_links([old])
    await ctx.store.save_links([moved], new=True)
    ctx.changes.always(marketo_id)
    return moved


# ---- merged in Marketo -------------------------------------------------------------------


async def follow_marketo_merges(ctx: CycleContext, merged: dict[int, int]) -> None:
    """`merged`: person merged away -> the person it was merged into."""
    if not merged:
        return
    links = await ctx.store.links_by_marketo(set(merged) | set(merged.values()))
    for loser, winner in merged.items():
        gone = links.get(loser)
        if gone is None:
            continue  # the loser never synced: nothing in Dynamics to follow
        kept = links.get(winner)
        if kept is None:
            links[winner] = await _move(ctx, gone, winner, gone.entity, gone.dynamics_id)
            ctx.record.counts.merged += 1
            _event(ctx, links[winner], "merged in Marketo; link moved to the winner",
                   mergedMarketoId=loser)  # fmt: skip
            continue
        note = "merged in Marketo; Dynamics records merged"
        if kept.entity == gone.entity:
            try:
                await _merge_records(ctx, kept.entity, kept.dynamics_id, gone.dynamics_id)
            except RecordRejected as exc:
                # Not allowed (no Merge privilege, a plug-in said no): the record stays as
                # it is, unlinked and remembered, so it still never mints a duplicate.
                _merge_refused(ctx, kept, gone, exc)
                note = "merged in Marketo; Dynamics refused the merge, record unlinked"
            await ctx.store.close_links([gone])
            survivor = kept
        elif kept.entity == "contact":  # the contact survives; the lead is only unlinked
            await ctx.store.close_links([gone])
            survivor = kept
            note = "merged in Marketo; the contact survives, the lead is unlinked"
        else:  # the winner's record is the lead: the loser's contact survives
            await ctx.store.close_links([kept])
            survivor = await _move(ctx, gone, winner, gone.entity, gone.dynamics_id)
            gone = kept
            note = "merged in Marketo; the contact survives, the lead is unlinked"
        links[winner] = survivor
        await ctx.store.add_to_set(MERGED_AWAY, [merged_away_key(gone.entity, gone.dynamics_id)])
        ctx.record.counts.merged += 1
        _event(ctx, survivor, note, mergedMarketoId=loser, mergedDynamicsId=gone.dynamics_id)


def _merge_refused(ctx: CycleContext, kept: Link, gone: Link, exc: RecordRejected) -> None:
    ctx.record.counts.rejected += 1
    message = (
        f"Dataverse refused to merge {gone.entity} {gone.dynamics_id} into "
        f"{kept.dynamics_id}: {exc.message}. The record was unlinked instead; give "
        "the sync's security role the Merge privilege (infra/README.md) to merge "
        "such records in Dynamics too"
    )
    ctx.record.error(
        SyncErrorRow(
            "merge",
            "to-dynamics",
            gone.entity,
            [],
            exc.code,
            message,
            marketo_id=kept.marketo_id,
            dynamics_id=gone.dynamics_id,
        )
    )


async def _merge_records(ctx: CycleContext, entity: Entity, master: str, subordinate: str) -> None:
    """Dataverse Merge, filling the master's empty mapped columns from the subordinate
    ("some value beats no value"). A repeat after a lost answer finds the work done."""
    m = ctx.mapping
    key = ENTITY_KEY[entity]
    columns = [r.column for r in m.fields[entity] if r.direction != "to-dynamics"]
    rows = await ctx.dataverse.get_by_ids(ENTITY_SET[entity], key, [master, subordinate],
                                            [*columns, MASTER])  # fmt: skip
    by_id = {str(r[key]).lower(): r for r in rows}
    sub = by_id.get(subordinate.lower())
    if sub is None or str(sub.get(MASTER) or "").lower() == master.lower():
        return  # gone, or already merged into this master
    top = by_id.get(master.lower(), {})
    fill = {
        c: sub[c] for c in columns
        if normalize(top.get(c)) is None and normalize(sub.get(c)) is not None
    }  # fmt: skip
    kind = f"Microsoft.Dynamics.CRM.{entity}"
    body = {
        "Target": {"@odata.type": kind, key: master},
        "Subordinate": {"@odata.type": kind, key: subordinate},
        "UpdateContent": {"@odata.type": kind, **fill},
        "PerformParentingChecks": False,
    }
    try:
        await ctx.dataverse.request("POST", "Merge", json=body)
    except RecordRejected:
        again = await ctx.dataverse.get_by_ids(ENTITY_SET[entity], key, [subordinate], [MASTER])
        if not again or str(again[0].get(MASTER) or "").lower() != master.lower():
            raise


# ---- merged in Dynamics ------------------------------------------------------------------


async def follow_dynamics_merges(
    ctx: CycleContext, entity: Entity, rows: list[dict[str, Any]], links: dict[str, Link]
) -> set[str]:
    """Handle subordinates of Dynamics merges among `rows`; return their ids (they are not
    synced any further). `links` gains the masters' links moved here."""
    key = ENTITY_KEY[entity]
    subs = {str(r[key]).lower(): str(r[MASTER]).lower() for r in rows if r.get(MASTER)}
    if not subs:
        return set()
    masters = sorted(set(subs.values()))
    master_links = await ctx.store.links_by_dynamics(entity, masters)
    in_page = {str(r[key]).lower(): r for r in rows}
    missing = [x for x in masters if x not in in_page and x not in master_links]
    fetched = await ctx.dataverse.get_by_ids(
        ENTITY_SET[entity], key, missing, [ctx.mapping.sync_filter_column]
    ) if missing else []  # fmt: skip
    master_rows = {**in_page, **{str(r[key]).lower(): r for r in fetched}}
    away = []
    for sub_id, master_id in subs.items():
        away.append(merged_away_key(entity, sub_id))
        sub_link = links.pop(sub_id, None)
        if sub_link is None:
            continue
        master_link = master_links.get(master_id)
        if master_link is not None and master_link.marketo_id != sub_link.marketo_id:
            await _merge_people(ctx, master_link.marketo_id, sub_link.marketo_id)
            await ctx.store.close_links([sub_link])
            _event(ctx, master_link, "merged in Dynamics; people merged in Marketo",
                   mergedMarketoId=sub_link.marketo_id, mergedDynamicsId=sub_id)  # fmt: skip
        elif master_link is None:
            master_row = master_rows.get(master_id, {})
            if master_row.get(ctx.mapping.sync_filter_column) is False:
                # The winner's sync filter says No: the merged person stops syncing.
                await ctx.store.close_links([sub_link])
                continue
            moved = await _move(ctx, sub_link, sub_link.marketo_id, entity, master_id)
            links[master_id] = moved
            _event(ctx, moved, "merged in Dynamics; link moved to the surviving record",
                   mergedDynamicsId=sub_id)  # fmt: skip
        ctx.record.counts.merged += 1
    await ctx.store.add_to_set(MERGED_AWAY, away)
    return set(subs)


async def _merge_people(ctx: CycleContext, winner: int, loser: int) -> None:
    try:
        await ctx.marketo.merge(winner, [loser])
    except SyncError:
        # A lost answer, or a repeat of a merge that happened (1004): the loser is gone.
        if await ctx.marketo.get_leads("id", [loser], ["id"]):
            raise
