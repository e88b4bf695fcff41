"""The mutable world of one emulator instance: schema, rows, users, admin-set behaviour.

Everything a test can change through `/_emulator/` lives here, so `reset` is a single
well-defined operation and two apps in one process never share data by accident.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from emulators.dynamics.config import DynamicsConfig, UserConfig
from emulators.dynamics.roles import Role, load_roles
from emulators.dynamics.schema import Table, build_tables
from emulators.dynamics.store import TableStore


@dataclass
class FieldPermission:
    read: bool = False
    create: bool = False
    update: bool = False


@dataclass
class Rule:
    """A plug-in / business-rule stand-in (serverlogic.py): when `condition` holds on the
    post-image, reject (default) or rewrite `column`; `stage="post"` makes it a follow-on
    update after the write."""

    id: int
    table: str
    condition: str | None
    message: str
    on: tuple[str, ...] = ("create", "update")
    action: str = "reject"
    column: str | None = None
    value: Any = None
    stage: str = "pre"
    when_changed: tuple[str, ...] = ()
    run_as: str | None = None


@dataclass
class EndpointBehaviour:
    latency_ms: float = 0.0
    per_operation_ms: float = 0.0
    # fault: None | "500" | "503" | "timeout" | "429"; `remaining` None = every call.
    fault: str | None = None
    remaining: int | None = None
    retry_after: int = 5


@dataclass
class EndpointStats:
    calls: int = 0
    throttled: int = 0
    errors: int = 0
    execution_ms: float = 0.0
    # The modelled execution time counted against the 1,200 s / 5 min limit (service ms,
    # under a world profile that spends time; 0 otherwise): what benchmarks divide by
    # that budget. `execution_ms` is the wall time the emulator took.
    service_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "throttled": self.throttled,
            "errors": self.errors,
            "execution_ms": round(self.execution_ms, 3),
            "service_ms": round(self.service_ms, 3),
        }


@dataclass
class State:
    cfg: DynamicsConfig
    tables: dict[str, Table] = field(default_factory=dict)
    stores: dict[str, TableStore] = field(default_factory=dict)
    by_set: dict[str, Table] = field(default_factory=dict)
    version: int = 1000
    users_by_client: dict[str, UserConfig] = field(default_factory=dict)
    users_by_id: dict[str, UserConfig] = field(default_factory=dict)
    # (systemuserid, table, column) -> permission; only consulted for secured columns.
    field_permissions: dict[tuple[str, str, str], FieldPermission] = field(default_factory=dict)
    rules: list[Rule] = field(default_factory=list)
    next_rule_id: int = 1
    behaviours: dict[str, EndpointBehaviour] = field(default_factory=dict)
    stats: dict[str, EndpointStats] = field(default_factory=dict)
    # Seconds added to "now" when judging delta-token age (admin: age tokens).
    ct_clock_offset: float = 0.0
    # Security roles by name and the role names each systemuserid holds (roles.py).
    roles: dict[str, Role] = field(default_factory=dict)
    user_roles: dict[str, list[str]] = field(default_factory=dict)
    # Nesting of synchronous plug-in steps in the current request (serverlogic.py).
    plugin_depth: int = 0
    # Delta tokens handed out (bounded, oldest first) and those made to expire early.
    ct_issued: dict[str, None] = field(default_factory=dict)
    ct_revoked: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.tables = build_tables(self.cfg)
        self.stores = {name: TableStore(t) for name, t in self.tables.items()}
        self.by_set = {t.entity_set: t for t in self.tables.values()}
        self.version = 1000
        self.users_by_client = {u.client_id: u for u in self.cfg.users}
        self.users_by_id = {u.systemuserid: u for u in self.cfg.users}
        self.field_permissions = {}
        self.rules = []
        self.next_rule_id = 1
        self.roles, self.user_roles = load_roles(self.cfg)
        self.plugin_depth = 0
        self.behaviours = {}
        self.stats = {}
        self.ct_clock_offset = 0.0
        self.ct_issued = {}
        self.ct_revoked = set()
        now = int(time.time())
        store = self.stores["systemuser"]
        for u in self.cfg.users:
            first, _, last = u.fullname.rpartition(" ")
            row: dict[str, Any] = {
                "systemuserid": u.systemuserid,
                "fullname": u.fullname,
                "firstname": first,
                "lastname": last,
                "domainname": f"{u.client_id}@emulator.local",
                "internalemailaddress": f"{u.client_id}@emulator.local",
                "applicationid": None,
                "azureactivedirectoryobjectid": u.object_id,
                "isdisabled": False,
                "createdon": now,
                "modifiedon": now,
                "versionnumber": self.next_version(),
            }
            store.put(u.systemuserid, {k: v for k, v in row.items() if v is not None}, None)

    def next_version(self) -> int:
        self.version += 1
        return self.version

    def permission(self, user: UserConfig, table: str, column: str) -> FieldPermission:
        return self.field_permissions.get((user.systemuserid, table, column), FieldPermission())
