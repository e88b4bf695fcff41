"""The field rules: which mapped fields can sync, checked against both systems' metadata.

Pure: given the mapping and the metadata `sync_core.metadata` read, it decides and
explains, and never calls an API, so the engine (`access`), `doctor` and `fields` share
one verdict and it is tested without a network. The mapping file names fields; only the
two systems know whether those fields exist, what type and length they have and
whether the sync identity may read or write them. Intersecting the two prevents the
failures a blind mapping causes: a secured column the sync cannot read comes back as
null and would "clear" the Marketo value; a write to a column the identity may not
update fails the whole record; a typo'd name or a boolean mapped onto a text column
fails every cycle. `effective_rules` drops such rules (with a reason per rule), and
`validate_mapping` explains every problem with its fix, for start-up and `doctor`.

Type compatibility (Marketo describe2 dataType -> Dataverse AttributeType):

    string, email, phone, url, text  <->  String, Memo
    string                           <->  Picklist (the Marketo value is the option label)
    boolean                          <->  Boolean
    integer                          <->  Integer, BigInt
    float, currency                  <->  Double, Decimal, Money
    date, datetime                   <->  DateTime

Anything else (lookups, owners, state/status, reference, formula, score, percent, ...)
has no safe pairing and is reported as "types incompatible".
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping as MappingT
from dataclasses import dataclass, replace
from typing import Literal

from sync_core.mapping import Entity, FieldRule, Mapping

COMPATIBLE_TYPES: dict[str, frozenset[str]] = {
    **dict.fromkeys(("email", "phone", "url", "text"), frozenset({"String", "Memo"})),
    "string": frozenset({"String", "Memo", "Picklist"}),
    "boolean": frozenset({"Boolean"}),
    "integer": frozenset({"Integer", "BigInt"}),
    **dict.fromkeys(("float", "currency"), frozenset({"Double", "Decimal", "Money"})),
    **dict.fromkeys(("date", "datetime"), frozenset({"DateTime"})),
}
# Every Dataverse type that pairs with some Marketo type (what `fields` offers).
MAPPABLE_COLUMN_TYPES: frozenset[str] = frozenset().union(*COMPATIBLE_TYPES.values())

# Largest MaxLength Dataverse allows per text type (a fix must be possible to follow).
_DATAVERSE_MAX = {"String": 4000, "Memo": 1_048_576}


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    """One Dataverse column as the sync identity sees it."""

    logical_name: str
    attribute_type: str
    max_length: int | None
    required_level: str
    is_secured: bool
    # IsValidFor* AND, for a secured column, the identity's own field permission.
    can_read: bool
    can_create: bool
    can_update: bool
    options: dict[int, str] | None  # Picklist / Boolean: value -> label


@dataclass(frozen=True, slots=True)
class MarketoField:
    name: str
    data_type: str
    length: int | None
    updateable: bool


@dataclass(frozen=True, slots=True)
class Exclusion:
    """A mapped field left out of the effective sync set, and why."""

    field: str  # Marketo name
    column: str
    reason: str


Severity = Literal["error", "warning", "info"]
# add(severity, reason, message, fix): records a finding that does not exclude the rule.
_Add = Callable[[Severity, str, str, str], None]


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding of `validate_mapping`. `excludes` means the rule is left out of the
    sync (the same finding `effective_rules` reports as an Exclusion)."""

    severity: Severity
    entity: Entity
    field: str
    column: str
    reason: str  # short and stable, e.g. "not readable by the sync identity"
    message: str
    fix: str
    excludes: bool = False

    def __str__(self) -> str:
        return f"{self.entity} {self.field} -> {self.column}: {self.message} Fix: {self.fix}"


@dataclass(frozen=True)
class Metadata:
    """Everything the mapping is checked against, read once."""

    user_id: str
    columns: dict[Entity, dict[str, ColumnInfo]]
    marketo: dict[str, MarketoField]


NOT_READABLE = "not readable by the sync identity"


def writes_to_marketo(rule: FieldRule) -> bool:
    return rule.direction in ("both", "to-marketo")


def writes_to_dynamics(rule: FieldRule) -> bool:
    return rule.direction in ("both", "to-dynamics")


def _rule_problems(
    entity: Entity,
    rule: FieldRule,
    columns: MappingT[str, ColumnInfo],
    mfields: MappingT[str, MarketoField],
) -> list[Problem]:
    """Every finding for one rule; excluding findings first, in the documented order."""
    out: list[Problem] = []
    f, c = rule.marketo, rule.column

    def add(sev: Severity, reason: str, msg: str, fix: str, excludes: bool = False) -> None:
        out.append(Problem(sev, entity, f, c, reason, msg, fix, excludes))

    col, mk = columns.get(c), mfields.get(f)
    listing = f"`python -m sync_core fields --entity {entity}` lists what exists"
    if col is None:
        add(
            "error",
            "column unknown",
            f"Dataverse table {entity} has no column '{c}'.",
            f"correct the {entity} column name in the mapping or create the column ({listing}).",
            True,
        )
    elif not col.can_read:
        secured = col.is_secured
        add(
            "warning" if secured else "error",
            NOT_READABLE,
            f"the sync identity cannot read {entity}.{c}"
            + (" (column-level security)" if secured else " (IsValidForRead is false)")
            + "; it would read as empty and clear the Marketo value, so it is left out.",
            "grant Read (and Create/Update if the rule writes to Dynamics) on this column "
            "in a field security profile assigned to the sync's application user, or remove "
            "the mapping."
            if secured
            else "remove this mapping: the column can't be read through the Web API.",
            True,
        )
    if mk is None:
        add(
            "error",
            "Marketo field unknown",
            f"Marketo has no person field with the REST API name '{f}'.",
            f"use the REST API name (Admin -> Field Management) or create the field ({listing}).",
            True,
        )
    if col is None or mk is None:
        return out
    kinds = COMPATIBLE_TYPES.get(mk.data_type, frozenset())
    if col.attribute_type not in kinds:
        fits = ", ".join(sorted(kinds)) or "no Dataverse type"
        add(
            "error",
            "types incompatible",
            f"Marketo {f} is {mk.data_type}, Dataverse {c} is {col.attribute_type} "
            f"(a {mk.data_type} field pairs with: {fits}).",
            "map the field to a column of a compatible type, or remove the mapping.",
            True,
        )
        return out
    if writes_to_marketo(rule) and not mk.updateable:
        add(
            "error",
            "Marketo field not updateable",
            f"Marketo {f} is read-only through the API but the rule writes to Marketo.",
            'set direction = "to-dynamics" for this field, or remove the mapping.',
            True,
        )
    # An unreadable column already says "grant access": one finding per cause is enough.
    if writes_to_dynamics(rule) and col.can_read and not col.can_update:
        secured = col.is_secured
        add(
            "warning" if secured else "error",
            "column not updatable by the sync identity",
            f"the sync identity cannot update {entity}.{c}"
            + (" (column-level security)" if secured else " (IsValidForUpdate is false)")
            + " but the rule writes to Dynamics.",
            "grant Update on this column in the sync's field security profile, or set "
            'direction = "to-marketo".'
            if secured
            else 'set direction = "to-marketo" for this field, or remove the mapping.',
            True,
        )
    if any(p.excludes for p in out):
        return out
    if writes_to_dynamics(rule) and not col.can_create:
        add(
            "warning",
            "column not creatable by the sync identity",
            f"the sync identity may update but not create {entity}.{c}; records created by "
            "Sync Person to Microsoft are created without it.",
            "grant Create on this column in the sync's field security profile.",
        )
    _length_problems(entity, rule, col, mk, add)
    if col.attribute_type == "Picklist":
        labels = [label for label in (col.options or {}).values() if label]
        add(
            "info",
            "option set",
            f"Marketo {f} holds the option label; Dataverse {c} accepts: "
            + (", ".join(labels) if labels else "(no options defined)")
            + ".",
            "keep Marketo values to exactly these labels; other values are rejected by "
            "Dataverse and logged as sync errors.",
        )
        longest = max((len(label) for label in labels), default=0)
        if writes_to_marketo(rule) and mk.length is not None and longest > mk.length:
            add(
                "warning",
                "length",
                f"the longest {c} label has {longest} characters, Marketo {f} holds {mk.length}.",
                "map to a longer Marketo field (text) or shorten the option labels.",
            )
    return out


def _length_problems(
    entity: Entity, rule: FieldRule, col: ColumnInfo, mk: MarketoField, add: _Add
) -> None:
    if col.max_length is None or mk.length is None or col.attribute_type == "Picklist":
        return
    if rule.fit == "truncate":
        return  # the admin chose to cut longer values to fit: a difference is expected
    f, c = rule.marketo, rule.column
    if writes_to_dynamics(rule) and mk.length > col.max_length:
        add(
            "warning",
            "length",
            f"Marketo {f} allows {mk.length} characters, Dataverse {entity}.{c} only "
            f"{col.max_length}: longer values are rejected by Dataverse (0x80044331) and "
            "logged as sync errors.",
            f"raise the MaxLength of {c} to {mk.length} in Power Apps, or keep Marketo values "
            f"within {col.max_length} characters."
            if mk.length <= _DATAVERSE_MAX[col.attribute_type]
            else f"keep Marketo values within {col.max_length} characters, or map a Dataverse "
            f"column that holds {mk.length} (single line of text stops at 4000).",
        )
    if writes_to_marketo(rule) and col.max_length > mk.length:
        add(
            "warning",
            "length",
            f"Dataverse {entity}.{c} allows {col.max_length} characters, Marketo {f} only "
            f"{mk.length}: longer values are rejected by Marketo (1001) and logged as sync "
            "errors.",
            f"lower the MaxLength of {c} to {mk.length}, or map a Marketo text field.",
        )


def effective_rules(
    mapping: Mapping,
    entity: Entity,
    columns: MappingT[str, ColumnInfo],
    mfields: MappingT[str, MarketoField],
) -> tuple[tuple[FieldRule, ...], list[Exclusion]]:
    """The rules the sync can honour (selected ∩ accessible ∩ type-compatible), and an
    Exclusion naming the first reason for each rule left out."""
    keep: list[FieldRule] = []
    dropped: list[Exclusion] = []
    for rule in mapping.fields[entity]:
        blocking = [p for p in _rule_problems(entity, rule, columns, mfields) if p.excludes]
        if blocking:
            dropped.append(Exclusion(rule.marketo, rule.column, blocking[0].reason))
        else:
            keep.append(rule)
    return tuple(keep), dropped


def effective_mapping(mapping: Mapping, meta: Metadata) -> tuple[Mapping, list[Exclusion]]:
    """`mapping` reduced to its effective rules for every entity in `meta`."""
    fields = dict(mapping.fields)
    exclusions: list[Exclusion] = []
    for entity, columns in meta.columns.items():
        fields[entity], dropped = effective_rules(mapping, entity, columns, meta.marketo)
        exclusions.extend(dropped)
    return replace(mapping, fields=fields), exclusions


def create_columns(rules: tuple[FieldRule, ...], columns: MappingT[str, ColumnInfo]) -> set[str]:
    """Columns of `rules` the identity may set on create. Sending one it may not
    (a secured column without Create) fails the whole create with 403 0x8004F502."""
    return {r.column for r in rules if (c := columns.get(r.column)) is not None and c.can_create}


def validate_mapping(
    mapping: Mapping,
    columns: MappingT[Entity, MappingT[str, ColumnInfo]],
    mfields: MappingT[str, MarketoField],
) -> list[Problem]:
    """Every problem of the mapping's [[fields]] against both metadata sets, each naming
    the field and the fix. Errors are mistakes in the mapping (it names something that
    does not exist or cannot work); warnings are conditions the sync runs with (an
    excluded secured column, values that may be too long); infos are for reading."""
    out: list[Problem] = []
    for entity, cols in columns.items():
        for rule in mapping.fields[entity]:
            out.extend(_rule_problems(entity, rule, cols, mfields))
    return out
