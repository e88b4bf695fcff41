"""Custom activity types (draft → approved lifecycle) and Add Custom Activities.

The sync writes its Dynamics errors into the person's activity log through these;
the draft/approve split matters because only approved types accept activities, and
the 10-type / 20-attribute caps (1027/1028) are enforced so a setup script that
recreates types on every deploy fails here before it fails in production. These are
the endpoints; the types are kept by `CustomTypes` (custom_types.py).
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC
from typing import Any

from emulators.marketo.envelope import ApiError, success
from emulators.marketo.fields import parse_datetime
from emulators.marketo.state import Call

ATTR_TYPES = {
    "string",
    "boolean",
    "integer",
    "float",
    "link",
    "email",
    "currency",
    "date",
    "datetime",
    "phone",
    "text",
}
_API_NAME = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9_]{1,255}$")


def _primary(spec: Any) -> dict[str, Any]:
    if not isinstance(spec, dict) or not spec.get("apiName") or not spec.get("name"):
        raise ApiError("701", "'primaryAttribute' with apiName and name cannot be blank")
    dtype = spec.get("dataType") or "string"
    if dtype not in ATTR_TYPES:
        raise ApiError("1003", f"Invalid dataType '{dtype}'")
    out = {"apiName": str(spec["apiName"]), "name": str(spec["name"]), "dataType": dtype}
    if spec.get("description"):
        out["description"] = str(spec["description"])
    return out


async def list_types(call: Call) -> dict[str, Any]:
    ct = call.emu.custom_types
    return success(call.rid, [ct.view(t) for t in ct.types.values() if not t["deleted"]])


async def describe_type(call: Call) -> dict[str, Any]:
    ct = call.emu.custom_types
    t = ct.get(call.path["apiName"])
    draft = call.params.get("draft", "").lower() == "true"
    return success(call.rid, [ct.view(t, draft=draft)])


async def create_type(call: Call) -> dict[str, Any]:
    emu = call.emu
    ct = emu.custom_types
    body = call.json()
    if not isinstance(body, dict):
        raise ApiError("609", "Invalid JSON")
    for key in ("apiName", "name", "triggerName", "filterName", "primaryAttribute"):
        if not body.get(key):
            raise ApiError("701", f"'{key}' cannot be blank")
    api_name = str(body["apiName"])
    if not _API_NAME.match(api_name):
        raise ApiError("1003", f"Invalid apiName '{api_name}'")
    if api_name in ct.types and not ct.types[api_name]["deleted"]:
        raise ApiError("1017", f"Activity type '{api_name}' already exists")
    live = sum(1 for t in ct.types.values() if not t["deleted"])
    if live >= emu.config.max_custom_activity_types:
        raise ApiError("1027", "Max custom activity type limit reached")
    now = emu.now()
    ver = {
        "name": str(body["name"]),
        "description": str(body.get("description") or ""),
        "triggerName": str(body["triggerName"]),
        "filterName": str(body["filterName"]),
        "primaryAttribute": _primary(body["primaryAttribute"]),
        "attributes": [],
    }
    t = {
        "id": ct.next_id,
        "apiName": api_name,
        "createdAt": now,
        "updatedAt": now,
        "approved": None,
        "draft": ver,
        "deleted": False,
    }
    ct.next_id += 1
    ct.types[api_name] = t
    ct.by_id[ct.next_id - 1] = t
    return success(call.rid, [ct.view(t, draft=True)])


async def update_type(call: Call) -> dict[str, Any]:
    ct = call.emu.custom_types
    t = ct.get(call.path["apiName"])
    body = call.json()
    if not isinstance(body, dict):
        raise ApiError("609", "Invalid JSON")
    draft = ct.editable(t)
    for key in ("name", "description", "triggerName", "filterName"):
        if body.get(key) is not None:
            draft[key] = str(body[key])
    if body.get("primaryAttribute"):
        draft["primaryAttribute"] = _primary(body["primaryAttribute"])
    return success(call.rid, [ct.view(t, draft=True)])


async def approve_type(call: Call) -> dict[str, Any]:
    ct = call.emu.custom_types
    t = ct.get(call.path["apiName"])
    if t["draft"] is None:
        raise ApiError("1003", "No draft version to approve")
    t["approved"], t["draft"] = t["draft"], None
    t["updatedAt"] = call.emu.now()
    return success(call.rid, [ct.view(t)])


async def discard_draft(call: Call) -> dict[str, Any]:
    ct = call.emu.custom_types
    t = ct.get(call.path["apiName"])
    if t["draft"] is None or t["approved"] is None:
        raise ApiError("1048", "Discard draft failed: no draft over an approved version")
    t["draft"] = None
    return success(call.rid, [ct.view(t)])


async def delete_type(call: Call) -> dict[str, Any]:
    ct = call.emu.custom_types
    t = ct.get(call.path["apiName"])
    view = ct.view(t)
    t["deleted"] = True
    view["status"] = "deleted"
    return success(call.rid, [view])


def _attr_specs(call: Call) -> list[dict[str, Any]]:
    body = call.json()
    attrs = body.get("attributes") if isinstance(body, dict) else None
    if not isinstance(attrs, list) or not attrs:
        raise ApiError("701", "'attributes' cannot be blank")
    for a in attrs:
        if not isinstance(a, dict) or not a.get("apiName"):
            raise ApiError("701", "'apiName' cannot be blank")
    return attrs


async def attributes_create(call: Call) -> dict[str, Any]:
    ct = call.emu.custom_types
    t = ct.get(call.path["apiName"])
    specs = _attr_specs(call)
    draft = ct.editable(t)
    existing = {a["apiName"] for a in draft["attributes"]}
    for a in specs:
        if a["apiName"] in existing:
            raise ApiError("1017", f"Attribute '{a['apiName']}' already exists")
        if len(draft["attributes"]) >= call.emu.config.max_custom_activity_attributes:
            raise ApiError("1028", "Max field limit reached")
        dtype = a.get("dataType") or "string"
        if dtype not in ATTR_TYPES:
            raise ApiError("1003", f"Invalid dataType '{dtype}'")
        if a.get("isPrimary"):
            raise ApiError("1003", "Unset isPrimary on the current primary attribute first")
        item = {
            "apiName": str(a["apiName"]),
            "name": str(a.get("name") or a["apiName"]),
            "dataType": dtype,
        }
        if a.get("description"):
            item["description"] = str(a["description"])
        draft["attributes"].append(item)
        existing.add(item["apiName"])
    return success(call.rid, [ct.view(t, draft=True)])


async def attributes_update(call: Call) -> dict[str, Any]:
    ct = call.emu.custom_types
    t = ct.get(call.path["apiName"])
    specs = _attr_specs(call)
    draft = ct.editable(t)
    by_name = {a["apiName"]: a for a in draft["attributes"]}
    for a in specs:
        target = by_name.get(a["apiName"])
        if target is None and draft["primaryAttribute"]["apiName"] == a["apiName"]:
            target = draft["primaryAttribute"]
        if target is None:
            raise ApiError("1013", f"Attribute '{a['apiName']}' not found")
        for key in ("name", "description", "dataType"):
            if a.get(key):
                target[key] = str(a[key])
    return success(call.rid, [ct.view(t, draft=True)])


async def attributes_delete(call: Call) -> dict[str, Any]:
    ct = call.emu.custom_types
    t = ct.get(call.path["apiName"])
    names = {a["apiName"] for a in _attr_specs(call)}
    draft = ct.editable(t)
    draft["attributes"] = [a for a in draft["attributes"] if a["apiName"] not in names]
    return success(call.rid, [ct.view(t, draft=True)])


def _skip(code: int, message: str, rec: dict[str, Any]) -> dict[str, Any]:
    # Custom-activity skips carry `errors`, not `reasons` (activities.md example).
    keys = ("leadId", "activityTypeId", "activityDate")
    out: dict[str, Any] = {k: rec[k] for k in keys if k in rec}
    out.update({"status": "skipped", "errors": [{"code": str(code), "message": message}]})
    return out


def _add_one(call: Call, rec: Any) -> dict[str, Any]:
    emu = call.emu
    if not isinstance(rec, dict):
        return _skip(1003, "Invalid record", {})
    for key in ("leadId", "activityDate", "activityTypeId", "primaryAttributeValue"):
        if rec.get(key) in (None, ""):
            return _skip(1002, f"Missing value for required parameter '{key}'", rec)
    try:
        lead_id, type_id = int(rec["leadId"]), int(rec["activityTypeId"])
    except (TypeError, ValueError):
        return _skip(1001, "Invalid value for leadId/activityTypeId", rec)
    t = emu.custom_types.by_id.get(type_id)
    if t is None or t["approved"] is None or t["deleted"]:
        return _skip(1003, f"Invalid activityTypeId '{type_id}'", rec)
    if emu.store.get(lead_id) is None:
        return _skip(1004, "Lead not found", rec)
    dt = parse_datetime(str(rec["activityDate"]))
    if dt is None:
        return _skip(
            1001, f"Invalid value '{rec['activityDate']}'. Required of type 'datetime'", rec
        )
    attrs_in = rec.get("attributes") or []
    if not isinstance(attrs_in, list):
        return _skip(1003, "'attributes' must be an array", rec)
    if len(json.dumps(attrs_in)) > 65536:
        return _skip(1049, "Failed to create activity: attributes exceed 65536 bytes", rec)
    ver = t["approved"]
    known = {a["apiName"]: a for a in ver["attributes"]}
    by_display = {a["name"]: a for a in ver["attributes"]}
    attrs: list[tuple[Any, ...]] = []
    for a in attrs_in:
        if not isinstance(a, dict):
            return _skip(1003, "Invalid attribute", rec)
        spec = known.get(str(a.get("apiName"))) or by_display.get(str(a.get("name")))
        if spec is None:
            return _skip(1006, f"Field '{a.get('apiName') or a.get('name')}' not found", rec)
        attrs.append((spec["name"], a.get("value"), spec["apiName"]))
    date_text = dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    act = emu.log.add(
        emu.now_ms(),
        lead_id,
        type_id,
        None,
        str(rec["primaryAttributeValue"]),
        attrs,
        activity_date=date_text,
        activity_ms=int(dt.timestamp()) * 1000,
    )
    return {
        "id": act.id,
        "marketoGUID": str(act.id),
        "status": "added",
        "leadId": lead_id,
        "activityTypeId": type_id,
        "activityDate": date_text,
        "primaryAttributeValue": str(rec["primaryAttributeValue"]),
        "attributes": [{"name": x[0], "value": x[1], "apiName": x[2]} for x in attrs],
        "errors": [],
    }


async def add_activities(call: Call) -> dict[str, Any]:
    body = call.json()
    items = body.get("input") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise ApiError("701", "'input' cannot be blank")
    if len(items) > call.emu.config.max_batch:
        raise ApiError("1003", f"Batch size exceeds {call.emu.config.max_batch} records")
    call.records = len(items)
    out = []
    for rec in items:
        if call.per_record_s > 0:
            await asyncio.sleep(call.per_record_s)
        out.append(_add_one(call, rec))
    call.spent = call.per_record_s > 0
    return success(call.rid, out)
