"""The `fields` command's pair syntax, and a selection applied to a mapping.

`field=column[:direction][:winner]` is what an admin types; turning it into the same
FieldRule the mapping loader would build (the loader's defaults for winner and
ignore_case included) prevents a written mapping that means something other than
what was typed. Pure: no file, no API.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

from sync_core.errors import ConfigError
from sync_core.mapping import DEFAULT_WINNER, Entity, FieldRule, Mapping, Side

Direction = Literal["both", "to-marketo", "to-dynamics"]
DIRECTIONS: tuple[Direction, ...] = ("both", "to-marketo", "to-dynamics")
_DIRECTION: dict[str, Direction] = {d: d for d in DIRECTIONS}
_WINNER: dict[str, Side] = {"marketo": "marketo", "dynamics": "dynamics"}


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
    return FieldRule(name, parts[0], direction, side, default_fold(name))


def default_fold(marketo: str) -> bool:
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
