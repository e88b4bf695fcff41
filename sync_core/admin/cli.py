"""`python -m sync_core <command>`: run the engine from a shell with env settings.

    setup               create the state tables and Marketo activity types (idempotent)
    doctor              check the whole configuration; exit 1 if a check fails
    fields              candidate fields in both systems; build a mapping file
    run-once [--json]   one delta cycle, then a summary; exit 1 if it failed
    status              the sync's health: cycles, lag, backlog, people, quota, fields
    errors              list or export (CSV) sync errors
    release             let changes held by the mass-change guard through
    explain KEY         one person: values on both sides, base, history and rules
    plan                dry run of the next cycle; writes nothing anywhere

Commands other than run-once live in their own modules (COMMANDS below), each with
`register(subparsers)`, so adding one touches one line here.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
from typing import Any

from sync_core import telemetry
from sync_core.errors import SyncError
from sync_core.settings import SettingsError


def _print_summary(s: dict[str, Any]) -> None:
    c = s.get("counts", {})
    calls = s.get("apiCalls", {})
    print(f"cycle {s.get('cycleId')}: {s.get('outcome')} in {s.get('durationSeconds')} s")
    if s.get("message"):
        print(f"  {s['message']}")
    print(
        f"  Dynamics -> Marketo: {c.get('to_marketo', 0)} people "
        f"({c.get('fields_to_marketo', 0)} fields), {c.get('created_in_marketo', 0)} created, "
        f"{c.get('linked', 0)} linked by email or id"
    )
    print(
        f"  Marketo -> Dynamics: {c.get('to_dynamics', 0)} records "
        f"({c.get('fields_to_dynamics', 0)} fields)"
    )
    print(
        f"  collisions {c.get('collisions', 0)}, rejected {c.get('rejected', 0)}, "
        f"stale (re-planned) {c.get('stale', 0)}, retry later {c.get('retry_later', 0)}, "
        f"filtered out {c.get('filtered_out', 0)}"
    )
    print(
        f"  deletes: in Dynamics {c.get('deleted_in_dynamics', 0)}, "
        f"in Marketo {c.get('deleted_in_marketo', 0)}"
    )
    print(f"  API calls: Marketo {calls.get('marketo', 0)}, Dynamics {calls.get('dynamics', 0)}")
    if s.get("fullReconcile"):
        print(f"  full reconcile (delta token expired): {', '.join(s['fullReconcile'])}")


# Modules providing further commands (register/run); see the module docstring.
COMMANDS: tuple[str, ...] = ("setup", "doctor", "fields", "reports", "explain", "dryrun")


def _run_once(args: argparse.Namespace) -> int:
    from sync_core.entrypoints import run_cycle
    from sync_core.progress import Progress

    # A progress line on a terminal (stderr); nothing extra when piped.
    summary = asyncio.run(run_cycle(progress=Progress.for_stream(sys.stderr)))
    if args.json:
        print(json.dumps(summary, default=str))
    else:
        _print_summary(summary)
    return 0 if summary.get("outcome") in ("succeeded", "skipped", "partial") else 1


def _release(args: argparse.Namespace) -> int:
    from sync_core.guard import release
    from sync_core.runtime import build_store
    from sync_core.settings import load_settings

    store = build_store(load_settings())
    try:
        hold = asyncio.run(release(store, args.field, args.direction))
    except LookupError as exc:
        print(str(exc).strip("'\""), file=sys.stderr)
        return 1
    finally:
        store.close()
    print(
        f"released {hold.field} {hold.direction} (held since {hold.since}, {hold.count} "
        "changes): the next cycle writes them"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sync_core",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run-once", help="run one delta cycle and print a summary")
    run.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    run.set_defaults(handler=_run_once)
    rel = sub.add_parser("release", help="let changes held by the mass-change guard through")
    rel.add_argument("--field", required=True, help="Marketo field name, e.g. title")
    rel.add_argument("--direction", required=True, choices=["to-dynamics", "to-marketo"])
    rel.set_defaults(handler=_release)
    for name in COMMANDS:
        importlib.import_module(f"sync_core.admin.{name}").register(sub)
    args = parser.parse_args(argv)
    telemetry.install_log_context()
    try:
        with telemetry.correlation(args.command):
            return int(args.handler(args))
    except (SettingsError, SyncError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
