"""`errors` and `status`: what the sync did, from its own logs in Table Storage.

The native connector's Sync Errors tab and Sync Status page, as commands: an admin can
list or export rejected writes and see the last cycles without opening the portal.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

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
    s = subparsers.add_parser("status", help="the last cycles and their outcome")
    s.add_argument("--last", type=int, default=10, help="how many cycles (default 10)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=status)


def _when(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date/time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def errors(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    store = build_store(load_settings())
    rows = store.list_errors(since=args.since)
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
    store = build_store(load_settings())
    cycles = store.recent_cycles(args.last)
    if args.json:
        print(json.dumps(cycles, default=str), file=out)
        return 0
    if not cycles:
        print("no cycle has run yet", file=out)
    for c in cycles:
        counts = json.loads(c.get("counts") or "{}")
        calls = json.loads(c.get("apiCalls") or "{}")
        moved = (
            f"->Marketo {counts.get('to_marketo', 0)}, ->Dynamics {counts.get('to_dynamics', 0)}"
        )
        print(
            f"{str(c.get('started'))[:19]}  {c.get('outcome'):<9} "
            f"{float(c.get('durationSeconds', 0)):7.2f} s  "
            f"{moved}, rejected {counts.get('rejected', 0)}, "
            f"calls M{calls.get('marketo', 0)}/D{calls.get('dynamics', 0)}"
            + (f"  {c['message']}" if c.get("message") else ""),
            file=out,
        )
    return 0


def _list(value: Any) -> list[str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return [value]
    return [str(v) for v in value or []]
