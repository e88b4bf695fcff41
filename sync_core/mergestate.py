"""What following a merge in either direction shares: the state kept about merges, and
the steps both directions take (moving a link, releasing a record's Marketo id, settling
a survivor's base, the person-log event).

The state prevents a merge being undone by a duplicate: a merged-away record is
remembered so it never gets a person of its own (MERGED_AWAY), each Marketo merge read
is kept as loser -> winner so one read late still finds its survivor (MERGED_INTO), and
a record a refused Merge left unlinked is remembered with the record it should have
joined (MERGE_REFUSED). Marketo's side is in `marketomerges`, Dynamics' in
`dynamicsmerges`; the surviving link always keeps its base, and nothing is deleted that
the native connector would not delete.
"""

from __future__ import annotations

from typing import Any

from sync_core import journal
from sync_core.access import decode_row
from sync_core.context import CycleContext
from sync_core.errors import RecordRejected
from sync_core.mapping import ENTITY_KEY, ENTITY_SET, Entity
from sync_core.planner import plan_pair
from sync_core.runrecord import PersonEvent
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


def refused_key(entity: Entity, record_id: str, survivor: str) -> str:
    return f"{merged_away_key(entity, record_id)}>{survivor.lower()}"


def event(ctx: CycleContext, link: Link, note: str, **ids: Any) -> None:
    ctx.record.event(
        PersonEvent(
            link.marketo_id, link.entity, link.dynamics_id, "merge", [], note=note, details=ids
        )
    )


async def move(ctx: CycleContext, old: Link, marketo_id: int, entity: Entity, record: str) -> Link:
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


async def settle_survivor(ctx: CycleContext, link: Link, winner: int) -> None:
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


async def release_marketo_id(
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
