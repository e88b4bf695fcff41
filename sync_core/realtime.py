"""Real-time "Sync Person to Microsoft": create a Marketo person in Dynamics now.

Called by a Marketo webhook from a trigger campaign. It creates the lead or contact if
the person is not in Dynamics yet and does nothing for someone already there (no
forced sync: updates belong to the background cycle). The create is an upsert on the
Marketo-id alternate key with `If-None-Match: *`, so duplicate or concurrent
deliveries, and a background cycle running at the same moment, can never produce two
Dynamics records for one person.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from sync_core.activitylog import SYNC_ERROR, SYNC_PERSON, error_entries, log_activities
from sync_core.entrypoints import Reply
from sync_core.errors import RecordRejected, StaleRecord, StopCycle, Throttled, TransientError
from sync_core.mapping import ENTITY_KEY, ENTITY_SET, Entity
from sync_core.planner import normalize, plan_pair
from sync_core.runtime import Runtime, build_runtime
from sync_core.settings import Settings, SettingsError, load_settings
from sync_core.state import Link

log = logging.getLogger("sync_core")
SECRET_HEADER = "x-sync-secret"
# 412 codes that mean "a record with this key exists" (not a duplicate-detection rule hit).
EXISTS_CODES = {"0x80040237", "0x80060892"}


class BadRequest(ValueError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


def _token(value: Any) -> str:
    # Marketo renders tokens as numbers, quoted strings, or nothing at all.
    return "" if value is None else str(value).strip()


def parse_body(body: bytes) -> tuple[int, Entity, str]:
    try:
        data = json.loads(body.decode("utf-8") or "null")
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("body", "must be a JSON object") from None
    if not isinstance(data, dict):
        raise BadRequest("body", "must be a JSON object")
    raw = _token(data.get("leadId"))
    if not raw:
        raise BadRequest("leadId", "is required (use the token {{lead.Id}})")
    try:
        lead_id = int(float(raw)) if raw.replace(".", "", 1).isdigit() else int(raw)
    except ValueError:
        raise BadRequest("leadId", f"must be a Marketo person id, got {raw[:40]!r}") from None
    if lead_id <= 0:
        raise BadRequest("leadId", "must be a positive integer")
    sync_as = _token(data.get("syncAs")).lower() or "lead"
    if sync_as not in ("lead", "contact"):
        raise BadRequest("syncAs", "must be 'lead' or 'contact'")
    assign_to = _token(data.get("assignTo"))
    return lead_id, sync_as, assign_to  # type: ignore[return-value]


def _secret_ok(settings: Settings, headers: dict[str, str]) -> bool:
    expected = settings.sync_webhook_secret.get_secret_value()
    given = next((v for k, v in headers.items() if k.lower() == SECRET_HEADER), "")
    # Constant-time comparison; an unset secret rejects everything rather than nothing.
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


async def handle_sync_person(
    body: bytes,
    headers: dict[str, str],
    settings: Settings | None = None,
    **runtime_options: Any,
) -> Reply:
    try:
        settings = settings or load_settings()
    except SettingsError as exc:
        log.error("sync-person: %s", exc)
        return Reply(500, {"status": "error", "message": "the function is not configured"})
    if not _secret_ok(settings, headers):
        return Reply(
            401, {"status": "unauthorized", "message": f"missing or wrong {SECRET_HEADER}"}
        )
    try:
        lead_id, sync_as, assign_to = parse_body(body)
    except BadRequest as exc:
        return Reply(400, {"status": "invalid", "field": exc.field, "message": str(exc)})
    rt = build_runtime(settings, ensure_tables=False, **runtime_options)
    try:
        return await _sync(rt, lead_id, sync_as, assign_to)
    except Throttled as exc:
        return _unavailable(str(exc), exc.retry_after)
    except (TransientError, StopCycle) as exc:
        return _unavailable(str(exc), 30)
    finally:
        await rt.aclose()


def _unavailable(message: str, retry_after: float) -> Reply:
    seconds = str(max(1, int(retry_after + 0.999)))
    return Reply(503, {"status": "unavailable", "message": message}, {"Retry-After": seconds})


async def _owner_bind(rt: Runtime, assign_to: str) -> dict[str, str]:
    if not assign_to:
        return {}
    if "@" in assign_to:
        q = assign_to.replace("'", "''")
        body = await rt.dataverse.get_json(
            f"systemusers?$select=systemuserid&$filter=internalemailaddress eq '{q}'"
        )
        users = body.get("value", [])
        if len(users) != 1:
            raise RecordRejected("owner", f"no single Dynamics user has the email {assign_to}")
        assign_to = users[0]["systemuserid"]
    return {"ownerid@odata.bind": f"/systemusers({assign_to})"}


async def _sync(rt: Runtime, lead_id: int, sync_as: Entity, assign_to: str) -> Reply:
    m = rt.mapping
    fields = [*m.marketo_fields(), m.dynamics_deleted_field]
    people = await rt.marketo.get_leads("id", [lead_id], fields)
    if not people:
        return Reply(404, {"status": "not-found", "message": f"no Marketo person {lead_id}"})
    person = people[0]
    links = rt.store.links_by_marketo([lead_id])
    if lead_id in links:
        link = links[lead_id]
        return _already(link.dynamics_id, link.entity)
    if normalize(person.get(m.dynamics_id_field)) and not person.get(m.dynamics_deleted_field):
        return _already(str(person[m.dynamics_id_field]), person.get(m.dynamics_type_field))

    rules = [r for r in m.fields[sync_as] if r.direction != "to-marketo"]
    record: dict[str, Any] = {
        r.column: normalize(person.get(r.marketo))
        for r in rules
        if normalize(person.get(r.marketo)) is not None
    }
    record[m.marketo_id_column] = str(lead_id)
    entity_set, key = ENTITY_SET[sync_as], ENTITY_KEY[sync_as]
    address = f"{entity_set}({m.marketo_id_column}='{lead_id}')"
    try:
        record.update(await _owner_bind(rt, assign_to))
        resp = await rt.dataverse.request(
            "PATCH",
            address,
            json=record,
            headers={"If-None-Match": "*", "Prefer": "return=representation"},
        )
    except StaleRecord:
        # If-None-Match: * found a record with this Marketo id: someone created it first.
        return await _existing(rt, address, key, sync_as)
    except RecordRejected as exc:
        if exc.code in EXISTS_CODES:
            return await _existing(rt, address, key, sync_as)
        return await _rejected(rt, lead_id, sync_as, exc, sorted(record))
    created = resp.json() if resp.content else {}
    dynamics_id = str(created.get(key) or _id_from_header(resp.headers.get("OData-EntityId")))
    plan = plan_pair(m.fields[sync_as], created or record, person, None, rt.hasher)
    rt.store.save_links([Link(lead_id, sync_as, dynamics_id.lower(), dict(plan.settled))], new=True)
    await rt.marketo.sync_leads(
        "updateOnly",
        [
            {
                "id": lead_id,
                m.dynamics_id_field: dynamics_id.lower(),
                m.dynamics_type_field: sync_as,
                m.dynamics_deleted_field: False,
            }
        ],
        "id",
    )
    await log_activities(
        rt.marketo,
        SYNC_PERSON,
        [(lead_id, dynamics_id.lower(), {"syncAs": sync_as, "assignTo": assign_to})],
    )
    rt.store.record_person_events(
        [
            {
                "marketoId": lead_id,
                "entity": sync_as,
                "dynamicsId": dynamics_id.lower(),
                "direction": "to-dynamics",
                "fields": sorted(record),
                "note": "created by Sync Person to Microsoft",
            }
        ]
    )
    return Reply(
        200,
        {"status": "created", "dynamicsId": dynamics_id.lower(), "dynamicsType": sync_as},
    )


def _already(dynamics_id: str, entity: Any) -> Reply:
    return Reply(
        200,
        {"status": "already-synced", "dynamicsId": dynamics_id.lower(), "dynamicsType": entity},
    )


async def _existing(rt: Runtime, address: str, key: str, entity: Entity) -> Reply:
    body = await rt.dataverse.get_json(f"{address}?$select={key}")
    return _already(str(body[key]), entity)


async def _rejected(
    rt: Runtime, lead_id: int, entity: Entity, exc: RecordRejected, fields: list[str]
) -> Reply:
    row = {
        "operation": "create",
        "direction": "to-dynamics",
        "entity": entity,
        "fields": fields,
        "code": exc.code,
        "message": exc.message,
        "marketoId": lead_id,
        "dynamicsId": "",
    }
    rt.store.record_errors([row])
    await log_activities(rt.marketo, SYNC_ERROR, error_entries([row]))
    return Reply(422, {"status": "rejected", "code": exc.code, "message": exc.message})


def _id_from_header(value: str | None) -> str:
    if value and "(" in value:
        return value.rsplit("(", 1)[1].rstrip(")")
    return ""
