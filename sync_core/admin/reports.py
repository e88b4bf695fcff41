"""`errors` and `status`: what the sync did, from its own logs in Table Storage.

The native connector's Sync Errors tab and Sync Status page, as commands: an admin can
list or export rejected writes and see the sync's health (sync_core.health) without
opening the portal.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from sync_core.health import read_status
from sync_core.runtime import build_store
from sync_core.settings import load_settings

ERROR_COLUMNS = (
    "at", "operation", "direction", "entity", "code", "message", "marketoId", "dynamicsId",
    "fields",
)  # fmt: skip


def register(subparsers: Any) -> None:
    e = subparsers.add_parser("errors", help="list or export sync errors (newest first)")
    e.add_argument("--since", type=_when, help="only errors at or after this ISO time")
    e.add_argument("--csv", action="store_true", help="write CSV (for a spreadsheet)")
    e.set_defaults(handler=errors)
    s = subparsers.add_parser(
        "status", help="the sync's health: last cycles, lag, backlog, people, quota, fields"
    )
    s.add_argument("--last", type=int, default=10, help="how many cycles (default 10)")
    s.add_argument("--json", action="store_true", help="the status document (schema 1)")
    s.add_argument("--live", action="store_true", help="also ask both systems (a few API calls)")
    s.set_defaults(handler=status)


def _when(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date/time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def errors(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    store = build_store(load_settings())
    rows = asyncio.run(store.list_errors(since=args.since))
    if args.csv:
        writer = csv.DictWriter(out, fieldnames=ERROR_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "fields": ",".join(_list(row.get("fields")))})
        return 0
    if not rows:
        print("no sync errors", file=out)
    for row in rows:
        person, record = row.get("marketoId") or "-", row.get("dynamicsId") or "-"
        ids = f"person {person} / {row.get('entity')} {record}"
        print(
            f"{row.get('at', '')[:19]}  {row.get('code')}  {row.get('operation')} "
            f"{row.get('direction')}  {ids}\n    {row.get('message')}",
            file=out,
        )
    return 0


def status(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    doc = asyncio.run(read_status(load_settings(), last=args.last, live=args.live))
    if args.json:
        print(json.dumps(doc, default=str), file=out)
        return 0
    for line in status_lines(doc):
        print(line, file=out)
    return 0


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def status_lines(doc: dict[str, Any]) -> list[str]:
    lines = []
    if not doc["cycles"]:
        lines.append("no cycle has run yet")
    for c in doc["cycles"]:
        lines.append(
            f"{str(c['started'])[:19]}  {c['outcome']:<9} {c['durationSeconds']:7.2f} s  "
            f"->Marketo {c['toMarketo']}, ->Dynamics {c['toDynamics']}, "
            f"collisions {c['collisions']}, rejected {c['rejected']}, "
            f"calls M{c['apiCalls']['marketo']}/D{c['apiCalls']['dynamics']}"
            + (f"  {c['message']}" if c["message"] else "")
        )
    if doc["failedInARow"]:
        lines.append(f"FAILING: the last {doc['failedInARow']} cycle(s) did not succeed")
    lines.append("cursors (lag = how old the oldest unsynced change can be):")
    for cur in doc["cursors"]:
        lines.append(f"  {cur['name']:<20} {cur['mode']:<16} saved {_ago(cur['lagSeconds'])}")
    for b in doc["backlog"]:
        left = b["remainingEstimate"]
        estimate = f", about {left} records left" if left is not None else ""
        lines.append(f"backlog: {b['entity']} {b['kind']} resumes next cycle{estimate}")
    p = doc["people"]
    excluded = "?" if p["excludedByFilter"] is None else p["excludedByFilter"]
    lines.append(
        f"people: {p['linked']} linked ({p['linkedLeads']} leads, {p['linkedContacts']} "
        f"contacts), {excluded} excluded by the sync filter, {p['retrying']} retrying, "
        f"{p['rejectedLast24h']} rejected in 24 h"
    )
    q = doc["quota"]
    lines.append(
        f"Marketo quota {q['day']}: {q['used']} used, {q['left']} left of the sync's "
        f"{q['syncBudget']} (daily {q['daily']})"
    )
    for h in doc["holds"]:
        lines.append(
            f"HELD by the mass-change guard: {h['field']} {h['direction']} ({h['count']} "
            f"writes > {h['limit']}); release: python -m sync_core release --field "
            f"{h['field']} --direction {h['direction']}"
        )
    act = doc["activityLog"]["active"]
    why = f" ({doc['activityLog']['reason']})" if doc["activityLog"]["reason"] else ""
    lines.append(f"activity log: {'on' if act else 'OFF' if act is False else '?'}{why}")
    tracking = ", ".join(
        f"{e} {'on' if v else 'OFF (modifiedon fallback)' if v is False else '?'}"
        for e, v in doc["changeTracking"].items()
    )
    lines.append(f"change tracking: {tracking}")
    off = [f for f in doc["fields"] if f["active"] is False]
    total = len(doc["fields"])
    if doc["fieldsCheckedAt"] is None:
        lines.append(f"fields: {total} mapped; not checked against metadata yet")
    else:
        lines.append(f"fields: {total - len(off)} of {total} mapped fields active")
    for f in off:
        lines.append(f"  left out: {f['entity']} {f['field']} ({f['reason']})")
    return lines


def _list(value: Any) -> list[str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return [value]
    return [str(v) for v in value or []]
