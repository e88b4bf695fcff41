"""Web API dispatcher and single-record operations (GET/POST/PATCH/PUT/DELETE).

Resolves `/{set}`, `/{set}(guid)`, `/{set}(key='v',...)`, `/{set}(id)/{column}`, functions
and metadata paths, then applies the documented status codes and conditional-header rules
(If-Match / If-None-Match, upsert, return=representation). Getting these wrong is how a
sync overwrites a record a person just edited, so each rule follows the reference §7.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any
from urllib.parse import quote

from emulators.dynamics import actions, metadata, security
from emulators.dynamics.errors import DataverseError, bad_request, not_found, version_mismatch
from emulators.dynamics.messages import ApiRequest, ApiResponse
from emulators.dynamics.queries import count_collection, query_collection
from emulators.dynamics.records import (
    apply_write,
    etag,
    is_guid,
    new_id,
    parse_body,
    parse_select,
    render,
)
from emulators.dynamics.schema import Table
from emulators.dynamics.state import State
from emulators.dynamics.store import Row, rollback

_SEG = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*)(?:\((.*)\))?$", re.S)
_UNSAFE_KEY_CHARS = set("/<>*%&:\\?+")


def split_path(path: str) -> list[str]:
    """Split on '/' outside parentheses and quotes."""
    parts: list[str] = []
    cur: list[str] = []
    depth, quoted = 0, False
    for ch in path:
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        if ch == "/" and depth == 0 and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p for p in parts if p]


def parse_key(raw: str) -> dict[str, Any] | str:
    """`guid` -> guid; `a='x',b=1` -> {'a': 'x', 'b': 1}."""
    raw = raw.strip()
    if is_guid(raw):
        return raw.lower()
    out: dict[str, Any] = {}
    i, n = 0, len(raw)
    while i < n:
        eq = raw.find("=", i)
        if eq == -1:
            raise bad_request(f"Bad Request - Error in query syntax: '({raw})'.")
        name = raw[i:eq].strip()
        i = eq + 1
        if i < n and raw[i] == "'":
            i += 1
            buf = []
            while True:
                if i >= n:
                    raise bad_request(f"There is an unterminated literal in key '({raw})'.")
                if raw[i] == "'":
                    if i + 1 < n and raw[i + 1] == "'":
                        buf.append("'")
                        i += 2
                        continue
                    i += 1
                    break
                buf.append(raw[i])
                i += 1
            value: Any = "".join(buf)
        else:
            end = raw.find(",", i)
            end = n if end == -1 else end
            token = raw[i:end].strip()
            i = end
            if is_guid(token):
                value = token.lower()
            elif token in ("true", "false"):
                value = token == "true"
            else:
                try:
                    value = int(token)
                except ValueError as e:
                    raise bad_request(f"Bad Request - Error in query syntax: '({raw})'.") from e
        out[name] = value
        while i < n and raw[i] in ", ":
            i += 1
    return out


class Target:
    """A resolved single-record address."""

    def __init__(self, table: Table, rid: str | None, key_values: dict[str, Any],
                 url_key: str) -> None:
        self.table = table
        self.rid = rid  # existing row id (None: no match)
        self.key_values = key_values  # alternate-key columns from the URL (for upsert create)
        self.url_key = url_key  # the key text as addressed (for OData-EntityId)


def resolve(state: State, table: Table, raw_key: str) -> Target:
    key = parse_key(raw_key)
    store = state.stores[table.logical_name]
    if isinstance(key, str):
        return Target(table, key if key in store.rows else None, {table.primary_id: key}, key)
    if list(key) == [table.primary_id] and isinstance(key[table.primary_id], str):
        gid = key[table.primary_id]
        return Target(table, gid if gid in store.rows else None, {table.primary_id: gid}, gid)
    names = set(key)
    for k in table.keys:
        if set(k.columns) == names:
            for v in key.values():
                if isinstance(v, str) and _UNSAFE_KEY_CHARS & set(v):
                    raise bad_request("A potentially dangerous Request.Path value was detected "
                                      "from the client.", code="0x80040203")
            kt = tuple(v.lower() if isinstance(v, str) else v for v in
                       (key[c] for c in k.columns))
            rid = store.key_index[k.name].get(kt)
            return Target(table, rid, dict(key), raw_key)
    ln = table.logical_name
    raise bad_request(
        f"The key in the request URI is not valid for resource 'Microsoft.Dynamics.CRM.{ln}'. "
        "Ensure that the names and number of key properties match the declared or alternate "
        f"key properties for the resource 'Microsoft.Dynamics.CRM.{ln}'.")


def _entity_url(req: ApiRequest, table: Table, url_key: str) -> str:
    return f"{req.api_root}{table.entity_set}({url_key})"


def _representation(state: State, req: ApiRequest, table: Table, row: Row, status: int,
                    extra: dict[str, str] | None = None) -> ApiResponse:
    select = parse_select(table, req.query.get("$select"))
    body = render(state, table, row, req.user, select)
    sel = "(" + ",".join(c.json_name for c in select) + ")" if select else ""
    body = {"@odata.context": f"{req.api_root}$metadata#{table.entity_set}{sel}/$entity", **body}
    headers = {"Preference-Applied": "return=representation", "ETag": etag(row)}
    if extra:
        headers.update(extra)
    return ApiResponse.json(status, body, headers)


def _wants_repr(req: ApiRequest) -> bool:
    return req.prefer().get("return") == "representation"


def _check_if_match(req: ApiRequest, row: Row | None, table: Table, target: Target) -> None:
    im = req.headers.get("if-match")
    if im is None:
        return
    if row is None:
        raise not_found(table.logical_name, target.url_key)
    if im.strip() != "*" and im.strip() != etag(row):
        raise version_mismatch()


class WebApi:
    def __init__(self, state: State) -> None:
        self.state = state

    def endpoint_name(self, method: str, path: str) -> str:
        """Stats/latency/fault key, e.g. `GET contacts`, `PATCH leads`, `POST $batch`."""
        segs = split_path(path)
        if not segs:
            return f"{method} /"
        m = _SEG.match(segs[0])
        head = m.group(1) if m else segs[0]
        if head == "EntityDefinitions":
            return f"{method} EntityDefinitions"
        if len(segs) > 1 and "RetrievePrincipal" in segs[-1]:
            return f"{method} RetrievePrincipalAttributePrivileges"
        for action in ("RetrieveUserPrivileges", "QualifyLead"):
            if len(segs) > 1 and action in segs[-1]:
                return f"{method} {action}"
        if head == "Microsoft.Dynamics.CRM.Merge":
            return f"{method} Merge"
        return f"{method} {head}"

    def handle(self, req: ApiRequest) -> ApiResponse:
        try:
            return self._route(req)
        except DataverseError as e:
            h = {"Content-Type": "application/json; odata.metadata=minimal", "OData-Version": "4.0"}
            h.update(e.headers)
            return ApiResponse(e.status, h, e.body())

    def _route(self, req: ApiRequest) -> ApiResponse:
        segs = split_path(req.path)
        if not segs:
            return ApiResponse.json(200, {"@odata.context": f"{req.api_root}$metadata",
                                          "value": [{"name": t.entity_set, "kind": "EntitySet",
                                                     "url": t.entity_set}
                                                    for t in self.state.tables.values()]})
        m = _SEG.match(segs[0])
        if not m:
            raise _segment_not_found(segs[0])
        head, key = m.group(1), m.group(2)
        if head in ("WhoAmI", "Microsoft.Dynamics.CRM.WhoAmI") and req.method == "GET":
            u = req.user
            return ApiResponse.json(200, {
                "@odata.context": f"{req.api_root}$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
                "BusinessUnitId": self.state.cfg.business_unit_id, "UserId": u.systemuserid,
                "OrganizationId": self.state.cfg.organization_id})
        if head == "EntityDefinitions":
            return metadata.entity_definitions(self.state, req, key, segs[1:])
        if head in ("Merge", "Microsoft.Dynamics.CRM.Merge") and req.method == "POST":
            return actions.merge(self.state, req)
        if head == "organizations" and req.method == "GET":
            return ApiResponse.json(200, {
                "@odata.context": f"{req.api_root}$metadata#organizations",
                "value": [{"organizationid": self.state.cfg.organization_id,
                           "expirechangetrackingindays":
                               self.state.cfg.expire_change_tracking_in_days}]})
        table = self.state.by_set.get(head)
        if table is None:
            raise DataverseError(404, "0x80060888", f"Resource not found for the segment '{head}'.")
        if key is None:
            return self._collection(req, table, segs[1:])
        rest = segs[1:]
        if rest and "RetrievePrincipalAttributePrivileges" in rest[0]:
            return metadata.principal_attribute_privileges(self.state, req, table, key)
        if rest and "RetrieveUserPrivileges" in rest[0] and req.method == "GET":
            return actions.retrieve_user_privileges(self.state, req, table, key)
        if rest and rest[0].removeprefix("Microsoft.Dynamics.CRM.") == "QualifyLead" \
                and req.method == "POST":
            return actions.qualify_lead(self.state, req, table, resolve(self.state, table, key))
        target = resolve(self.state, table, key)
        if rest:
            return self._property(req, target, rest[0])
        if req.method == "GET":
            return self._get(req, target)
        if req.method == "PATCH":
            return self._patch(req, target)
        if req.method == "DELETE":
            return self._delete(req, target)
        raise DataverseError(405, "0x80040315", "This action is not supported.")

    def _collection(self, req: ApiRequest, table: Table, rest: list[str]) -> ApiResponse:
        if rest:
            if rest[0] == "$count" and req.method == "GET":
                return count_collection(self.state, req, table)
            name = rest[0].removeprefix("Microsoft.Dynamics.CRM.")
            if req.method == "POST" and name in ("CreateMultiple", "UpdateMultiple",
                                                 "UpsertMultiple"):
                return self._multiple(req, table, name)
            raise _segment_not_found(rest[0])
        if req.method == "GET":
            return query_collection(self.state, req, table)
        if req.method == "POST":
            return self._create(req, table)
        raise DataverseError(405, "0x80040315", "This action is not supported.")

    # -- single record ------------------------------------------------------------------
    def _get(self, req: ApiRequest, target: Target) -> ApiResponse:
        table = target.table
        if target.rid is None:
            raise not_found(table.logical_name, target.url_key)
        row = self.state.stores[table.logical_name].rows[target.rid]
        security.require(self.state, req.user, table.logical_name, "Read", row, target.rid)
        inm = req.headers.get("if-none-match")
        prefer = req.prefer()
        if inm and inm.strip() == etag(row) and "odata.include-annotations" not in prefer \
                and "$expand" not in req.query:
            return ApiResponse.empty(304)
        select = parse_select(table, req.query.get("$select"))
        body = render(self.state, table, row, req.user, select,
                      annotations="odata.include-annotations" in prefer)
        sel = "(" + ",".join(c.json_name for c in select) + ")" if select else ""
        body = {"@odata.context": f"{req.api_root}$metadata#{table.entity_set}{sel}/$entity",
                **body}
        return ApiResponse.json(200, body, {"ETag": etag(row)})

    def _create(self, req: ApiRequest, table: Table) -> ApiResponse:
        changes = parse_body(self.state, table, req.json_body(), req.content_ids, creating=True)
        rid = changes.pop(table.primary_id, None) or new_id()
        if rid in self.state.stores[table.logical_name].rows:
            raise DataverseError(412, "0x80040237", "Cannot insert duplicate key.")
        row = apply_write(self.state, table, req.user, rid, None, changes, req.headers,
                          req.journal)
        url = _entity_url(req, table, rid)
        if _wants_repr(req):
            return _representation(self.state, req, table, row, 201, {"Location": url})
        return ApiResponse.empty(204, {"OData-EntityId": url, "Location": url})

    def _patch(self, req: ApiRequest, target: Target) -> ApiResponse:
        table = target.table
        store = self.state.stores[table.logical_name]
        row = store.rows.get(target.rid) if target.rid else None
        _check_if_match(req, row, table, target)
        inm = req.headers.get("if-none-match", "").strip()
        if inm == "*" and row is not None:
            raise DataverseError(412, "0x80040237",
                                 "A record with matching key values already exists.")
        body = req.json_body()
        url = _entity_url(req, table, target.url_key)
        if row is not None:
            changes = parse_body(self.state, table, body, req.content_ids, creating=False)
            changes.pop(table.primary_id, None)
            for k in target.key_values:  # key columns can't change through their own key
                changes.pop(k, None)
            post = apply_write(self.state, table, req.user, row[table.primary_id], row, changes,
                               req.headers, req.journal)
            if _wants_repr(req):
                return _representation(self.state, req, table, post, 200)
            return ApiResponse.empty(204, {"OData-EntityId": url})
        changes = parse_body(self.state, table, body, req.content_ids, creating=True)
        rid = target.key_values.get(table.primary_id) or changes.get(table.primary_id) or new_id()
        changes.pop(table.primary_id, None)
        merged = {k: v for k, v in target.key_values.items() if k != table.primary_id}
        for k in list(merged):
            if table.columns.get(k) is None:
                raise bad_request(f"Unknown key column '{k}'.")
        merged.update(changes)  # body values win over URL key values on create
        post = apply_write(self.state, table, req.user, rid, None, merged, req.headers,
                           req.journal)
        if _wants_repr(req):
            return _representation(self.state, req, table, post, 201,
                                   {"Location": _entity_url(req, table, rid)})
        return ApiResponse.empty(204, {"OData-EntityId": url})

    def _delete(self, req: ApiRequest, target: Target) -> ApiResponse:
        table = target.table
        store = self.state.stores[table.logical_name]
        if target.rid is None:
            raise not_found(table.logical_name, target.url_key)
        row = store.rows[target.rid]
        security.require(self.state, req.user, table.logical_name, "Delete", row, target.rid)
        im = req.headers.get("if-match")
        if im and im.strip() not in ("*", etag(row)):
            raise version_mismatch()
        store.remove(target.rid, self.state.next_version(), _now(), req.journal)
        return ApiResponse.empty(204)

    def _property(self, req: ApiRequest, target: Target, prop: str) -> ApiResponse:
        table = target.table
        if target.rid is None:
            raise not_found(table.logical_name, target.url_key)
        store = self.state.stores[table.logical_name]
        row = store.rows[target.rid]
        col = table.by_json.get(prop) or table.columns.get(prop)
        if col is None:
            raise DataverseError(404, "0x80060888", f"Resource not found for the segment '{prop}'.")
        if req.method == "GET":
            security.require(self.state, req.user, table.logical_name, "Read", row,
                             target.rid)
            sel = render(self.state, table, row, req.user, [col])
            ctx = f"{req.api_root}$metadata#{table.entity_set}({target.url_key})/{prop}"
            return ApiResponse.json(200, {"@odata.context": ctx, "value": sel[col.json_name]})
        if req.method == "PUT":
            body = req.json_body()
            if not isinstance(body, dict) or "value" not in body:
                raise bad_request("The request body must be {\"value\": ...}.")
            changes = parse_body(self.state, table, {col.name: body["value"]}, req.content_ids,
                                 creating=False)
        elif req.method == "DELETE":
            changes = parse_body(self.state, table, {col.name: None}, req.content_ids,
                                 creating=False)
        else:
            raise DataverseError(405, "0x80040315", "This action is not supported.")
        apply_write(self.state, table, req.user, target.rid, row, changes, req.headers,
                    req.journal)
        return ApiResponse.empty(204)

    def _multiple(self, req: ApiRequest, table: Table, name: str) -> ApiResponse:
        """CreateMultiple/UpdateMultiple/UpsertMultiple: all-or-nothing on standard tables."""
        if table.logical_name not in self.state.cfg.world.bulk_tables:
            # Not every table has the bulk messages; the platform's answer as seen by clients.
            raise DataverseError(400, "0x80040800",
                                 f"The '{name}' method does not support entities of type "
                                 f"'{table.logical_name}'. MessageProcessorCache returned "
                                 "MessageProcessor.Empty.")
        body = req.json_body()
        targets = body.get("Targets") if isinstance(body, dict) else None
        if not isinstance(targets, list):
            raise bad_request("The 'Targets' parameter is required.")
        journal: list[Any] = [] if req.journal is None else req.journal
        own = req.journal is None
        ids: list[str] = []
        store = self.state.stores[table.logical_name]
        try:
            for item in targets:
                if not isinstance(item, dict):
                    raise bad_request("Each target must be a JSON object.")
                data = {k: v for k, v in item.items() if not k.startswith("@odata.")}
                rid: str | None = None
                key_values: dict[str, Any] = {}
                if "@odata.id" in item:
                    ref = str(item["@odata.id"])
                    m = _SEG.match(ref.rsplit("/", 1)[-1])
                    if not m or m.group(2) is None:
                        raise bad_request(f"Invalid @odata.id '{ref}'.")
                    t = resolve(self.state, table, m.group(2))
                    rid, key_values = t.rid, t.key_values
                pkv = data.get(table.primary_id)
                if rid is None and isinstance(pkv, str) and pkv.lower() in store.rows:
                    rid = pkv.lower()
                if name == "CreateMultiple" or (name == "UpsertMultiple" and rid is None):
                    changes = parse_body(self.state, table, data, req.content_ids, creating=True)
                    new = changes.pop(table.primary_id, None) or \
                        key_values.get(table.primary_id) or new_id()
                    merged = {k: v for k, v in key_values.items() if k != table.primary_id}
                    merged.update(changes)
                    apply_write(self.state, table, req.user, new, None, merged, req.headers,
                                journal)
                    ids.append(new)
                else:
                    if rid is None:
                        raise not_found(table.logical_name, str(pkv))
                    changes = parse_body(self.state, table, data, req.content_ids,
                                         creating=False)
                    changes.pop(table.primary_id, None)
                    apply_write(self.state, table, req.user, rid, store.rows[rid], changes,
                                req.headers, journal)
                    ids.append(rid)
        except DataverseError:
            if own:
                rollback(journal)
            raise
        if name == "UpdateMultiple":
            return dataclasses.replace(ApiResponse.empty(204), operations=len(ids))
        return ApiResponse.json(200, {
            "@odata.context": f"{req.api_root}$metadata#Microsoft.Dynamics.CRM.{name}Response",
            "Ids": ids}, operations=len(ids))


def _segment_not_found(seg: str) -> DataverseError:
    return DataverseError(404, "0x80060888", f"Resource not found for the segment '{seg}'.")


def _now() -> int:
    import time

    return int(time.time())


def entity_id_url(req: ApiRequest, table: Table, rid: str) -> str:
    return f"{req.api_root}{table.entity_set}({quote(rid)})"
