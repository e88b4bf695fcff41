"""`python -m sync_core plan [--json] [--limit N]`: a dry run of the next cycle.

The real cycle runs, unchanged, against three wrappers: the Marketo and Dataverse
clients pass reads through and capture writes (answering as a successful write would),
and the state store passes reads through while writes (links, cursors, lease, logs,
quota) land in an in-memory overlay. So the plan is exactly what the engine would do,
not a second implementation that can drift from it, and neither system nor the state
tables change. Each wrapper lists every public method of what it wraps as a read or a
write; anything unlisted is refused, so a write method added later cannot slip through
a dry run unnoticed (a test checks the lists are complete).

A dry run cannot know what the target system would reject (a business rule, a
duplicate): such a write shows as planned. Its reads use Marketo API quota like a cycle.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import defaultdict
from typing import Any, TextIO, cast

from sync_core.admin.dryrun_wrappers import (
    Capture,
    DryRunDataverse,
    DryRunMarketo,
    DryRunStore,
)
from sync_core.dataverse import DataverseClient
from sync_core.errors import ConfigError
from sync_core.health import require_tables
from sync_core.mapping import ENTITY_SET, load_mapping
from sync_core.marketo import MarketoClient
from sync_core.planner import Hasher
from sync_core.progress import Progress, watching
from sync_core.rules import RULES
from sync_core.runtime import Runtime, build_clients, build_store, new_cycle
from sync_core.settings import Settings, load_settings
from sync_core.state import StateStore

SCHEMA = 1


def _rules_by(capture: Capture) -> dict[tuple[int, str], dict[str, str]]:
    out: dict[tuple[int, str], dict[str, str]] = defaultdict(dict)
    for e in capture.events:
        out[(int(e["marketoId"]), str(e.get("direction")))].update(e.get("rules") or {})
    return out


def build_plan(capture: Capture, summary: dict[str, Any], settings: Settings) -> dict[str, Any]:
    mapping = load_mapping(settings.sync_mapping_file)
    rules = _rules_by(capture)
    column_to_field: dict[tuple[str, str], str] = {
        (e, r.column): r.marketo for e, rs in mapping.fields.items() for r in rs
    }
    link_fields = {mapping.dynamics_id_field, mapping.dynamics_type_field,
                   mapping.dynamics_deleted_field}  # fmt: skip
    updates: list[dict[str, Any]] = []
    for rec in capture.marketo_updates:
        mid = int(rec["id"])
        old = capture.people.get(mid, {})
        why = rules.get((mid, "to-marketo"), {})
        changes = [
            {"field": f, "old": old.get(f), "new": v,
             "rule": why.get(f, "link field" if f in link_fields else "")}
            for f, v in rec.items() if f not in ("id", "lookup")
        ]  # fmt: skip
        updates.append({"direction": "to-marketo", "marketoId": mid, "changes": changes})
    by_record: dict[str, int] = {}
    for e in capture.events:
        if e.get("dynamicsId"):
            by_record[str(e["dynamicsId"]).lower()] = int(e["marketoId"])
    for op in capture.dynamics_writes:
        entity_set, _, rest = op.path.partition("(")
        did = rest.rstrip(")").lower()
        entity = next(e for e, s in ENTITY_SET.items() if s == entity_set)
        old = capture.rows.get(did, {})
        owner = by_record.get(did)
        why = rules.get((owner, "to-dynamics"), {}) if owner is not None else {}
        changes = []
        for col, v in (op.body or {}).items():
            name = column_to_field.get((entity, col), col)
            rule = why.get(name, "link field" if col == mapping.marketo_id_column else "")
            changes.append({"field": col, "old": old.get(col), "new": v, "rule": rule})
        updates.append(
            {"direction": "to-dynamics", "entity": entity, "dynamicsId": did,
             "marketoId": owner, "changes": changes}
        )  # fmt: skip
    m = mapping
    creates = [
        {"entity": r.get(m.dynamics_type_field), "dynamicsId": r.get(m.dynamics_id_field),
         "fields": sorted(k for k in r if k not in ("id", *link_fields))}
        for r in capture.marketo_creates
    ]  # fmt: skip
    collisions = [
        {"marketoId": int(e["marketoId"]), "entity": e.get("entity"), "field": f,
         "rule": (e.get("rules") or {}).get(f, ""), "direction": e.get("direction")}
        for e in capture.events
        for f in e.get("collisions") or []
        if f in (e.get("rules") or {})
    ]  # fmt: skip
    outcome = "truncated" if capture.limited else summary.get("outcome")
    return {
        "schema": SCHEMA,
        "outcome": outcome,
        "message": "" if capture.limited or outcome == "succeeded" else summary.get("message"),
        "limit": capture.limit,
        "counts": summary.get("counts", {}),
        "apiCalls": summary.get("apiCalls", {}),
        "creates": creates,
        "updates": updates,
        "collisions": collisions,
        "rejections": [
            {
                k: e.get(k)
                for k in (
                    "direction",
                    "entity",
                    "marketoId",
                    "dynamicsId",
                    "fields",
                    "code",
                    "message",
                )
            }
            for e in capture.errors
        ],
        "activities": capture.activities,
        "merges": capture.merges,
        "otherWrites": capture.other_writes,
        "rules": RULES,
    }


async def dry_run(
    settings: Settings, *, limit: int | None = None, progress: Progress | None = None
) -> dict[str, Any]:
    capture = Capture(limit)
    real_store = build_store(settings)
    try:
        await require_tables(real_store)
    except ConfigError:
        real_store.close()
        raise
    marketo, dataverse = build_clients(settings)
    store = DryRunStore(real_store, capture)
    rt = Runtime(
        settings,
        load_mapping(settings.sync_mapping_file),
        cast(StateStore, store),
        cast(MarketoClient, DryRunMarketo(marketo, capture)),
        cast(DataverseClient, DryRunDataverse(dataverse, capture)),
        Hasher(await store.hash_key(settings.sync_hash_key.get_secret_value())),
    )
    cycle = new_cycle(rt)
    try:
        async with watching(cycle, progress or Progress.for_stream(sys.stderr)):
            summary = await cycle.run()
    finally:
        await marketo.aclose()
        await dataverse.aclose()
        real_store.close()
    return build_plan(capture, summary, settings)


def _show(v: Any) -> str:
    return "(empty)" if v is None or v == "" else repr(v)


def print_plan(plan: dict[str, Any], out: TextIO) -> None:
    c = plan["counts"]
    print(
        f"plan: {plan['outcome']}; {c.get('to_marketo', 0)} people to Marketo, "
        f"{c.get('to_dynamics', 0)} records to Dynamics, {len(plan['creates'])} to create in "
        f"Marketo, {c.get('collisions', 0)} collisions"
        + (f" (stopped at --limit {plan['limit']})" if plan["outcome"] == "truncated" else ""),
        file=out,
    )
    if plan["message"]:
        print(f"  {plan['message']}", file=out)
    for cr in plan["creates"]:
        print(f"create person for {cr['entity']} {cr['dynamicsId']}: {', '.join(cr['fields'])}",
              file=out)  # fmt: skip
    for u in plan["updates"]:
        target = (
            f"Marketo person {u['marketoId']}"
            if u["direction"] == "to-marketo"
            else f"Dynamics {u['entity']} {u['dynamicsId']}"
        )
        print(f"update {target}:", file=out)
        for ch in u["changes"]:
            rule = RULES.get(ch["rule"], ch["rule"])
            print(f"    {ch['field']}: {_show(ch['old'])} -> {_show(ch['new'])}"
                  + (f"  ({rule})" if rule else ""), file=out)  # fmt: skip
    for col in plan["collisions"]:
        print(
            f"collision: person {col['marketoId']} {col['field']} goes {col['direction']} "
            f"({RULES.get(col['rule'], col['rule'])})",
            file=out,
        )
    for r in plan["rejections"]:
        print(f"rejected before sending: {r['direction']} {r['fields']}: {r['message']}", file=out)
    for mg in plan["merges"]:
        losers = ", ".join(str(x) for x in mg["losers"])
        print(f"merge Marketo people {losers} into {mg['winner']}", file=out)
    for w in plan["otherWrites"]:
        print(f"{w['system']}: {w['method']} {w['path']}", file=out)


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    if args.limit is not None and args.limit < 1:
        print("error: --limit must be at least 1", file=sys.stderr)
        return 2
    progress = Progress.for_stream(sys.stderr)
    plan = asyncio.run(dry_run(load_settings(), limit=args.limit, progress=progress))
    if args.json:
        print(json.dumps(plan, default=str), file=out)
    else:
        print_plan(plan, out)
    return 0 if plan["outcome"] in ("succeeded", "partial", "truncated") else 1


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "plan", help="dry run of the next cycle: creates, updates field by field, collisions"
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, help="stop after planning this many people")
    p.set_defaults(handler=run)
