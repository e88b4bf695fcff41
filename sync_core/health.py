"""The sync's health as one versioned document: `status --json`, `GET /api/status` and
the dashboard all read it from here.

Built from the state tables only, with a fixed number of small reads (the last cycles,
the cursor and quota rows, the link counters kept as links commit, the effective field
set the last metadata read recorded), so an admin or a monitor can poll it without
scanning the links table or spending API quota. `live=True` adds what only the two
systems know (record counts for a backlog estimate, the filter's exclusions, the
activity types) at a few API calls. The keys are a contract (SCHEMA, pinned by a test):
add keys in a new schema version, never rename them in place.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sync_core.access import TTL_SECONDS
from sync_core.activitylog import TYPES, type_ids
from sync_core.cycle import MARKETO_CURSOR
from sync_core.dynamicscursor import position_mode
from sync_core.errors import ConfigError, SyncError
from sync_core.mapping import ENTITIES, ENTITY_KEY, ENTITY_SET, Entity, load_mapping
from sync_core.quota import QUOTA_TZ
from sync_core.runtime import build_clients, build_store
from sync_core.settings import Settings
from sync_core.state import StateStore

SCHEMA = 1
ACTIVITY_TYPES_ROW = "activitytypes"  # meta row written by `setup`
FIELD_ACCESS_ROW = "fieldaccess"  # meta row written by access.field_access
FAILED = ("failed", "stopped")


def _loads(value: Any, default: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return default
    return default if value is None else value


def cycle_view(row: dict[str, Any]) -> dict[str, Any]:
    """One cycle row as the status document shows it (no personal data is in a row)."""
    counts = _loads(row.get("counts"), {})
    calls = _loads(row.get("apiCalls"), {})
    return {
        "cycleId": row.get("cycleId"),
        "started": row.get("started"),
        "ended": row.get("ended"),
        "durationSeconds": float(row.get("durationSeconds") or 0),
        "outcome": row.get("outcome"),
        "message": row.get("message") or "",
        "toMarketo": int(counts.get("to_marketo", 0)),
        "toDynamics": int(counts.get("to_dynamics", 0)),
        "createdInMarketo": int(counts.get("created_in_marketo", 0)),
        "linked": int(counts.get("linked", 0)),
        "collisions": int(counts.get("collisions", 0)),
        "rejected": int(counts.get("rejected", 0)),
        "retryLater": int(counts.get("retry_later", 0)),
        "filteredOut": int(counts.get("filtered_out", 0)),
        "apiCalls": {
            "marketo": int(calls.get("marketo", 0)),
            "dynamics": int(calls.get("dynamics", 0)),
        },
        "fullReconcile": _loads(row.get("fullReconcile"), []),
        "watermarkMode": _loads(row.get("watermarkMode"), []),
    }


def _age(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else round(max(0.0, (now - then).total_seconds()), 1)


def _fields(settings: Settings, access: dict[str, Any] | None) -> list[dict[str, Any]]:
    configured = load_mapping(settings.sync_mapping_file)
    active = {
        (e, r["marketo"]) for e, rules in (access or {}).get("rules", {}).items() for r in rules
    }
    excluded = {(x["entity"], x["field"]): x["reason"] for x in (access or {}).get("excluded", [])}
    out = []
    for entity in ENTITIES:
        for rule in configured.fields[entity]:
            key = (entity, rule.marketo)
            out.append(
                {
                    "entity": entity,
                    "field": rule.marketo,
                    "column": rule.column,
                    "direction": rule.direction,
                    "winner": rule.winner,
                    # None: no cycle has read metadata yet (or the mapping changed since).
                    "active": None if access is None else key in active,
                    "reason": excluded.get(key, ""),
                }
            )
    return out


def _activity_log(setup_row: dict[str, Any] | None, cycle: dict[str, Any] | None) -> dict[str, Any]:
    """On when the last cycle could log activities ("on"; "off: <why>" otherwise); before
    any cycle, what `setup` left approved."""
    state = str(cycle.get("activityLog") or "") if cycle else ""
    out: dict[str, Any] = {"active": None, "types": sorted(TYPES), "checkedAt": None, "reason": ""}
    if cycle and state.startswith(("on", "off")):
        out.update(active=state == "on", checkedAt=cycle.get("ended"))
        out["reason"] = "" if state == "on" else state.removeprefix("off: ")
    elif setup_row is not None:
        out.update(
            active=all(t in setup_row.get("approved", []) for t in TYPES),
            checkedAt=setup_row.get("at"),
        )
    return out


async def build_status(
    store: StateStore, settings: Settings, *, last: int = 10, now: datetime | None = None
) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    rows = await store.recent_cycles(max(1, last))
    cycles = [cycle_view(r) for r in rows]
    failed_in_a_row = 0
    for c in cycles:
        if c["outcome"] not in FAILED:
            break
        failed_in_a_row += 1
    last_ok = next((c["started"] for c in cycles if c["outcome"] == "succeeded"), None)

    saved = await store.saved("cursor")
    cursors, backlog = [], []
    for name in (*(f"dynamics-{e}" for e in ENTITIES), MARKETO_CURSOR):
        value, at = saved.get(name, ("", None))
        resume = saved.get(f"{name}-resume")
        mode = "feed" if name == MARKETO_CURSOR else position_mode(value)
        cursors.append(
            {"name": name, "mode": mode, "savedAt": at.isoformat() if at else None,
             "lagSeconds": _age(now, at) if at else None}
        )  # fmt: skip
        if resume and resume[0]:
            entity = name.removeprefix("dynamics-")
            backlog.append(
                {
                    "entity": entity,
                    "kind": "initial-load" if not value else "reconcile",
                    "resumable": True,
                    "pageSavedAt": resume[1].isoformat() if resume[1] else None,
                    "records": None,
                    "remainingEstimate": None,
                }
            )

    links = await store.link_counts()
    if links is None:
        links = await store.ensure_link_counts()
    quota_day = now.astimezone(QUOTA_TZ).date().isoformat()
    used = int(await store.get_value("quota", quota_day) or 0)
    budget = int(settings.sync_marketo_daily_quota * settings.sync_marketo_quota_share)
    retrying = len(await store.members("retry"))
    recent_errors = await store.list_errors(since=now - timedelta(hours=24))
    rejected_people = {e.get("marketoId") or e.get("dynamicsId") for e in recent_errors}

    last_row = next((r for r in rows if r.get("outcome") != "skipped"), None)
    access = _loads(await store.get_value("meta", FIELD_ACCESS_ROW), None)
    activity = _loads(await store.get_value("meta", ACTIVITY_TYPES_ROW), None)
    last_cycle = cycles[0] if cycles else None
    watermark = set(last_cycle["watermarkMode"]) if last_cycle else set()
    return {
        "schema": SCHEMA,
        "generatedAt": now.isoformat(),
        "live": False,
        "cycles": cycles,
        "failedInARow": failed_in_a_row,
        "lastSucceeded": last_ok,
        "cursors": cursors,
        "backlog": backlog,
        "people": {
            "linked": sum(links.values()),
            "linkedLeads": int(links.get("lead", 0)),
            "linkedContacts": int(links.get("contact", 0)),
            # Dynamics alone knows the total; `live` asks it.
            "excludedByFilter": None,
            "filteredOutLastCycles": sum(c["filteredOut"] for c in cycles),
            "retrying": retrying,
            "rejectedLast24h": len(rejected_people),
        },
        "quota": {
            "day": quota_day,
            "daily": settings.sync_marketo_daily_quota,
            "syncBudget": budget,
            "used": used,
            "left": max(0, budget - used),
        },
        "activityLog": _activity_log(activity, last_row),
        # Mass-change holds as the last cycle left them (release with `release`).
        "holds": [h for h in _loads(last_row.get("held"), []) if h.get("status") == "held"]
        if last_row
        else [],
        "changeTracking": {
            e: (None if last_cycle is None else e not in watermark) for e in ENTITIES
        },
        "fieldsCheckedAt": (
            datetime.fromtimestamp(float(access["at"]), UTC).isoformat() if access else None
        ),
        "fieldsStale": (
            None if access is None else now.timestamp() - float(access["at"]) > TTL_SECONDS
        ),
        "fields": _fields(settings, access),
    }


async def add_live(status: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """What only the two systems know, at a few API calls (status --live)."""
    marketo, dataverse = build_clients(settings)
    filter_col = load_mapping(settings.sync_mapping_file).sync_filter_column
    try:

        async def count(entity: Entity, where: str = "") -> int | None:
            url = f"{ENTITY_SET[entity]}?$count=true&$top=1&$select={ENTITY_KEY[entity]}" + (
                f"&$filter={where}" if where else ""
            )
            try:
                body = await dataverse.get_json(url)
            except SyncError:
                return None
            value = body.get("@odata.count")
            return int(value) if value is not None else None

        totals = dict(
            zip(ENTITIES, await asyncio.gather(*(count(e) for e in ENTITIES)), strict=True)
        )
        excluded = dict(
            zip(
                ENTITIES,
                await asyncio.gather(*(count(e, f"{filter_col} eq false") for e in ENTITIES)),
                strict=True,
            )
        )
        try:
            ids = await type_ids(marketo)
            status["activityLog"]["active"] = all(t in ids for t in TYPES)
            status["activityLog"]["checkedAt"] = datetime.now(UTC).isoformat()
        except SyncError:
            pass
    finally:
        await marketo.aclose()
        await dataverse.aclose()
    people = status["people"]
    if all(v is not None for v in excluded.values()):
        people["excludedByFilter"] = sum(v or 0 for v in excluded.values())
    for item in status["backlog"]:
        entity = item["entity"]
        total, out = totals.get(entity), excluded.get(entity) or 0
        item["records"] = total
        if total is not None and item["kind"] == "initial-load":
            linked = people["linkedLeads" if entity == "lead" else "linkedContacts"]
            # Records neither linked yet nor excluded: roughly what the load still reads.
            item["remainingEstimate"] = max(0, total - out - linked)
    status["live"] = True
    return status


async def require_tables(store: StateStore) -> None:
    """A clear error instead of a storage traceback when nothing was set up yet."""
    missing = await store.missing_tables()
    if missing:
        raise ConfigError(
            f"the state tables {', '.join(missing)} do not exist yet: run "
            "`python -m sync_core setup` (or let a first cycle run)"
        )


async def _from_store(settings: Settings, last: int) -> dict[str, Any]:
    store = build_store(settings)
    try:
        await require_tables(store)
        return await build_status(store, settings, last=last)
    finally:
        store.close()


async def read_status(settings: Settings, *, last: int = 10, live: bool = False) -> dict[str, Any]:
    status = await _from_store(settings, last)
    return await add_live(status, settings) if live else status
