"""`python -m sync_core doctor`: check a configuration before trusting it with data.

Like Marketo's "Validate Sync Setup", but covering everything this sync depends on:
settings, both endpoints, both sets of credentials, the Dataverse application user and
its access, change tracking, the custom columns and alternate key, the Marketo custom
fields and activity types, Table Storage, and the mapping against live metadata. Each
check says PASS / WARN / FAIL (or SKIP when an earlier failure makes it meaningless)
with a one-line fix. It reads, and writes only one probe row it deletes again, so it is
safe against production. It prevents the costly way of finding these problems: a
deployed timer failing every five minutes with an error far from its cause.

This module runs the sections side by side and checks Table Storage and the mapping;
the Marketo and Dynamics checks are in doctor_marketo and doctor_dynamics.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
from collections.abc import Awaitable, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, TypeVar

from sync_core.admin.checks import Check, Report, error_text
from sync_core.admin.doctor_dynamics import check_dynamics
from sync_core.admin.doctor_marketo import check_marketo
from sync_core.errors import ConfigError
from sync_core.fieldrules import ColumnInfo, MarketoField, Problem, validate_mapping
from sync_core.mapping import Entity, load_mapping
from sync_core.mapping import Mapping as SyncMapping
from sync_core.runtime import table_service
from sync_core.settings import Settings, SettingsError, load_settings
from sync_core.state import TABLES
from sync_core.tablestore import TableStateStore

T = TypeVar("T")
HELP = "check settings, access, schema and mapping on both systems (exit 1 on FAIL)"


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
        r.add(
            "storage.tables",
            "FAIL",
            f"cannot list tables at {where}: {error_text(exc)}",
            fix_access,
        )
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
            r.add(
                "storage.write",
                "FAIL",
                f"cannot write {prefix}state: {error_text(exc)}",
                fix_access,
            )
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
            f"{type(exc).__name__}: {error_text(exc)}",
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
