"""Following a merge made in Marketo (a Merge Leads activity names the people merged
away), so the loser's Dynamics record is not left linked to a person that no longer
exists (its next change minted a new person).

Both linked → the Dynamics records are merged too (Dataverse `Merge`; a lead and a
contact: the contact survives and the lead is only unlinked, since Dataverse merges
within one table); only the loser linked → its link moves to the winner. Two records a
salesperson merged the other way round meanwhile: the winner's link moves to the
Dynamics master, the only one still active. A merge read late (Marketo commits some
Merge Leads activities late), after a later merge took its winner away, follows the
winner to the person it lives on as.
"""

from __future__ import annotations

from typing import Any

from sync_core.context import CycleContext
from sync_core.errors import RecordRejected
from sync_core.mapping import ENTITY_KEY, ENTITY_SET, Entity
from sync_core.mergestate import (
    HOPS,
    MASTER,
    MERGE_REFUSED,
    MERGED_AWAY,
    MERGED_INTO,
    event,
    merged_away_key,
    move,
    refused_key,
    release_marketo_id,
    settle_survivor,
)
from sync_core.planner import normalize
from sync_core.runrecord import SyncErrorRow
from sync_core.state import Link


async def follow_marketo_merges(ctx: CycleContext, merged: dict[int, int]) -> None:
    """`merged`: person merged away -> the person it was merged into."""
    if not merged:
        return
    # Kept before anything moves: Marketo commits some Merge Leads activities late, so
    # a merge can be read after a later merge took its winner away (_lives_on).
    await ctx.store.set_values(MERGED_INTO, {str(lo): str(w) for lo, w in merged.items()})
    links = await ctx.store.links_by_marketo(set(merged) | set(merged.values()))
    for loser, named in merged.items():
        winner = await _lives_on(ctx, named, links)
        # The winner's empty fields took the loser's values, and Marketo logs no field
        # change for those: re-plan the winner, or they reach Dynamics only by chance.
        ctx.changes.always(winner)
        # The loser's link leaves `links`: a later merge naming it as winner then looks
        # for where it lives on rather than at its closed link.
        gone, kept = links.pop(loser, None), links.get(winner)
        if gone is None:
            # The loser never synced: nothing in Dynamics to follow (unless a run died
            # in _move between the close and the save, leaving the record's index out).
            if kept is not None and not await ctx.store.links_by_dynamics(
                kept.entity, [kept.dynamics_id]
            ):
                await ctx.store.save_links([kept], new=True)
            continue
        if kept is not None and (kept.entity, kept.dynamics_id) == (gone.entity, gone.dynamics_id):
            # A run died in _move after saving the winner's link: finish the move.
            await ctx.store.close_links([gone])
            await ctx.store.save_links([kept], new=True)
            continue
        if kept is None:
            links[winner] = await move(ctx, gone, winner, gone.entity, gone.dynamics_id)
            ctx.record.counts.merged += 1
            event(ctx, links[winner], "merged in Marketo; link moved to the winner",
                   mergedMarketoId=loser)  # fmt: skip
            continue
        refused: RecordRejected | None = None
        if kept.entity == gone.entity:
            try:
                await _merge_records(ctx, kept.entity, kept.dynamics_id, gone.dynamics_id)
            except RecordRejected as exc:
                row = await _merged_into(ctx, kept, gone.dynamics_id)
                if row is not None:
                    links[winner] = await _follow_merged_the_other_way(ctx, kept, gone, winner, row)
                    continue
                refused = exc
        # Remembered before any link closes: a run dying after a close left the unlinked
        # record carrying the person's id, and a later cycle linked it again (seed 186:
        # the winner's lead took the winner back, and the loser's contact a new person).
        away = kept if (kept.entity, gone.entity) == ("lead", "contact") else gone
        if refused is not None:
            # Which record it gave way to, for a Dynamics merge of that one into it later
            # (follow_dynamics_merges): noted first, it only counts beside MERGED_AWAY.
            note_key = refused_key(gone.entity, gone.dynamics_id, kept.dynamics_id)
            await ctx.store.add_to_set(MERGE_REFUSED, [note_key])
        await ctx.store.add_to_set(MERGED_AWAY, [merged_away_key(away.entity, away.dynamics_id)])
        note = "merged in Marketo; Dynamics records merged"
        if kept.entity == gone.entity:
            if refused is not None:
                # Not allowed (no Merge privilege, a plug-in said no): the record stays as
                # it is, unlinked and remembered, so it still never mints a duplicate.
                _merge_refused(ctx, kept, gone, refused)
                note = "merged in Marketo; Dynamics refused the merge, record unlinked"
            else:
                await settle_survivor(ctx, kept, winner)
            await ctx.store.close_links([gone])
            survivor = kept
        elif kept.entity == "contact":  # the contact survives; the lead is only unlinked
            await ctx.store.close_links([gone])
            survivor = kept
            note = "merged in Marketo; the contact survives, the lead is unlinked"
        else:  # the winner's record is the lead: the loser's contact survives
            await ctx.store.close_links([kept])
            survivor = await move(ctx, gone, winner, gone.entity, gone.dynamics_id)
            gone = kept
            note = "merged in Marketo; the contact survives, the lead is unlinked"
        links[winner] = survivor
        ctx.record.counts.merged += 1
        event(ctx, survivor, note, mergedMarketoId=loser, mergedDynamicsId=gone.dynamics_id)


async def _merged_into(ctx: CycleContext, link: Link, record: str) -> dict[str, Any] | None:
    """The link's record (master and Marketo id) if it was merged into `record` in
    Dynamics, else None."""
    key = ENTITY_KEY[link.entity]
    columns = [MASTER, ctx.mapping.marketo_id_column]
    rows = await ctx.dataverse.get_by_ids(ENTITY_SET[link.entity], key, [link.dynamics_id],
                                            columns)  # fmt: skip
    if rows and str(rows[0].get(MASTER) or "").lower() == record.lower():
        return rows[0]
    return None


async def _follow_merged_the_other_way(
    ctx: CycleContext, kept: Link, gone: Link, winner: int, row: dict[str, Any]
) -> Link:
    """The winner's record was merged into the loser's in Dynamics since the last cycle
    (a salesperson merged the pair the other way round), so Dataverse refused to merge
    into it, now inactive. Only the loser's record is still active and nothing revives
    the other: it is the pair's survivor, the winner's link moves to it and the winner's
    record is the one merged away. Taken for any refusal, the active record was unlinked
    and remembered as merged away, and the Dynamics merge then found its master merged
    away and closed the winner's link: the person stopped syncing and the surviving
    record had no person (seed 845). The Dynamics merge, read later, finds its
    subordinate unlinked and has nothing left to do."""
    # Remembered before its link closes, as in follow_marketo_merges (seed 186).
    await ctx.store.add_to_set(MERGED_AWAY, [merged_away_key(kept.entity, kept.dynamics_id)])
    # The merged-away record holds the winner's id, an alternate key: the survivor could
    # never be given it. Released while the winner's link is open, so a run dying here
    # comes back the same way.
    await release_marketo_id(ctx, kept.entity, kept.dynamics_id, row)
    # Closed before the move: a run dying between them leaves only the loser's link,
    # which the merge, read again, moves to the winner. The move keeps the loser's base:
    # the last values the surviving record and a person agreed on.
    await ctx.store.close_links([kept])
    survivor = await move(ctx, gone, winner, gone.entity, gone.dynamics_id)
    await settle_survivor(ctx, survivor, winner)
    ctx.record.counts.merged += 1
    event(ctx, survivor, "merged in Marketo; the records were merged the other way in Dynamics",
           mergedMarketoId=gone.marketo_id, mergedDynamicsId=kept.dynamics_id)  # fmt: skip
    return survivor


async def _lives_on(ctx: CycleContext, winner: int, links: dict[int, Link]) -> int:
    """The person a merge's winner lives on as. An unlinked winner may be gone, merged
    into another person by a merge followed before this one was read: the loser's link
    moved to it then linked a person Marketo no longer has, and the loser's record
    never met the survivor's (seed 2764). `links` gains the links looked up."""
    seen = {winner}
    for _ in range(HOPS):
        if links.get(winner) is not None:
            break
        into = await ctx.store.get_value(MERGED_INTO, str(winner))
        if into is None or int(into) in seen:
            break
        winner = int(into)
        seen.add(winner)
        if winner not in links:
            links |= await ctx.store.links_by_marketo([winner])
    return winner


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
