"""The mapping file `fields --write` writes: the admin's own file, changed where the
selection changed and nowhere else.

An admin keeps notes in the mapping file (why a field is one-way, who asked for it to
win). Regenerating the file from the parsed rules would drop every one of them on each
change, so the file the mapping was read from is edited in place with tomlkit: an entry
whose rules are unchanged keeps its bytes, its comments and its place; a changed entry
keeps its comments and unchanged lines; a removed entry takes the comment lines directly
above it along; a new entry goes after the entry of the same field, else at the end; the
entries keep the file's order. What is written reads back to the same rules as the
mapping given (checked: otherwise nothing is written).
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import tomlkit
from tomlkit.container import Container
from tomlkit.items import AoT, Comment, Item, Key, Table, Trivia, Whitespace

from sync_core.admin.mapping_edit import default_fold
from sync_core.errors import ConfigError
from sync_core.mapping import DEFAULT_WINNER, ENTITIES, Entity, FieldRule, Mapping, parse_mapping

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
#   blank, update, fit                   -- per-field rules, see the shipped mapping.toml.
"""
_RULE_DEFAULTS = {"blank": "overwrites", "update": "always", "fit": "reject"}

Entry = dict[str, str | bool]  # one [[fields]] table as plain values
Body = list[tuple[Key | None, Item]]


# ---- rules <-> entries ------------------------------------------------------------------


def _one_entry(lead: FieldRule, contact: FieldRule) -> bool:
    """Whether one [[fields]] entry can say both rules (it has one set of options)."""
    return (
        (lead.direction, lead.fold_case, lead.blank, lead.update, lead.fit)
        == (contact.direction, contact.fold_case, contact.blank, contact.update, contact.fit)
    ) and (
        lead.direction != "both"
        or lead.winner == contact.winner
        or (lead.winner, contact.winner) == (DEFAULT_WINNER["lead"], DEFAULT_WINNER["contact"])
    )


def _entry(rules: dict[Entity, FieldRule]) -> Entry:
    first = next(iter(rules.values()))
    out: Entry = {"marketo": first.marketo}
    out.update({e: r.column for e, r in rules.items()})
    if first.direction != "both":
        out["direction"] = first.direction
    elif any(r.winner != DEFAULT_WINNER[e] for e, r in rules.items()):
        out["winner"] = first.winner
    if first.fold_case != default_fold(first.marketo):
        out["ignore_case"] = first.fold_case
    for name, default in _RULE_DEFAULTS.items():
        if getattr(first, name) != default:
            out[name] = getattr(first, name)
    return out


def _group(rules: dict[Entity, FieldRule]) -> list[Entry]:
    """One field's rules as entries: one for both entities when one entry can say both."""
    lead, contact = rules.get("lead"), rules.get("contact")
    if lead is None or contact is None or _one_entry(lead, contact):
        return [_entry(rules)]
    return [_entry({e: r}) for e, r in rules.items()]


def entries(mapping: Mapping) -> list[Entry]:
    """The [[fields]] tables of `mapping` written from nothing, in its order."""
    by_field: dict[str, dict[Entity, FieldRule]] = {}
    position: dict[str, int] = {}
    for entity in ENTITIES:
        for i, rule in enumerate(mapping.fields[entity]):
            by_field.setdefault(rule.marketo, {})[entity] = rule
            position[rule.marketo] = min(i, position.get(rule.marketo, i))
    # A field keeps its place whichever entity lists it (stable: lead's order on ties).
    order = sorted(by_field, key=lambda name: position[name])
    return [e for name in order for e in _group(by_field[name])]


def _rules_of(entry: dict[str, Any]) -> dict[Entity, FieldRule]:
    parsed = parse_mapping({"fields": [entry]})
    return {e: rules[0] for e, rules in parsed.fields.items() if rules}


# ---- the document -----------------------------------------------------------------------


@dataclass
class _Block:
    """One [[fields]] entry as it will be written.

    tomlkit keeps the lines between two entries at the end of the first one's table;
    here they are split into `gap` (what followed this entry: blank lines, loose
    comments) and the next block's `above` (the comment lines directly over its
    header), so each entry's comments move and go with it."""

    rules: dict[Entity, FieldRule]
    body: Body  # keys and the comments between them
    header: Trivia | None = None  # None: a new entry
    above: tuple[Item, ...] = ()
    gap: tuple[Item, ...] | None = None  # None: never followed by another entry

    @property
    def name(self) -> str:
        return next(iter(self.rules.values())).marketo


def _split_tail(items: list[tuple[Key | None, Item]]) -> tuple[Body, list[Item]]:
    end = len(items)
    while end and items[end - 1][0] is None:
        end -= 1
    return items[:end], [item for _, item in items[end:]]


def _blocks(aot: AoT) -> tuple[list[_Block], tuple[Item, ...]]:
    """The entries of `aot`, and what follows the last one (kept at the very end)."""
    blocks: list[_Block] = []
    above: tuple[Item, ...] = ()  # above the first entry: outside the array, stays put
    tail: list[Item] = []
    for table in aot:
        body, tail = _split_tail(list(table.value.body))
        blocks.append(_Block(_rules_of(table.unwrap()), body, table.trivia, above))
        cut = len(tail)
        while cut and isinstance(tail[cut - 1], Comment):
            cut -= 1
        blocks[-1].gap, above = tuple(tail[:cut]), tuple(tail[cut:])
    if blocks:
        blocks[-1].gap = None
    return blocks, tuple(tail)


def _new_body(entry: Entry) -> Body:
    return [(tomlkit.key(k), tomlkit.item(v)) for k, v in entry.items()]


def _edited(block: _Block, entry: Entry) -> _Block:
    """`block` saying `entry`: unchanged lines (and their comments) stay, changed values
    are rewritten, keys the entry no longer has go, new keys follow the old ones."""
    body: Body = []
    for key, item in block.body:
        if key is None:
            body.append((key, item))
        elif key.key in entry:
            body.append(
                (key, item if item.unwrap() == entry[key.key] else _new_value(item, entry[key.key]))
            )
    present = {key.key for key, _ in body if key is not None}
    body += [(tomlkit.key(k), tomlkit.item(v)) for k, v in entry.items() if k not in present]
    return _Block(_rules_of(entry), body, block.header, block.above, block.gap)


def _new_value(old: Item, value: str | bool) -> Item:
    """`value` written where `old` was, keeping its indentation and end-of-line comment."""
    new = tomlkit.item(value)
    for part in ("indent", "comment_ws", "comment", "trail"):
        setattr(new.trivia, part, getattr(old.trivia, part))
    return new


def _in_place(old: list[_Block], mapping: Mapping) -> list[_Block]:
    """The entries of `mapping`, laid out over the old ones (see the module docstring)."""
    wanted = {(e, r.marketo): r for e in ENTITIES for r in mapping.fields[e]}
    kept = [all(wanted.get((e, r.marketo)) == r for e, r in b.rules.items()) for b in old]
    claimed = {(e, b.name) for b, k in zip(old, kept, strict=True) if k for e in b.rules}
    pending: dict[str, list[Entry]] = {}
    for name in dict.fromkeys(r.marketo for e in ENTITIES for r in mapping.fields[e]):
        rules = {e: wanted[e, name] for e in ENTITIES if (e, name) in wanted}
        rules = {e: r for e, r in rules.items() if (e, name) not in claimed}
        if rules:
            pending[name] = _group(rules)
    out: list[_Block] = []
    carry: tuple[Item, ...] = ()  # loose comments after removed entries: they stay
    for block, keep in zip(old, kept, strict=True):
        if not keep and not pending.get(block.name):
            carry += _loose_comments(block.gap)
            continue
        if not keep:
            # Reuse the entry for the group closest to what it said (fewest changed lines).
            groups = pending[block.name]
            best = max(groups, key=lambda g: _likeness(block.rules, _rules_of(g)))
            groups.remove(best)
            block = _edited(block, best)
        if carry:
            block, carry = replace(block, above=carry + block.above), ()
        out.append(block)
    for name, groups in pending.items():
        at = max((i + 1 for i, b in enumerate(out) if b.name == name), default=len(out))
        out[at:at] = [_Block(_rules_of(g), _new_body(g)) for g in groups]
    if carry and out:
        last = out[-1]
        out[-1] = replace(last, body=[*last.body, (None, Whitespace("\n")), *_keyless(carry)])
    return out


def _loose_comments(gap: tuple[Item, ...] | None) -> tuple[Item, ...]:
    """What of a removed entry's gap to keep: its comments, without the blank lines
    that only separated them from the removed entry."""
    items = list(gap or ())
    while items and isinstance(items[0], Whitespace):
        items.pop(0)
    return tuple(items) if any(isinstance(i, Comment) for i in items) else ()


def _keyless(items: Iterable[Item]) -> Body:
    return [(None, item) for item in items]


def _likeness(old: dict[Entity, FieldRule], new: dict[Entity, FieldRule]) -> tuple[int, int]:
    return sum(1 for e, r in new.items() if old.get(e) == r), len(old.keys() & new.keys())


def _aot(blocks: list[_Block], tail: Iterable[Item]) -> AoT:
    tables = []
    for i, block in enumerate(blocks):
        header = copy.copy(block.header) if block.header else Trivia()
        table = Table(Container(), header, is_aot_element=True)
        # The first entry's own comments can only go under its header: what is above
        # the array belongs to the table before it (and stays there).
        lead = _keyless(block.above) if i == 0 else []
        if i + 1 < len(blocks):
            between = [Whitespace("\n")] if block.gap is None else list(block.gap)
            trailing = [*between, *blocks[i + 1].above]
        else:
            trailing = list(tail)
        for key, item in [*lead, *block.body, *_keyless(trailing)]:
            table.value.append(key, item)
        tables.append(table)
    # parsed: tomlkit would otherwise add blank lines of its own between the tables.
    return AoT(tables, name="fields", parsed=True)


def _render(doc: tomlkit.TOMLDocument, blocks: list[_Block], tail: Iterable[Item]) -> str:
    doc["fields"] = _aot(blocks, tail)
    return doc.as_string()


def mapping_to_toml(
    mapping: Mapping, original: str | None = None, *, source: str = "mapping"
) -> str:
    """`mapping` as a mapping file. With `original` (the file it was read and edited
    from), that file with only the entries that differ rewritten; without, a new file.
    `source` names the file in errors."""
    if original is None:
        original = _skeleton(mapping)
    doc = tomlkit.parse(original)
    aot = doc.get("fields")
    old, tail = _blocks(aot) if isinstance(aot, AoT) else ([], ())
    text = _render(doc, _in_place(old, mapping), tail)
    # What the sync would read from it; never written if that is not the selection.
    if not same_rules(parse_mapping(tomllib.loads(text), source), mapping):
        raise ConfigError(f"{source}: the rewritten file would not read back as the selection")
    return text


def same_rules(a: Mapping, b: Mapping) -> bool:
    """Whether two mappings sync the same: the order of one entity's rules means nothing
    (the file keeps the admin's order; a selection lists pairs in any order)."""

    def rules(m: Mapping) -> dict[Entity, frozenset[FieldRule]]:
        return {e: frozenset(r) for e, r in m.fields.items()}

    return rules(a) == rules(b) and replace(a, fields={}) == replace(b, fields={})


def _skeleton(mapping: Mapping) -> str:
    def q(value: str) -> str:
        return tomlkit.string(value).as_string()

    return (
        HEADER.format(date=datetime.now(UTC).date().isoformat())
        + "\n[marketo]\n"
        + f"dynamics_id_field = {q(mapping.dynamics_id_field)}\n"
        + f"dynamics_type_field = {q(mapping.dynamics_type_field)}\n"
        + f"dynamics_deleted_field = {q(mapping.dynamics_deleted_field)}\n"
        + "\n[dynamics]\n"
        + f"marketo_id_column = {q(mapping.marketo_id_column)}\n"
        + f"sync_filter_column = {q(mapping.sync_filter_column)}\n\n"
    )
