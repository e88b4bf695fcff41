"""`python -m sync_core fields`: what could sync, what does, and writing a new selection.

The native connector's "Select Fields to Sync" step offers only fields the sync user
can access. This command does the same from both systems' live metadata, so an admin
picks from what really exists (with type, length and the sync identity's
read/create/update rights) instead of guessing names; `--write` turns the selection
into a mapping file and refuses to write one that would not work (unknown names,
incompatible types), which prevents a typo from stopping every cycle after deploy. It
edits the admin's own file (`mapping_writer`), so the notes kept in it survive.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sync_core.admin.fields_listing import render, report
from sync_core.admin.mapping_edit import edit_mapping
from sync_core.admin.mapping_writer import mapping_to_toml
from sync_core.errors import ConfigError
from sync_core.fieldrules import Metadata, Problem, validate_mapping
from sync_core.mapping import ENTITIES, Entity, Mapping, load_mapping
from sync_core.mapping import parse_mapping as parse_mapping_data
from sync_core.metadata import read_metadata
from sync_core.runtime import open_clients
from sync_core.settings import Settings, load_settings

HELP = "list fields both systems offer (and the sync's rights); write a new mapping"
DESCRIPTION = """\
Lists the Dataverse columns and Marketo person fields the sync could map, with type,
length, whether the sync identity can Read / Create / Update each column (field-level
security included), and which pairs the current mapping file (SYNC_MAPPING_FILE)
syncs or leaves out, and why.

Changing the selection (PAIRS is a comma-separated list; the options may repeat):
  --add    PAIRS   keep every currently mapped field and add/replace these pairs
  --select PAIRS   map exactly these pairs (for --entity, or for both entities)
  --drop   FIELDS  stop syncing these Marketo fields
  --write  PATH    write the result to PATH ('-' prints it); it is validated first
                   and not written if any pair cannot work (--force writes anyway)

A pair is MARKETO_FIELD=DATAVERSE_COLUMN, optionally followed by :DIRECTION
(both | to-marketo | to-dynamics) and/or :WINNER (marketo | dynamics), e.g.
  title=jobtitle   leadSource=leadsourcecode:to-marketo   phone=telephone1:dynamics
Pairs apply to --entity, or to both lead and contact when --entity is not given.

Examples:
  python -m sync_core fields --entity lead
  python -m sync_core fields --entity lead --add middleName=middlename --write mapping.toml
  python -m sync_core fields --select email=emailaddress1,firstName=firstname --write -

The written file is SYNC_MAPPING_FILE with only the changed entries rewritten: its
comments, its order and every entry the change leaves alone stay as they were. Point
SYNC_MAPPING_FILE at it (and redeploy) for the sync to use it.
"""


def _split(values: Sequence[str] | None) -> list[str]:
    return [p.strip() for v in values or [] for p in v.split(",") if p.strip()]


async def load(
    settings: Settings, entities: Sequence[Entity], *, ca_bundle: str | None = None
) -> tuple[Mapping, Metadata]:
    mapping = load_mapping(settings.sync_mapping_file)
    async with open_clients(settings, ca_bundle=ca_bundle) as (mk, dv):
        meta = await read_metadata(mk, dv, tuple(entities))
    return mapping, meta


def _print_problems(problems: Sequence[Problem], stream: Any) -> None:
    for p in problems:
        print(f"{p.severity}: {p}", file=stream)


def write_selection(
    mapping: Mapping,
    meta: Metadata,
    path: str,
    *,
    original: str | None = None,
    force: bool = False,
    stdout: Any = None,
) -> int:
    """Validate `mapping` against `meta` and write it to `path` ('-' = stdout), as an
    edit of `original` (the mapping file it was read from) when given.
    Returns 0 when written, 1 when refused because of errors."""
    stdout = stdout or sys.stdout
    text = mapping_to_toml(mapping, original, source=path)
    # Round-trip through the real loader: what we write is exactly what the sync reads.
    reread = parse_mapping_data(tomllib.loads(text), path)
    problems = [
        p for p in validate_mapping(reread, meta.columns, meta.marketo) if p.severity != "info"
    ]
    errors = [p for p in problems if p.severity == "error"]
    _print_problems(problems, sys.stderr)
    if errors and not force:
        print(
            f"not written: {len(errors)} error(s) above; fix the pairs (or use --force)",
            file=sys.stderr,
        )
        return 1
    if path == "-":
        stdout.write(text)
        return 0
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)  # atomic: a half-written mapping never exists
    n = sum(len(r) for r in reread.fields.values())
    print(f"wrote {target} ({n} field rules; {len(problems)} warning(s))", file=sys.stderr)
    return 0


def run(args: argparse.Namespace, *, ca_bundle: str | None = None) -> int:
    settings = load_settings()
    entities: list[Entity] = [args.entity] if args.entity else list(ENTITIES)
    add, select, drop = _split(args.add), _split(args.select), _split(args.drop)
    if (add or select or drop) and not args.write:
        raise ConfigError("--add/--select/--drop need --write PATH (use --write - to print)")
    mapping, meta = asyncio.run(
        load(settings, ENTITIES if args.write else entities, ca_bundle=ca_bundle)
    )
    if args.write:
        edited = edit_mapping(mapping, entities, add=add, select=select, drop=drop)
        original = settings.sync_mapping_file.read_text(encoding="utf-8")
        return write_selection(edited, meta, args.write, original=original, force=args.force)
    data = report(mapping, meta, entities, show_all=args.all)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(render(data, str(settings.sync_mapping_file)))
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "fields",
        help=HELP,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--entity", choices=ENTITIES, help="only lead or only contact (default: both)")
    p.add_argument("--json", action="store_true", help="print the listing as one JSON object")
    p.add_argument("--all", action="store_true", help="also list columns/fields no type pairs with")
    p.add_argument(
        "--add", action="append", metavar="PAIRS", help="add/replace pairs, keep the rest"
    )
    p.add_argument("--select", action="append", metavar="PAIRS", help="map exactly these pairs")
    p.add_argument(
        "--drop", action="append", metavar="FIELDS", help="Marketo fields to stop syncing"
    )
    p.add_argument("--write", metavar="PATH", help="write the (edited) mapping file; '-' prints it")
    p.add_argument("--force", action="store_true", help="write even if validation finds errors")
    p.set_defaults(handler=run)
