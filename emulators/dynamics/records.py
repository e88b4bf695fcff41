"""Row <-> JSON: rendering with $select and field security, validating and applying writes.

Every create/update path (POST, PATCH, upsert, single-column PUT/DELETE, bulk, $batch)
funnels through `apply_write`, so MaxLength, option ranges, SystemRequired, field
security, plug-in rules, duplicate detection, alternate-key uniqueness and the
createdon/modifiedby/versionnumber stamps can never differ between entry points.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from typing import Any

from emulators.dynamics import security, serverlogic
from emulators.dynamics.config import UserConfig
from emulators.dynamics.errors import DataverseError, bad_request, not_found
from emulators.dynamics.odata_filter import to_epoch
from emulators.dynamics.schema import Column, Table
from emulators.dynamics.state import State
from emulators.dynamics.store import Row, rollback

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_BIND = re.compile(r"^(?:.*/api/data/v9\.\d/|/)?([A-Za-z_]+)\(([^)]*)\)$")
_EDM_TYPES = {"String": "Edm.String", "Memo": "Edm.String", "Boolean": "Edm.Boolean",
              "Integer": "Edm.Int32", "Picklist": "Edm.Int32", "State": "Edm.Int32",
              "Status": "Edm.Int32", "BigInt": "Edm.Int64", "DateTime": "Edm.DateTimeOffset",
              "Uniqueidentifier": "Edm.Guid"}


def is_guid(s: str) -> bool:
    return bool(_GUID.match(s))


def fmt_time(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def etag(row: Row) -> str:
    return f'W/"{row["versionnumber"]}"'


def _readable(state: State, user: UserConfig, table: Table, col: Column) -> bool:
    return not col.secured or state.permission(user, table.logical_name, col.name).read


def render(state: State, table: Table, row: Row, user: UserConfig, select: list[Column] | None,
           annotations: bool = False) -> dict[str, Any]:
    """JSON object for a row: etag, selected columns (all if no $select), pk always."""
    out: dict[str, Any] = {"@odata.etag": etag(row)}
    cols = select if select is not None else list(table.columns.values())
    for col in cols:
        v = row.get(col.name)
        if v is not None and not _readable(state, user, table, col):
            v = None  # secured: indistinguishable from a real null (column-level-security.md)
        name = col.json_name
        if v is not None and col.type == "DateTime":
            v = fmt_time(v)
        out[name] = v
        if annotations and v is not None:
            if col.options:
                label = col.options.get(v)
                if label is not None:
                    out[f"{name}@OData.Community.Display.V1.FormattedValue"] = label
            elif col.type == "Boolean":
                out[f"{name}@OData.Community.Display.V1.FormattedValue"] = "Yes" if v else "No"
            elif col.is_lookup:
                target = row.get(col.name + ".t") or col.targets[0]
                out[f"{name}@Microsoft.Dynamics.CRM.lookuplogicalname"] = target
                tstore = state.stores.get(target)
                trow = tstore.rows.get(v) if tstore else None
                if trow is not None:
                    pname = state.tables[target].primary_name
                    out[f"{name}@OData.Community.Display.V1.FormattedValue"] = trow.get(pname)
    out[table.primary_id] = row[table.primary_id]
    return out


def parse_select(table: Table, raw: str | None) -> list[Column] | None:
    from emulators.dynamics.errors import bad_property

    if raw is None or raw.strip() == "":
        return None
    cols: list[Column] = []
    for name in raw.split(","):
        name = name.strip()
        col = table.by_json.get(name) or (table.columns.get(name) if name in table.columns
                                          and not table.columns[name].is_lookup else None)
        if col is None:
            raise bad_property(name, table.logical_name)
        cols.append(col)
    return cols


def _type_error(value: Any, col: Column) -> DataverseError:
    return bad_request(f"Cannot convert the literal '{value}' to the expected type "
                       f"'{_EDM_TYPES.get(col.type, 'Edm.String')}'.")


def _coerce(table: Table, col: Column, value: Any) -> Any:
    if value is None:
        return None
    t = col.type
    if t in ("String", "Memo"):
        if not isinstance(value, str):
            raise _type_error(value, col)
        if col.max_length is not None and len(value) > col.max_length:
            raise DataverseError(
                400, "0x80044331",
                f"A validation error occurred.  The length of the '{col.name}' attribute of the "
                f"'{table.logical_name}' entity exceeded the maximum allowed length of "
                f"'{col.max_length}'.")
        return value
    if t == "Boolean":
        if not isinstance(value, bool):
            raise _type_error(value, col)
        return value
    if t in ("Integer", "BigInt", "Picklist", "State", "Status"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(value, col)
        if col.options is not None and value not in col.options:
            raise DataverseError(400, "0x8004431A", "The picklist value is out of the range.")
        return value
    if t == "DateTime":
        if not isinstance(value, str):
            raise _type_error(value, col)
        try:
            return to_epoch(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError as e:
            raise _type_error(value, col) from e
    if t == "Uniqueidentifier":
        if not isinstance(value, str) or not is_guid(value):
            raise _type_error(value, col)
        return value.lower()
    return value


def _resolve_bind(state: State, table: Table, nav: str, value: Any,
                  content_ids: dict[str, str]) -> tuple[Column, str | None, str | None]:
    """`parentcustomerid_account@odata.bind` -> (column, target logical, guid)."""
    col = table.columns.get(nav)
    target: str | None = None
    if col is None or not col.is_lookup:
        base, _, suffix = nav.rpartition("_")
        col = table.columns.get(base)
        if col is None or not col.is_lookup or suffix not in col.targets:
            raise bad_request(
                f"An undeclared property '{nav}' which only has property annotations in the "
                "payload but no property value was found in the payload. In OData, only "
                "declared navigation properties and declared named streams can be "
                "represented as properties without values.")
        target = suffix
    if value is None:
        return col, None, None
    if not isinstance(value, str):
        raise bad_request(f"Invalid @odata.bind value for '{nav}'.")
    if value.startswith("$") and value in content_ids:
        value = content_ids[value]
    m = _BIND.match(value)
    if not m:
        raise bad_request(f"Bad Request - Error in query syntax: '{value}'.")
    entity_set, key = m.group(1), m.group(2).strip()
    ttable = state.by_set.get(entity_set)
    if ttable is None or ttable.logical_name not in col.targets:
        raise bad_request(f"Resource not found for the segment '{entity_set}'.")
    if target is not None and ttable.logical_name != target:
        raise bad_request(f"Invalid target '{entity_set}' for '{nav}'.")
    key = key.lower()
    if not is_guid(key) or key not in state.stores[ttable.logical_name].rows:
        raise not_found(ttable.logical_name, key)
    return col, ttable.logical_name, key


def parse_body(state: State, table: Table, body: Any, content_ids: dict[str, str],
               creating: bool) -> dict[str, Any]:
    """Validate a JSON payload into {column: value} (+ `col.t` for polymorphic lookups)."""
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    changes: dict[str, Any] = {}
    for name, value in body.items():
        if name.startswith("@"):
            continue
        if name.endswith("@odata.bind"):
            col, target, gid = _resolve_bind(state, table, name[: -len("@odata.bind")], value,
                                             content_ids)
            changes[col.name] = gid
            if len(col.targets) > 1:
                changes[col.name + ".t"] = target
            continue
        if "@" in name:
            continue  # instance annotations on properties are ignored
        found = table.columns.get(name)
        if found is None or found.is_lookup:
            raise bad_request(
                f"The property '{name}' does not exist on type "
                f"'Microsoft.Dynamics.CRM.{table.logical_name}'. Make sure to only use property "
                "names that are defined by the type or mark the type as open type.")
        if creating and not found.valid_for_create and name != table.primary_id:
            continue  # silently ignored (entity-attribute-metadata.md)
        if not creating and not found.valid_for_update and found.type != "State":
            continue
        changes[name] = _coerce(table, found, value)
    return changes


def _check_field_security(state: State, table: Table, user: UserConfig,
                          changes: dict[str, Any], creating: bool) -> None:
    for name in changes:
        col = table.columns.get(name)
        if col is None or not col.secured:
            continue
        perm = state.permission(user, table.logical_name, name)
        if creating and not perm.create:
            raise DataverseError(
                403, "0x8004F502",
                "The user does not have create permissions to a secured field. The requested "
                "operation could not be completed.")
        if not creating and not perm.update:
            raise DataverseError(
                403, "0x8004F507",
                "The user doesn't have AttributePrivilegeUpdate and not granted shared access "
                f"for a secured attribute during update operation. Attribute: {name}")


def _check_keys(state: State, table: Table, rid: str, post: Row) -> None:
    store = state.stores[table.logical_name]
    for key in table.keys:
        kt = store.key_tuple(key.name, post)
        if kt is None:
            continue
        other = store.key_index[key.name].get(kt)
        if other is not None and other != rid:
            cols = ",".join(key.columns)
            raise DataverseError(
                412, "0x80060892",
                f"Entity Key {key.name} violated. A record with the same value for {cols} "
                "already exists. A duplicate record cannot be created. Remove the duplicate "
                "value and try again.")


def _check_duplicates(state: State, table: Table, rid: str, post: Row) -> None:
    email = post.get("emailaddress1")
    if not isinstance(email, str):
        return
    if any(i != rid for i in state.stores[table.logical_name].ids_by_email(email)):
        raise DataverseError(
            412, "0x80040333",
            "A record was not created or updated because a duplicate of the current record "
            "already exists.")


def apply_write(state: State, table: Table, user: UserConfig, rid: str, existing: Row | None,
                changes: dict[str, Any], headers: dict[str, str],
                journal: list[Any] | None, check_privileges: bool = True) -> Row:
    """Create (existing None) or update a row; returns the stored post-image.

    `check_privileges=False` is for writes the platform makes itself (plug-in follow-ups,
    the system-context parts of Merge)."""
    creating = existing is None
    if check_privileges:
        security.check_write(state, user, table.logical_name, existing, changes, rid)
    _check_field_security(state, table, user, changes, creating)
    now = int(time.time())
    post: Row = dict(existing) if existing is not None else {}
    for k, v in changes.items():
        if v is None:
            post.pop(k, None)
        else:
            post[k] = v
    for col in table.columns.values():
        if col.required_level == "SystemRequired" and col.name in changes and \
                changes[col.name] is None:
            raise bad_request(f"Attribute '{col.name}' cannot be set to NULL.", code="0x80040203")
    if creating:
        post[table.primary_id] = rid
        post["createdon"] = now
        post["createdby"] = user.systemuserid
        if "ownerid" in table.columns and "ownerid" not in post:
            post["ownerid"] = user.systemuserid
            post["ownerid.t"] = "systemuser"
        if "statecode" in table.columns:
            post["statecode"] = 0
            post.setdefault("statuscode", 1)
    elif "statecode" in changes and "statuscode" not in changes:
        sc = table.columns["statecode"]
        if sc.option_state:
            post["statuscode"] = sc.option_state[post["statecode"]]
    if "statuscode" in post and "statecode" in post:
        st = table.columns["statuscode"].option_state or {}
        if st.get(post["statuscode"], post["statecode"]) != post["statecode"]:
            raise DataverseError(400, "0x8004431A",
                                 f"{post['statuscode']} is not a valid status code for state "
                                 f"code {table.logical_name}State.{post['statecode']}")
    if table.primary_name == "fullname":
        full = " ".join(p for p in (post.get("firstname"), post.get("lastname")) if p)
        if full:
            post["fullname"] = full
        else:
            post.pop("fullname", None)
    post["modifiedon"] = now
    post["modifiedby"] = user.systemuserid
    op = "create" if creating else "update"
    serverlogic.pre_operation(state, table, post, changes, op)
    _check_keys(state, table, rid, post)
    if headers.get("mscrm.suppressduplicatedetection", "").lower() == "false":
        _check_duplicates(state, table, rid, post)
    post["versionnumber"] = state.next_version()
    # Synchronous post-operation steps run in the write's transaction: if one fails, the
    # write itself is undone, so a lone write needs a journal of its own when there are any.
    own = journal is None and serverlogic.has_post_steps(state, table)
    if own:
        journal = []
    state.stores[table.logical_name].put(rid, post, journal)
    try:
        # Each step is a separate update of the row (its own version).
        for run_as, follow in serverlogic.follow_ups(state, table, post, changes, op, user):
            state.plugin_depth += 1
            try:
                post = apply_write(state, table, run_as, rid, post, follow, headers, journal,
                                   check_privileges=False)
            finally:
                state.plugin_depth -= 1
    except DataverseError:
        if own and journal is not None:
            rollback(journal)
        raise
    return post


def new_id() -> str:
    return str(uuid.uuid4())
