"""Pairing a page of Dynamics rows with their Marketo people, and planning each pair.

The read-only part of a page (`prepare`: filtered rows split off, option sets decoded,
links looked up) is safe to run ahead of the previous page's writes, since a page's
records are never the next page's. Planning compares each side with the pair's base,
so a value that is only our own write coming back plans nothing. What it prevents: a
write for a pair whose Dynamics row carries nothing new, and the link fields (the
Marketo id in Dynamics, the Dynamics id and type in Marketo) going missing or stale.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sync_core.access import decode_row
from sync_core.apply import PairWork
from sync_core.context import CycleContext
from sync_core.guard import MassChangeGuard
from sync_core.mapping import ENTITY_KEY, Entity, Mapping
from sync_core.planner import Hasher, as_id, comparable, normalize, plan_pair
from sync_core.state import Link


class Prepared(NamedTuple):
    filtered: list[dict[str, Any]]  # rows whose sync filter says No
    live: list[dict[str, Any]]  # the rest, option sets decoded
    links: dict[str, Link]  # record id -> its link, where one exists


async def prepare(ctx: CycleContext, entity: Entity, rows: list[dict[str, Any]]) -> Prepared:
    key = ENTITY_KEY[entity]
    fcol, mcol = ctx.mapping.sync_filter_column, ctx.mapping.marketo_id_column
    rules = ctx.mapping.fields[entity]
    filtered = [r for r in rows if r.get(fcol) is False]
    live = [decode_row(rules, r) for r in rows if r.get(fcol) is not False]
    if not live:
        return Prepared(filtered, live, {})
    # The Marketo id a linked record carries lets most lookups skip the index read.
    hints = {str(r[key]).lower(): as_id(r.get(mcol)) for r in live}
    links = await ctx.store.links_by_dynamics(entity, [r[key] for r in live], hints)
    return Prepared(filtered, live, links)


def matches_base(
    mapping: Mapping, hasher: Hasher, entity: Entity, row: dict[str, Any], link: Link
) -> bool:
    """True when this Dynamics row carries nothing new for the pair: every mapped
    value equals the base (our own write coming back, or an unmapped edit)."""
    if as_id(row.get(mapping.marketo_id_column)) != link.marketo_id:
        return False
    return all(
        hasher(comparable(row.get(r.column), r.fold_case)) == link.base.get(r.marketo)
        for r in mapping.fields[entity]
    )


def plan_pairs(
    ctx: CycleContext,
    guard: MassChangeGuard,
    entity: Entity,
    pairs: list[tuple[dict[str, Any], Link]],
    by_id: dict[int, dict[str, Any]],
) -> list[PairWork]:
    rules = ctx.mapping.fields[entity]
    work = []
    for row, link in pairs:
        person = by_id.get(link.marketo_id)
        if person is None:
            continue  # deleted in Marketo; the deleted-leads feed closes the link
        plan = plan_pair(
            rules, row, person, link.base, ctx.hasher,
            hold_to_marketo=guard.held("to-marketo"),
            hold_to_dynamics=guard.held("to-dynamics"),
        )  # fmt: skip
        work.append(
            PairWork(
                link,
                plan,
                row.get("@odata.etag"),
                extra_marketo=marketo_link_fields(ctx.mapping, person, entity, link.dynamics_id),
                extra_dynamics=dynamics_link_fields(ctx.mapping, row, link.marketo_id),
            )
        )
    return work


def marketo_link_fields(
    mapping: Mapping, person: dict[str, Any], entity: Entity, dynamics_id: str
) -> dict[str, Any]:
    """The person's Dynamics id and type fields, where they do not say this record, and
    the deleted-in-Dynamics flag cleared where a person flagged by a delete is linked
    again (the marketer would otherwise see a synced person as deleted)."""
    want = {mapping.dynamics_id_field: dynamics_id, mapping.dynamics_type_field: entity}
    out: dict[str, Any] = {
        f: v for f, v in want.items() if str(normalize(person.get(f)) or "").lower() != v
    }
    if person.get(mapping.dynamics_deleted_field):
        out[mapping.dynamics_deleted_field] = False
    return out


def dynamics_link_fields(mapping: Mapping, row: dict[str, Any], marketo_id: int) -> dict[str, Any]:
    """The record's Marketo id column, where it does not name this person."""
    col = mapping.marketo_id_column
    return {} if as_id(row.get(col)) == marketo_id else {col: str(marketo_id)}
