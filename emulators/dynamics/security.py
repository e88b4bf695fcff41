"""Security roles at work: privilege checks, the PrivilegeDenied error, RetrieveUserPrivileges.

A user holds roles; a role grants, per table, Create/Read/Write/Delete/Append/AppendTo/
Assign/Share at User (Basic), Business Unit (Local), Parent:Child BU (Deep) or Organization
(Global) depth, plus org-wide privileges such as prvMerge. The failure this prevents: a
sync that only ever met an all-powerful user and breaks (or silently skips records) when
its real security role lacks a privilege, or has only user-level Read on a table it
change-tracks.

The emulator has one business unit, so Local and Deep reach every row; only User depth
narrows what a user sees or writes (rows it owns), and change tracking asks for
Organization depth. The roles themselves (parsing, ids, loading from config) are in
roles.py, below the org state that holds them.
"""

from __future__ import annotations

from typing import Any

from emulators.dynamics.config import UserConfig
from emulators.dynamics.errors import DataverseError
from emulators.dynamics.roles import (
    DEPTH_NAMES,
    Role,
    make_role,
    parse_depth,
    parse_op,
    privilege_id,
)
from emulators.dynamics.state import State

# Object type codes and display names shown in the PrivilegeDenied text.
_OTC = {
    "account": (1, "Account"),
    "contact": (2, "Contact"),
    "lead": (4, "Lead"),
    "systemuser": (8, "User"),
}
# Privilege names use the schema name; systemuser's privileges are prv<Op>User.
_PRV_ENTITY = {"account": "Account", "contact": "Contact", "lead": "Lead", "systemuser": "User"}


def privilege_name(table: str, op: str) -> str:
    return f"prv{op}{_PRV_ENTITY.get(table, table)}"


def _user_roles(state: State, user: UserConfig) -> list[Role]:
    return [state.roles[n] for n in state.user_roles.get(user.systemuserid, []) if n in state.roles]


def depth(state: State, user: UserConfig, table: str, op: str) -> int | None:
    """The deepest grant of `op` on `table` across the user's roles; None = not held."""
    best: int | None = None
    for role in _user_roles(state, user):
        d = role.privileges.get((table, op))
        if d is not None and (best is None or d > best):
            best = d
    return best


def privilege_denied(
    state: State, user: UserConfig, table: str | None, name: str
) -> DataverseError:
    """403 PrivilegeDenied in the shape Dataverse answers (observed text, see README)."""
    roles = _user_roles(state, user)
    count = sum(len(r.privileges) + len(r.global_privileges) for r in roles)
    head = (
        f"Principal user (Id={user.systemuserid}, type=8, roleCount={len(roles)}, "
        f"privilegeCount={count}, accessMode='0 Read-Write', "
        f"AADObjectId='{user.object_id}', businessUnitId={state.cfg.business_unit_id}), "
        f"is missing {name} privilege (Id={privilege_id(name)})"
    )
    if table is not None:
        otc, label = _OTC.get(table, (10000, table))
        head += f" on OTC={otc} for entity '{table}' (LocalizedName='{label}')"
    return DataverseError(
        403,
        "0x80040220",
        f"{head}. context.Caller={user.systemuserid}. Consider adding "
        "missed privilege to one of the principal (user/team) roles.",
    )


def access_denied(user: UserConfig, table: str, op: str, rid: str) -> DataverseError:
    """403 when the privilege is held at User depth but the row belongs to someone else
    (client-errors.md: the privilege check passed, the access check failed)."""
    return DataverseError(
        403,
        "0x80048306",
        f"Principal with ID {user.systemuserid} does not have "
        f"{op}Access right(s) for record with ID {rid} of entity {table}.",
    )


def _owned(row: dict[str, Any] | None, user: UserConfig) -> bool:
    return row is None or row.get("ownerid", user.systemuserid) == user.systemuserid


def require(
    state: State,
    user: UserConfig,
    table: str,
    op: str,
    row: dict[str, Any] | None = None,
    rid: str = "",
) -> None:
    """Raise unless `user` may do `op` on `table` (and on `row`, if given)."""
    d = depth(state, user, table, op)
    if d is None:
        raise privilege_denied(state, user, table, privilege_name(table, op))
    if d == 0 and row is not None and not _owned(row, user):
        raise access_denied(user, table, op, rid)


def require_global(state: State, user: UserConfig, name: str) -> None:
    if not any(name in r.global_privileges for r in _user_roles(state, user)):
        raise privilege_denied(state, user, None, name)


def require_org_read(state: State, user: UserConfig, table: str) -> None:
    """Change tracking needs Organization-level Read ("Use change tracking to synchronize
    data with external systems"); below that the emulator answers PrivilegeDenied."""
    d = depth(state, user, table, "Read")
    if d is None or d < 3:
        raise privilege_denied(state, user, table, privilege_name(table, "Read"))


def read_filter(state: State, user: UserConfig, table: str) -> Any:
    """None when every row is readable, else a predicate keeping the user's own rows."""
    require(state, user, table, "Read")
    if depth(state, user, table, "Read") != 0 or "ownerid" not in state.tables[table].columns:
        return None
    uid = user.systemuserid
    return lambda row: row.get("ownerid") == uid


def check_write(
    state: State,
    user: UserConfig,
    table: str,
    existing: dict[str, Any] | None,
    changes: dict[str, Any],
    rid: str,
) -> None:
    """Create or Write on the table, plus Append / AppendTo for each lookup being set."""
    if existing is None:
        require(state, user, table, "Create")
    else:
        require(state, user, table, "Write", existing, rid)
    tdef = state.tables[table]
    for name, value in changes.items():
        col = tdef.columns.get(name)
        if value is None or col is None or not col.is_lookup or col.type == "Owner":
            continue
        require(state, user, table, "Append")
        target = changes.get(name + ".t") or col.targets[0]
        require(state, user, str(target), "AppendTo")


def user_privileges(state: State, user: UserConfig) -> list[dict[str, Any]]:
    """`RolePrivileges` of RetrieveUserPrivileges (roleprivilege.md): deepest grant each."""
    best: dict[str, int] = {}
    for role in _user_roles(state, user):
        for (table, op), d in role.privileges.items():
            name = privilege_name(table, op)
            best[name] = max(d, best.get(name, -1))
        for name in role.global_privileges:
            best[name] = 3
    return [
        {
            "BusinessUnitId": state.cfg.business_unit_id,
            "Depth": DEPTH_NAMES[d],
            "PrivilegeId": privilege_id(name),
            "PrivilegeName": name,
        }
        for name, d in sorted(best.items())
    ]


# -- admin API (`/_emulator/security/...`) --------------------------------------------
def admin(state: State, method: str, parts: list[str], data: Any) -> tuple[int, Any]:
    """GET /security; PUT /security/roles (define a role); PUT /security/users (assign
    roles); PUT|DELETE /security/privileges (grant / revoke one privilege)."""
    sub = parts[0] if parts else ""
    if sub == "" and method == "GET":
        return 200, {
            "roles": [r.as_dict() for r in state.roles.values()],
            "users": {_ref(state, uid): names for uid, names in state.user_roles.items()},
        }
    if sub == "roles" and method in ("PUT", "POST"):
        role = make_role(
            data["name"], data.get("privileges") or {}, data.get("global_privileges") or ()
        )
        state.roles[role.name] = role
        for ref in data.get("users") or ():
            names = state.user_roles.setdefault(_uid(state, ref), [])
            if role.name not in names:
                names.append(role.name)
        return 200, role.as_dict()
    if sub == "roles" and method == "DELETE" and len(parts) > 1:
        state.roles.pop(parts[1], None)
        return 200, {}
    if sub == "users" and method in ("PUT", "POST"):
        unknown = [n for n in data["roles"] if n not in state.roles]
        if unknown:
            raise ValueError(f"unknown roles {unknown}")
        state.user_roles[_uid(state, data["user"])] = list(data["roles"])
        return 200, {"user": data["user"], "roles": list(data["roles"])}
    if sub == "privileges" and method in ("PUT", "POST", "DELETE"):
        # A table privilege granted with depth null is revoked; global ones have no depth.
        revoke = method == "DELETE" or ("table" in data and data.get("depth") is None)
        return 200, _grant(state, data, revoke=revoke)
    raise KeyError(f"no security route {method} {'/'.join(parts)}")


def grant_privilege(
    state: State, user: str, table: str | None, privilege: str, depth: str = "Organization"
) -> None:
    """Grant in code (e.g. a scheduled world event); `table` None = a global privilege."""
    _grant(
        state, {"user": user, "table": table, "privilege": privilege, "depth": depth}, revoke=False
    )


def revoke_privilege(state: State, user: str, table: str | None, privilege: str) -> None:
    """Revoke from every role `user` holds (a scheduled world event can call this)."""
    _grant(state, {"user": user, "table": table, "privilege": privilege}, revoke=True)


def _grant(state: State, data: dict[str, Any], revoke: bool) -> dict[str, Any]:
    """Grant or revoke `privilege` on `table` (or a global `privilege` such as prvMerge)
    in `role`, or in every role of `user` (grant: the user's first role)."""
    if "role" in data:
        targets = [state.roles[data["role"]]]
    else:
        uid = _uid(state, data["user"])
        targets = [state.roles[n] for n in state.user_roles.get(uid, []) if n in state.roles]
        if not revoke:
            if not targets:
                raise ValueError("the user holds no role to grant in")
            targets = targets[:1]
    table = data.get("table")
    priv = str(data["privilege"])
    for role in targets:
        if table is None:
            (role.global_privileges.discard if revoke else role.global_privileges.add)(priv)
        elif revoke:
            role.privileges.pop((table, parse_op(priv)), None)
        else:
            if table not in state.tables:
                raise ValueError(f"unknown table {table!r}")
            role.privileges[(table, parse_op(priv))] = parse_depth(data["depth"])
    return {"roles": [r.as_dict() for r in targets]}


def _uid(state: State, ref: str) -> str:
    u = state.users_by_client.get(ref) or state.users_by_id.get(ref)
    if u is None:
        raise ValueError(f"unknown user {ref!r}")
    return u.systemuserid


def _ref(state: State, uid: str) -> str:
    u = state.users_by_id.get(uid)
    return u.client_id if u else uid
