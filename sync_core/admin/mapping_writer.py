"""A mapping written back as a mapping file that the loader reads to the same rules.

`fields --write` produces it; what is written is exactly what the sync will read
(lead and contact share an entry where one entry can say both).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sync_core.admin.mapping_edit import default_fold
from sync_core.mapping import DEFAULT_WINNER, ENTITIES, Entity, FieldRule, Mapping

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
        if first.fold_case != default_fold(first.marketo):
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
