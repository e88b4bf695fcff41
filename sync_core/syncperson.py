"""The Sync Person use case: create a Marketo person's lead or contact in Dynamics now,
unless the person is in Dynamics already (no forced sync: updates belong to the cycle).

What it prevents:

* Duplicate Dynamics records. The create is an upsert on the Marketo-id alternate key
  with `If-None-Match: *`, so a duplicate or concurrent delivery, or a background cycle
  running at the same moment, can never produce a second record with that key; a
  per-person lease also serialises deliveries that ask for different tables (lead vs
  contact), which the key alone cannot see.
* Half-done work. The Dynamics create is the commit point; everything after it (writing
  the Dynamics id back on the person, the link row, the activity) is idempotent and is
  completed by the next delivery if this one fails part-way (answering 503). The write
  order (person fields before the link row) also lets the background cycle finish the
  job if no retry ever comes.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any
from urllib.parse import quote

from azure.core.exceptions import AzureError

from sync_core.access import decode_row, encode_values, known_mapping
from sync_core.activitylog import SYNC_ERROR, SYNC_PERSON, error_entries
from sync_core.errors import RecordRejected, StaleRecord, SyncError
from sync_core.mapping import ENTITY_KEY, ENTITY_SET, Entity, Mapping
from sync_core.marketobatch import DirectPort, MarketoPort
from sync_core.planner import normalize, plan_pair
from sync_core.replies import Reply, unavailable
from sync_core.runrecord import PersonEvent, SyncErrorRow
from sync_core.runtime import Runtime
from sync_core.state import Link
from sync_core.webhook_request import SyncRequest

log = logging.getLogger("sync_core")

# 412 codes that mean "a record with this key exists" (not a duplicate-detection rule hit).
# Older services leave the code empty; the client turns that 412 into StaleRecord.
EXISTS_CODES = {"0x80040237", "0x80060892"}
# How long a delivery waits for another delivery for the same person to finish.
LEASE_WAIT_SECONDS = 8.0
# Longer than the webhook's deadline, so two holders can never overlap; it only matters
# when a worker dies holding the lease.
LEASE_SECONDS = 60
RETRY_AFTER_BUSY = 5


async def sync_person(rt: Runtime, req: SyncRequest, marketo: MarketoPort | None = None) -> Reply:
    """Run the use case; its Marketo calls go through `marketo` (default: straight
    through the runtime's client; the webhook passes the worker's batched port)."""
    marketo = marketo or DirectPort(rt.marketo)
    m = rt.mapping
    fields = [*m.marketo_fields(), m.dynamics_deleted_field]
    # One round trip for the three reads (Marketo is waiting); the effective mapping is
    # only needed for a create, but reading it later would add a Table Storage trip.
    person, links, effective = await asyncio.gather(
        marketo.read_person(req.lead_id, fields),
        rt.store.links_by_marketo([req.lead_id]),
        known_mapping(rt.store, rt.mapping),
    )
    if person is None:
        return Reply(404, {"status": "not-found", "message": f"no Marketo person {req.lead_id}"})
    link = links.get(req.lead_id)
    if link is not None:
        # A delivery that failed after saving the link may have left the person
        # without the Dynamics id: put it back (a Marketo write, never a Dynamics one).
        await _write_back(rt, marketo, person, link.dynamics_id, link.entity)
        return _already(link.dynamics_id, link.entity)
    current = str(normalize(person.get(m.dynamics_id_field)) or "")
    if current and not person.get(m.dynamics_deleted_field):
        # Linked by the background cycle (or the link table was lost): nothing to do.
        return _already(current, person.get(m.dynamics_type_field))

    owner = f"sync-person-{uuid.uuid4().hex[:12]}"
    lease = f"person-{req.lead_id}"
    if not await _acquire(rt, owner, lease):
        return unavailable(
            f"another delivery for person {req.lead_id} is still running", RETRY_AFTER_BUSY
        )
    try:
        # The previous holder may have finished the job while we waited.
        done = await rt.store.links_by_marketo([req.lead_id])
        if req.lead_id in done:
            return _already(done[req.lead_id].dynamics_id, done[req.lead_id].entity)
        return await _create(rt, marketo, req, person, effective)
    finally:
        await rt.store.release_lease(owner, lease)


async def _acquire(rt: Runtime, owner: str, lease: str) -> bool:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + LEASE_WAIT_SECONDS
    while not await rt.store.acquire_lease(owner, LEASE_SECONDS, lease):
        if loop.time() > give_up:
            return False
        await asyncio.sleep(0.1)
    return True


async def _owner_bind(rt: Runtime, assign_to: str) -> dict[str, str]:
    if not assign_to:
        return {}
    if "@" in assign_to:
        literal = assign_to.replace("'", "''")
        # Quoted: an email may hold + & # which would otherwise break the query string.
        query = quote(f"internalemailaddress eq '{literal}'", safe="")
        body = await rt.dataverse.get_json(
            f"systemusers?$select=systemuserid&$filter={query}&$top=2"
        )
        users = body.get("value", [])
        if len(users) != 1:
            raise RecordRejected(
                "OwnerNotFound", f"no single Dynamics user has the email {assign_to}"
            )
        assign_to = str(users[0]["systemuserid"])
    return {"ownerid@odata.bind": f"/systemusers({assign_to})"}


async def _create(
    rt: Runtime, marketo: MarketoPort, req: SyncRequest, person: dict[str, Any], m: Mapping
) -> Reply:
    # `m`: the fields the sync identity may use, with option sets, as the last cycle
    # found them (no metadata calls here: Marketo is waiting).
    entity, lead_id = req.sync_as, req.lead_id
    rules = tuple(r for r in m.fields[entity] if r.direction != "to-marketo")
    # Columns the identity may update but not create are left out, and said so.
    left_out = [
        {"field": r.marketo, "column": r.column, "reason": "the sync identity may not create it"}
        for r in rules
        if not r.can_create and normalize(person.get(r.marketo)) is not None
    ]
    rules = tuple(r for r in rules if r.can_create)
    values: dict[str, Any] = {
        r.column: normalize(person.get(r.marketo))
        for r in rules
        if normalize(person.get(r.marketo)) is not None
    }
    record, bad = encode_values(rules, values)
    if bad:
        # A label that is not an option: create without that field and say so.
        await _best_effort(
            "option-set error", _record_bad_options(rt, marketo, lead_id, entity, bad)
        )
    record[m.marketo_id_column] = str(lead_id)
    key = ENTITY_KEY[entity]
    address = f"{ENTITY_SET[entity]}({m.marketo_id_column}='{lead_id}')"
    try:
        record.update(await _owner_bind(rt, req.assign_to))
        resp = await rt.dataverse.request(
            "PATCH",
            address,
            json=record,
            headers={
                # Create only: an existing record with this Marketo id answers 412.
                "If-None-Match": "*",
                "Prefer": "return=representation",
                # The Web API skips duplicate detection unless asked; the native
                # connector honours the org's rules, and so do we.
                "MSCRM.SuppressDuplicateDetection": "false",
            },
        )
    except StaleRecord:
        return await _adopt(rt, marketo, req, person, address)
    except RecordRejected as exc:
        if exc.code in EXISTS_CODES:
            return await _adopt(rt, marketo, req, person, address)
        return await _rejected(rt, marketo, lead_id, entity, exc, sorted(record))
    created: dict[str, Any] = resp.json() if resp.content else {}
    if not created.get(key):
        # No representation came back (a proxy or an older service): read it by key.
        created = await rt.dataverse.get_json(address)
    dynamics_id = str(created[key]).lower()

    # From here on the record exists; each step below is idempotent and repeated by
    # the next delivery (through _adopt) if this one fails.
    results = await asyncio.gather(
        _write_back(rt, marketo, person, dynamics_id, entity),
        _log_created(marketo, req, dynamics_id),
        return_exceptions=True,
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result
    plan = plan_pair(m.fields[entity], decode_row(rules, created), person, None, rt.hasher)
    link = Link(lead_id, entity, dynamics_id, dict(plan.settled))
    # The person log beside the link row, not after it: one Table Storage trip fewer.
    event = _best_effort(
        "person log",
        rt.store.record_person_events(
            [
                PersonEvent(
                    lead_id,
                    entity,
                    dynamics_id,
                    "to-dynamics",
                    sorted(record),
                    note="created by Sync Person to Microsoft",
                    details={"leftOut": [x["field"] for x in left_out]} if left_out else {},
                ).row()
            ]
        ),
    )
    await asyncio.gather(rt.store.save_links([link], new=True), event)
    reply: dict[str, Any] = {"status": "created", "dynamicsId": dynamics_id, "dynamicsType": entity}
    if left_out:
        reply["leftOut"] = left_out
    return Reply(200, reply)


async def _record_bad_options(
    rt: Runtime, marketo: MarketoPort, lead_id: int, entity: Entity, bad: dict[str, str]
) -> None:
    row = SyncErrorRow(
        "create", "to-dynamics", entity, sorted(bad), "option-set", "; ".join(bad.values()),
        marketo_id=lead_id,
    ).row()  # fmt: skip
    await rt.store.record_errors([row])
    await marketo.log(SYNC_ERROR, error_entries([row]))


async def _adopt(
    rt: Runtime, marketo: MarketoPort, req: SyncRequest, person: dict[str, Any], address: str
) -> Reply:
    """A record with this Marketo id exists: an earlier delivery created it (and maybe
    failed before finishing), or someone else did. Finish what is missing: the
    person's Dynamics id and the link row. Nothing is written to Dynamics."""
    m = rt.mapping
    entity, key = req.sync_as, ENTITY_KEY[req.sync_as]
    row = await rt.dataverse.get_json(f"{address}?$select={','.join([key, *m.columns(entity)])}")
    dynamics_id = str(row[key]).lower()
    links = await rt.store.links_by_marketo([req.lead_id])
    if req.lead_id not in links:
        await _write_back(rt, marketo, person, dynamics_id, entity)
        plan = plan_pair(m.fields[entity], row, person, None, rt.hasher)
        link = Link(req.lead_id, entity, dynamics_id, dict(plan.settled))
        await rt.store.save_links([link], new=True)
    return _already(dynamics_id, entity)


async def _write_back(
    rt: Runtime, marketo: MarketoPort, person: dict[str, Any], dynamics_id: str, entity: Entity
) -> None:
    """Put the Dynamics id and type on the person unless they are there already."""
    m = rt.mapping
    if (
        str(normalize(person.get(m.dynamics_id_field)) or "").lower() == dynamics_id.lower()
        and person.get(m.dynamics_type_field) == entity
        and not person.get(m.dynamics_deleted_field)
    ):
        return
    update = {
        "id": int(person["id"]),
        m.dynamics_id_field: dynamics_id.lower(),
        m.dynamics_type_field: entity,
        m.dynamics_deleted_field: False,
    }
    result = await marketo.write_back(update)
    if result.get("status") not in ("updated", "created"):
        # Deleted in Marketo meanwhile: nothing left to write the id on.
        log.warning("sync-person %s: write-back skipped: %s", person["id"], result)


async def _log_created(marketo: MarketoPort, req: SyncRequest, dynamics_id: str) -> None:
    attrs = {"syncAs": req.sync_as, "assignTo": req.assign_to}
    await _best_effort("activity", marketo.log(SYNC_PERSON, [(req.lead_id, dynamics_id, attrs)]))


async def _best_effort(what: str, work: Any) -> None:
    # A missing log line must not turn a finished sync into a failure (and a retry).
    try:
        await work
    except (SyncError, AzureError) as exc:
        log.warning("sync-person: could not write the %s: %s", what, exc)


def _already(dynamics_id: str, entity: Any) -> Reply:
    return Reply(
        200,
        {"status": "already-synced", "dynamicsId": dynamics_id.lower(), "dynamicsType": entity},
    )


async def _rejected(
    rt: Runtime,
    marketo: MarketoPort,
    lead_id: int,
    entity: Entity,
    exc: RecordRejected,
    fields: list[str],
) -> Reply:
    row = SyncErrorRow(
        "create", "to-dynamics", entity, fields, exc.code, exc.message, marketo_id=lead_id
    ).row()
    # The error row is the record of truth (a failure here answers 503 and Marketo's
    # retry records it again); the activity is best effort.
    await rt.store.record_errors([row])
    await _best_effort("error activity", marketo.log(SYNC_ERROR, error_entries([row])))
    return Reply(422, {"status": "rejected", "code": exc.code, "message": exc.message})
