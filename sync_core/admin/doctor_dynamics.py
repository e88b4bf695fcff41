"""`doctor`'s Dynamics checks: endpoint, Entra ID token, application user, per table
access, change tracking, the sync's columns and the alternate key.

Reachability is probed without a token first, so an unreachable URL and a refused
credential are told apart; each failure names the Power Platform step that fixes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sync_core.admin.checks import FAST, README, Report, error_text
from sync_core.dataverse import DataverseClient
from sync_core.errors import AuthFailed, ChangeTrackingOff, RecordRejected, SyncError
from sync_core.fieldrules import ColumnInfo
from sync_core.mapping import ENTITIES, ENTITY_KEY, ENTITY_SET, Entity
from sync_core.mapping import Mapping as SyncMapping
from sync_core.metadata import Privilege, column_privileges, dynamics_columns, sync_identity
from sync_core.runtime import build_dataverse, resolve_ca_bundle, token_provider
from sync_core.settings import Settings

MARKETO_ID_DIGITS = 10  # Marketo person ids are 32-bit integers


async def _no_token(refresh: bool) -> str:
    return "doctor-reachability-probe"


def _entity_checks(entity: Entity) -> list[str]:
    return [
        f"dynamics.{entity}.{aspect}"
        for aspect in ("access", "change_tracking", "columns", "alternate_key")
    ]


async def check_dynamics(
    s: Settings, mapping: SyncMapping | None, r: Report, ca_bundle: str | None
) -> dict[Entity, dict[str, ColumnInfo]] | None:
    later = ["dynamics.user", *(n for e in ENTITIES for n in _entity_checks(e))]
    timeout = min(s.sync_http_timeout_seconds, 20)
    ca_bundle = resolve_ca_bundle(ca_bundle)
    # Reachability without credentials: an anonymous call must get Dataverse's 401.
    probe = build_dataverse(s, ca_bundle=ca_bundle, token=_no_token, timeout=timeout, retry=FAST)
    try:
        await probe.get_json("WhoAmI")
        endpoint = r.add("dynamics.endpoint", "PASS", f"{s.dynamics_url} answered")
    except AuthFailed:
        endpoint = r.add(
            "dynamics.endpoint", "PASS", f"{s.dynamics_url} answered (401 without a token)"
        )
    except (SyncError, ValueError) as exc:
        endpoint = r.add(
            "dynamics.endpoint",
            "FAIL",
            f"{s.dynamics_url} is not reachable as a Dataverse Web API: {error_text(exc)}",
            "set DYNAMICS_URL to the environment URL, e.g. https://<org>.crm.dynamics.com "
            "(Power Platform admin center -> Environments -> Environment URL)",
        )
    finally:
        await probe.aclose()

    token = token_provider(s, ca_bundle)
    how = "managed identity" if s.uses_managed_identity else "client secret"
    try:
        await token(False)
        r.add(
            "dynamics.credentials",
            "PASS",
            f"Entra ID issued a token for {s.dynamics_url}/.default ({how})",
        )
    except Exception as exc:  # azure-identity raises several unrelated types here
        r.add(
            "dynamics.credentials",
            "FAIL",
            f"no token from Entra ID ({how}): {error_text(exc)}",
            "check DYNAMICS_TENANT_ID, DYNAMICS_CLIENT_ID and DYNAMICS_CLIENT_SECRET (or, "
            "without a secret, the identity's client id) and DYNAMICS_AUTHORITY_HOST",
        )
        r.skip(later, "no Dataverse token")
        return None
    if endpoint.status == "FAIL":
        r.skip(later, "Dataverse endpoint unreachable")
        return None

    dv = build_dataverse(s, ca_bundle=ca_bundle, token=token, timeout=timeout, retry=FAST)
    try:
        try:
            user_id = await sync_identity(dv)
        except (AuthFailed, RecordRejected) as exc:
            r.add(
                "dynamics.user",
                "FAIL",
                f"Dataverse refused the token: {error_text(exc)}",
                "create an application user for client id "
                f"{s.dynamics_client_id or '(the managed identity)'} in this environment and "
                f"give it the sync's security role ({README} step 4.4-4.5)",
            )
            r.skip(later[1:], "no Dataverse application user")
            return None
        r.add("dynamics.user", "PASS", f"WhoAmI: the sync runs as systemuser {user_id}")
        if mapping is None:
            r.skip(later[1:], "the mapping file is invalid")
            return None
        privs = await column_privileges(dv, user_id)
        columns: dict[Entity, dict[str, ColumnInfo]] = {}
        for entity in ENTITIES:
            cols = await _check_entity(dv, entity, mapping, privs, r)
            if cols is not None:
                columns[entity] = cols
        return columns if len(columns) == len(ENTITIES) else None
    finally:
        await dv.aclose()


async def _check_entity(
    dv: DataverseClient,
    entity: Entity,
    mapping: SyncMapping,
    privs: Mapping[str, Privilege],
    r: Report,
) -> dict[str, ColumnInfo] | None:
    name = f"dynamics.{entity}"
    entity_set, key = ENTITY_SET[entity], ENTITY_KEY[entity]
    read = f"{entity_set}?$select={key}&$top=1"
    try:
        await dv.get_json(read)
        r.add(
            f"{name}.access",
            "PASS",
            f"read works (harmless read: GET {read})",
            notes=[
                "write access is checked per column through field security "
                f"(RetrievePrincipalAttributePrivileges): see {name}.columns and mapping.fields; "
                f"a missing table-level Create/Write privilege on {entity} only shows on the "
                "first write, as a sync error"
            ],
        )
    except RecordRejected as exc:
        r.add(
            f"{name}.access",
            "FAIL",
            f"the sync identity cannot read {entity}: {error_text(exc)}",
            f"give its security role Create, Read and Write on {entity.capitalize()} at "
            f"Organization scope ({README} step 4.4)",
        )

    definition: dict[str, Any] | None
    try:
        definition = await dv.get_json(
            f"EntityDefinitions(LogicalName='{entity}')?$select=LogicalName,ChangeTrackingEnabled"
            "&$expand=Keys($select=KeyAttributes,EntityKeyIndexStatus)"
        )
    except RecordRejected:
        definition = None
    await _change_tracking(dv, entity, definition, r)
    cols: dict[str, ColumnInfo] | None = None
    try:
        cols = await dynamics_columns(dv, entity, privileges=privs)
    except SyncError as exc:
        r.add(f"{name}.columns", "FAIL", f"cannot read {entity} column metadata: {error_text(exc)}")
    if cols is not None:
        _link_columns(entity, mapping, cols, r)
    _alternate_key(entity, mapping, definition, r)
    return cols


async def _change_tracking(
    dv: DataverseClient, entity: Entity, definition: dict[str, Any] | None, r: Report
) -> None:
    name = f"dynamics.{entity}.change_tracking"
    fix = (
        f"Power Apps -> Tables -> {entity.capitalize()} -> Properties -> Advanced options -> "
        f"tick 'Track changes' ({README} step 4.3)"
    )
    effect = (
        f"the sync falls back to polling {ENTITY_SET[entity]} by modifiedon: deletes in "
        "Dynamics go unseen (dynamicsDeleted is never set) and each cycle re-reads an "
        "overlap window"
    )
    if definition is not None:
        if definition.get("ChangeTrackingEnabled"):
            r.add(name, "PASS", "ChangeTrackingEnabled (EntityDefinitions)")
        else:
            r.add(name, "FAIL", f"change tracking is off on {entity}: {effect}", fix)
        return
    # Table metadata unreadable: ask for a one-row change-tracked page instead.
    try:
        await dv.get_json(
            f"{ENTITY_SET[entity]}?$select={ENTITY_KEY[entity]}",
            headers={"Prefer": "odata.track-changes,odata.maxpagesize=1"},
        )
        r.add(name, "PASS", "a change-tracked read works (EntityDefinitions not readable)")
    except (ChangeTrackingOff, RecordRejected) as exc:
        r.add(name, "FAIL", f"change-tracked read refused: {error_text(exc)}; {effect}", fix)


def _link_columns(
    entity: Entity, mapping: SyncMapping, cols: dict[str, ColumnInfo], r: Report
) -> None:
    problems = []
    idcol, filt = mapping.marketo_id_column, mapping.sync_filter_column
    c = cols.get(idcol)
    if c is None:
        problems.append(f"'{idcol}' is missing")
    elif c.attribute_type != "String":
        problems.append(f"'{idcol}' is {c.attribute_type}, not Single line of text")
    else:
        if not (c.can_read and c.can_create and c.can_update):
            problems.append(f"the sync identity may not read, create and update '{idcol}'")
        if c.max_length is not None and c.max_length < MARKETO_ID_DIGITS:
            problems.append(f"'{idcol}' holds {c.max_length} characters, needs 10 or more")
    f = cols.get(filt)
    if f is None:
        problems.append(f"'{filt}' is missing")
    elif f.attribute_type != "Boolean":
        problems.append(f"'{filt}' is {f.attribute_type}, not Yes/No")
    elif not f.can_read:
        problems.append(f"the sync identity may not read '{filt}'")
    name = f"dynamics.{entity}.columns"
    if problems:
        r.add(
            name,
            "FAIL",
            f"{entity}: " + "; ".join(problems),
            f"add '{idcol}' (Single line of text, max length 20) and '{filt}' (Yes/No) to "
            f"{entity.capitalize()} ({README} step 4.1); if secured, grant the sync's profile "
            "read/create/update",
        )
    else:
        r.add(name, "PASS", f"{idcol} (text) and {filt} (Yes/No) present and usable")


def _alternate_key(
    entity: Entity, mapping: SyncMapping, definition: dict[str, Any] | None, r: Report
) -> None:
    name = f"dynamics.{entity}.alternate_key"
    col = mapping.marketo_id_column
    if definition is None:
        r.add(name, "WARN", f"cannot read the {entity} table definition to find its keys")
        return
    keys = [k for k in definition.get("Keys") or [] if list(k.get("KeyAttributes") or []) == [col]]
    fix = (
        f"Power Apps -> Tables -> {entity.capitalize()} -> Keys -> New key "
        f"'{col}_key' with the single column {col}; wait until it shows Active "
        f"({README} step 4.2)"
    )
    if not keys:
        r.add(
            name,
            "FAIL",
            f"no alternate key on {entity}.{col}: the real-time create (an upsert by "
            "Marketo id) fails, and nothing stops two records for one person",
            fix,
        )
        return
    status = str(keys[0].get("EntityKeyIndexStatus") or "Active")
    if status == "Active":
        r.add(name, "PASS", f"alternate key on {col} is Active")
    elif status == "Failed":
        r.add(name, "FAIL", f"alternate key on {col} failed to build (duplicate values?)", fix)
    else:
        r.add(name, "WARN", f"alternate key on {col} is {status}, not yet Active", fix)
