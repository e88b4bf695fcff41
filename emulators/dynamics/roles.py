"""Security roles as data: privileges per table at a depth, org-wide privileges, who holds what.

The state of an org (state.py) holds the roles loaded from config; the checks made
with them, the PrivilegeDenied error and the admin routes live in security.py, which
reads that state. Keeping the role data here lets `state` import it without importing
the checks that import `state`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from emulators.dynamics.config import PRIVILEGE_OPS, DynamicsConfig

_NS = uuid.UUID("6f1c8a52-4d0e-4c43-9a53-d3a1f4b0e002")

# Depth names accepted in config/admin calls -> PrivilegeDepth value (privilegedepth.md).
DEPTHS = {
    "user": 0,
    "basic": 0,
    "businessunit": 1,
    "local": 1,
    "parentchildbusinessunit": 2,
    "parent:childbusinessunit": 2,
    "deep": 2,
    "organization": 3,
    "global": 3,
}
DEPTH_NAMES = ("Basic", "Local", "Deep", "Global")


def privilege_id(name: str) -> str:
    """Deterministic, so ids survive reset (clients may cache them)."""
    return str(uuid.uuid5(_NS, name.lower()))


def parse_depth(raw: Any) -> int:
    if isinstance(raw, int) and 0 <= raw <= 3:
        return raw
    key = str(raw).replace(" ", "").replace("_", "").lower()
    if key not in DEPTHS:
        raise ValueError(
            f"unknown privilege depth {raw!r} (User, BusinessUnit, "
            "ParentChildBusinessUnit, Organization)"
        )
    return DEPTHS[key]


def parse_op(raw: str) -> str:
    for op in PRIVILEGE_OPS:
        if op.lower() == str(raw).lower():
            return op
    raise ValueError(f"unknown privilege {raw!r} ({', '.join(PRIVILEGE_OPS)})")


@dataclass
class Role:
    name: str
    role_id: str
    # (table logical name, op) -> depth 0..3
    privileges: dict[tuple[str, str], int] = field(default_factory=dict)
    global_privileges: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        tables: dict[str, dict[str, str]] = {}
        for (table, op), depth in sorted(self.privileges.items()):
            tables.setdefault(table, {})[op] = DEPTH_NAMES[depth]
        return {
            "name": self.name,
            "roleid": self.role_id,
            "privileges": tables,
            "global_privileges": sorted(self.global_privileges),
        }


def make_role(
    name: str, privileges: dict[str, dict[str, Any]], global_privileges: Any = ()
) -> Role:
    role = Role(name, str(uuid.uuid5(_NS, "role/" + name)))
    for table, ops in privileges.items():
        for op, depth in ops.items():
            if depth is not None:
                role.privileges[(table, parse_op(op))] = parse_depth(depth)
    role.global_privileges = set(global_privileges)
    return role


def load_roles(cfg: DynamicsConfig) -> tuple[dict[str, Role], dict[str, list[str]]]:
    roles: dict[str, Role] = {}
    holders: dict[str, list[str]] = {}
    ids = {u.client_id: u.systemuserid for u in cfg.users}
    for rc in cfg.roles:
        roles[rc.name] = make_role(rc.name, rc.privileges, rc.global_privileges)
        for ref in rc.users:
            holders.setdefault(ids.get(ref, ref), []).append(rc.name)
    return roles, holders
