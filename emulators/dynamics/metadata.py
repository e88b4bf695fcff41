"""EntityDefinitions (tables, Attributes, Keys, option sets), RetrievePrincipalAttributePrivileges.

The sync learns MaxLength, IsSecured, IsValidForCreate/Update and its own field
permissions from these endpoints before writing; serving them from the same schema objects
that drive validation keeps the emulator self-consistent, so a sync that strips columns by
metadata is tested against the same rules that would reject them.
"""

from __future__ import annotations

import re
from typing import Any

from odata_query import ast

from emulators.dynamics.errors import DataverseError, bad_request
from emulators.dynamics.messages import ApiRequest, ApiResponse
from emulators.dynamics.odata_filter import parse
from emulators.dynamics.schema import Column, Table
from emulators.dynamics.state import State

_TYPE_META = {"String": "StringAttributeMetadata", "Memo": "MemoAttributeMetadata",
              "Boolean": "BooleanAttributeMetadata", "Integer": "IntegerAttributeMetadata",
              "BigInt": "BigIntAttributeMetadata", "Picklist": "PicklistAttributeMetadata",
              "State": "StateAttributeMetadata", "Status": "StatusAttributeMetadata",
              "DateTime": "DateTimeAttributeMetadata", "Lookup": "LookupAttributeMetadata",
              "Owner": "LookupAttributeMetadata", "Customer": "LookupAttributeMetadata",
              "Uniqueidentifier": "UniqueIdentifierAttributeMetadata"}
_BASE_PROPS = {"MetadataId", "LogicalName", "SchemaName", "AttributeType", "AttributeTypeName",
               "EntityLogicalName", "IsSecured", "IsValidForRead", "IsValidForCreate",
               "IsValidForUpdate", "RequiredLevel", "IsCustomAttribute", "IsPrimaryId",
               "IsPrimaryName", "CanBeSecuredForRead", "CanBeSecuredForCreate",
               "CanBeSecuredForUpdate", "DisplayName", "AttributeOf", "ColumnNumber"}
_ENUM = re.compile(r"Microsoft\.Dynamics\.CRM\.[A-Za-z]+'([^']*)'")


def _label(text: str) -> dict[str, Any]:
    loc = {"Label": text, "LanguageCode": 1033, "IsManaged": True}
    return {"LocalizedLabels": [loc], "UserLocalizedLabel": loc}


def _schema_name(name: str) -> str:
    return name if name.startswith("new_") else name[:1].upper() + name[1:]


def attribute_json(table: Table, col: Column, n: int) -> dict[str, Any]:
    is_key = any(col.name in k.columns for k in table.keys)
    system = col.name in ("createdon", "modifiedon", "createdby", "modifiedby", "versionnumber",
                          "createdonbehalfby", "modifiedonbehalfby", table.primary_id)
    d: dict[str, Any] = {
        "@odata.type": f"#Microsoft.Dynamics.CRM.{_TYPE_META.get(col.type, 'AttributeMetadata')}",
        "MetadataId": col.metadata_id, "LogicalName": col.name,
        "SchemaName": _schema_name(col.name), "EntityLogicalName": table.logical_name,
        "AttributeType": col.type, "AttributeTypeName": {"Value": f"{col.type}Type"},
        "IsSecured": col.secured, "IsValidForRead": col.valid_for_read,
        "IsValidForCreate": col.valid_for_create, "IsValidForUpdate": col.valid_for_update,
        "RequiredLevel": {"Value": col.required_level, "CanBeChanged": col.required_level !=
                          "SystemRequired",
                          "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings"},
        "IsCustomAttribute": col.is_custom, "IsPrimaryId": col.name == table.primary_id,
        "IsPrimaryName": col.name == table.primary_name,
        "CanBeSecuredForRead": {"Value": not (is_key or system), "CanBeChanged": False},
        "CanBeSecuredForCreate": {"Value": not (is_key or system), "CanBeChanged": False},
        "CanBeSecuredForUpdate": {"Value": not (is_key or system), "CanBeChanged": False},
        "DisplayName": _label(col.name), "AttributeOf": None, "ColumnNumber": n,
    }
    if col.type in ("String", "Memo"):
        d["MaxLength"] = col.max_length
        d["FormatName"] = {"Value": col.format_name or "Text"}
    if col.type == "DateTime":
        d["DateTimeBehavior"] = {"Value": "UserLocal"}
        d["Format"] = "DateAndTime"
    if col.is_lookup:
        d["Targets"] = list(col.targets)
    return d


def option_set_json(col: Column) -> dict[str, Any]:
    options = []
    for value, label in (col.options or {}).items():
        o: dict[str, Any] = {"Value": value, "Label": _label(label), "Description": _label("")}
        if col.type == "State" and col.option_state:
            o["DefaultStatus"] = col.option_state.get(value)
        if col.type == "Status" and col.option_state:
            o["State"] = col.option_state.get(value)
        options.append(o)
    return {"MetadataId": col.metadata_id, "Name": col.name, "IsGlobal": False,
            "OptionSetType": col.type, "Options": options}


def boolean_option_set(col: Column) -> dict[str, Any]:
    return {"MetadataId": col.metadata_id, "Name": col.name, "IsGlobal": False,
            "OptionSetType": "Boolean", "TrueOption": {"Value": 1, "Label": _label("Yes")},
            "FalseOption": {"Value": 0, "Label": _label("No")}}


def keys_json(table: Table) -> list[dict[str, Any]]:
    from emulators.dynamics.schema import metadata_id

    return [{"MetadataId": metadata_id(table.logical_name, "key", k.name), "LogicalName": k.name,
             "SchemaName": k.name, "EntityLogicalName": table.logical_name,
             "KeyAttributes": list(k.columns), "EntityKeyIndexStatus": "Active",
             "DisplayName": _label(k.name)} for k in table.keys]


def entity_json(table: Table) -> dict[str, Any]:
    return {"MetadataId": table.metadata_id, "LogicalName": table.logical_name,
            "SchemaName": _schema_name(table.logical_name), "EntitySetName": table.entity_set,
            "LogicalCollectionName": table.entity_set, "PrimaryIdAttribute": table.primary_id,
            "PrimaryNameAttribute": table.primary_name,
            "ChangeTrackingEnabled": table.change_tracking,
            "CanChangeTrackingBeEnabled": {"Value": True, "CanBeChanged": False},
            "IsOptimisticConcurrencyEnabled": True, "OwnershipType": "UserOwned",
            "IsCustomEntity": False, "DisplayName": _label(table.logical_name)}


# -- tiny evaluator for metadata $filter (dict values, one-level complex paths) -------------
def _meta_filter(text: str) -> Any:
    node = parse(_ENUM.sub(lambda m: "'" + m.group(1) + "'", text))

    def ev(n: ast._Node, d: dict[str, Any]) -> Any:
        if isinstance(n, ast.BoolOp):
            a, b = ev(n.left, d), ev(n.right, d)
            return (a and b) if isinstance(n.op, ast.And) else (a or b)
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.Not):
            return not ev(n.operand, d)
        if isinstance(n, ast.Compare):
            a, b = ev(n.left, d), ev(n.right, d)
            if isinstance(n.comparator, ast.Eq):
                return a == b
            if isinstance(n.comparator, ast.NotEq):
                return a != b
            raise bad_request("Only eq/ne are supported in metadata filters.")
        if isinstance(n, ast.Identifier):
            return d.get(n.name)
        if isinstance(n, ast.Attribute):
            owner = ev(n.owner, d)
            return owner.get(n.attr) if isinstance(owner, dict) else None
        if isinstance(n, ast.Call) and n.func.name in ("contains", "startswith", "endswith"):
            s, sub = ev(n.args[0], d), ev(n.args[1], d)
            if not isinstance(s, str):
                return False
            return {"contains": sub in s, "startswith": s.startswith(sub),
                    "endswith": s.endswith(sub)}[n.func.name]
        if isinstance(n, ast._Literal):
            return n.py_val
        raise bad_request(f"Unsupported metadata filter '{text}'.")
    return lambda d: ev(node, d)


def _select(d: dict[str, Any], raw: str | None, allowed: set[str] | None,
            type_name: str) -> dict[str, Any]:
    if not raw:
        return d
    names = [s.strip() for s in raw.split(",") if s.strip()]
    for name in names:
        if (allowed is not None and name not in allowed) or name not in d:
            if name in ("OptionSet", "GlobalOptionSet"):
                continue
            raise DataverseError(
                400, "0x80060888", f"Could not find a property named '{name}' on type "
                                   f"'Microsoft.Dynamics.CRM.{type_name}'.")
    out = {k: d[k] for k in names if k in d}
    out["MetadataId"] = d["MetadataId"]
    if "@odata.type" in d:
        out["@odata.type"] = d["@odata.type"]
    return out


def _expand_opts(raw: str | None) -> dict[str, dict[str, str]]:
    """`Attributes($select=a,b),Keys` -> {'Attributes': {'$select': 'a,b'}, 'Keys': {}}."""
    out: dict[str, dict[str, str]] = {}
    if not raw:
        return out
    depth, cur, items = 0, "", []
    for ch in raw:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    for item in items:
        name, _, inner = item.strip().partition("(")
        opts: dict[str, str] = {}
        for part in inner.rstrip(")").split(";"):
            k, _, v = part.partition("=")
            if k.strip():
                opts[k.strip()] = v
        out[name.strip()] = opts
    return out


def _attributes(table: Table, cast: str | None, opts: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    expand = _expand_opts(opts.get("$expand"))
    flt = _meta_filter(opts["$filter"]) if opts.get("$filter") else None
    for n, col in enumerate(table.columns.values()):
        meta = _TYPE_META.get(col.type, "AttributeMetadata")
        if cast and meta != cast and cast != "EnumAttributeMetadata":
            continue
        d = attribute_json(table, col, n)
        if flt is not None and not flt(d):
            continue
        allowed = None if cast else _BASE_PROPS | {"@odata.type"}
        d2 = _select(d, opts.get("$select"), allowed, cast or "AttributeMetadata")
        if "OptionSet" in expand:
            d2["OptionSet"] = boolean_option_set(col) if col.type == "Boolean" \
                else option_set_json(col)
        if "GlobalOptionSet" in expand:
            d2["GlobalOptionSet"] = None
        out.append(d2)
    return out


def entity_definitions(state: State, req: ApiRequest, key: str | None,
                       rest: list[str]) -> ApiResponse:
    if req.method != "GET":
        raise DataverseError(405, "0x80040315", "This action is not supported.")
    root = req.api_root
    if key is None:
        flt = _meta_filter(req.query["$filter"]) if req.query.get("$filter") else None
        items = []
        for t in state.tables.values():
            d = entity_json(t)
            if flt is None or flt(d):
                items.append(_select(d, req.query.get("$select"), None, "EntityMetadata"))
        return ApiResponse.json(200, {"@odata.context": f"{root}$metadata#EntityDefinitions",
                                      "value": items})
    m = re.match(r"^\s*LogicalName\s*=\s*'([^']*)'\s*$", key)
    table = None
    if m:
        table = state.tables.get(m.group(1))
    else:
        table = next((t for t in state.tables.values() if t.metadata_id == key.strip().lower()),
                     None)
    if table is None:
        raise DataverseError(404, "0x80040217",
                             f"Could not find entity with logical name or id '{key}'.")
    if not rest:
        d = _select(entity_json(table), req.query.get("$select"), None, "EntityMetadata")
        for name, opts in _expand_opts(req.query.get("$expand")).items():
            if name == "Attributes":
                d["Attributes"] = _attributes(table, None, opts)
            elif name == "Keys":
                d["Keys"] = [_select(k, opts.get("$select"), None, "EntityKeyMetadata")
                             for k in keys_json(table)]
            else:
                raise DataverseError(400, "0x80060888", f"Could not find a property named "
                                     f"'{name}' on type 'Microsoft.Dynamics.CRM.EntityMetadata'.")
        return ApiResponse.json(200, {
            "@odata.context": f"{root}$metadata#EntityDefinitions/$entity", **d})
    m2 = re.match(r"^(Attributes|Keys)(?:\((.*)\))?$", rest[0])
    if not m2:
        raise DataverseError(404, "0x80060888", f"Resource not found for the segment '{rest[0]}'.")
    if m2.group(1) == "Keys":
        return ApiResponse.json(200, {"@odata.context": f"{root}$metadata#EntityDefinitions"
                                      f"('{table.metadata_id}')/Keys", "value": keys_json(table)})
    opts = {k: v for k, v in req.query.items() if k.startswith("$")}
    cast = None
    if len(rest) > 1:
        cast = rest[1].removeprefix("Microsoft.Dynamics.CRM.")
    attrs = _attributes(table, cast, opts)
    if m2.group(2):
        inner = m2.group(2)
        lm = re.match(r"^\s*LogicalName\s*=\s*'([^']*)'\s*$", inner)
        want = lm.group(1) if lm else inner.strip().lower()
        one = [a for a in _attributes(table, cast, {k: v for k, v in opts.items()
                                                    if k != "$select"})
               if a["LogicalName"] == want or a["MetadataId"] == want]
        if not one:
            raise DataverseError(404, "0x80040217", f"Could not find attribute '{want}'.")
        return ApiResponse.json(200, {"@odata.context": f"{root}$metadata#EntityDefinitions"
                                      f"('{table.metadata_id}')/Attributes/$entity",
                                      **_select(one[0], opts.get("$select"), None,
                                                cast or "AttributeMetadata")})
    return ApiResponse.json(200, {
        "@odata.context": f"{root}$metadata#EntityDefinitions('{table.metadata_id}')/Attributes"
                          + (f"/Microsoft.Dynamics.CRM.{cast}" if cast else ""),
        "value": attrs})


def principal_attribute_privileges(state: State, req: ApiRequest, table: Table,
                                   key: str) -> ApiResponse:
    if table.logical_name != "systemuser":
        raise DataverseError(404, "0x80060888", "RetrievePrincipalAttributePrivileges is bound to "
                                                "systemuser and team.")
    uid = key.strip().lower()
    user = state.users_by_id.get(uid)
    if user is None:
        raise DataverseError(404, "0x80040217", f"systemuser With Id = {uid} Does Not Exist")
    privs = []
    for t in state.tables.values():
        for col in t.columns.values():
            if not col.secured:
                continue
            perm = state.field_permissions.get((uid, t.logical_name, col.name))
            if perm is None:
                continue
            privs.append({"AttributeId": col.metadata_id, "CanCreate": 4 if perm.create else 0,
                          "CanRead": 4 if perm.read else 0, "CanUpdate": 4 if perm.update else 0})
    return ApiResponse.json(200, {
        "@odata.context": f"{req.api_root}$metadata#Microsoft.Dynamics.CRM."
                          "RetrievePrincipalAttributePrivilegesResponse",
        "AttributePrivileges": privs})
