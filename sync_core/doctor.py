"""`python -m sync_core doctor`: check a configuration before trusting it with data.

Like Marketo's "Validate Sync Setup", but covering everything this sync depends on:
settings, both endpoints, both sets of credentials, the Dataverse application user and
its access, change tracking, the custom columns and alternate key, the Marketo custom
fields and activity types, Table Storage, and the mapping against live metadata. Each
check says PASS / WARN / FAIL (or SKIP when an earlier failure makes it meaningless)
with a one-line fix. It reads, and writes only one probe row it deletes again, so it is
safe against production. It prevents the costly way of finding these problems: a
deployed timer failing every five minutes with an error far from its cause.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import ssl
from collections.abc import Awaitable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from sync_core.activitylog import TYPES
from sync_core.dataverse import DataverseClient
from sync_core.errors import (
    AuthFailed,
    ChangeTrackingOff,
    ConfigError,
    RecordRejected,
    SyncError,
    TransientError,
)
from sync_core.http import RetryPolicy
from sync_core.mapping import ENTITIES, ENTITY_KEY, ENTITY_SET, Entity, load_mapping
from sync_core.mapping import Mapping as SyncMapping
from sync_core.marketo import MarketoClient
from sync_core.metadata import (
    ColumnInfo,
    MarketoField,
    Privilege,
    Problem,
    column_privileges,
    dynamics_columns,
    marketo_fields,
    sync_identity,
    validate_mapping,
)
from sync_core.runtime import ca_bundle_from_env, token_provider
from sync_core.settings import Settings, SettingsError, load_settings
from sync_core.setup import table_service
from sync_core.state import TABLES
from sync_core.tablestore import TableStateStore

T = TypeVar("T")
HELP = "check settings, access, schema and mapping on both systems (exit 1 on FAIL)"
Status = Literal["PASS", "WARN", "FAIL", "SKIP"]
# Diagnose fast: one retry (a 401 needs it to refresh the token), short waits.
FAST = RetryPolicy(attempts=2, base_delay=0.2, max_delay=1.0, max_total_wait=5.0)
GUID_LENGTH = 36
MARKETO_ID_DIGITS = 10  # Marketo person ids are 32-bit integers
README = "infra/README.md"


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""
    notes: list[str] = field(default_factory=list)


class Report:
    def __init__(self) -> None:
        self.checks: list[Check] = []

    def add(self, name: str, status: Status, detail: str, fix: str = "", **kw: Any) -> Check:
        check = Check(name, status, detail, fix, **kw)
        self.checks.append(check)
        return check

    def skip(self, names: list[str], why: str) -> None:
        for name in names:
            self.add(name, "SKIP", f"not checked: {why}")


def _why(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


# ---- Marketo ----------------------------------------------------------------------------


async def check_marketo(
    s: Settings, mapping: SyncMapping | None, r: Report
) -> dict[str, MarketoField] | None:
    names = ["marketo.credentials", "marketo.fields", "marketo.activity_types"]
    mk = MarketoClient(
        s.marketo_base_url,
        s.marketo_client_id,
        s.marketo_client_secret.get_secret_value(),
        timeout=min(s.sync_http_timeout_seconds, 20),
        retry=FAST,
    )
    # A token cached in this process would hide a wrong or rotated secret.
    mk.forget_token()
    try:
        try:
            fields = await marketo_fields(mk)
        except TransientError as exc:
            r.add(
                "marketo.endpoint",
                "FAIL",
                f"cannot reach {s.marketo_base_url}: {_why(exc)}",
                "set MARKETO_BASE_URL to Admin -> Web Services -> REST API 'Endpoint' without "
                "/rest, and allow outbound HTTPS to it",
            )
            r.skip(names, "Marketo endpoint unreachable")
            return None
        except AuthFailed as exc:
            r.add("marketo.endpoint", "PASS", f"{s.marketo_base_url} answered")
            if "(603)" in str(exc):
                r.add(
                    "marketo.credentials",
                    "FAIL",
                    f"token issued, but the API user may not read people: {_why(exc)}",
                    "give the API user's role 'Read-Write Person' (Admin -> Users & Roles)",
                )
            else:
                r.add(
                    "marketo.credentials",
                    "FAIL",
                    _why(exc),
                    "copy Client Id / Client Secret from Admin -> LaunchPoint -> the sync's "
                    "service -> View Details into MARKETO_CLIENT_ID / MARKETO_CLIENT_SECRET",
                )
            r.skip(names[1:], "Marketo credentials failed")
            return None
        except (SyncError, ValueError, KeyError) as exc:
            r.add(
                "marketo.endpoint",
                "FAIL",
                f"{s.marketo_base_url} did not answer like Marketo's REST API: {_why(exc)}",
                "set MARKETO_BASE_URL to the REST 'Endpoint' without /rest, e.g. "
                "https://123-ABC-456.mktorest.com",
            )
            r.skip(names, "Marketo endpoint did not answer as expected")
            return None
        r.add("marketo.endpoint", "PASS", f"{s.marketo_base_url} answered")
        r.add(
            "marketo.credentials",
            "PASS",
            f"client id {s.marketo_client_id} got a token and read the person schema",
        )
        if mapping is None:
            r.skip(["marketo.fields"], "the mapping file is invalid")
        else:
            _marketo_link_fields(mapping, fields, r)
        await _marketo_activity_types(mk, r)
        return fields
    finally:
        await mk.aclose()


def _marketo_link_fields(mapping: SyncMapping, fields: dict[str, MarketoField], r: Report) -> None:
    wanted = [
        (mapping.dynamics_id_field, ("string",), "String", GUID_LENGTH),
        (mapping.dynamics_type_field, ("string",), "String", len("contact")),
        (mapping.dynamics_deleted_field, ("boolean",), "Boolean", None),
    ]
    problems = []
    for name, types, label, min_length in wanted:
        f = fields.get(name)
        if f is None:
            problems.append(f"'{name}' is missing (create it as {label})")
        elif f.data_type not in types:
            problems.append(f"'{name}' is {f.data_type}, not {label}")
        elif not f.updateable:
            problems.append(f"'{name}' is read-only for the API")
        elif min_length and f.length is not None and f.length < min_length:
            problems.append(f"'{name}' holds {f.length} characters, needs {min_length}")
    names = ", ".join(n for n, *_ in wanted)
    if problems:
        r.add(
            "marketo.fields",
            "FAIL",
            "custom person fields: " + "; ".join(problems),
            "Admin -> Field Management -> New Custom Field with exactly these API names and "
            f"types ({README} step 1.5), or change [marketo] in the mapping file",
        )
    else:
        r.add("marketo.fields", "PASS", f"custom person fields present: {names}")


async def _marketo_activity_types(mk: MarketoClient, r: Report) -> None:
    try:
        body = await mk.call("GET", "/rest/v1/activities/external/types.json")
    except AuthFailed as exc:
        r.add(
            "marketo.activity_types",
            "WARN",
            f"cannot list custom activity types: {_why(exc)}; sync errors and real-time "
            "creates are not written to people's activity logs",
            "give the API role 'Read-Write Activity Metadata' and 'Read-Write Activity', "
            "then run python -m sync_core setup",
        )
        return
    status = {t.get("apiName"): str(t.get("status", "")) for t in body.get("result") or []}
    missing = [n for n in TYPES if not status.get(n, "").startswith("approved")]
    if missing:
        r.add(
            "marketo.activity_types",
            "WARN",
            f"custom activity types not approved: {', '.join(missing)}; the sync runs, but "
            "these activity log lines are skipped",
            "run python -m sync_core setup (creates and approves them)",
        )
    else:
        r.add("marketo.activity_types", "PASS", f"approved: {', '.join(TYPES)}")


# ---- Dynamics ---------------------------------------------------------------------------


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
    ca_bundle = ca_bundle or ca_bundle_from_env()
    verify: Any = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else True
    # Reachability without credentials: an anonymous call must get Dataverse's 401.
    probe = DataverseClient(s.dynamics_url, _no_token, verify=verify, timeout=timeout, retry=FAST)
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
            f"{s.dynamics_url} is not reachable as a Dataverse Web API: {_why(exc)}",
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
            f"no token from Entra ID ({how}): {_why(exc)}",
            "check DYNAMICS_TENANT_ID, DYNAMICS_CLIENT_ID and DYNAMICS_CLIENT_SECRET (or, "
            "without a secret, the identity's client id) and DYNAMICS_AUTHORITY_HOST",
        )
        r.skip(later, "no Dataverse token")
        return None
    if endpoint.status == "FAIL":
        r.skip(later, "Dataverse endpoint unreachable")
        return None

    dv = DataverseClient(s.dynamics_url, token, verify=verify, timeout=timeout, retry=FAST)
    try:
        try:
            user_id = await sync_identity(dv)
        except (AuthFailed, RecordRejected) as exc:
            r.add(
                "dynamics.user",
                "FAIL",
                f"Dataverse refused the token: {_why(exc)}",
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
            f"the sync identity cannot read {entity}: {_why(exc)}",
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
        r.add(f"{name}.columns", "FAIL", f"cannot read {entity} column metadata: {_why(exc)}")
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
        r.add(name, "FAIL", f"change-tracked read refused: {_why(exc)}; {effect}", fix)


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


# ---- Table Storage ----------------------------------------------------------------------


async def check_storage(s: Settings, r: Report) -> None:
    where = s.sync_storage_account_url or "SYNC_STORAGE_CONNECTION"
    prefix = s.sync_table_prefix
    fix_access = (
        "check SYNC_STORAGE_CONNECTION (or SYNC_STORAGE_ACCOUNT_URL and the identity's "
        "'Storage Table Data Contributor' role on the account)"
    )
    try:
        service = table_service(s, retry_total=1, retry_backoff_factor=0.2, connection_timeout=5)
        store = TableStateStore(service, prefix)
        absent = set(await store.missing_tables())
    except Exception as exc:  # bad strings, DNS, refused, 403: all "unreachable" to us
        r.add("storage.tables", "FAIL", f"cannot list tables at {where}: {_why(exc)}", fix_access)
        r.skip(["storage.write"], "Table Storage unreachable")
        return
    try:
        missing = [f"{prefix}{t}" for t in TABLES if f"{prefix}{t}" in absent]
        if missing:
            r.add(
                "storage.tables",
                "FAIL",
                f"missing tables: {', '.join(missing)}",
                "run python -m sync_core setup",
            )
            r.skip(["storage.write"], "state table missing")
            return
        r.add("storage.tables", "PASS", f"{len(TABLES)} tables '{prefix}*' present")
        probe = f"doctor-{secrets.token_hex(4)}"
        try:
            await store.set_values("doctor", {probe: datetime.now(UTC).isoformat()})
            ok = await store.get_value("doctor", probe) is not None
            await store.set_values("doctor", {probe: None})
            gone = await store.get_value("doctor", probe) is None
        except Exception as exc:
            r.add("storage.write", "FAIL", f"cannot write {prefix}state: {_why(exc)}", fix_access)
            return
        if ok and gone:
            r.add("storage.write", "PASS", f"wrote, read and deleted a probe row in {prefix}state")
        else:
            r.add("storage.write", "FAIL", "the probe row did not read back as written", fix_access)
    finally:
        store.close()


# ---- the mapping ------------------------------------------------------------------------


def check_mapping(
    mapping: SyncMapping,
    columns: Mapping[Entity, Mapping[str, ColumnInfo]],
    mfields: Mapping[str, MarketoField],
    r: Report,
) -> list[Problem]:
    problems = validate_mapping(mapping, columns, mfields)
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity == "warning"]
    lengths = [p for p in warnings if p.reason == "length"]
    notes = [f"{p.severity.upper()} {p}" for p in [*errors, *warnings] if p.reason != "length"]
    if lengths:
        # Default Marketo and Dataverse lengths differ for most text fields: one line.
        pairs = ", ".join(f"{p.entity} {p.field}->{p.column}" for p in lengths)
        notes.append(
            f"WARN {len(lengths)} length difference(s), longer values are rejected and "
            f"logged as sync errors: {pairs} (details: python -m sync_core fields)"
        )
    custom = sorted(
        {f"{r.marketo} ({t})" for e in columns for r in mapping.fields[e] if (t := r.rules_text())}
    )
    if custom:
        notes.append("per-field rules: " + ", ".join(custom))
    rules = sum(len(mapping.fields[e]) for e in columns)
    detail = f"{rules} field rules: {len(errors)} error(s), {len(warnings)} warning(s)"
    excluded = sum(1 for p in problems if p.excludes)
    if excluded:
        detail += f"; {excluded} finding(s) leave a field out of the sync"
    if errors:
        r.add(
            "mapping.fields",
            "FAIL",
            detail,
            "edit SYNC_MAPPING_FILE as each note says",
            notes=notes,
        )
    elif warnings:
        r.add("mapping.fields", "WARN", detail, "see the notes", notes=notes)
    else:
        r.add("mapping.fields", "PASS", detail)
    return problems


# ---- running ----------------------------------------------------------------------------


async def _guard(section: str, r: Report, work: Awaitable[T]) -> T | None:
    """A bug or an unforeseen answer in one section becomes a FAIL line, not a crash
    that hides every other result."""
    try:
        return await work
    except Exception as exc:
        r.add(
            f"{section}.unexpected",
            "FAIL",
            f"{type(exc).__name__}: {_why(exc)}",
            "fix the cause above and run doctor again",
        )
        return None


async def run_doctor(
    environ: Mapping[str, str] | None = None, *, ca_bundle: str | None = None
) -> list[Check]:
    """Every check, in a fixed order. `environ` replaces the process environment."""
    r = Report()
    try:
        s = load_settings(dict(environ) if environ is not None else None)
    except SettingsError as exc:
        r.add("settings", "FAIL", str(exc), "set the named app settings (see infra/README.md)")
        return r.checks
    try:
        mapping: SyncMapping | None = load_mapping(s.sync_mapping_file)
        what = f"mapping {s.sync_mapping_file}"
    except ConfigError as exc:
        mapping, what = None, ""
        r.add("settings", "FAIL", str(exc), "fix SYNC_MAPPING_FILE or the file it names")
    if mapping is not None:
        if s.sync_webhook_secret.get_secret_value():
            r.add("settings", "PASS", f"settings valid; {what}")
        else:
            r.add(
                "settings",
                "WARN",
                f"settings valid; {what}; SYNC_WEBHOOK_SECRET is empty, so the sync-person "
                "webhook rejects every call",
                "set SYNC_WEBHOOK_SECRET and send it in the webhook's x-sync-secret header",
            )
    mk_report, dv_report, st_report = Report(), Report(), Report()
    mfields, columns, _ = await asyncio.gather(
        _guard("marketo", mk_report, check_marketo(s, mapping, mk_report)),
        _guard("dynamics", dv_report, check_dynamics(s, mapping, dv_report, ca_bundle)),
        _guard("storage", st_report, check_storage(s, st_report)),
    )
    r.checks += mk_report.checks + dv_report.checks + st_report.checks
    if mapping is None:
        r.skip(["mapping.fields"], "the mapping file is invalid")
    elif mfields is None or columns is None:
        r.skip(["mapping.fields"], "needs both systems' metadata")
    else:
        check_mapping(mapping, columns, mfields, r)
    return r.checks


def render(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        lines.append(f"{c.status:4}  {c.name:{width}}  {c.detail}")
        pad = " " * (6 + width + 2)
        if c.fix and c.status != "PASS":
            lines.append(f"{pad}fix: {c.fix}")
        lines.extend(f"{pad}- {n}" for n in c.notes)
    counts = {
        st: sum(1 for c in checks if c.status == st) for st in ("PASS", "WARN", "FAIL", "SKIP")
    }
    summary = ", ".join(f"{n} {st}" for st, n in counts.items() if n)
    lines.append(f"doctor: {len(checks)} checks: {summary}")
    return "\n".join(lines)


def exit_code(checks: list[Check]) -> int:
    return 1 if any(c.status == "FAIL" for c in checks) else 0


def run(args: argparse.Namespace) -> int:
    checks = asyncio.run(run_doctor())
    if args.json:
        payload = {"ok": exit_code(checks) == 0, "checks": [asdict(c) for c in checks]}
        print(json.dumps(payload, indent=2))
    else:
        print(render(checks))
    return exit_code(checks)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "doctor",
        help=HELP,
        description=(
            "Checks settings, Marketo and Dataverse endpoints and credentials, the Dataverse "
            "application user and its access, change tracking, the custom columns and "
            "alternate key, the Marketo custom fields and activity types, Table Storage "
            "(writes and deletes one probe row) and the mapping against both systems' "
            "metadata. Prints PASS/WARN/FAIL/SKIP with a fix per problem; exits 1 if any "
            "check FAILs. Against the local TLS Dynamics emulator, export SSL_CERT_FILE and "
            "REQUESTS_CA_BUNDLE=.run/dynamics-ca.pem first."
        ),
    )
    p.add_argument("--json", action="store_true", help="print {ok, checks: [...]} as JSON")
    p.set_defaults(handler=run)
