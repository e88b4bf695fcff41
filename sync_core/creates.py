"""Marketo people created for new Dynamics records, and what became of each create.

One create step is: note the create intent, send the records (each carrying its
Dynamics id and type), then turn every answer into a link to save, an error row, or
(with `createOnly`) "a person has this email already". What it prevents: a duplicate
person. The intent row is written *before* the create, so a crash between the create
and the link save finds the person again by the Dynamics id it carries; a lost answer
is resolved the same way within the cycle, never by a blind resend (a resent
`createDuplicate` would mint the people again; a resent `createOnly` would skip them
and leave them to the email look-up, which finds such a person only while no other
person has its email).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sync_core.apply import PairWork
from sync_core.context import CycleContext
from sync_core.errors import OutcomeUnknown, RecordRejected
from sync_core.mapping import Entity
from sync_core.pairing import dynamics_link_fields
from sync_core.planner import normalize, plan_pair
from sync_core.runrecord import PersonEvent, SyncErrorRow
from sync_core.state import Link

#: Marketo's createOnly answer for a record whose lookup value a person already has.
EXISTS = "1005"
#: createOnly's key (createDuplicate has none: the client leaves it out).
LOOKUP = "email"


def intent_set(entity: Entity) -> str:
    return f"intent{entity}"


@dataclass
class Created:
    """What one create step did: the new links to save, and the records `createOnly`
    skipped because a person already has their email (nothing was created for them)."""

    work: list[PairWork] = field(default_factory=list)
    exists: list[str] = field(default_factory=list)


def person_record(
    ctx: CycleContext, entity: Entity, did: str, row: dict[str, Any]
) -> dict[str, Any]:
    """The Marketo record a create sends for a Dynamics row."""
    m = ctx.mapping
    rec = {
        r.marketo: normalize(row.get(r.column))
        for r in m.fields[entity]
        if r.direction != "to-dynamics" and normalize(row.get(r.column)) is not None
    }
    rec[m.dynamics_id_field] = did
    rec[m.dynamics_type_field] = entity
    return rec


async def create_people(
    ctx: CycleContext,
    entity: Entity,
    action: str,
    rows: dict[str, dict[str, Any]],
    records: dict[str, dict[str, Any]],
) -> Created:
    """Create a person for each record in `records` (Dynamics id -> record) with
    `action` ("createDuplicate", or "createOnly" with lookupField=email); `rows` holds the
    Dynamics rows by id."""
    dids = list(records)
    out = Created()
    if not dids:
        return out
    sent = [records[d] for d in dids]
    await ctx.store.add_to_set(intent_set(entity), dids)
    try:
        results = await ctx.marketo.sync_leads(action, sent, LOOKUP)
    except OutcomeUnknown:
        # Some creates may have landed: find them by the Dynamics id they carry and
        # send only the rest again.
        results = await _resolve_creates(ctx, action, dids, sent)
    refused = [d for d, res in zip(dids, results, strict=True) if res.get("status") != "created"]
    if refused:
        # Nothing was created for these: no intent to re-resolve next time.
        await ctx.store.remove_from_set(intent_set(entity), refused)
    rules = ctx.mapping.fields[entity]
    for did, rec, res in zip(dids, sent, results, strict=True):
        row = rows[did]
        if res.get("status") != "created":
            reason = (res.get("reasons") or [{}])[0]
            code = str(reason.get("code", "?"))
            if action == "createOnly" and code == EXISTS:
                out.exists.append(did)
                continue
            err = RecordRejected(code, str(reason.get("message", "")))
            ctx.record.counts.rejected += 1
            ctx.record.error(
                SyncErrorRow(
                    "create",
                    "to-marketo",
                    entity,
                    sorted(rec),
                    err.code,
                    err.message,
                    dynamics_id=did,
                )
            )
            continue
        mid = int(res["id"])
        ctx.record.counts.created_in_marketo += 1
        ctx.record.event(
            PersonEvent(mid, entity, did, "to-marketo", sorted(rec), note="created in Marketo")
        )
        out.work.append(
            PairWork(
                Link(mid, entity, did),
                plan_pair(rules, row, rec, None, ctx.hasher),
                row.get("@odata.etag"),
                extra_dynamics=dynamics_link_fields(ctx.mapping, row, mid),
                new=True,
                intent=True,
            )
        )
    return out


async def _resolve_creates(
    ctx: CycleContext, action: str, ids: list[str], records: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Results for creates whose answer was lost: the people that exist, then one more
    create for those that do not (a second lost answer stops the cycle; the intents
    resolve them next time)."""
    id_field = ctx.mapping.dynamics_id_field
    found = await ctx.marketo.get_leads(id_field, ids, ["id", id_field])
    made = {str(p.get(id_field) or "").lower(): int(p["id"]) for p in found}
    missing = [i for i, did in enumerate(ids) if did not in made]
    again = await ctx.marketo.sync_leads(action, [records[i] for i in missing], LOOKUP)
    retried = dict(zip(missing, again, strict=True))
    return [
        retried[i] if i in retried else {"status": "created", "id": made[did]}
        for i, did in enumerate(ids)
    ]
