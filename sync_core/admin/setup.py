"""`python -m sync_core setup`: the one-time, repeatable setup the sync needs to run.

Creates the state tables in Table Storage, makes sure the hash key exists, and creates
and approves the two Marketo custom activity types. Running it before the first
deployment (instead of letting the first cycle create things on the fly) prevents a
first cycle that fails on a permission it never had, and activity log lines that are
silently skipped because their type was never approved. Every step checks first and
only creates what is missing, so running it twice changes nothing; it prints what it
found and what it did.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sync_core.activitylog import STORED, TYPES, ensure_types
from sync_core.runtime import build_marketo, table_service
from sync_core.settings import Settings, load_settings
from sync_core.state import TABLES
from sync_core.tablestore import TableStateStore

HELP = "create the state tables and the Marketo activity types (safe to repeat)"
DESCRIPTION = (
    "Creates the Table Storage tables (SYNC_TABLE_PREFIX + state, links, cycles, errors, "
    "personlog), the hash key when SYNC_HASH_KEY is empty, and creates and approves the "
    "Marketo custom activity types 'Sync Person to Microsoft' and 'Dynamics Sync Error'. "
    "Only what is missing is created; it prints what it found and did."
)


@dataclass(frozen=True)
class Step:
    system: str  # "storage" | "marketo"
    item: str
    outcome: str  # created | exists | approved | generated | configured ...
    detail: str = ""


async def setup_storage(settings: Settings) -> list[Step]:
    prefix = settings.sync_table_prefix
    steps: list[Step] = []
    store = TableStateStore(table_service(settings), prefix)
    try:
        missing = set(await store.missing_tables())
        await store.ensure_tables()
        for name in TABLES:
            table = f"{prefix}{name}"
            outcome = "created" if table in missing else "exists"
            steps.append(Step("storage", f"table {table}", outcome))
        await store.ensure_link_counts()  # `status` reads counters, never scans the links
        # The hash key must be the same for every process; make it exist before the
        # first cycle and the first webhook call could race to create it.
        if settings.sync_hash_key.get_secret_value():
            steps.append(Step("storage", "hash key", "configured", "SYNC_HASH_KEY is set"))
        elif await store.get_value("meta", "hashkey"):
            steps.append(Step("storage", "hash key", "exists", f"kept in {prefix}state"))
        else:
            await store.hash_key()
            steps.append(Step("storage", "hash key", "generated", f"kept in {prefix}state"))
    finally:
        store.close()
    return steps


async def setup_marketo(settings: Settings) -> list[Step]:
    mk = build_marketo(settings)
    try:
        body = await mk.call("GET", "/rest/v1/activities/external/types.json")
        before = {t.get("apiName"): str(t.get("status", "")) for t in body.get("result") or []}
        ids = await ensure_types(mk)
    finally:
        await mk.aclose()
    steps = []
    for api_name, spec in TYPES.items():
        status = before.get(api_name)
        if status is None:
            outcome = "created"
        elif status.startswith("approved"):
            outcome = "exists"  # ensure_types leaves an approved type (and any draft) alone
        else:
            outcome = "approved"  # a draft left by an earlier, interrupted setup
        detail = f'"{spec["name"]}", id {ids.get(api_name, "?")}, approved'
        steps.append(Step("marketo", f"activity type {api_name}", outcome, detail))
    return steps


async def record_activity_types(settings: Settings, steps: list[Step]) -> None:
    """Note which activity types setup left approved, for `status` (no API call there)."""
    approved = [s.item.removeprefix("activity type ") for s in steps if s.system == "marketo"]
    store = TableStateStore(table_service(settings), settings.sync_table_prefix)
    try:
        row = {"approved": approved, "at": datetime.now(UTC).isoformat()}
        # The ids a cycle kept may be of types deleted and re-created here: look again.
        await store.set_values("meta", {"activitytypes": json.dumps(row), STORED[1]: None})
    finally:
        store.close()


async def run_setup(settings: Settings) -> list[Step]:
    """Run every step."""
    storage, marketo = await asyncio.gather(setup_storage(settings), setup_marketo(settings))
    await record_activity_types(settings, marketo)
    return [*storage, *marketo]


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    steps = asyncio.run(run_setup(settings))
    if args.json:
        print(json.dumps([asdict(s) for s in steps]))
        return 0
    for s in steps:
        print(f"{s.system:8} {s.outcome:10} {s.item}" + (f" ({s.detail})" if s.detail else ""))
    changed = sum(1 for s in steps if s.outcome not in ("exists", "configured"))
    print(f"setup: done, {changed} change(s). Next: python -m sync_core doctor")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("setup", help=HELP, description=DESCRIPTION)
    p.add_argument("--json", action="store_true", help="print the steps as JSON")
    p.set_defaults(handler=run)
