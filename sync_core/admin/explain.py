"""`python -m sync_core explain <email | Marketo id | Dynamics id> [--json]`: why a
person's values are what they are.

For one person: the link, every synced field's current value on both sides (read live
from both APIs), whether each side still equals the agreed base (the keyed hash in the
link row), what the next cycle would do with it (the planner's own verdict, so the
answer cannot drift from the engine), and the person's sync history with the rule that
decided each field. It reads only: nothing is written to either system or the state
(except the hash key on an install that has none yet, as every command makes sure it
exists). Values are printed to the admin's terminal and never logged.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from sync_core.access import decode_row, known_mapping
from sync_core.errors import ConfigError
from sync_core.health import require_tables
from sync_core.mapping import ENTITIES, ENTITY_KEY, ENTITY_SET, Entity, Mapping
from sync_core.planner import Hasher, comparable, normalize, plan_pair
from sync_core.rules import RULES
from sync_core.runtime import Runtime, build_runtime, build_store
from sync_core.settings import load_settings
from sync_core.state import Link

SCHEMA = 1
GUID = re.compile(r"^\{?[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\}?$")
ERROR_DAYS = 30


class NotFound(Exception):
    """No person or record answers to the given key."""


@dataclass
class Target:
    marketo_id: int | None
    link: Link | None
    entity: Entity | None
    dynamics_id: str | None


def kind_of(key: str) -> str:
    key = key.strip()
    if "@" in key:
        return "email"
    if key.isdigit():
        return "marketo"
    if GUID.match(key):
        return "dynamics"
    raise ValueError(
        f"{key!r} is neither an email, a Marketo id (digits) nor a Dynamics id (a GUID)"
    )


async def _resolve(rt: Runtime, mapping: Mapping, key: str) -> list[Target]:
    kind = kind_of(key)
    key = key.strip().strip("{}")
    store = rt.store
    if kind == "dynamics":
        did = key.lower()
        for entity in ENTITIES:
            found = await store.links_by_dynamics(entity, [did])
            if did in found:
                link = found[did]
                return [Target(link.marketo_id, link, entity, did)]
        for entity in ENTITIES:
            rows = await rt.dataverse.get_by_ids(ENTITY_SET[entity], ENTITY_KEY[entity], [did], [])
            if rows:
                return [Target(None, None, entity, did)]
        raise NotFound(f"no lead or contact {did} in Dynamics, and no link to one")
    if kind == "marketo":
        ids = [int(key)]
    else:
        people = await rt.marketo.get_leads("email", [key], ["id"])
        ids = sorted(int(p["id"]) for p in people)
        if not ids:
            return await _dynamics_by_email(rt, mapping, key)
    links = await store.links_by_marketo(ids)
    return [
        Target(
            i,
            links.get(i),
            links[i].entity if i in links else None,
            links[i].dynamics_id if i in links else None,
        )
        for i in ids
    ]


async def _dynamics_by_email(rt: Runtime, mapping: Mapping, email: str) -> list[Target]:
    out = []
    for entity in ENTITIES:
        col = next((r.column for r in mapping.fields[entity] if r.marketo == "email"), None)
        if not col:
            continue
        quoted = email.replace("'", "''")
        body = await rt.dataverse.get_json(
            f"{ENTITY_SET[entity]}?$select={ENTITY_KEY[entity]}&$filter={col} eq '{quoted}'"
        )
        out += [
            Target(None, None, entity, str(r[ENTITY_KEY[entity]]).lower())
            for r in body.get("value", [])
        ]
    if not out:
        raise NotFound(f"nobody with email {email} in Marketo or Dynamics")
    return out


def _agrees(hasher: Hasher, value: Any, fold: bool, base: str | None) -> bool | None:
    return None if base is None else hasher(comparable(value, fold)) == base


def field_report(
    mapping: Mapping,
    entity: Entity,
    row: dict[str, Any] | None,
    person: dict[str, Any] | None,
    link: Link | None,
    hasher: Hasher,
) -> list[dict[str, Any]]:
    rules = mapping.fields[entity]
    plan = (
        plan_pair(rules, row, person, link.base if link else None, hasher)
        if row is not None and person is not None
        else None
    )
    winners = {c.field: c.winner for c in plan.collisions} if plan else {}
    out = []
    for r in rules:
        m_val = normalize(person.get(r.marketo)) if person is not None else None
        d_val = normalize(row.get(r.column)) if row is not None else None
        base = link.base.get(r.marketo) if link else None
        m_ok = _agrees(hasher, m_val, r.fold_case, base) if person is not None else None
        d_ok = _agrees(hasher, d_val, r.fold_case, base) if row is not None else None
        if plan is None:
            verdict = "not linked: the background cycle does not compare this person"
        elif r.marketo in plan.held_rejected:
            verdict = "held: this value was rejected before; resent once either side changes"
        elif r.marketo in plan.kept:
            verdict = f"kept as it is by the field's rule ({plan.kept[r.marketo]})"
        elif r.marketo in winners:
            verdict = f"collision: both changed; {winners[r.marketo]} wins"
        elif r.marketo in plan.to_marketo:
            verdict = "next cycle copies the Dynamics value to Marketo"
        elif r.column in plan.to_dynamics:
            verdict = "next cycle copies the Marketo value to Dynamics"
        elif r.marketo in plan.settled:
            verdict = "equal on both sides; next cycle records it as the base"
        elif comparable(m_val, r.fold_case) == comparable(d_val, r.fold_case):
            verdict = "in sync"
        else:
            verdict = f"differs, but the field syncs {r.direction} only"
        out.append(
            {
                "field": r.marketo,
                "column": r.column,
                "direction": r.direction,
                "winner": r.winner,
                "marketo": m_val,
                "dynamics": d_val,
                "marketoMatchesBase": m_ok,
                "dynamicsMatchesBase": d_ok,
                "verdict": verdict,
            }
        )
    return out


def _history(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for e in events:
        fields = json.loads(e["fields"]) if isinstance(e.get("fields"), str) else e.get("fields")
        rules = json.loads(e["rules"]) if isinstance(e.get("rules"), str) else e.get("rules")
        out.append(
            {
                "at": e.get("at"),
                "direction": e.get("direction"),
                "entity": e.get("entity"),
                "dynamicsId": e.get("dynamicsId"),
                "fields": fields or [],
                "rules": rules or {},
                "note": e.get("note") or "",
            }
        )
    return out


async def explain(rt: Runtime, key: str) -> dict[str, Any]:
    mapping = await known_mapping(rt.store, rt.mapping)
    targets = await _resolve(rt, mapping, key)
    since = datetime.now(UTC) - timedelta(days=ERROR_DAYS)
    errors = await rt.store.list_errors(since)
    people = []
    for t in targets:
        person = None
        if t.marketo_id is not None:
            got = await rt.marketo.get_leads("id", [t.marketo_id], mapping.marketo_fields())
            person = got[0] if got else None
        row = None
        if t.entity and t.dynamics_id:
            rows = await rt.dataverse.get_by_ids(
                ENTITY_SET[t.entity], ENTITY_KEY[t.entity], [t.dynamics_id],
                mapping.columns(t.entity),
            )  # fmt: skip
            row = decode_row(mapping.fields[t.entity], rows[0]) if rows else None
        events = await rt.store.person_events(t.marketo_id) if t.marketo_id is not None else []
        mine = [
            e
            for e in errors
            if (t.marketo_id is not None and str(e.get("marketoId")) == str(t.marketo_id))
            or (t.dynamics_id and str(e.get("dynamicsId") or "").lower() == t.dynamics_id)
        ]
        people.append(
            {
                "marketoId": t.marketo_id,
                "inMarketo": person is not None,
                "link": None
                if t.link is None
                else {
                    "entity": t.link.entity,
                    "dynamicsId": t.link.dynamics_id,
                    "linkedAt": t.link.linked_at,
                },
                "entity": t.entity,
                "dynamicsId": t.dynamics_id,
                "inDynamics": row is not None,
                "fields": field_report(mapping, t.entity, row, person, t.link, rt.hasher)
                if t.entity
                else [],
                "history": _history(events),
                "errors": [
                    {k: e.get(k) for k in ("at", "operation", "direction", "code", "message")}
                    for e in mine
                ],
            }
        )
    return {"schema": SCHEMA, "query": key, "rules": RULES, "people": people}


def _show(value: Any) -> str:
    return "(empty)" if value is None else repr(value)


def print_report(doc: dict[str, Any], out: TextIO) -> None:
    for p in doc["people"]:
        who = f"person {p['marketoId']}" if p["marketoId"] is not None else "no Marketo person"
        if p["link"]:
            linked = f"linked to {p['link']['entity']} {p['link']['dynamicsId']}"
            linked += f" since {str(p['link']['linkedAt'])[:19]}"
        elif p["dynamicsId"]:
            linked = f"{p['entity']} {p['dynamicsId']} in Dynamics, not linked"
        else:
            linked = "not linked to Dynamics"
        print(f"{who}: {linked}", file=out)
        for f in p["fields"]:
            marks = {True: "= base", False: "changed", None: "no base"}
            print(
                f"  {f['field']:<16} Marketo {_show(f['marketo'])} "
                f"({marks[f['marketoMatchesBase']]})  Dynamics {_show(f['dynamics'])} "
                f"({marks[f['dynamicsMatchesBase']]})\n      {f['verdict']}",
                file=out,
            )
        if p["history"]:
            print("  history (newest first):", file=out)
        for h in p["history"]:
            rules = ", ".join(
                f"{name}: {RULES.get(code, code)}" for name, code in sorted(h["rules"].items())
            )
            detail = rules or ", ".join(h["fields"])
            note = f" [{h['note']}]" if h["note"] else ""
            print(f"    {str(h['at'])[:19]} {h['direction']}{note} {detail}", file=out)
        for e in p["errors"]:
            print(
                f"  error {str(e['at'])[:19]} {e['code']} {e['operation']} {e['direction']}: "
                f"{e['message']}",
                file=out,
            )


async def _run(key: str) -> dict[str, Any]:
    settings = load_settings()
    store = build_store(settings)
    try:
        await require_tables(store)
    except ConfigError:
        store.close()
        raise
    rt = await build_runtime(settings, store=store, ensure_tables=False)
    try:
        return await explain(rt, key)
    finally:
        await rt.aclose()


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    try:
        kind_of(args.key)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        doc = asyncio.run(_run(args.key))
    except NotFound as exc:
        print(f"not found: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(doc, default=str), file=out)
    else:
        print_report(doc, out)
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "explain", help="one person: values on both sides, base, next step, history and rules"
    )
    p.add_argument("key", help="an email, a Marketo person id or a Dynamics lead/contact id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=run)
