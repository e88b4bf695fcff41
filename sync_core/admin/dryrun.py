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

import httpx

from sync_core.dataverse import DataverseClient, Op, OpResult
from sync_core.errors import ConfigError, DryRunRefused, PlanLimitReached
from sync_core.health import require_tables
from sync_core.mapping import ENTITY_KEY, ENTITY_SET, load_mapping
from sync_core.marketo import MarketoClient
from sync_core.planner import Hasher
from sync_core.progress import Progress, watching
from sync_core.rules import RULES
from sync_core.runtime import Runtime, build_clients, build_store, new_cycle
from sync_core.settings import Settings, load_settings
from sync_core.state import StateStore

SCHEMA = 1
READ_ONLY_HTTP = ("GET",)


class Capture:
    """Everything the dry-run cycle would have written, and what it read to decide."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.limited = False
        self.marketo_updates: list[dict[str, Any]] = []
        self.marketo_creates: list[dict[str, Any]] = []
        self.dynamics_writes: list[Op] = []
        self.activities = 0
        self.merges: list[dict[str, Any]] = []  # Marketo merges the cycle would make
        self.other_writes: list[dict[str, str]] = []  # generic calls that write
        self.events: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.people: dict[int, dict[str, Any]] = {}  # Marketo values read, by id
        self.rows: dict[str, dict[str, Any]] = {}  # Dataverse rows read, by record id
        self.planned: set[tuple[str, Any]] = set()

    def check_limit(self, keys: list[tuple[str, Any]]) -> None:
        if self.limit is not None and len(self.planned) >= self.limit:
            self.limited = True
            raise PlanLimitReached(f"plan stopped at {self.limit} people (--limit)")
        self.planned.update(keys)


def _refuse(owner: str, name: str) -> Any:
    raise DryRunRefused(f"dry run: {owner}.{name} is not classified as a read or a write")


class DryRunMarketo:
    READS = frozenset(
        {"get_leads", "paging_token", "lead_changes", "deleted_leads", "activities",
         "activity_types", "aclose", "forget_token", "call"}
    )  # fmt: skip
    WRITES = frozenset({"sync_leads", "add_activities", "merge"})
    ATTRIBUTES = frozenset({"base_url", "budget", "calls", "rate_limit_wait"})

    def __init__(self, inner: MarketoClient, capture: Capture) -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_capture", capture)
        object.__setattr__(self, "_fake_id", 0)

    def __getattr__(self, name: str) -> Any:
        if name in self.READS or name in self.ATTRIBUTES:
            return getattr(self._inner, name)
        return _refuse("MarketoClient", name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self.ATTRIBUTES:
            _refuse("MarketoClient", name)
        setattr(self._inner, name, value)  # the cycle sets its daily budget

    async def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        # The generic call is a read only as GET (or Marketo's POST with _method=GET);
        # anything else (creating activity types, say) is captured and answered as done.
        params = kwargs.get("params") or {}
        if method.upper() not in READ_ONLY_HTTP and params.get("_method") != "GET":
            self._capture.other_writes.append({"system": "marketo", "method": method,
                                               "path": path})  # fmt: skip
            return {"success": True, "requestId": "dry-run", "result": []}
        result: dict[str, Any] = await self._inner.call(method, path, **kwargs)
        return result

    async def merge(self, winner: int, losers: list[int]) -> None:
        self._capture.merges.append({"winner": winner, "losers": list(losers)})

    async def get_leads(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        people: list[dict[str, Any]] = await self._inner.get_leads(*args, **kwargs)
        for p in people:
            if "id" in p:
                self._capture.people.setdefault(int(p["id"]), dict(p))
        return people

    async def sync_leads(
        self, action: str, records: list[dict[str, Any]], lookup_field: str = "id"
    ) -> list[dict[str, Any]]:
        cap = self._capture
        if action == "createDuplicate":
            cap.check_limit([("create", r.get("dynamicsId")) for r in records])
            out = []
            for r in records:
                fake = self._fake_id - 1
                object.__setattr__(self, "_fake_id", fake)
                cap.marketo_creates.append({"id": fake, **r})
                out.append({"id": fake, "status": "created"})
            return out
        cap.check_limit([("marketo", r.get(lookup_field)) for r in records])
        cap.marketo_updates.extend({"lookup": lookup_field, **r} for r in records)
        return [{"id": r.get("id"), "status": "updated"} for r in records]

    async def add_activities(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self._capture.activities += len(records)
        return [{"status": "added"} for _ in records]


class DryRunDataverse:
    READS = frozenset({"changes", "modified_since", "get_by_ids", "get_json", "aclose", "request"})
    WRITES = frozenset({"batch"})
    ATTRIBUTES = frozenset({"calls", "page_size", "base_url"})

    def __init__(self, inner: DataverseClient, capture: Capture) -> None:
        self._inner = inner
        self._capture = capture

    def __getattr__(self, name: str) -> Any:
        if name in self.READS or name in self.ATTRIBUTES:
            return getattr(self._inner, name)
        return _refuse("DataverseClient", name)

    def _remember(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            for key in ENTITY_KEY.values():
                if row.get(key):
                    self._capture.rows.setdefault(str(row[key]).lower(), dict(row))

    async def request(self, method: str, url: str, **kwargs: Any) -> Any:
        if method.upper() not in READ_ONLY_HTTP:
            # A generic write (a Dataverse Merge, say): captured, answered as done.
            self._capture.other_writes.append({"system": "dynamics", "method": method,
                                               "path": url})  # fmt: skip
            return httpx.Response(204, request=httpx.Request(method, "https://dry-run/"))
        return await self._inner.request(method, url, **kwargs)

    async def changes(self, *args: Any, **kwargs: Any) -> Any:
        async for page in self._inner.changes(*args, **kwargs):
            self._remember(page.rows)
            yield page

    async def modified_since(self, *args: Any, **kwargs: Any) -> Any:
        async for rows in self._inner.modified_since(*args, **kwargs):
            self._remember(rows)
            yield rows

    async def get_by_ids(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = await self._inner.get_by_ids(*args, **kwargs)
        self._remember(rows)
        return rows

    async def batch(self, ops: list[Op]) -> list[OpResult]:
        self._capture.check_limit([("dynamics", op.path) for op in ops])
        self._capture.dynamics_writes.extend(ops)
        return [OpResult(204) for _ in ops]


class DryRunStore:
    """Reads pass through to the real tables; writes land in memory. Key/value rows
    written during the run read back from the overlay, as they would from the table."""

    READS = frozenset(
        {"links_by_marketo", "links_by_dynamics", "iter_links", "members", "recent_cycles",
         "list_errors", "person_events", "saved", "link_counts", "cycles_since", "close",
         "missing_tables"}
    )  # fmt: skip
    WRITES = frozenset(
        {"get_value", "get_cursor", "set_values", "set_cursors", "hash_key", "acquire_lease",
         "release_lease", "save_links", "close_links", "add_to_set", "remove_from_set",
         "record_cycle", "record_errors", "record_person_events", "ensure_tables",
         "ensure_link_counts", "add_to_value"}
    )  # fmt: skip
    # get_value / get_cursor / hash_key are listed as writes: they must see the overlay.

    def __init__(self, inner: StateStore, capture: Capture) -> None:
        self._inner = inner
        self._capture = capture
        self._values: dict[tuple[str, str], str | None] = {}
        self.cycle: dict[str, Any] = {}
        self.links_saved = 0

    def __getattr__(self, name: str) -> Any:
        if name in self.READS:
            return getattr(self._inner, name)
        return _refuse("StateStore", name)

    async def get_value(self, kind: str, name: str) -> str | None:
        if (kind, name) in self._values:
            return self._values[(kind, name)]
        return await self._inner.get_value(kind, name)

    async def get_cursor(self, name: str) -> str | None:
        return await self.get_value("cursor", name)

    async def set_values(self, kind: str, values: dict[str, str | None]) -> None:
        self._values.update(((kind, k), v) for k, v in values.items())

    async def set_cursors(self, values: dict[str, str | None]) -> None:
        await self.set_values("cursor", values)

    async def add_to_value(self, kind: str, name: str, amount: int) -> int:
        total = int(await self.get_value(kind, name) or 0) + amount
        self._values[(kind, name)] = str(total)
        return total

    async def hash_key(self, configured: str = "") -> bytes:
        if configured:
            return configured.encode()
        existing = await self.get_value("meta", "hashkey")
        # No key yet means no link yet: any key plans the same first load.
        return bytes.fromhex(existing) if existing else b"dry-run-key-no-state-yet"

    async def acquire_lease(self, owner: str, seconds: int, name: str = "cycle") -> bool:
        return True  # a plan writes nothing, so it may run beside a real cycle

    async def release_lease(self, owner: str, name: str = "cycle") -> None:
        return None

    async def save_links(self, links: Any, *, new: bool = False) -> None:
        self.links_saved += len(list(links))

    async def close_links(self, links: Any) -> None:
        return None

    async def add_to_set(self, kind: str, keys: Any, data: Any = None) -> None:
        return None

    async def remove_from_set(self, kind: str, keys: Any) -> None:
        return None

    async def record_cycle(self, cycle_id: str, summary: dict[str, Any]) -> None:
        self.cycle = summary

    async def record_errors(self, rows: Any) -> list[dict[str, Any]]:
        rows = list(rows)
        self._capture.errors.extend(rows)
        return rows

    async def record_person_events(self, events: Any) -> None:
        self._capture.events.extend(events)

    async def ensure_tables(self) -> None:
        return None

    async def ensure_link_counts(self) -> dict[str, int]:
        return await self._inner.link_counts() or {}


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
