"""Link Dynamics records the sync has not seen before to a Marketo person.

Resolution order: (0) for a contact qualified from a linked lead, that lead's person
(the link moves to the contact, as the native connector does; a qualified lead never
gets a person of its own; a lead deleted since counts as linked to the person its
delete flagged), (1) the person id the record already carries (links rebuilt
after a lost state table), (2) a person created for this record by an earlier,
interrupted cycle (found through the create intent and the person's Dynamics-id field),
(3) a new person when no person has the record's email (Marketo's createOnly by email
decides, so a first load into an empty Marketo spends no call on look-ups; once a call
shows most emails exist, the rest of the run looks them up first instead), (4) for an
email a person has already, exactly one person with it (case-insensitive) that is not
linked to another record, (5) a new person. What it prevents: a duplicate person, and
a record linked to a person that belongs to another; the creates and their intents are
in sync_core/creates.py.
"""

from __future__ import annotations

from typing import Any

from sync_core.apply import PairWork
from sync_core.context import CycleContext
from sync_core.creates import Created, create_people, intent_set, person_record
from sync_core.mapping import ENTITY_KEY, QUALIFIED, Entity
from sync_core.mergestate import MASTER, MERGED_AWAY, merged_away_key
from sync_core.pairing import dynamics_link_fields, marketo_link_fields
from sync_core.planner import as_id, normalize, plan_pair
from sync_core.state import Link

PROBE = 300  # one Sync Leads call


async def link_new_records(
    ctx: CycleContext, entity: Entity, rows: list[dict[str, Any]], taken: set[int] | None = None
) -> list[PairWork]:
    """`taken`: Marketo ids other records took in writes still in flight (the page sync
    links a slice while the slice before is written); the people taken here are added.
    Until such a write lands, a person taken there still reads as free: its Dynamics id
    field is not written yet, a delete's flag not yet cleared."""
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
    taken = set() if taken is None else taken

    def take(did: str, person: dict[str, Any]) -> None:
        matched[did] = person
        taken.add(int(person["id"]))

    relinked: set[int] = set()

    async def note_relinked(people: list[dict[str, Any]]) -> None:
        # The delete's flag stays on a person linked to a new record since: taken for
        # free, that person went to a second record too, and the two then took it from
        # each other every cycle (seed 7416).
        flagged = [int(p["id"]) for p in people if p.get(m.dynamics_deleted_field)]
        if flagged:
            relinked.update(await ctx.store.links_by_marketo(flagged))

    def free_for(person: dict[str, Any], did: str) -> bool:
        owner = str(normalize(person.get(m.dynamics_id_field)) or "").lower()
        deleted = bool(person.get(m.dynamics_deleted_field)) and int(person["id"]) not in relinked
        return int(person["id"]) not in taken and (owner in ("", did) or deleted)

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
            orphans = {did: lead for did, lead in origins.items() if did not in owners}
            for did, person in (await _deleted_leads_people(ctx, orphans, fields)).items():
                if int(person["id"]) not in taken:
                    take(did, person)

    # (1) the id the record carries
    claimed = {did: as_id(r.get(m.marketo_id_column)) for did, r in by_id.items()}
    claimed_ids = sorted({v for v in claimed.values() if v is not None})
    if claimed_ids:
        found = await ctx.marketo.get_leads("id", claimed_ids, fields)
        await note_relinked(found)
        people = {int(p["id"]): p for p in found}
        for did, mid in claimed.items():
            person = people.get(mid) if mid is not None else None
            if person is not None and free_for(person, did):
                take(did, person)

    # (2) a person an interrupted cycle created for this record
    intents = set(await ctx.store.members(intent_set(entity)))
    pending = sorted(d for d in by_id if d in intents and d not in matched)
    if pending:
        for person in await ctx.marketo.get_leads(m.dynamics_id_field, pending, fields):
            did = str(person.get(m.dynamics_id_field) or "").lower()
            if did in by_id and did not in matched:
                take(did, person)

    # (3) a new person for each email no person has: createOnly by email creates those
    # and skips (1005) the others, so a first load into an empty Marketo looks nothing
    # up. One record per email is sent: two of one email in a call (or in two chunks in
    # flight together) could both be created. A record whose email the mapping does not
    # write to Marketo is not sent: createOnly would not find its person by email.
    email_col = next((r.column for r in m.fields[entity] if r.marketo == "email"), None)
    emails = {
        did: str(normalize(r.get(email_col))).lower()
        for did, r in by_id.items()
        if email_col and did not in matched and normalize(r.get(email_col))
    }
    records = {
        did: person_record(ctx, entity, did, r) for did, r in by_id.items() if did not in matched
    }
    one_per_email: dict[str, str] = {}  # email -> the record sent for it
    for did, email in emails.items():
        if records[did].get("email"):
            one_per_email.setdefault(email, did)
    unsent = list(one_per_email.values())
    # Into a populated Marketo most emails exist and createOnly would only skip them (a
    # wasted call per 300): one call measures the share that exists, and past half the
    # rest of the run looks up first (the records it does not send go to 4 and 5).
    known = ctx.emails_known
    if known is None and len(unsent) > PROBE:
        sent = {did: records[did] for did in unsent[:PROBE]}
        fresh = await create_people(ctx, entity, "createOnly", by_id, sent)
        known = ctx.emails_known = len(fresh.exists) / len(sent)
        unsent = unsent[PROBE:]
    else:
        sent, fresh = {}, Created()
    if known is None or known <= 0.5:
        rest = {did: records[did] for did in unsent}
        more = await create_people(ctx, entity, "createOnly", by_id, rest)
        if rest and ctx.emails_known is None:
            ctx.emails_known = len(more.exists) / len(rest)
        sent.update(rest)
        fresh.work += more.work
        fresh.exists += more.exists
    settled = set(sent) - set(fresh.exists)  # created, or refused for another reason
    new_emails = {emails[w.link.dynamics_id] for w in fresh.work}
    taken.update(w.link.marketo_id for w in fresh.work)

    # (4) exactly one person with the same email (the email had a person already). An
    # email just created had none: its other records go straight to (5).
    wanted = {
        did: email
        for did, email in emails.items()
        if did not in settled and email not in new_emails
    }
    if wanted:
        same_email = await ctx.marketo.get_leads("email", sorted(set(wanted.values())), fields)
        await note_relinked(same_email)
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
                intent=did in intents,
            )
        )
        ctx.record.counts.linked += 1

    # (5) a new person for the rest: no email, another record of an email just created,
    # an email two people share, or the one person with it linked to another record
    rest = {did: rec for did, rec in records.items() if did not in matched and did not in settled}
    duplicates = await create_people(ctx, entity, "createDuplicate", by_id, rest)
    return [*work, *fresh.work, *duplicates.work]


async def _deleted_leads_people(
    ctx: CycleContext, origins: dict[str, str], fields: list[str]
) -> dict[str, dict[str, Any]]:
    """Contact id -> the person of the lead it was qualified from, where a delete of that
    lead closed its link: the person still names the lead, carries the delete's flag and
    is linked to nothing. A salesperson often deletes a lead once qualified; read before
    the contact (leads come first, and a run may die between), the delete left the
    person flagged and the contact took a new person, or one of its email (seed 7197)."""
    if not origins:
        return {}
    m = ctx.mapping
    people = await ctx.marketo.get_leads(m.dynamics_id_field, sorted(set(origins.values())), fields)
    flagged = {
        str(p.get(m.dynamics_id_field) or "").lower(): p
        for p in people
        if p.get(m.dynamics_deleted_field)
        and str(normalize(p.get(m.dynamics_type_field)) or "").lower() == "lead"
    }
    if not flagged:
        return {}
    linked = await ctx.store.links_by_marketo([int(p["id"]) for p in flagged.values()])
    return {
        did: flagged[lead]
        for did, lead in origins.items()
        if lead in flagged and int(flagged[lead]["id"]) not in linked
    }


async def clear_intents(ctx: CycleContext, entity: Entity, work: list[PairWork]) -> None:
    # Only the records that have an intent row: deleting a row that is not there fails
    # the whole 100-row transaction, and its rows are then deleted one call each (a
    # 5,000-person load linked by email made 5,000 such calls).
    done = [w.link.dynamics_id for w in work if w.intent]
    if done:
        await ctx.store.remove_from_set(intent_set(entity), done)
