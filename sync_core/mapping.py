"""The field mapping: which Marketo field pairs with which Dataverse column, and rules.

Loaded once from a TOML file and validated before any API call, so a typo in a field
name or a contradictory rule stops start-up with a message naming the entry, instead
of silently syncing the wrong thing for days.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sync_core.errors import ConfigError

Entity = Literal["lead", "contact"]
ENTITIES: tuple[Entity, ...] = ("lead", "contact")
Side = Literal["marketo", "dynamics"]
Blank = Literal["overwrites", "never-overwrites"]
Update = Literal["always", "if-empty"]
Fit = Literal["reject", "truncate"]
RULE_CHOICES: dict[str, tuple[str, ...]] = {
    "blank": ("overwrites", "never-overwrites"),
    "update": ("always", "if-empty"),
    "fit": ("reject", "truncate"),
}
# The system of record per entity decides same-field collisions (native connector's rule).
DEFAULT_WINNER: dict[Entity, Side] = {"lead": "marketo", "contact": "dynamics"}
ENTITY_SET = {"lead": "leads", "contact": "contacts"}
ENTITY_KEY = {"lead": "leadid", "contact": "contactid"}
# Read besides the mapped columns, to follow a lead qualified into a contact (the lead's
# state, the contact's originating lead) and a merge (the subordinate's master).
QUALIFIED = 1  # lead statecode
EXTRA_COLUMNS: dict[Entity, tuple[str, ...]] = {
    "lead": ("statecode", "_masterid_value"),
    "contact": ("_originatingleadid_value", "_masterid_value"),
}


@dataclass(frozen=True, slots=True)
class FieldRule:
    marketo: str
    column: str
    direction: Literal["both", "to-marketo", "to-dynamics"]
    winner: Side
    # Compare case-insensitively (emails: Marketo matches them so, and a case-only
    # difference must not count as an edit or a collision).
    fold_case: bool = False
    # Dataverse option set (value, label) pairs: Marketo holds the label, Dataverse the
    # number. Filled from live metadata, never from the mapping file.
    options: tuple[tuple[int, str], ...] | None = None
    # Per-field rules beyond "the system of record wins" (see mapping.toml):
    blank: Blank = "overwrites"  # never-overwrites: a cleared value is not copied over a value
    update: Update = "always"  # if-empty: only fill an empty target, never change it later
    fit: Fit = "reject"  # truncate: cut a value to the shorter side's length instead
    # The shorter of the two sides' lengths, filled from live metadata for fit = truncate.
    max_length: int | None = None
    # Whether the sync identity may set the column on create (live metadata; the
    # real-time create leaves such a column out and says so).
    can_create: bool = True

    def rules_text(self) -> str:
        """The per-field rules that differ from the defaults, as written in the mapping."""
        parts = [
            f"blank = {self.blank}" if self.blank != "overwrites" else "",
            f"update = {self.update}" if self.update != "always" else "",
            f"fit = {self.fit}" if self.fit != "reject" else "",
        ]
        return ", ".join(p for p in parts if p)


@dataclass(frozen=True)
class Mapping:
    fields: dict[Entity, tuple[FieldRule, ...]]
    dynamics_id_field: str
    dynamics_type_field: str
    dynamics_deleted_field: str
    marketo_id_column: str
    sync_filter_column: str

    def mapped_marketo_fields(self) -> list[str]:
        return sorted({r.marketo for rules in self.fields.values() for r in rules})

    def marketo_fields(self) -> list[str]:
        """Every Marketo field the sync reads (mapped fields plus its own link fields)."""
        return [*self.mapped_marketo_fields(), self.dynamics_id_field, self.dynamics_type_field]

    def case_folded(self) -> frozenset[str]:
        """Marketo names of fields compared case-insensitively."""
        return frozenset(r.marketo for rules in self.fields.values() for r in rules if r.fold_case)

    def columns(self, entity: Entity) -> list[str]:
        """Every Dataverse column read for `entity`."""
        cols = [r.column for r in self.fields[entity]]
        return [*cols, self.marketo_id_column, self.sync_filter_column, *EXTRA_COLUMNS[entity]]


def _text(entry: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = entry.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: '{key}' must be a non-empty string")
    return value.strip()


def parse_mapping(data: dict[str, Any], source: str = "mapping") -> Mapping:
    mk = data.get("marketo", {})
    dy = data.get("dynamics", {})
    entries = data.get("fields")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{source}: needs at least one [[fields]] entry")
    per_entity: dict[Entity, list[FieldRule]] = {"lead": [], "contact": []}
    seen: set[tuple[str, str, str]] = set()
    for i, entry in enumerate(entries, 1):
        where = f"{source}: [[fields]] #{i}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: must be a table")
        known = {"marketo", "lead", "contact", "direction", "winner", "ignore_case", *RULE_CHOICES}
        unknown = set(entry) - known
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}")
        marketo = _text(entry, "marketo", where)
        where = f"{source}: field '{marketo}'"
        direction = entry.get("direction", "both")
        if direction not in ("both", "to-marketo", "to-dynamics"):
            raise ConfigError(f"{where}: direction must be both, to-marketo or to-dynamics")
        winner = entry.get("winner")
        if winner not in (None, "marketo", "dynamics"):
            raise ConfigError(f"{where}: winner must be marketo or dynamics")
        if winner and direction != "both":
            # A one-way field never collides; a winner there means the author expected
            # something else to happen, so say so rather than ignore it.
            raise ConfigError(f"{where}: 'winner' only applies to direction = \"both\"")
        if not any(e in entry for e in ENTITIES):
            raise ConfigError(f"{where}: name a 'lead' and/or 'contact' column")
        extra: dict[str, Any] = {}
        for name, choices in RULE_CHOICES.items():
            if name in entry:
                if entry[name] not in choices:
                    raise ConfigError(f"{where}: {name} must be one of {', '.join(choices)}")
                extra[name] = entry[name]
        for entity in ENTITIES:
            if entity not in entry:
                continue
            column = _text(entry, entity, where)
            for key in (("marketo", entity, marketo), ("dynamics", entity, column)):
                if key in seen:
                    raise ConfigError(f"{where}: '{key[2]}' is mapped twice for {entity}")
                seen.add(key)
            if direction == "to-marketo":
                side: Side = "dynamics"  # a one-way field's source always wins
            elif direction == "to-dynamics":
                side = "marketo"
            else:
                side = winner or DEFAULT_WINNER[entity]
            fold = entry.get("ignore_case", marketo == "email")
            if not isinstance(fold, bool):
                raise ConfigError(f"{where}: ignore_case must be true or false")
            per_entity[entity].append(FieldRule(marketo, column, direction, side, fold, **extra))
    return Mapping(
        fields={e: tuple(rules) for e, rules in per_entity.items()},
        dynamics_id_field=_text(mk, "dynamics_id_field", source, "dynamicsId"),
        dynamics_type_field=_text(mk, "dynamics_type_field", source, "dynamicsType"),
        dynamics_deleted_field=_text(mk, "dynamics_deleted_field", source, "dynamicsDeleted"),
        marketo_id_column=_text(dy, "marketo_id_column", source, "new_marketoid"),
        sync_filter_column=_text(dy, "sync_filter_column", source, "new_synctomkto"),
    )


def load_mapping(path: Path) -> Mapping:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"SYNC_MAPPING_FILE: {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"SYNC_MAPPING_FILE: {path} is not valid TOML: {exc}") from None
    return parse_mapping(data, str(path))
