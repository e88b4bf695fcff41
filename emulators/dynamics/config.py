"""Every knob of the Dynamics emulator in one dataclass.

Keeping limits, latencies, expiry and identities here (instead of scattered constants)
prevents tests from depending on hidden defaults: a test that needs a 2-request limit or a
1-day change-tracking expiry builds a `DynamicsConfig` and passes it to `create_app`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from emulators.dynamics.world import WorldConfig


@dataclass
class UserConfig:
    """An Entra app registration bound to a Dataverse systemuser (application or person)."""

    client_id: str
    client_secret: str
    systemuserid: str
    fullname: str
    # Entra object id; the token's `oid` claim.
    object_id: str = ""


@dataclass
class CustomColumn:
    """A tenant customisation added to a table's default schema."""

    table: str  # logical name, e.g. "contact"
    name: str
    type: str  # String | Boolean | Integer | Picklist | DateTime | Memo
    max_length: int | None = None
    options: dict[int, str] | None = None
    required_level: str = "None"


@dataclass
class AlternateKey:
    table: str
    name: str
    columns: tuple[str, ...]


def _default_users() -> list[UserConfig]:
    return [
        UserConfig(
            "sync-app",
            "sync-app-secret",
            "00000000-0000-4000-8000-00000000a001",
            "# Marketo Sync",
            "00000000-0000-4000-8000-0000000e0001",
        ),
        UserConfig(
            "sales-user",
            "sales-user-secret",
            "00000000-0000-4000-8000-00000000a002",
            "Sam Sales",
            "00000000-0000-4000-8000-0000000e0002",
        ),
    ]


def _default_custom_columns() -> list[CustomColumn]:
    cols: list[CustomColumn] = []
    for table in ("contact", "lead"):
        cols.append(CustomColumn(table, "new_marketoid", "String", max_length=20))
        cols.append(CustomColumn(table, "new_synctomkto", "Boolean"))
    return cols


def _default_keys() -> list[AlternateKey]:
    return [
        AlternateKey("contact", "new_marketoid_key", ("new_marketoid",)),
        AlternateKey("lead", "new_marketoid_key", ("new_marketoid",)),
    ]


# Table privileges a role can grant (security-roles.md); Share and Assign matter to Merge.
PRIVILEGE_OPS = ("Create", "Read", "Write", "Delete", "Append", "AppendTo", "Assign", "Share")


@dataclass
class RoleConfig:
    """A security role: per table, privilege -> depth (User, BusinessUnit,
    ParentChildBusinessUnit, Organization); `global_privileges` are org-wide ones such as
    prvMerge. `users` are client ids or systemuserids holding the role."""

    name: str
    privileges: dict[str, dict[str, str]]
    users: tuple[str, ...] = ()
    global_privileges: tuple[str, ...] = ()


def _default_roles() -> list[RoleConfig]:
    sync_tables = ("contact", "lead", "account", "systemuser")
    sync_ops = ("Create", "Read", "Write", "Delete", "Append", "AppendTo")
    admin_tables = ("contact", "lead", "account", "systemuser")
    return [
        RoleConfig("Marketo Sync User",
                   {t: {op: "Organization" for op in sync_ops} for t in sync_tables},
                   users=("sync-app",)),
        RoleConfig("System Administrator",
                   {t: {op: "Organization" for op in PRIVILEGE_OPS} for t in admin_tables},
                   users=("sales-user",), global_privileges=("prvMerge",)),
    ]


@dataclass
class ServerRuleConfig:
    """A business rule or plug-in step configured at start (same fields as `POST /rules`)."""

    table: str
    action: str = "reject"  # reject | set | upper | lower | increment
    on: tuple[str, ...] = ("create", "update")
    condition: str | None = None
    message: str = "Rejected by a business rule."
    column: str | None = None
    value: object = None
    stage: str = "pre"  # pre: in the same write; post: a follow-on update (new version)
    when_changed: tuple[str, ...] = ()
    run_as: str | None = None


@dataclass
class LimitsConfig:
    """Service protection limits (api-limits.md); all per user over a sliding window."""

    enabled: bool = True
    window_seconds: float = 300.0
    max_requests: int = 6000
    max_execution_ms: float = 1_200_000.0
    max_concurrent: int = 52


@dataclass
class DynamicsConfig:
    tenant_id: str = "00000000-0000-4000-8000-0000000000e1"
    organization_id: str = "00000000-0000-4000-8000-0000000000f1"
    business_unit_id: str = "00000000-0000-4000-8000-0000000000b1"
    users: list[UserConfig] = field(default_factory=_default_users)
    token_lifetime_seconds: int = 3599
    # HMAC key for access tokens; tokens from another emulator instance are rejected.
    token_signing_key: str = "dynamics-emulator-signing-key"
    custom_columns: list[CustomColumn] = field(default_factory=_default_custom_columns)
    alternate_keys: list[AlternateKey] = field(default_factory=_default_keys)
    change_tracking_tables: tuple[str, ...] = ("contact", "lead")
    expire_change_tracking_in_days: int = 7
    max_page_size: int = 5000
    max_batch_operations: int = 1000
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    # Added to every request before handling (ms); per-endpoint latency goes through admin API.
    base_latency_ms: float = 0.0
    # What an injected "timeout" fault does: sleep this long, then answer 504.
    fault_timeout_seconds: float = 130.0
    # Security roles (security.py); the defaults let both built-in users do what they need.
    roles: list[RoleConfig] = field(default_factory=_default_roles)
    # Business rules and plug-in steps present at start (serverlogic.py); none by default.
    server_rules: list[ServerRuleConfig] = field(default_factory=list)
    # Merge (actions.py): copy the subordinate's values into the master's empty columns
    # ("Merge table rows": existing master data is not overwritten).
    merge_fills_empty_columns: bool = True
    # Merge: the state/status a merged-away lead gets (assumption: Disqualified, Canceled).
    merge_lead_state: tuple[int, int] = (2, 7)
    # QualifyLead: more lead columns copied to the new contact (e.g. custom ones).
    qualify_extra_columns: tuple[str, ...] = ()
    # Profile knobs: time scale, latency, execution cost, faults, events (world.py).
    world: WorldConfig = field(default_factory=WorldConfig)
    seed: int = 0
    seed_contacts: int = 0
    seed_leads: int = 0

    def user_by_client(self, client_id: str) -> UserConfig | None:
        for u in self.users:
            if u.client_id == client_id:
                return u
        return None
