"""Link Dynamics records the sync has not seen before to a Marketo person.

Resolution order, each step cheaper to get wrong than the next: (0) for a contact
qualified from a linked lead, that lead's person (the link moves to the contact, as the
native connector does; a qualified lead never gets a person of its own), (1) the person
id the record already carries (links rebuilt after a lost state table), (2) a person created
for this record by an earlier, interrupted cycle (found through the create intent and
the person's Dynamics-id field), (3) exactly one person with the same email
(case-insensitive) that is not linked to another record, (4) a new person. The intent
row is written *before* the create, so a crash between the create and the link save
finds the person again instead of minting a duplicate.
"""

from __future__ import annotations

from typing import Any

from sync_core.apply import PairWork
from sync_core.context import CycleContext
from sync_core.errors import OutcomeUnknown, RecordRejected
from sync_core.mapping import ENTITY_KEY, QUALIFIED, Entity
from sync_core.merges import MASTER, MERGED_AWAY, merged_away_key
from sync_core.pairing import dynamics_link_fields, marketo_link_fields
from sync_core.planner import as_id, normalize, plan_pair
from sync_core.runrecord import PersonEvent, SyncErrorRow
from sync_core.state import Link


def _intent_set(entity: Entity) -> str:
    return f"intent{entity}"


async def link_new_records(
    ctx: CycleContext, entity: Entity, rows: list[dict[str, Any]]
) -> list[PairWork]:
    m = ctx.mapping
    key = ENTITY_KEY[entity]
    fields = [*m.marketo_fields(), m.dynamics_deleted_field]
    if entity == "lead":
        # A qualified lead lives on as its contact: it never gets a person of its own.
        qualified = [r for r in rows if r.get("statecode") == QUALIFIED]
        ctx.record.counts.filtered_out += len(qualified)
        rows = [r for r in rows if r.get("statecode") != QUALIFIED]
    # A record merged away (in either system) never gets a person of its own.
    rows = [r for r in rows if not r.get(MASTER)]
    away = set(await ctx.store.members(MERGED_AWAY)) if rows else set()
    rows = [r for r in rows if merged_away_key(entity, str(r[key])) not in away]
    by_id = {str(r[key]).lower(): r for r in rows}
    matched: dict[str, dict[str, Any]] = {}  # dynamics id -> person
    taken: set[int] = set()

    def take(did: str, person: dict[str, Any]) -> None:
        matched[did] = person
        taken.add(int(person["id"]))

    def free_for(person: dict[str, Any], did: str) -> bool:
        owner = str(normalize(person.get(m.dynamics_id_field)) or "").lower()
        return int(person["id"]) not in taken and (
            owner in ("", did) or bool(person.get(m.dynamics_deleted_field))
        )

    # (0) a contact qualified from a linked lead takes over that lead's person, as the
    # native connector does (the person's Dynamics type becomes contact)
    if entity == "contact":
        origins = {
            did: str(r["_originatingleadid_value"]).lower()
            for did, r in by_id.items()
            if r.get("_originatingleadid_value")
        }
        if origins:
            lead_links = await ctx.store.links_by_dynamics("lead", list(origins.values()))
            owners = {did: lead_links[lead] for did, lead in origins.items() if lead in lead_links}
            if owners:
                ids = sorted({link.marketo_id for link in owners.values()})
                got = await ctx.marketo.get_leads("id", ids, fields)
                lead_people = {int(p["id"]): p for p in got}
                for did, link in owners.items():
                    person = lead_people.get(link.marketo_id)
                    if person is not None and int(person["id"]) not in taken:
                        take(did, person)

    # (1) the id the record carries
    claimed = {did: as_id(r.get(m.marketo_id_column)) for did, r in by_id.items()}
    claimed_ids = sorted({v for v in claimed.values() if v is not None})
    if claimed_ids:
        found = await ctx.marketo.get_leads("id", claimed_ids, fields)
        people = {int(p["id"]): p for p in found}
        for did, mid in claimed.items():
            person = people.get(mid) if mid is not None else None
            if person is not None and free_for(person, did):
                take(did, person)

    # (2) a person an interrupted cycle created for this record
    intents = set(await ctx.store.members(_intent_set(entity)))
    pending = sorted(d for d in by_id if d in intents and d not in matched)
    if pending:
        for person in await ctx.marketo.get_leads(m.dynamics_id_field, pending, fields):
            did = str(person.get(m.dynamics_id_field) or "").lower()
            if did in by_id and did not in matched:
                take(did, person)

    # (3) exactly one person with the same email
    email_col = next((r.column for r in m.fields[entity] if r.marketo == "email"), None)
    if email_col:
        wanted = {
            did: str(normalize(r.get(email_col))).lower()
            for did, r in by_id.items()
            if did not in matched and normalize(r.get(email_col))
        }
        if wanted:
            same_email = await ctx.marketo.get_leads("email", sorted(set(wanted.values())), fields)
            by_email: dict[str, list[dict[str, Any]]] = {}
            for p in same_email:
                by_email.setdefault(str(p.get("email") or "").lower(), []).append(p)
            for did, email in wanted.items():
                candidates = by_email.get(email, [])
                if len(candidates) == 1 and free_for(candidates[0], did):
                    take(did, candidates[0])

    work: list[PairWork] = []
    rules = m.fields[entity]
    for did, person in matched.items():
        row = by_id[did]
        mid = int(person["id"])
        work.append(
            PairWork(
                Link(mid, entity, did),
                plan_pair(rules, row, person, None, ctx.hasher),
                row.get("@odata.etag"),
                extra_marketo=marketo_link_fields(m, person, entity, did),
                extra_dynamics=dynamics_link_fields(m, row, mid),
                new=True,
            )
        )
        ctx.record.counts.linked += 1

    # (4) create the rest
    to_create = [did for did in by_id if did not in matched]
    if to_create:
        await ctx.store.add_to_set(_intent_set(entity), to_create)
        records = []
        for did in to_create:
            row = by_id[did]
            rec = {
                r.marketo: normalize(row.get(r.column))
                for r in rules
                if r.direction != "to-dynamics" and normalize(row.get(r.column)) is not None
            }
            rec[m.dynamics_id_field] = did
            rec[m.dynamics_type_field] = entity
            records.append(rec)
        try:
            results = await ctx.marketo.sync_leads("createDuplicate", records)
        except OutcomeUnknown:
            # Some creates may have landed: find them by the Dynamics id they carry and
            # create only the rest (never a blind resend, which would duplicate people).
            results = await _resolve_creates(ctx, to_create, records)
        refused = [
            d for d, res in zip(to_create, results, strict=True) if res.get("status") != "created"
        ]
        if refused:
            # Nothing was created for these: no intent to re-resolve next time.
            await ctx.store.remove_from_set(_intent_set(entity), refused)
        for did, rec, res in zip(to_create, records, results, strict=True):
            row = by_id[did]
            if res.get("status") != "created":
                reason = (res.get("reasons") or [{}])[0]
                err = RecordRejected(str(reason.get("code", "?")), str(reason.get("message", "")))
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
            work.append(
                PairWork(
                    Link(mid, entity, did),
                    plan_pair(rules, row, rec, None, ctx.hasher),
                    row.get("@odata.etag"),
                    extra_dynamics=dynamics_link_fields(m, row, mid),
                    new=True,
                )
            )
    return work


async def _resolve_creates(
    ctx: CycleContext, ids: list[str], records: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Results for creates whose answer was lost: the people that exist, then one more
    create for those that do not (a second lost answer stops the cycle; the intents
    resolve them next time)."""
    field = ctx.mapping.dynamics_id_field
    found = await ctx.marketo.get_leads(field, ids, ["id", field])
    made = {str(p.get(field) or "").lower(): int(p["id"]) for p in found}
    missing = [i for i, did in enumerate(ids) if did not in made]
    again = await ctx.marketo.sync_leads("createDuplicate", [records[i] for i in missing])
    retried = dict(zip(missing, again, strict=True))
    return [
        retried[i] if i in retried else {"status": "created", "id": made[did]}
        for i, did in enumerate(ids)
    ]


async def clear_intents(ctx: CycleContext, entity: Entity, work: list[PairWork]) -> None:
    done = [w.link.dynamics_id for w in work if w.new]
    if done:
        await ctx.store.remove_from_set(_intent_set(entity), done)
