"""Lead Database endpoints: describe, read, Sync Leads, delete, merge, partitions.

Sync Leads is what the sync leans on hardest, so its per-record matrix (created /
updated / skipped with 1001/1003/1004/1005/1006/1007) is implemented record by record
in input order, and every real change is logged as activities 12/13 with the writing
API user, which is how the sync recognises its own echoes in the change feed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from emulators.marketo.activities import (
    DELETE_LEAD,
    MERGE_LEADS,
    NEW_LEAD,
    decode_token,
    encode_token,
)
from emulators.marketo.envelope import ApiError, skipped, success
from emulators.marketo.fields import (
    DEFAULT_READ_FIELDS,
    INVALID,
    FieldDef,
    coerce,
    iso,
    render,
    type_name,
)
from emulators.marketo.people import SOURCE, person_name, update_person
from emulators.marketo.state import Call, Emulator

ACTIONS = ("createOnly", "updateOnly", "createOrUpdate", "createDuplicate")
PARTITIONS = [{"id": 1, "name": "Default", "description": "Initial system lead partition"}]


# -- write helpers ---------------------------------------------------------------
def create_person(
    emu: Emulator, values: dict[str, Any], modifier: str, method: str, rid: str
) -> int:
    now = emu.now()
    lead_id = emu.store.insert(values, int(now))
    emu.log.add(
        int(now * 1000),
        lead_id,
        NEW_LEAD,
        None,
        person_name(emu.store.people[lead_id]),
        (
            ("Api Method Name", method),
            ("Created Date", iso(now)[:10]),
            ("Modifying User", modifier),
            ("Request Id", rid),
            ("Source Type", SOURCE),
        ),
    )
    emu.webhooks.on_person_created(lead_id, modifier)
    return lead_id


def read_person(emu: Emulator, person: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": person["id"]}
    for name in fields:
        v = person.get(name)
        if v is not None:  # nulls are omitted ("implied null")
            out[name] = render(name, v)
    return out


def _read_fields(call: Call) -> list[str]:
    names = call.list_param("fields") or list(DEFAULT_READ_FIELDS)
    for n in names:
        if n not in call.emu.schema.by_name:
            raise ApiError("1006", f"Field '{n}' not found")
    return names


# -- describe -------------------------------------------------------------------
async def describe(call: Call) -> dict[str, Any]:
    return success(call.rid, call.emu.schema.describe())


async def describe2(call: Call) -> dict[str, Any]:
    return success(call.rid, call.emu.schema.describe2())


async def schema_fields(call: Call) -> dict[str, Any]:
    fields = call.emu.schema.fields
    size = _batch_size(call)
    start = 0
    tok = call.params.get("nextPageToken")
    if tok:
        pos = decode_token(tok, "F")
        if pos is None:
            raise ApiError("1001", f"Invalid value '{tok}'. Required of type 'nextPageToken'")
        start = pos
    page = fields[start : start + size]
    body = success(call.rid, [call.emu.schema.field_schema(f) for f in page])
    if start + size < len(fields):
        body["nextPageToken"] = encode_token("F", start + size)
        body["moreResult"] = True
    return body


async def schema_field(call: Call) -> dict[str, Any]:
    f = call.emu.schema.get(call.path["name"])
    if f is None:
        raise ApiError("1006", f"Field '{call.path['name']}' not found")
    return success(call.rid, [call.emu.schema.field_schema(f)])


async def create_fields(call: Call) -> dict[str, Any]:
    """Create custom fields (≤100 per call); name: letter then letters/digits/_."""
    import re

    body = call.json() or {}
    items = body.get("input") or []
    if not isinstance(items, list) or not items:
        raise ApiError("701", "'input' cannot be blank")
    if len(items) > 100:
        raise ApiError("1003", "Too many fields, max 100")
    out: list[dict[str, Any]] = []
    schema = call.emu.schema
    for it in items:
        name = str(it.get("name") or "")
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
            out.append({"name": name, **skipped(1003, f"Invalid field name '{name}'")})
        elif schema.get(name) is not None:
            out.append({"name": name, **skipped(1017, f"Field '{name}' already exists")})
        else:
            fid = max(f.id for f in schema.fields) + 1
            dtype = str(it.get("dataType") or "string")
            length = it.get("length") or (255 if dtype == "string" else None)
            schema.add(
                FieldDef(
                    fid,
                    name,
                    str(it.get("displayName") or name),
                    dtype,
                    length,
                    True,
                    False,
                    dtype in ("string", "email", "integer"),
                    True,
                )
            )
            out.append({"name": name, "status": "created"})
    return success(call.rid, out)


async def partitions(call: Call) -> dict[str, Any]:
    return success(call.rid, [dict(p) for p in PARTITIONS])


# -- read -------------------------------------------------------------------------
def _batch_size(call: Call) -> int:
    mx = call.emu.config.max_batch
    size = call.int_param("batchSize", mx)
    assert size is not None
    if size < 1 or size > mx:
        raise ApiError("1003", f"Invalid batchSize '{size}', must be between 1 and {mx}")
    return size


async def get_lead(call: Call) -> dict[str, Any]:
    fields = _read_fields(call)
    try:
        lead_id = int(call.path["id"])
    except ValueError:
        raise ApiError("1003", f"Invalid lead id '{call.path['id']}'") from None
    person = call.emu.store.get(lead_id)
    call.records = 1
    return success(call.rid, [read_person(call.emu, person, fields)] if person else [])


async def get_leads(call: Call) -> dict[str, Any]:
    emu = call.emu
    filter_type = call.params.get("filterType", "").strip()
    if not filter_type:
        raise ApiError("701", "'filterType' cannot be blank")
    values = call.list_param("filterValues")
    if not values:
        raise ApiError("701", "'filterValues' cannot be blank")
    if filter_type not in emu.schema.searchable():
        raise ApiError("1011", f"Field '{filter_type}' not supported for filterType")
    if len(values) > emu.config.max_batch:
        raise ApiError("1003", f"Too many filterValues, max {emu.config.max_batch}")
    fields = _read_fields(call)
    size = _batch_size(call)
    f = emu.schema.by_name[filter_type]
    ids: set[int] = set()
    for v in values:
        cv = coerce(f, v) if filter_type != "id" else v
        if cv is INVALID or cv is None:
            continue
        ids.update(emu.store.find(filter_type, cv))
    if len(ids) > emu.config.max_filter_matches:
        raise ApiError("1003", "Too many results match the filter")
    ordered = sorted(ids)
    tok = call.params.get("nextPageToken")
    if tok:
        after = decode_token(tok, "L")
        if after is None:
            raise ApiError("1001", f"Invalid value '{tok}'. Required of type 'nextPageToken'")
        ordered = [i for i in ordered if i > after]
    if emu.config.lead_page_cap > 0:
        size = min(size, emu.config.lead_page_cap)
    page = ordered[:size]
    call.records = len(page)
    result = [read_person(emu, emu.store.people[i], fields) for i in page]
    body = success(call.rid, result)
    if len(ordered) > size:
        # Position-based cursor: only valid with the same filter (like Marketo's);
        # paging-tokens.md: more results → `moreResult: true` and a `nextPageToken`.
        body["nextPageToken"] = encode_token("L", page[-1])
        body["moreResult"] = True
    return body


# -- write -----------------------------------------------------------------------
#: What the lookup decided for one record: ("update", lead id, values) or
#: ("create", 0, values). Applied after the record's server time has passed, so two
#: overlapping upserts of one new key both miss each other (leads.md race warning).
Plan = tuple[str, int, dict[str, Any]]


def _sync_one(
    call: Call, rec: Any, action: str, lookup: str, partition_id: int
) -> dict[str, Any] | Plan:
    emu = call.emu
    schema = emu.schema
    if not isinstance(rec, dict):
        return skipped(1003, "Invalid record")
    values: dict[str, Any] = {}
    for key, raw in rec.items():
        f = schema.get(key)
        if f is None:
            return skipped(1006, f"Field '{key}' not found")
        if key == "id":
            continue
        if not f.updateable:
            return skipped(1003, f"Field '{key}' is not updateable")
        v = coerce(f, raw)
        if v is INVALID:
            return skipped(1001, f"Invalid value '{raw}'. Required of type '{type_name(f)}'")
        values[key] = v
    if "id" in rec and action != "updateOnly" and lookup != "id":
        return skipped(1003, "Field 'id' is only allowed with updateOnly")
    key_value = rec.get(lookup)
    if key_value is None or key_value == "":
        if action in ("updateOnly", "createOrUpdate"):
            return skipped(1003, f"Value for lookup field '{lookup}' is required")
        matches: list[int] = []
    elif action == "createDuplicate":
        matches = []
    else:
        lf = schema.by_name[lookup]
        cv = coerce(lf, key_value)
        if cv is INVALID:
            return skipped(1001, f"Invalid value '{key_value}'. Required of type '{type_name(lf)}'")
        matches = emu.store.find(lookup, cv)
    if action == "createOnly" and matches:
        return skipped(1005, "Lead already exists")
    if len(matches) > 1:
        return skipped(1007, "Multiple lead match lookup criteria")
    if matches:
        return ("update", matches[0], values)
    if action == "updateOnly" or lookup == "id":
        return skipped(1004, "Lead not found")
    if partition_id != 1:
        values["leadPartitionId"] = partition_id
    return ("create", 0, values)


def _apply(call: Call, plan: Plan) -> dict[str, Any]:
    emu = call.emu
    kind, lead_id, values = plan
    modifier = call.user.email
    if kind == "update":
        if emu.store.get(lead_id) is None:
            return skipped(1004, "Lead not found")  # deleted or merged meanwhile
        update_person(emu, lead_id, values, modifier, "syncLead", call.rid)
        return {"id": lead_id, "status": "updated"}
    lead_id = create_person(emu, values, modifier, "syncLead", call.rid)
    return {"id": lead_id, "status": "created"}


async def sync_leads(call: Call) -> dict[str, Any]:
    emu = call.emu
    body = call.json()
    if not isinstance(body, dict):
        raise ApiError("609", "Invalid JSON")
    action = body.get("action") or "createOrUpdate"
    if action not in ACTIONS:
        raise ApiError("1003", f"Invalid action '{action}'")
    lookup = body.get("lookupField") or "email"
    if lookup not in emu.schema.searchable():
        raise ApiError("1011", f"Field '{lookup}' not supported for lookupField")
    if lookup == "id" and action in ("createOnly", "createDuplicate"):
        raise ApiError("1003", f"lookupField 'id' is not allowed with {action}")
    items = body.get("input")
    if not isinstance(items, list) or not items:
        raise ApiError("701", "'input' cannot be blank")
    if len(items) > emu.config.max_batch:
        raise ApiError("1003", f"Batch size exceeds {emu.config.max_batch} records")
    partition_id = 1
    pname = body.get("partitionName")
    if pname and action != "updateOnly":
        found = [p for p in PARTITIONS if p["name"] == pname]
        if not found:
            raise ApiError("1003", f"Partition '{pname}' not found")
        partition_id = int(found[0]["id"])  # type: ignore[call-overload]
    call.records = len(items)
    out: list[dict[str, Any]] = []
    for rec in items:
        decided = _sync_one(call, rec, action, lookup, partition_id)
        if call.per_record_s > 0:
            # The record's server time passes between its lookup and its write.
            await asyncio.sleep(call.per_record_s)
        out.append(decided if isinstance(decided, dict) else _apply(call, decided))
    call.spent = call.per_record_s > 0
    return success(call.rid, out)


def delete_person(emu: Emulator, lead_id: int, modifier: str, rid: str) -> bool:
    person = emu.store.get(lead_id)
    if person is None:
        return False
    emu.log.add(
        emu.now_ms(),
        lead_id,
        DELETE_LEAD,
        lead_id,
        person_name(person),
        (
            ("Api Method Name", "deleteLead"),
            ("Modifying User", modifier),
            ("Remove from CRM", "false"),
            ("Request Id", rid),
        ),
    )
    emu.store.delete(lead_id)
    return True


async def delete_leads(call: Call) -> dict[str, Any]:
    emu = call.emu
    ids: list[Any]
    if call.params.get("id"):
        ids = call.list_param("id")
    else:
        body = call.json()
        items = body.get("input") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise ApiError("701", "'input' cannot be blank")
        ids = [it.get("id") if isinstance(it, dict) else None for it in items]
    if len(ids) > emu.config.max_batch:
        raise ApiError("1003", f"Batch size exceeds {emu.config.max_batch} records")
    out: list[dict[str, Any]] = []
    for raw in ids:
        try:
            lead_id = int(raw)
        except (TypeError, ValueError):
            out.append(skipped(1003, f"Invalid id '{raw}'"))
            continue
        if delete_person(emu, lead_id, call.user.email, call.rid):
            out.append({"id": lead_id, "status": "deleted"})
        else:
            out.append({"id": lead_id, **skipped(1004, "Lead not found")})
    call.records = len(out)
    return success(call.rid, out)


async def merge(call: Call) -> dict[str, Any]:
    emu = call.emu
    try:
        winner = int(call.path["id"])
    except ValueError:
        raise ApiError("1003", f"Invalid lead id '{call.path['id']}'") from None
    raw = call.list_param("leadIds") or call.list_param("leadId")
    if not raw:
        raise ApiError("701", "'leadId' cannot be blank")
    if len(raw) > 25:
        raise ApiError("1080", "Too many leads to merge, max 25")
    try:
        losers = [int(x) for x in raw]
    except ValueError:
        raise ApiError("1003", "Invalid leadIds") from None
    if emu.store.get(winner) is None:
        raise ApiError("1004", f"Lead '{winner}' not found")
    for lid in losers:
        if lid == winner or emu.store.get(lid) is None:
            raise ApiError("1004", f"Lead '{lid}' not found")
    wp = emu.store.people[winner]
    filled: list[str] = []
    for lid in losers:
        lp = emu.store.people[lid]
        for name, value in list(lp.items()):
            f = emu.schema.get(name)
            # The winner keeps its values; only its empty fields take the loser's value.
            if f is None or not f.updateable or wp.get(name) is not None:
                continue
            emu.store.set_field(winner, name, value)
            filled.append(name)
        emu.store.delete(lid)
    if filled:
        wp["updatedAt"] = int(emu.now())
    emu.log.add(
        emu.now_ms(),
        winner,
        MERGE_LEADS,
        winner,
        person_name(wp),
        (
            ("Merge IDs", ",".join(str(x) for x in losers)),
            ("Merge Source", SOURCE),
            ("Merge Fields", ",".join(filled)),
            ("Modifying User", call.user.email),
        ),
    )
    call.records = len(losers) + 1
    return {"requestId": call.rid, "success": True, "errors": [], "warnings": []}
