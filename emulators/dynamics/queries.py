"""Collection GETs: $select/$filter/$orderby/$top/$count, paging and change tracking.

Paging follows the documented contract (Prefer: odata.maxpagesize, default and max 5000,
absolute `@odata.nextLink` with an opaque `$skiptoken`, no `$skip`); change tracking returns
a snapshot then `@odata.deltaLink` only on the last page, deltas with `$deletedEntity`
entries, and the ExpiredVersionStamp error for old tokens. The failure this prevents is a
sync that works against a toy server but loses or duplicates rows against the real one.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import time
from typing import Any
from urllib.parse import quote, unquote

from emulators.dynamics import security
from emulators.dynamics.errors import DataverseError, bad_property, bad_request
from emulators.dynamics.messages import ApiRequest, ApiResponse
from emulators.dynamics.odata_filter import compile_filter, index_candidates
from emulators.dynamics.records import parse_select, render
from emulators.dynamics.schema import Column, Table
from emulators.dynamics.state import State
from emulators.dynamics.world import shuffle_page

_SUPPORTED = {"$select", "$filter", "$orderby", "$top", "$count", "$skiptoken", "$deltatoken",
              "$expand", "$apply", "$skip", "$search", "$format"}


def _page_size(req: ApiRequest, state: State) -> tuple[int, bool]:
    raw = req.prefer().get("odata.maxpagesize")
    if raw is None:
        return state.cfg.max_page_size, False
    try:
        n = int(raw)
    except ValueError as e:
        raise bad_request(f"Invalid odata.maxpagesize value '{raw}'.") from e
    return max(1, min(n, state.cfg.max_page_size)), True


def _encode_token(data: dict[str, Any]) -> str:
    # Looks like Dataverse's paging cookie XML; contents are ours and opaque to clients.
    return '<cookie pagenumber="{}" pagingcookie="{}" istracking="{}" />'.format(
        data.get("p", 2), quote(json.dumps(data, separators=(",", ":"))),
        "True" if data.get("t") else "False")


def _decode_token(raw: str) -> dict[str, Any]:
    try:
        start = raw.index('pagingcookie="') + len('pagingcookie="')
        end = raw.index('"', start)
        data = json.loads(unquote(raw[start:end]))
        if not isinstance(data, dict):
            raise ValueError
        return data
    except ValueError as e:
        raise bad_request("The $skiptoken value is not valid.") from e


def _link(req: ApiRequest, extra: dict[str, str], drop: tuple[str, ...] = ()) -> str:
    parts = [f"{k}={quote(v, safe=',')}" for k, v in req.query.items()
             if k not in extra and k not in drop]
    parts += [f"{k}={quote(v, safe='')}" for k, v in extra.items()]
    return req.api_root + req.path + "?" + "&".join(parts)


def _context(req: ApiRequest, table: Table, select: list[Column] | None, suffix: str = "") -> str:
    sel = "(" + ",".join(c.json_name for c in select) + ")" if select else ""
    return f"{req.api_root}$metadata#{table.entity_set}{sel}{suffix}"


def _parse_orderby(table: Table, raw: str) -> list[tuple[str, bool]]:
    out: list[tuple[str, bool]] = []
    for item in raw.split(","):
        bits = item.strip().split()
        if not bits:
            continue
        col = table.by_json.get(bits[0])
        if col is None:
            raise bad_property(bits[0], table.logical_name)
        desc = len(bits) > 1 and bits[1].lower() == "desc"
        out.append((col.name, desc))
    return out


def _sort_key(v: Any) -> tuple[int, Any]:
    # Nulls sort first ascending (SQL Server semantics); strings case-insensitively.
    if v is None:
        return (0, "")
    return (1, v.lower() if isinstance(v, str) else v)


def _column_key(rows: dict[str, Any], name: str) -> Any:
    def key(rid: str) -> tuple[int, Any]:
        return _sort_key(rows[rid].get(name))
    return key


def _delta_token(state: State, version: int) -> str:
    # Stamp with the emulator's change-tracking clock, which /change-tracking/age moves:
    # tokens issued after ageing must be fresh, not born expired.
    now = time.time() + state.ct_clock_offset
    stamp = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%m/%d/%Y %H:%M:%S")
    token = f"{version}!{stamp}"
    # Remembered so an injected expiry can revoke every token handed out so far; a fresh
    # token equal to a revoked one (same version, same second) is valid again.
    state.ct_revoked.discard(token)
    state.ct_issued[token] = None
    if len(state.ct_issued) > 10_000:
        del state.ct_issued[next(iter(state.ct_issued))]
    return token


def query_collection(state: State, req: ApiRequest, table: Table) -> ApiResponse:
    q = req.query
    for name in q:
        if name.startswith("$") and name not in _SUPPORTED:
            raise bad_request(f"The query parameter {name} is not supported")
    if "$skip" in q:
        raise bad_request("The query parameter $skip is not supported")
    for unsupported in ("$expand", "$apply", "$search"):
        if unsupported in q and not req.headers.get("prefer", "").lower().count("track-changes"):
            raise DataverseError(501, "0x80040219",
                                 f"{unsupported} is not implemented by the Dynamics emulator.")
    prefer = req.prefer()
    token = _decode_token(q["$skiptoken"]) if "$skiptoken" in q else {}
    # A tracked snapshot's nextLink stays tracked even if a client drops the Prefer value.
    tracking = "odata.track-changes" in prefer or "$deltatoken" in q or bool(token.get("t"))
    select = parse_select(table, q.get("$select"))
    annotations = "odata.include-annotations" in prefer
    page_size, size_given = _page_size(req, state)
    applied: list[str] = []
    if size_given:
        applied.append(f"odata.maxpagesize={page_size}")
    if annotations:
        applied.append(f'odata.include-annotations="{prefer["odata.include-annotations"]}"')
    if tracking:
        for opt in ("$filter", "$orderby", "$expand", "$top"):
            if opt in q:
                raise bad_request(f'The "{opt}" query parameter isn\'t supported when Change '
                                  "Tracking is enabled.")
        if not table.change_tracking:
            raise bad_request(
                f"Change tracking is not enabled for entity '{table.logical_name}'. Enable "
                "change tracking (ChangeTrackingEnabled) before requesting a delta.",
                code="0x80040203")
        applied.append("odata.track-changes")
        security.require_org_read(state, req.user, table.logical_name)
        if "$deltatoken" in q:
            return _delta(state, req, table, select, page_size, applied)
    store = state.stores[table.logical_name]
    pred = None
    node = None
    if "$filter" in q:
        pred, node = compile_filter(table, q["$filter"])
    # User-depth Read: only the caller's own rows exist for this query.
    scope = security.read_filter(state, req.user, table.logical_name)
    if scope is not None:
        pred = _both(scope, pred)
    orderby = _parse_orderby(table, q["$orderby"]) if q.get("$orderby") else []
    top: int | None = None
    if "$top" in q:
        try:
            top = int(q["$top"])
        except ValueError as e:
            raise bad_request(f"Invalid value '{q['$top']}' for $top query option.") from e
        if size_given:
            top = None  # documented: $top is ignored when maxpagesize is present
    snapshot_version = token.get("v", state.version)
    pk = table.primary_id

    # Candidate ids, in primary-key order unless an explicit $orderby is used.
    cand: list[str] | None = None
    if node is not None:
        hit = index_candidates(node, table)
        if hit is not None:
            col, value = hit
            if col == "emailaddress1":
                cand = sorted(store.ids_by_email(value))
            else:
                key = next(k for k in table.keys if k.columns == (col,))
                rid = store.key_index[key.name].get((value,))
                cand = [rid] if rid else []
    rows = store.rows
    limit = top if top is not None else page_size
    total: int | None = None
    if "$count" in q and q["$count"].lower() == "true":
        ids_all = cand if cand is not None else rows.keys()
        total = sum(1 for i in ids_all if pred is None or pred(rows[i]) is True)
    page: list[dict[str, Any]]
    more = False
    if orderby:
        ids = cand if cand is not None else list(rows)
        matched = [i for i in ids if pred is None or pred(rows[i]) is True]
        matched.sort(key=lambda i: rows[i][pk])
        for name, desc in reversed(orderby):
            matched.sort(key=_column_key(rows, name), reverse=desc)
        offset = int(token.get("o", 0))
        chunk = matched[offset: offset + limit + 1]
        more = len(chunk) > limit
        page_ids = chunk[:limit]
        next_token: dict[str, Any] = {"o": offset + limit, "p": int(token.get("p", 1)) + 1}
    else:
        ordered = cand if cand is not None else store.sorted_ids()
        start = bisect.bisect_right(ordered, token["k"]) if "k" in token else 0
        page_ids = []
        for i in range(start, len(ordered)):
            rid = ordered[i]
            row = rows.get(rid)
            if row is None or (pred is not None and pred(row) is not True):
                continue
            if len(page_ids) == limit:
                more = True
                break
            page_ids.append(rid)
        next_token = {"k": page_ids[-1] if page_ids else "", "p": int(token.get("p", 1)) + 1}
    if top is not None:
        more = False
    page = [render(state, table, rows[i], req.user, select, annotations) for i in page_ids]
    body: dict[str, Any] = {"@odata.context": _context(req, table, select)}
    if total is not None:
        body["@odata.count"] = min(total, 5000)
    body["value"] = page
    if more:
        next_token["v"] = snapshot_version
        if tracking:
            next_token["t"] = 1
        body["@odata.nextLink"] = _link(req, {"$skiptoken": _encode_token(next_token)})
    elif tracking:
        body["@odata.deltaLink"] = _link(
            req, {"$deltatoken": _delta_token(state, snapshot_version)}, drop=("$skiptoken",))
    headers = {"Preference-Applied": ",".join(applied)} if applied else {}
    return ApiResponse.json(200, body, headers, operations=max(1, len(page)))


def _delta(state: State, req: ApiRequest, table: Table, select: list[Column] | None,
           page_size: int, applied: list[str]) -> ApiResponse:
    raw = req.query["$deltatoken"]
    version_s, _, stamp = raw.partition("!")
    try:
        low = int(version_s)
        issued = dt.datetime.strptime(stamp, "%m/%d/%Y %H:%M:%S").replace(tzinfo=dt.UTC)
    except ValueError as e:
        raise bad_request(f"The delta token '{raw}' is not valid.") from e
    age = time.time() + state.ct_clock_offset - issued.timestamp()
    # The expiry is a duration the service enforces, so it follows the time scale.
    max_age = state.cfg.world.scale(state.cfg.expire_change_tracking_in_days * 86400)
    if age > max_age or raw in state.ct_revoked:
        raise DataverseError(400, "0x80044352", "Version stamp associated with the client has "
                                                "expired. Please perform a full sync.")
    store = state.stores[table.logical_name]
    token = _decode_token(req.query["$skiptoken"]) if "$skiptoken" in req.query else {}
    high = int(token.get("h", state.version))
    phase = token.get("ph", "rows")
    last = int(token.get("l", low))
    value: list[dict[str, Any]] = []
    more = False
    next_token: dict[str, Any] = {}
    if phase == "rows":
        changed = store.changes_between(last, high)
        for rid in changed:
            if len(value) == page_size:
                more = True
                break
            row = store.rows[rid]
            value.append(render(state, table, row, req.user, select))
            last = row["versionnumber"]
        next_token = {"ph": "rows", "l": last} if more else {"ph": "del", "l": low}
        if not more:
            phase, last = "del", low
    if phase == "del" and not more:
        deleted_ctx = f"{req.api_root}$metadata#{table.entity_set}/$deletedEntity"
        for version, rid, _ in store.deletes_between(last, high):
            if rid in store.rows:
                continue  # deleted then re-created with the same id: reported as a change
            if len(value) == page_size:
                more = True
                break
            value.append({"@odata.context": deleted_ctx, "id": rid, "reason": "deleted"})
            last = version
        next_token = {"ph": "del", "l": last}
    shuffle_page(state.cfg.world, value, f"{raw}:{req.query.get('$skiptoken', '')}")
    body: dict[str, Any] = {"@odata.context": _context(req, table, select, "/$delta"),
                            "value": value}
    if more:
        next_token.update({"h": high, "t": 1})
        body["@odata.nextLink"] = _link(req, {"$skiptoken": _encode_token(next_token)})
    else:
        body["@odata.deltaLink"] = _link(req, {"$deltatoken": _delta_token(state, high)},
                                         drop=("$skiptoken",))
    return ApiResponse.json(200, body, {"Preference-Applied": ",".join(applied)},
                            operations=max(1, len(value)))


def _both(scope: Any, pred: Any) -> Any:
    if pred is None:
        return scope
    return lambda row: pred(row) if scope(row) else False


def count_collection(state: State, req: ApiRequest, table: Table) -> ApiResponse:
    """`GET /{set}/$count`: plain-text number, capped at 5000 like `$count=true`."""
    rows = state.stores[table.logical_name].rows
    scope = security.read_filter(state, req.user, table.logical_name)
    n = len(rows) if scope is None else sum(1 for r in rows.values() if scope(r))
    n = min(n, 5000)
    return ApiResponse(200, {"Content-Type": "text/plain", "OData-Version": "4.0"},
                       str(n).encode())
