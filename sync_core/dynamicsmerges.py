"""Following a merge made in Dynamics (the subordinate turns up in change tracking with
`masterid` set), so one surviving record is not left with two people.

Both linked → the people are merged in Marketo, winner = the master's person (unless
that person is gone from Marketo: then as if only the subordinate were linked); only the
subordinate linked → its link moves to the master, unless the master's sync filter says
No (the winner's flag decides) or the master was merged away before (then the person
stops syncing; but a record left unlinked by a refused Merge into this subordinate is
that person's only active record, and takes the link), or the master is gone (then the
person is flagged as after a delete). A contact qualified from a linked lead and not
linked yet counts as linked to that lead's person. A master merged on since, by a
merge followed first, counts as the record it was merged into.
"""

from __future__ import annotations

from typing import Any

from sync_core.context import CycleContext
from sync_core.deletes import dynamics_deleted, marketo_deleted
from sync_core.errors import SyncError
from sync_core.mapping import ENTITY_KEY, ENTITY_SET, Entity
from sync_core.mergestate import (
    HOPS,
    MASTER,
    MERGE_REFUSED,
    MERGED_AWAY,
    ORIGIN,
    event,
    merged_away_key,
    move,
    refused_key,
    release_marketo_id,
)
from sync_core.planner import as_id
from sync_core.state import Link


async def follow_dynamics_merges(
    ctx: CycleContext, entity: Entity, rows: list[dict[str, Any]], links: dict[str, Link]
) -> set[str]:
    """Handle subordinates of Dynamics merges among `rows`; return their ids (they are not
    synced any further). `links` gains the masters' links moved here."""
    key = ENTITY_KEY[entity]
    subs = {str(r[key]).lower(): str(r[MASTER]).lower() for r in rows if r.get(MASTER)}
    if not subs:
        return set()
    master_links = await ctx.store.links_by_dynamics(entity, sorted(set(subs.values())))
    in_page = {str(r[key]).lower(): r for r in rows}
    columns = [
        ctx.mapping.sync_filter_column,
        ctx.mapping.marketo_id_column,
        MASTER,
        *([ORIGIN] if entity == "contact" else []),
    ]
    fetched = await _live_masters(ctx, entity, subs, in_page, master_links, columns)
    masters = sorted(set(subs.values()))
    master_rows = {**in_page, **fetched}
    if entity == "contact":
        # A contact qualified from a linked lead and merged before any cycle linked it
        # is that lead's person's (newlinks step 0): without this, the merge left the
        # person on the closed lead and the other side's person as a second one.
        unlinked = {i: master_rows.get(i, {}) for i in masters if i not in master_links}
        unlinked |= {i: in_page[i] for i in subs if i not in links}
        for did, link in (await _qualified_from(ctx, unlinked)).items():
            if did in subs:
                links[did] = link
            else:
                master_links[did] = link
    unsaved = await _unsaved_links(
        ctx,
        entity,
        {i: master_rows[i] for i in masters if i not in master_links and i in master_rows},
    )
    master_links |= unsaved
    away = []
    for sub_id, master_id in subs.items():
        away.append(merged_away_key(entity, sub_id))
        sub_link = links.pop(sub_id, None)
        if sub_link is None:
            continue
        master_link = master_links.get(master_id)
        if master_link is not None and master_link is unsaved.get(master_id):
            # Saved first: the master then syncs as linked, this cycle if its row is here.
            await ctx.store.save_links([master_link], new=True)
            if master_id in in_page:
                links[master_id] = master_link
        if (
            master_link is not None
            and master_link.marketo_id != sub_link.marketo_id
            and not await _merge_people(ctx, master_link.marketo_id, sub_link.marketo_id)
        ):
            # The master's person is gone from Marketo (deleted, its delete maybe
            # not read yet): its link closes as after that delete, and the merge
            # goes on as one where only the subordinate was linked. Retrying the
            # Marketo merge failed every cycle (seeds 2592, 6173).
            await marketo_deleted(ctx, {master_link.marketo_id})
            del master_links[master_id]
            master_link = None
            if master_id not in master_rows:  # linked, so not fetched above
                got = await ctx.dataverse.get_by_ids(ENTITY_SET[entity], key, [master_id], columns)
                master_rows |= {str(r[key]).lower(): r for r in got}
        if master_link is not None and master_link.marketo_id != sub_link.marketo_id:
            await ctx.store.close_links([sub_link])
            event(ctx, master_link, "merged in Dynamics; people merged in Marketo",
                   mergedMarketoId=sub_link.marketo_id, mergedDynamicsId=sub_id)  # fmt: skip
        elif master_link is None:
            if master_id not in master_rows:
                # The master was deleted since the merge: the person's record is gone,
                # as after a delete (flagged, link closed), not moved onto no record.
                await dynamics_deleted(ctx, sub_link.entity, [sub_link.dynamics_id])
                continue
            master_row = master_rows[master_id]
            if master_row.get(ctx.mapping.sync_filter_column) is False:
                # The winner's sync filter says No: the merged person stops syncing.
                await ctx.store.close_links([sub_link])
                continue
            # The master may be a record whose Merge into this very subordinate Dataverse
            # refused after a Marketo merge: the salesperson merged the pair the other way
            # round, so the master is the only active record of the person both merges
            # kept. Closed as below, the link left that person with no record and the
            # record with no person, never to sync again (seed 3488): it moves there, and
            # the master is merged away no more.
            refused = refused_key(entity, master_id, sub_id)
            revived = refused in await ctx.store.members(MERGE_REFUSED)
            if not revived and merged_away_key(entity, master_id) in await ctx.store.members(
                MERGED_AWAY
            ):
                # The master is a record an earlier Marketo merge left merged away (a lead
                # only unlinked, or a Merge Dynamics refused): it lives on as that merge's
                # survivor, whose person has it. Moving this person here gave the record a
                # person of its own (seed 1735); it stops syncing, as just above.
                await ctx.store.close_links([sub_link])
                event(ctx, sub_link, "merged in Dynamics into a record merged away; link closed",
                       mergedDynamicsId=sub_id)  # fmt: skip
                continue
            await release_marketo_id(ctx, entity, sub_id, in_page.get(sub_id, {}))
            moved = await move(ctx, sub_link, sub_link.marketo_id, entity, master_id)
            links[master_id] = moved
            if revived:
                # After the move: a run dying in between leaves the master linked and
                # still remembered, which only keeps it from a second person.
                await ctx.store.remove_from_set(MERGED_AWAY, [merged_away_key(entity, master_id)])
                await ctx.store.remove_from_set(MERGE_REFUSED, [refused])
            event(ctx, moved, "merged in Dynamics; link moved to the surviving record",
                   mergedDynamicsId=sub_id)  # fmt: skip
        ctx.record.counts.merged += 1
    await ctx.store.add_to_set(MERGED_AWAY, away)
    return set(subs)


async def _live_masters(
    ctx: CycleContext,
    entity: Entity,
    subs: dict[str, str],
    in_page: dict[str, dict[str, Any]],
    master_links: dict[str, Link],
    columns: list[str],
) -> dict[str, dict[str, Any]]:
    """Point each subordinate in `subs` at the record its unlinked master lives on as,
    and return the rows read (`columns`) of unlinked masters not in the page.

    A master merged on since (the engine followed a Marketo merge of its person first,
    or a salesperson merged it again) has no link left: taken for a record merged away,
    the subordinate's person stopped syncing and stayed in Marketo beside the person of
    the record everything was merged into (seed 7019). `master_links` gains the links of
    the records found."""
    key = ENTITY_KEY[entity]
    fetched: dict[str, dict[str, Any]] = {}
    for _ in range(HOPS):
        ends = {m for m in subs.values() if m not in master_links}
        need = sorted(m for m in ends if m not in in_page and m not in fetched)
        if need:
            got = await ctx.dataverse.get_by_ids(ENTITY_SET[entity], key, need, columns)
            fetched |= {str(r[key]).lower(): r for r in got}
        rows = {**in_page, **fetched}
        on = {m: str(rows[m][MASTER]).lower() for m in ends if (rows.get(m) or {}).get(MASTER)}
        if not on:
            break
        for sub_id, master_id in subs.items():
            subs[sub_id] = on.get(master_id, master_id)
        found = sorted(set(on.values()) - set(master_links))
        master_links |= await ctx.store.links_by_dynamics(entity, found)
    return fetched


async def _unsaved_links(
    ctx: CycleContext, entity: Entity, masters: dict[str, dict[str, Any]]
) -> dict[str, Link]:
    """Master id -> a link its person and it show in both systems (the record carries the
    person's id, the person names the record) that the state store lacks: a run died, or
    a store call failed, after the link's writes landed and before its row was saved.
    Taken for unlinked, the master got the subordinate's person too while its own still
    named it: two people for one record (seeds 5713, 5960). A person the store links to
    a record (the subordinate's, another) does not count: the id on this one is stale."""
    m = ctx.mapping
    carried = {
        did: mid for did, row in masters.items() if (mid := as_id(row.get(m.marketo_id_column)))
    }
    if not carried:
        return {}
    ids = sorted(set(carried.values()))
    people = await ctx.marketo.get_leads("id", ids, ["id", m.dynamics_id_field])
    names = {int(p["id"]): str(p.get(m.dynamics_id_field) or "").lower() for p in people}
    elsewhere = await ctx.store.links_by_marketo(ids)
    return {
        did: Link(mid, entity, did)
        for did, mid in carried.items()
        if names.get(mid) == did and mid not in elsewhere
    }


async def _qualified_from(
    ctx: CycleContext, contacts: dict[str, dict[str, Any]]
) -> dict[str, Link]:
    """Contact id -> the link of the lead it was qualified from, where that is linked."""
    origins = {did: str(r[ORIGIN]).lower() for did, r in contacts.items() if r.get(ORIGIN)}
    if not origins:
        return {}
    leads = await ctx.store.links_by_dynamics("lead", sorted(set(origins.values())))
    return {did: leads[lead] for did, lead in origins.items() if lead in leads}


async def _merge_people(ctx: CycleContext, winner: int, loser: int) -> bool:
    """Merge `loser` into `winner` in Marketo; False when the winner no longer exists
    there (nothing to merge into) and the loser does."""
    try:
        await ctx.marketo.merge(winner, [loser])
    except SyncError:
        # A lost answer, or a repeat of a merge that happened (1004): the loser is gone.
        found = {int(p["id"]) for p in await ctx.marketo.get_leads("id", [winner, loser], ["id"])}
        if loser not in found:
            return True
        if winner not in found:
            return False
        raise
    return True
