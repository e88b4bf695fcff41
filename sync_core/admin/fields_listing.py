"""What `fields` lists: both systems' candidate fields, the sync's rights, the mapping.

`report` gathers it as JSON-ready data (what --json prints) and `render` turns that
into the tables an admin reads; the verdict on each pair is `fieldrules`' own, so the
listing cannot disagree with what a cycle syncs. Pure: the metadata is read elsewhere.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict
from typing import Any

from sync_core.fieldrules import (
    COMPATIBLE_TYPES,
    MAPPABLE_COLUMN_TYPES,
    ColumnInfo,
    Metadata,
    effective_rules,
    validate_mapping,
)
from sync_core.mapping import Entity, Mapping

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
