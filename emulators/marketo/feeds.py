"""Change-feed endpoints: paging token, activities, lead changes, deleted leads, types.

All three feeds share one scan: from the token's place, look at no more than
`activity_scan_block` entries, keep the matching ones up to batchSize, and hand back
the place reached as the next token (always present) with `moreResult` telling
whether the log goes on. Short or empty pages with moreResult=true are therefore
normal, exactly the behaviour that trips clients stopping on a short page.

The place is a log position (`paging_tokens = "position"`) or a point in activity time
(`"date"`); in date mode an activity not yet committed is passed over and the token
still moves past it, so a client that never re-reads an overlap loses it for good.
Either kind of token is accepted in either mode (a profile can change mid-paging).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any

from emulators.marketo.activities import (
    CHANGE_DATA_VALUE,
    DELETE_LEAD,
    NEW_LEAD,
    Activity,
    decode_date_token,
    decode_token,
    encode_date_token,
    encode_token,
    render_activity,
    standard_types,
)
from emulators.marketo.envelope import ApiError, success
from emulators.marketo.fields import parse_datetime
from emulators.marketo.state import Call


async def paging_token(call: Call) -> dict[str, Any]:
    raw = call.params.get("sinceDatetime", "")
    if not raw:
        raise ApiError("701", "'sinceDatetime' cannot be blank")
    dt = parse_datetime(raw)
    if dt is None:
        raise ApiError("704", f"Invalid date format '{raw}'")
    since_ms = int(dt.timestamp() * 1000)
    if call.emu.config.paging_tokens == "date":
        token = encode_date_token(since_ms, 0)
    else:
        token = encode_token("A", call.emu.log.position_for(since_ms))
    return {"requestId": call.rid, "success": True, "errors": [], "warnings": [],
            "nextPageToken": token}


def _raw_token(call: Call) -> str:
    tok = call.params.get("nextPageToken", "")
    if not tok:
        raise ApiError("701", "'nextPageToken' cannot be blank")
    return tok


def _bad_token(tok: str) -> ApiError:
    return ApiError("1001", f"Invalid value '{tok}'. Required of type 'nextPageToken'")


def _start(call: Call) -> int:
    """The log position a token stands for (date tokens map to their time)."""
    tok = _raw_token(call)
    pos = decode_token(tok, "A")
    if pos is None:
        key = decode_date_token(tok)
        if key is None:
            raise _bad_token(tok)
        pos = call.emu.log.position_for(key[0])
    return pos


def _start_key(call: Call) -> tuple[int, int]:
    """The (date_ms, id) a token stands for (position tokens map to their entry)."""
    tok = _raw_token(call)
    key = decode_date_token(tok)
    if key is not None:
        return key
    pos = decode_token(tok, "A")
    if pos is None:
        raise _bad_token(tok)
    items = call.emu.log.items
    if pos == 0:
        return (0, 0)
    last = items[min(pos, len(items)) - 1] if items else None
    return (last.date_ms, last.id) if last else (0, 0)


def _lead_ids(call: Call) -> set[int] | None:
    raw = call.list_param("leadIds")
    if not raw:
        return None
    if len(raw) > 30:
        raise ApiError("1003", "Too many leadIds, max 30")
    try:
        return {int(x) for x in raw}
    except ValueError:
        raise ApiError("1003", "Invalid leadIds") from None


def _batch(call: Call) -> int:
    mx = call.emu.config.max_batch
    size = call.int_param("batchSize", mx)
    assert size is not None
    return max(1, min(size, mx))


def _scan(
    call: Call, keep: Callable[[Activity], bool], leadchanges: bool = False
) -> dict[str, Any]:
    emu = call.emu
    if emu.config.paging_tokens == "date":
        start_key = _start_key(call)
    else:
        pos = _start(call)
    size = _batch(call)
    leads = _lead_ids(call)
    if call.params.get("listId"):
        # Static lists are not emulated; an unknown list behaves as Marketo's "not found".
        raise ApiError("1013", f"List '{call.params['listId']}' not found")
    block = max(1, emu.config.activity_scan_block)
    if emu.config.paging_tokens == "date":
        return _scan_dates(call, keep, leadchanges, start_key, size, leads, block)
    items = emu.log.items
    end = min(len(items), pos + block)
    out: list[dict[str, Any]] = []
    now_ms = emu.now_ms()
    i = pos
    while i < end:
        act = items[i]
        i += 1
        if act.visible_ms > now_ms:
            continue  # not committed yet
        if (leads is None or act.lead_id in leads) and keep(act):
            out.append(render_activity(act, with_change_fields=leadchanges))
            if len(out) >= size:
                break
    call.records = len(out)
    call.scanned = i - pos
    return success(call.rid, out, nextPageToken=encode_token("A", i), moreResult=i < len(items))


def _scan_dates(
    call: Call,
    keep: Callable[[Activity], bool],
    leadchanges: bool,
    start_key: tuple[int, int],
    size: int,
    leads: set[int] | None,
    block: int,
) -> dict[str, Any]:
    log = call.emu.log
    keys = log.date_index()
    now_ms = call.emu.now_ms()
    start = bisect.bisect_right(keys, start_key)
    end = min(len(keys), start + block)
    out: list[dict[str, Any]] = []
    last = start_key
    i = start
    while i < end:
        last = keys[i]
        i += 1
        act = log.items[last[1] - 1]
        if act.visible_ms > now_ms:
            continue  # not committed yet: passed over, and the token moves past it
        if (leads is None or act.lead_id in leads) and keep(act):
            out.append(render_activity(act, with_change_fields=leadchanges))
            if len(out) >= size:
                break
    call.records = len(out)
    call.scanned = i - start
    return success(call.rid, out, nextPageToken=encode_date_token(*last),
                   moreResult=i < len(keys))


async def activities(call: Call) -> dict[str, Any]:
    raw = call.list_param("activityTypeIds")
    if not raw:
        raise ApiError("701", "'activityTypeIds' cannot be blank")
    if len(raw) > 10:
        raise ApiError("1003", "Too many activityTypeIds, max 10")
    try:
        types = {int(x) for x in raw}
    except ValueError:
        raise ApiError("1003", "Invalid activityTypeIds") from None
    asset_ids = call.list_param("assetIds")
    if asset_ids and len(types) != 1:
        raise ApiError("1003", "assetIds requires exactly one activityTypeId")
    assets = set(asset_ids)
    return _scan(
        call,
        lambda a: a.type_id in types and (not assets or str(a.primary_id) in assets),
    )


async def lead_changes(call: Call) -> dict[str, Any]:
    names = set(call.list_param("fields"))
    if not names:
        raise ApiError("701", "'fields' cannot be blank")
    for n in names:
        if n not in call.emu.schema.by_name:
            raise ApiError("1006", f"Field '{n}' not found")

    def keep(a: Activity) -> bool:
        if a.type_id == NEW_LEAD:
            return True
        return a.type_id == CHANGE_DATA_VALUE and a.change is not None and a.change[1] in names

    return _scan(call, keep, leadchanges=True)


async def deleted_leads(call: Call) -> dict[str, Any]:
    cfg = call.emu.config
    cutoff = int((call.emu.now() - cfg.scaled(cfg.deleted_lead_retention_days * 86400)) * 1000)
    return _scan(call, lambda a: a.type_id == DELETE_LEAD and a.logged_ms >= cutoff)


async def activity_types(call: Call) -> dict[str, Any]:
    return success(call.rid, standard_types() + call.emu.custom_types.as_activity_types())
