"""`python -m sync_core fields`: what could sync, what does, and writing a new selection.

The native connector's "Select Fields to Sync" step offers only fields the sync user
can access. This command does the same from both systems' live metadata, so an admin
picks from what really exists (with type, length and the sync identity's
read/create/update rights) instead of guessing names; `--write` turns the selection
into a mapping file and refuses to write one that would not work (unknown names,
incompatible types), which prevents a typo from stopping every cycle after deploy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tomllib
from collections.abc import Collection, Sequence
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sync_core.errors import ConfigError
from sync_core.mapping import (
    DEFAULT_WINNER,
    ENTITIES,
    Entity,
    FieldRule,
    Mapping,
    Side,
    load_mapping,
)
from sync_core.mapping import parse_mapping as parse_mapping_data
from sync_core.metadata import (
    COMPATIBLE_TYPES,
    MAPPABLE_COLUMN_TYPES,
    ColumnInfo,
    Metadata,
    Problem,
    effective_rules,
    read_metadata,
    validate_mapping,
)
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

The written file replaces the comments of the old one with a standard header. Point
SYNC_MAPPING_FILE at it (and redeploy) for the sync to use it.
"""

Direction = Literal["both", "to-marketo", "to-dynamics"]
DIRECTIONS: tuple[Direction, ...] = ("both", "to-marketo", "to-dynamics")
_DIRECTION: dict[str, Direction] = {d: d for d in DIRECTIONS}
_WINNER: dict[str, Side] = {"marketo": "marketo", "dynamics": "dynamics"}
ARROW = {"both": "<->", "to-marketo": "<- ", "to-dynamics": " ->"}

# Pairs from the native connector's default mapping that mapping.toml leaves out; offered
# as suggestions when both sides exist, are unmapped and their types pair.
NATIVE_DEFAULTS: dict[str, str] = {
    "salutation": "salutation",
    "middleName": "middlename",
    "fax": "fax",
    "leadSource": "leadsourcecode",
    "rating": "leadqualitycode",
    "annualRevenue": "revenue",
    "industry": "industrycode",
    "website": "websiteurl",
    "numberOfEmployees": "numberofemployees",
}

HEADER = """\
# Which fields sync, and how. SYNC_MAPPING_FILE may point to your own copy.
# Written by `python -m sync_core fields --write` on {date}; check it with
# `python -m sync_core doctor`.
#
# Each [[fields]] entry pairs a Marketo REST field name with a Dataverse column on the
# lead and/or the contact table (leave one out to sync that field for one entity only).
# Optional per field:
#   direction = "both" (default) | "to-marketo" | "to-dynamics"
#   winner    = "marketo" | "dynamics"   -- who wins a same-field collision; default is
#               the system of record per entity: Marketo for leads, Dynamics for contacts.
#   ignore_case = true | false           -- compare values case-insensitively (default:
#               true for email, false otherwise); the written value keeps its case.
"""


# ---- editing a selection -------------------------------------------------------------


def _split(values: Sequence[str] | None) -> list[str]:
    return [p.strip() for v in values or [] for p in v.split(",") if p.strip()]


def parse_pair(spec: str, entity: Entity) -> FieldRule:
    """`field=column[:direction][:winner]` -> a rule for `entity`."""
    name, eq, rest = spec.partition("=")
    parts = [p.strip() for p in rest.split(":")]
    if not eq or not name.strip() or not parts[0]:
        raise ConfigError(f"'{spec}': expected MARKETO_FIELD=DATAVERSE_COLUMN[:DIRECTION][:WINNER]")
    direction: Direction = "both"
    winner: Side | None = None
    for part in parts[1:]:
        if part in _DIRECTION:
            direction = _DIRECTION[part]
        elif part in _WINNER:
            winner = _WINNER[part]
        else:
            raise ConfigError(
                f"'{spec}': '{part}' is neither a direction (both, to-marketo, to-dynamics) "
                "nor a winner (marketo, dynamics)"
            )
    if winner and direction != "both":
        raise ConfigError(f"'{spec}': a winner only applies to direction both")
    side: Side
    if direction == "to-marketo":
        side = "dynamics"
    elif direction == "to-dynamics":
        side = "marketo"
    else:
        side = winner or DEFAULT_WINNER[entity]
    name = name.strip()
    return FieldRule(name, parts[0], direction, side, _default_fold(name))


def _default_fold(marketo: str) -> bool:
    # parse_mapping's default for ignore_case: only email compares case-insensitively.
    return marketo == "email"


def edit_mapping(
    mapping: Mapping,
    entities: Sequence[Entity],
    *,
    add: Sequence[str] = (),
    select: Sequence[str] = (),
    drop: Sequence[str] = (),
) -> Mapping:
    """The mapping with `drop` removed and `add`/`select` pairs applied for `entities`.
    `select` starts those entities from an empty list; a pair replaces any rule on
    the same Marketo field or the same column."""
    if add and select:
        raise ConfigError("use --add (keep current fields) or --select (only these), not both")
    fields = dict(mapping.fields)
    for entity in entities:
        rules = [] if select else list(fields[entity])
        rules = [r for r in rules if r.marketo not in drop]
        for spec in [*add, *select]:
            new = parse_pair(spec, entity)
            old = next((r for r in fields[entity] if r.marketo == new.marketo), None)
            if old is not None:
                # The pair syntax has no ignore_case: keep what the file said.
                new = replace(new, fold_case=old.fold_case)
            # Replace in place (a reviewer diffing the file sees one entry change).
            at = next((i for i, r in enumerate(rules) if r.marketo == new.marketo), len(rules))
            rules.insert(at, new)
            rules = [r for i, r in enumerate(rules) if i == at or new.marketo != r.marketo]
            rules = [r for r in rules if r is new or r.column != new.column]
        fields[entity] = tuple(rules)
    return replace(mapping, fields=fields)


def _q(text: str) -> str:
    # A JSON string literal is a valid TOML basic string.
    return json.dumps(text, ensure_ascii=False)


def _entries(mapping: Mapping) -> list[dict[str, str]]:
    """[[fields]] tables: lead and contact share an entry when one entry means both."""
    by_field: dict[str, dict[Entity, FieldRule]] = {}
    position: dict[str, int] = {}
    for entity in ENTITIES:
        for i, rule in enumerate(mapping.fields[entity]):
            by_field.setdefault(rule.marketo, {})[entity] = rule
            position[rule.marketo] = min(i, position.get(rule.marketo, i))
    # A field keeps its place whichever entity lists it (stable: lead's order on ties).
    order = sorted(by_field, key=lambda name: position[name])

    def entry(rules: dict[Entity, FieldRule]) -> dict[str, str]:
        first = next(iter(rules.values()))
        out: dict[str, str] = {"marketo": first.marketo}
        out.update({e: r.column for e, r in rules.items()})
        if first.direction != "both":
            out["direction"] = first.direction
        elif any(r.winner != DEFAULT_WINNER[e] for e, r in rules.items()):
            out["winner"] = first.winner
        if first.fold_case != _default_fold(first.marketo):
            out["ignore_case"] = "true" if first.fold_case else "false"
        return out

    out = []
    for name in order:
        rules = by_field[name]
        lead, contact = rules.get("lead"), rules.get("contact")
        one_entry = (
            lead is None
            or contact is None
            or (
                lead.direction == contact.direction
                and lead.fold_case == contact.fold_case
                and (
                    lead.direction != "both"
                    or lead.winner == contact.winner
                    or (lead.winner, contact.winner)
                    == (DEFAULT_WINNER["lead"], DEFAULT_WINNER["contact"])
                )
            )
        )
        if one_entry:
            out.append(entry(rules))
        else:
            out.extend(entry({e: r}) for e, r in rules.items())
    return out


def mapping_to_toml(mapping: Mapping) -> str:
    """The mapping as a mapping file that `load_mapping` reads back to the same rules."""
    lines = [HEADER.format(date=datetime.now(UTC).date().isoformat()), "[marketo]"]
    lines += [
        f"dynamics_id_field = {_q(mapping.dynamics_id_field)}",
        f"dynamics_type_field = {_q(mapping.dynamics_type_field)}",
        f"dynamics_deleted_field = {_q(mapping.dynamics_deleted_field)}",
        "",
        "[dynamics]",
        f"marketo_id_column = {_q(mapping.marketo_id_column)}",
        f"sync_filter_column = {_q(mapping.sync_filter_column)}",
    ]
    for e in _entries(mapping):
        lines += ["", "[[fields]]"]
        # ignore_case is a TOML boolean; everything else a string.
        lines += [f"{k} = {v if k == 'ignore_case' else _q(v)}" for k, v in e.items()]
    return "\n".join(lines) + "\n"


# ---- the listing ------------------------------------------------------------------------


def _yn(flag: bool) -> str:
    return "y" if flag else "-"


def _column_json(col: ColumnInfo) -> dict[str, Any]:
    d = asdict(col)
    if col.options is not None:
        d["options"] = {str(k): v for k, v in col.options.items()}
    return d


def report(
    mapping: Mapping, meta: Metadata, entities: Sequence[Entity], *, show_all: bool = False
) -> dict[str, Any]:
    """Everything the listing shows, as JSON-ready data."""
    problems = validate_mapping(mapping, {e: meta.columns[e] for e in entities}, meta.marketo)
    own_fields = {
        mapping.dynamics_id_field,
        mapping.dynamics_type_field,
        mapping.dynamics_deleted_field,
    }
    own_columns = {mapping.marketo_id_column, mapping.sync_filter_column}
    out: dict[str, Any] = {"syncIdentity": meta.user_id, "entities": {}}
    for entity in entities:
        cols = meta.columns[entity]
        rules = mapping.fields[entity]
        _, exclusions = effective_rules(mapping, entity, cols, meta.marketo)
        excluded = {(x.field, x.column): x.reason for x in exclusions}
        mapped = []
        for r in rules:
            mk, col = meta.marketo.get(r.marketo), cols.get(r.column)
            notes = [p for p in problems if p.entity == entity and p.field == r.marketo]
            mapped.append(
                {
                    "marketo": r.marketo,
                    "column": r.column,
                    "direction": r.direction,
                    "winner": r.winner,
                    "rules": r.rules_text(),
                    "synced": (r.marketo, r.column) not in excluded,
                    "exclusion": excluded.get((r.marketo, r.column)),
                    "warnings": sorted({p.reason for p in notes if p.severity == "warning"}),
                    "marketoField": asdict(mk) if mk else None,
                    "dynamicsColumn": _column_json(col) if col else None,
                }
            )
        by_column = {r.column: r.marketo for r in rules}
        by_field = {r.marketo: r.column for r in rules}
        suggestions = [
            {"marketo": f, "column": c}
            for f, c in NATIVE_DEFAULTS.items()
            if f in meta.marketo
            and c in cols
            and f not in by_field
            and c not in by_column
            and cols[c].attribute_type in COMPATIBLE_TYPES.get(meta.marketo[f].data_type, ())
            and cols[c].can_read
        ]
        suggested_for = {s["column"]: s["marketo"] for s in suggestions}
        columns = [
            {
                **_column_json(c),
                "mappedTo": by_column.get(name),
                "suggested": suggested_for.get(name),
            }
            for name, c in sorted(cols.items())
            if show_all
            or name in by_column
            # Secured columns show even when unreadable: the admin sees why they can't sync.
            or (
                c.attribute_type in MAPPABLE_COLUMN_TYPES
                and (c.can_read or c.is_secured)
                and name not in own_columns
            )
        ]
        marketo = [
            {**asdict(f), "mappedTo": by_field.get(name)}
            for name, f in sorted(meta.marketo.items(), key=lambda kv: kv[0].lower())
            if show_all
            or name in by_field
            or (f.data_type in COMPATIBLE_TYPES and name not in own_fields)
        ]
        out["entities"][entity] = {
            "mapped": mapped,
            "columns": columns,
            "marketoFields": marketo,
            "suggestions": suggestions,
        }
    out["problems"] = [asdict(p) for p in problems]
    return out


def _table(headers: Sequence[str], rows: list[list[str]], right: Collection[int] = ()) -> list[str]:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def fmt(cells: Sequence[str]) -> str:
        return (
            "  "
            + "  ".join(
                c.rjust(w) if i in right else c.ljust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()
        )

    return [fmt(headers), *(fmt(r) for r in rows)]


def render(data: dict[str, Any], mapping_file: str) -> str:
    lines: list[str] = []
    for entity, d in data["entities"].items():
        mapped = d["mapped"]
        synced = sum(1 for m in mapped if m["synced"])
        lines += [
            f"{entity}: mapping {mapping_file}; sync identity {data['syncIdentity']}",
            "  (R C U = the sync identity may read / create / update the column)",
            "",
            f"Mapped fields: {len(mapped)}, {synced} synced, {len(mapped) - synced} left out",
        ]
        rows = []
        for m in mapped:
            mk, col = m["marketoField"] or {}, m["dynamicsColumn"] or {}
            status = "synced" if m["synced"] else f"LEFT OUT: {m['exclusion']}"
            if m["rules"]:
                status += f" [{m['rules']}]"
            if m["synced"] and m["warnings"]:
                status += f" (warning: {', '.join(m['warnings'])})"
            rows.append(
                [
                    m["marketo"],
                    mk.get("data_type", "?"),
                    str(mk.get("length") or ""),
                    ARROW[m["direction"]],
                    m["column"],
                    col.get("attribute_type", "?"),
                    str(col.get("max_length") or ""),
                    " ".join(
                        _yn(col.get(k, False)) for k in ("can_read", "can_create", "can_update")
                    ),
                    status,
                ]
            )
        lines += _table(
            ["MARKETO", "TYPE", "LEN", "", "DYNAMICS", "TYPE", "MAX", "R C U", "STATUS"],
            rows,
            {2, 6},
        )
        free = [c for c in d["columns"] if not c["mappedTo"]]
        lines += ["", f"Unmapped Dataverse {entity} columns: {len(free)}"]
        lines += _table(
            ["COLUMN", "TYPE", "MAX", "REQUIRED", "R C U", "SECURED", "SUGGESTED"],
            [
                [
                    c["logical_name"],
                    c["attribute_type"],
                    str(c["max_length"] or ""),
                    c["required_level"],
                    " ".join(_yn(c[k]) for k in ("can_read", "can_create", "can_update")),
                    "yes" if c["is_secured"] else "",
                    c["suggested"] or "",
                ]
                for c in free
            ],
            {2},
        )
        freef = [f for f in d["marketoFields"] if not f["mappedTo"]]
        lines += ["", f"Marketo fields not mapped for {entity}: {len(freef)}"]
        lines += _table(
            ["FIELD", "TYPE", "LEN", "UPDATEABLE"],
            [
                [
                    f["name"],
                    f["data_type"],
                    str(f["length"] or ""),
                    "yes" if f["updateable"] else "no",
                ]
                for f in freef
            ],
            {2},
        )
        if d["suggestions"]:
            pairs = ",".join(f"{s['marketo']}={s['column']}" for s in d["suggestions"])
            command = f"python -m sync_core fields --entity {entity} --add {pairs}"
            lines += [
                "",
                "Suggested (in the native connector's default mapping, not mapped here):",
                f"  {command} --write {mapping_file}",
            ]
        problems = [
            p for p in data["problems"] if p["entity"] == entity and p["severity"] != "info"
        ]
        if problems:
            lines += ["", f"Problems ({entity}):"]
            for p in problems:
                lines.append(
                    f"  {p['severity'].upper()} {p['field']} -> {p['column']}: {p['message']}"
                )
                lines.append(f"      fix: {p['fix']}")
        lines.append("")
    return "\n".join(lines)


# ---- the command ------------------------------------------------------------------------


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
    mapping: Mapping, meta: Metadata, path: str, *, force: bool = False, stdout: Any = None
) -> int:
    """Validate `mapping` against `meta` and write it to `path` ('-' = stdout).
    Returns 0 when written, 1 when refused because of errors."""
    stdout = stdout or sys.stdout
    text = mapping_to_toml(mapping)
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
        return write_selection(edited, meta, args.write, force=args.force)
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
