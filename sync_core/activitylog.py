"""Custom activity types in Marketo, and writing to a person's activity log.

Two types are ours: "Sync Person to Microsoft" (the real-time create) and "Dynamics
Sync Error" (a rejected write). Setup creates and approves them through the custom
activity type API; at run time their ids are looked up once and kept in the state
store, so a fresh worker process (on Flex Consumption, often every cycle) spends no
Marketo call on them; a line Marketo skips for an unknown type id looks them up afresh.
When a type is missing, the first cycle or webhook call that needs it creates it exactly as setup
does; where it cannot (no permission), the log is off, and every cycle summary says so
and why, rather than failing the sync for the lack of a log line.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sync_core.errors import SyncError
from sync_core.marketo import MarketoClient
from sync_core.state import StateStore

log = logging.getLogger("sync_core")

# One activity to log: (lead id, primary attribute value, other attributes).
Entry = tuple[int, str, dict[str, Any]]
# Sends activity records; one result per record, in order.
AddActivities = Callable[[Sequence[dict[str, Any]]], Awaitable[list[dict[str, Any]]]]

SYNC_PERSON = "msdynSyncPerson"
SYNC_ERROR = "msdynSyncError"

TYPES: dict[str, dict[str, Any]] = {
    SYNC_PERSON: {
        "name": "Sync Person to Microsoft",
        "triggerName": "Is Synced to Microsoft",
        "filterName": "Was Synced to Microsoft",
        "description": "Created in Dynamics 365 by the real-time sync (Marketo webhook)",
        "primaryAttribute": {"apiName": "dynamicsId", "name": "Dynamics Id", "dataType": "string"},
        "attributes": [
            {"apiName": "syncAs", "name": "Sync As", "dataType": "string"},
            {"apiName": "assignTo", "name": "Assign To", "dataType": "string"},
        ],
    },
    SYNC_ERROR: {
        "name": "Dynamics Sync Error",
        "triggerName": "Has Dynamics Sync Error",
        "filterName": "Had Dynamics Sync Error",
        "description": "Dynamics 365 or Marketo rejected a sync write for this person",
        "primaryAttribute": {"apiName": "errorCode", "name": "Error Code", "dataType": "string"},
        "attributes": [
            {"apiName": "errorMessage", "name": "Error Message", "dataType": "text"},
            {"apiName": "operation", "name": "Operation", "dataType": "string"},
            {"apiName": "direction", "name": "Direction", "dataType": "string"},
            {"apiName": "entity", "name": "Entity", "dataType": "string"},
            {"apiName": "fields", "name": "Fields", "dataType": "string"},
            {"apiName": "dynamicsId", "name": "Dynamics Id", "dataType": "string"},
        ],
    },
}

# The display name of SYNC_ERROR's "fields" attribute, as activities.json names it.
_FIELDS_NAME = next(
    a["name"] for a in TYPES[SYNC_ERROR]["attributes"] if a["apiName"] == "fields"
)

_IDS: dict[tuple[str, str], int] = {}
_OFF: dict[str, tuple[str, float]] = {}  # base URL -> (why the log is off, retry after)


# The ids as the last lookup found them, for the instance at `url` (a meta row).
STORED = ("meta", "activitytypeids")


async def type_ids(
    marketo: MarketoClient, store: StateStore | None = None, *, fresh: bool = False
) -> dict[str, int]:
    """Approved ids of our activity types: from this process's memory, else the state
    store, else Marketo (then remembered in both). `fresh` asks Marketo."""
    url = marketo.base_url
    known = {name: _IDS[(url, name)] for name in TYPES if (url, name) in _IDS}
    if len(known) == len(TYPES) and not fresh:
        return known
    if store is not None and not fresh:
        raw = await store.get_value(*STORED)
        saved = json.loads(raw) if raw else {}
        ids = saved.get("ids") or {}
        if saved.get("url") == url and set(TYPES) <= set(ids):
            for name in TYPES:
                _IDS[(url, name)] = int(ids[name])
            return {name: int(ids[name]) for name in TYPES}
    body = await marketo.call("GET", "/rest/v1/activities/external/types.json")
    known = {}
    for t in body.get("result") or []:
        if t.get("apiName") in TYPES and str(t.get("status", "")).startswith("approved"):
            _IDS[(url, t["apiName"])] = int(t["id"])
            known[t["apiName"]] = int(t["id"])
    if store is not None:
        row = json.dumps({"url": url, "ids": known}) if len(known) == len(TYPES) else None
        await store.set_values(STORED[0], {STORED[1]: row})
    return known


async def ensure_types(marketo: MarketoClient) -> dict[str, int]:
    """Create (as draft) and approve whichever of our types is missing; idempotent."""
    body = await marketo.call("GET", "/rest/v1/activities/external/types.json")
    status = {t.get("apiName"): str(t.get("status", "")) for t in body.get("result") or []}
    for api_name, spec in TYPES.items():
        if status.get(api_name, "").startswith("approved"):
            continue
        if api_name not in status:
            payload = {k: v for k, v in spec.items() if k != "attributes"}
            await marketo.call(
                "POST",
                "/rest/v1/activities/external/type.json",
                json={"apiName": api_name, **payload},
            )
            await marketo.call(
                "POST",
                f"/rest/v1/activities/external/type/{api_name}/attributes/create.json",
                json={"attributes": spec["attributes"]},
            )
        await marketo.call("POST", f"/rest/v1/activities/external/type/{api_name}/approve.json")
    return await type_ids(marketo)


async def activity_log_state(
    marketo: MarketoClient, store: StateStore | None = None, *, fresh: bool = False
) -> tuple[dict[str, int], str | None]:
    """Our types' ids, creating any missing one exactly as `setup` does; with the reason
    when the activity log is off (so no cycle skips its log lines silently). A failed
    creation is not retried for an hour: it would cost calls every cycle."""
    ids = await type_ids(marketo, store, fresh=fresh)
    if len(ids) == len(TYPES):
        return ids, None
    off = _OFF.get(marketo.base_url)
    if off and off[1] > time.monotonic():
        return ids, off[0]
    try:
        ids = await ensure_types(marketo)
        if store is not None and len(ids) == len(TYPES):
            row = json.dumps({"url": marketo.base_url, "ids": ids})
            await store.set_values(STORED[0], {STORED[1]: row})
        missing = sorted(set(TYPES) - set(ids))
        reason = f"activity types {', '.join(missing)} are not approved" if missing else None
    except SyncError as exc:
        reason = (
            f"the Marketo activity types could not be created ({exc}); give the API user's "
            "role Read-Write Activity Metadata, or run `python -m sync_core setup` as an "
            "admin"
        )
    if reason:
        _OFF[marketo.base_url] = (reason, time.monotonic() + 3600)
        log.warning("Marketo activity log is off: %s", reason)
    return ids, reason


async def log_activities(
    marketo: MarketoClient,
    api_name: str,
    entries: list[Entry],
    *,
    add: AddActivities | None = None,
    store: StateStore | None = None,
) -> int:
    """Add activities (lead id, primary value, attributes); returns how many were added.

    `marketo` looks up the type ids (kept in `store` when given); the records go through
    `add` (default: its add_activities; the webhook passes the worker's batched one)."""
    results = await send_activities(marketo, api_name, entries, add=add, store=store)
    return sum(1 for r in results or [] if r.get("status") == "added")


async def send_activities(
    marketo: MarketoClient,
    api_name: str,
    entries: list[Entry],
    *,
    add: AddActivities | None = None,
    store: StateStore | None = None,
) -> list[dict[str, Any]] | None:
    """Marketo's result for each entry, in order; None when the log is off."""
    add = add or marketo.add_activities
    if not entries:
        return []
    ids, _ = await activity_log_state(marketo, store)
    if api_name not in ids:
        return None  # the reason is in the cycle summary and the warning above
    now = datetime.now(UTC).isoformat(timespec="seconds")
    records = [
        {
            "leadId": lead_id,
            "activityDate": now,
            "activityTypeId": ids[api_name],
            "primaryAttributeValue": primary[:255],
            "attributes": [
                {"apiName": k, "value": str(v)[:4000]}
                for k, v in attrs.items()
                if v not in (None, "")
            ],
        }
        for lead_id, primary, attrs in entries
    ]
    results = list(await add(records))
    stale = [i for i, r in enumerate(results) if _unknown_type(r)]
    if stale:
        # Our type was deleted and re-created (new id) since it was cached: look it up
        # again and resend only the lines Marketo skipped, so none is logged twice.
        forget(marketo.base_url)
        ids, _ = await activity_log_state(marketo, store, fresh=True)
        if api_name in ids:
            for i in stale:
                records[i]["activityTypeId"] = ids[api_name]
            again = await add([records[i] for i in stale])
            for i, r in zip(stale, again, strict=True):
                results[i] = r
    return results


async def already_logged(
    marketo: MarketoClient, entries: list[Entry], since: datetime, store: StateStore | None = None
) -> list[bool]:
    """For each entry, whether the person's log already holds a line like it written since
    `since` (each line answers for one entry): a run that sent lines and died before
    noting so must not send them twice."""
    ids, _ = await activity_log_state(marketo, store)
    if SYNC_ERROR not in ids or not entries:
        return [False] * len(entries)
    found: Counter[tuple[int, str, str]] = Counter()
    token = await marketo.paging_token(since)
    people = sorted({lead for lead, _, _ in entries})
    for i in range(0, len(people), 30):
        async for page, _ in marketo.activities(token, [ids[SYNC_ERROR]], people[i : i + 30]):
            for act in page:
                fields = str(act.attributes.get(_FIELDS_NAME) or "")
                found[(act.lead_id, act.primary, fields)] += 1
    out = []
    for lead, primary, attrs in entries:
        key = (lead, primary[:255], str(attrs.get("fields") or ""))
        out.append(found[key] > 0)
        if found[key] > 0:
            found[key] -= 1
    return out


def final(result: dict[str, Any]) -> bool:
    """Marketo took the line, or refused it for good (the person is gone...): sending it
    again would not help. An unknown type id is not final (the types may come back)."""
    return result.get("status") == "added" or (
        result.get("status") == "skipped" and not _unknown_type(result)
    )


def _unknown_type(result: dict[str, Any]) -> bool:
    return result.get("status") == "skipped" and any(
        # 1003 is Marketo's code for any invalid value: only the text names the type id.
        str(r.get("code")) == "1003" and "activityTypeId" in str(r.get("message"))
        # Custom-activity skips carry `errors`; other Marketo skips carry `reasons`.
        for r in (result.get("errors") or []) + (result.get("reasons") or [])
    )


def forget(base_url: str | None = None) -> None:
    """Drop what this process remembers about a Marketo instance's activity types (all
    instances when None): after an admin re-runs setup, or when a different instance
    answers at the same URL."""
    for key in [k for k in _IDS if base_url in (None, k[0])]:
        del _IDS[key]
    for url in [u for u in _OFF if base_url in (None, u)]:
        del _OFF[url]


def error_entries(errors: list[dict[str, Any]]) -> list[Entry]:
    """Activity-log entries for sync error rows that belong to a known person."""
    out = []
    for e in errors:
        try:
            lead_id = int(e.get("marketoId") or 0)
        except (TypeError, ValueError):
            continue
        if lead_id:
            out.append(
                (
                    lead_id,
                    str(e.get("code")),
                    {
                        "errorMessage": e.get("message"),
                        "operation": e.get("operation"),
                        "direction": e.get("direction"),
                        "entity": e.get("entity"),
                        "fields": ",".join(e.get("fields") or []),
                        "dynamicsId": e.get("dynamicsId"),
                    },
                )
            )
    return out
