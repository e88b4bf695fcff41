"""Following merges made in either system, so a merge is never undone by a duplicate.

Without this, a Marketo merge left the loser's Dynamics record linked to a person that no
longer exists, and its next change minted a new person; a Dynamics merge left two people
for one surviving record. Here, as the native connector does:

- **Merged in Marketo** (a Merge Leads activity names the people merged away):
  both linked → the Dynamics records are merged too (Dataverse `Merge`; a lead and a
  contact: the contact survives and the lead is only unlinked, since Dataverse merges
  within one table); only the loser linked → its link moves to the winner. Two records
  a salesperson merged the other way round meanwhile: the winner's link moves to the
  Dynamics master, the only one still active.
- **Merged in Dynamics** (the subordinate turns up in change tracking with `masterid`
  set): both linked → the people are merged in Marketo, winner = the master's person
  (unless that person is gone from Marketo: then as if only the subordinate were linked);
  only the subordinate linked → its link moves to the master, unless the master's sync
  filter says No (the winner's flag decides) or the master was merged away before (then
  the person stops syncing; but a record left unlinked by a refused Merge into this
  subordinate is that person's only active record, and takes the link), or the master
  is gone (then the person is flagged as after a delete). A contact qualified from a
  linked lead and not linked yet counts as linked to that lead's person.
- **Chains**: a merge's winner (or master) merged on since, by a merge followed first,
  counts as the person (or record) it lives on as: Marketo commits some Merge Leads
  activities late, and a cycle reads Marketo's merges before Dynamics' changes.

The surviving link keeps its base; nothing is deleted that the native connector would
not delete. A merged-away record is remembered so it never gets a person of its own.
"""

from __future__ import annotations

from typing import Any

from sync_core import journal
from sync_core.access import decode_row
from sync_core.context import CycleContext
from sync_core.deletes import dynamics_deleted, marketo_deleted
from sync_core.errors import RecordRejected, SyncError
from sync_core.mapping import ENTITY_KEY, ENTITY_SET, Entity
from sync_core.planner import as_id, normalize, plan_pair
from sync_core.runrecord import PersonEvent, SyncErrorRow
from sync_core.state import Link

MERGED_AWAY = "mergedaway"  # state set: "<entity>:<record id>" never to be linked again
MERGED_INTO = "mergedinto"  # state values: person merged away -> the person it went into
HOPS = 20  # merges followed through at most, so a bad chain cannot loop a cycle


# state set: "<entity>:<record id>><survivor id>", a record left merged away because
# Dataverse refused the Merge into the survivor (its Marketo winner's record)
MERGE_REFUSED = "mergerefused"
MASTER = "_masterid_value"
ORIGIN = "_originatingleadid_value"  # a contact's originating lead
JOURNAL_MARKS = (*journal.LANDED_ON.values(), *journal.CONFIRMED.values())


def merged_away_key(entity: Entity, record_id: str) -> str:
    return f"{entity}:{record_id.lower()}"


def _refused_key(entity: Entity, record_id: str, survivor: str) -> str:
    return f"{merged_away_key(entity, record_id)}>{survivor.lower()}"


def _event(ctx: CycleContext, link: Link, note: str, **ids: Any) -> None:
    ctx.record.event(
        PersonEvent(
            link.marketo_id, link.entity, link.dynamics_id, "merge", [], note=note, details=ids
        )
    )


async def _move(ctx: CycleContext, old: Link, marketo_id: int, entity: Entity, record: str) -> Link:
    """Re-point a link (its base kept) and have this cycle write both link fields."""
    moved = Link(marketo_id, entity, record.lower(), dict(old.base))
    # The moved link first: a run that dies (or is cancelled) between these calls then
    # leaves the old person's row behind, closed when the merge is read again, never no
    # link at all (the record would mint a new person). The same person moved to
    # another record needs no close: its row is overwritten, the old index names it
    # no more (only a matching main row counts).
    await ctx.store.save_links([moved], new=True)
    if old.marketo_id != marketo_id:
        await ctx.store.close_links([old])  # also drops the record's index, so:
        await ctx.store.save_links([moved], new=True)
    ctx.changes.always(marketo_id)
    return moved


# ---- merged in Marketo -------------------------------------------------------------------


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
            links[winner] = await _move(ctx, gone, winner, gone.entity, gone.dynamics_id)
            ctx.record.counts.merged += 1
            _event(ctx, links[winner], "merged in Marketo; link moved to the winner",
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
            refused_key = _refused_key(gone.entity, gone.dynamics_id, kept.dynamics_id)
            await ctx.store.add_to_set(MERGE_REFUSED, [refused_key])
        await ctx.store.add_to_set(MERGED_AWAY, [merged_away_key(away.entity, away.dynamics_id)])
        note = "merged in Marketo; Dynamics records merged"
        if kept.entity == gone.entity:
            if refused is not None:
                # Not allowed (no Merge privilege, a plug-in said no): the record stays as
                # it is, unlinked and remembered, so it still never mints a duplicate.
                _merge_refused(ctx, kept, gone, refused)
                note = "merged in Marketo; Dynamics refused the merge, record unlinked"
            else:
                await _settle_survivor(ctx, kept, winner)
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
        ctx.record.counts.merged += 1
        _event(ctx, survivor, note, mergedMarketoId=loser, mergedDynamicsId=gone.dynamics_id)


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
    await _release_marketo_id(ctx, kept.entity, kept.dynamics_id, row)
    # Closed before the move: a run dying between them leaves only the loser's link,
    # which the merge, read again, moves to the winner. The move keeps the loser's base:
    # the last values the surviving record and a person agreed on.
    await ctx.store.close_links([kept])
    survivor = await _move(ctx, gone, winner, gone.entity, gone.dynamics_id)
    await _settle_survivor(ctx, survivor, winner)
    ctx.record.counts.merged += 1
    _event(ctx, survivor, "merged in Marketo; the records were merged the other way in Dynamics",
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


async def _settle_survivor(ctx: CycleContext, link: Link, winner: int) -> None:
    """Record as the base what both sides of the surviving pair now show alike. Both
    merges filled the survivor's empty fields from the records merged away (Marketo logs
    no change for that); the re-plan that would record it skips a record whose sync
    filter says No, and Dataverse fills an empty filter with the subordinate's No. When
    the filter let the pair through again, a Marketo edit made meanwhile met the fill
    on the Dynamics side as a collision, and lost it for a contact (seed 6214)."""
    entity, m = link.entity, ctx.mapping
    rows = await ctx.dataverse.get_by_ids(
        ENTITY_SET[entity], ENTITY_KEY[entity], [link.dynamics_id], m.columns(entity)
    )
    people = await ctx.marketo.get_leads("id", [winner], m.marketo_fields())
    if not rows or not people:
        return
    rules = m.fields[entity]
    plan = plan_pair(rules, decode_row(rules, rows[0]), people[0], link.base, ctx.hasher)
    marked = {k.split(":", 1)[1] for k in link.base if k.startswith(JOURNAL_MARKS)}
    # A field a dead run's journal marks is left to the re-plan, which reads the marks;
    # without marks, what the plan settles is what both sides show alike.
    agreed = {name: h for name, h in plan.settled.items() if name not in marked}
    if agreed:
        link.base.update(agreed)
        await ctx.store.save_links([link])


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
            _event(ctx, master_link, "merged in Dynamics; people merged in Marketo",
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
            refused = _refused_key(entity, master_id, sub_id)
            revived = refused in await ctx.store.members(MERGE_REFUSED)
            if not revived and merged_away_key(entity, master_id) in await ctx.store.members(
                MERGED_AWAY
            ):
                # The master is a record an earlier Marketo merge left merged away (a lead
                # only unlinked, or a Merge Dynamics refused): it lives on as that merge's
                # survivor, whose person has it. Moving this person here gave the record a
                # person of its own (seed 1735); it stops syncing, as just above.
                await ctx.store.close_links([sub_link])
                _event(ctx, sub_link, "merged in Dynamics into a record merged away; link closed",
                       mergedDynamicsId=sub_id)  # fmt: skip
                continue
            await _release_marketo_id(ctx, entity, sub_id, in_page.get(sub_id, {}))
            moved = await _move(ctx, sub_link, sub_link.marketo_id, entity, master_id)
            links[master_id] = moved
            if revived:
                # After the move: a run dying in between leaves the master linked and
                # still remembered, which only keeps it from a second person.
                await ctx.store.remove_from_set(MERGED_AWAY, [merged_away_key(entity, master_id)])
                await ctx.store.remove_from_set(MERGE_REFUSED, [refused])
            _event(ctx, moved, "merged in Dynamics; link moved to the surviving record",
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


async def _release_marketo_id(
    ctx: CycleContext, entity: Entity, record_id: str, row: dict[str, Any]
) -> None:
    """Clear a merged-away record's Marketo id column. Dataverse never copies an
    alternate-key column in a merge and its key spans inactive rows too: while the
    subordinate holds the person's id, the master can never be given it (every write of
    the link field is refused as a duplicate key)."""
    column = ctx.mapping.marketo_id_column
    if row.get(column) is None:
        return  # nothing held, or cleared by an earlier run
    try:
        await ctx.dataverse.request(
            "PATCH",
            f"{ENTITY_SET[entity]}({record_id})",
            json={column: None},
            headers={"If-Match": "*"},  # an update only: a deleted row stays deleted
        )
    except RecordRejected:
        pass  # gone since, or refused: the master's write then says why, as an error row


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
