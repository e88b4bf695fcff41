"""The effective sync set for a cycle: mapped ∩ accessible ∩ type-compatible fields.

Metadata from both systems decides which mapped fields the sync identity can really
read and write; a field it cannot is left out with a reason (reported in the summary
and cycle log) instead of failing the cycle, and a secured column that reads back as
null is never mistaken for a cleared value. Reading metadata costs five calls, so the
result is kept in the state table for an hour and refreshed early whenever a cycle sees
a sign that access changed (a field-security error, an unknown column, a value that
suddenly reads as empty). Option sets are translated here too: Marketo holds the label,
Dataverse the number.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from sync_core.dataverse import DataverseClient
from sync_core.fieldrules import ColumnInfo, MarketoField, effective_rules, validate_mapping
from sync_core.mapping import ENTITIES, Entity, FieldRule, Mapping
from sync_core.marketo import MarketoClient
from sync_core.metadata import read_metadata
from sync_core.state import StateStore

TTL_SECONDS = 3600
_ROW = "fieldaccess"


@dataclass
class FieldAccess:
    mapping: Mapping  # only the effective rules
    excluded: list[dict[str, str]]  # entity, field, column, reason
    refreshed: bool  # read from the APIs during this cycle
    # Mapping problems found when metadata was read (errors and warnings, with the fix).
    problems: list[dict[str, str]] = field(default_factory=list)


def _fingerprint(mapping: Mapping) -> str:
    text = repr(
        sorted(
            (e, r.marketo, r.column, r.direction, r.winner, r.blank, r.update, r.fit)
            for e, rs in mapping.fields.items()
            for r in rs
        )
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _rule(data: dict[str, Any]) -> FieldRule:
    options = data.get("options")
    return FieldRule(
        data["marketo"],
        data["column"],
        data["direction"],
        data["winner"],
        bool(data.get("fold_case")),
        tuple((int(v), str(label)) for v, label in options) if options else None,
        blank=data.get("blank", "overwrites"),
        update=data.get("update", "always"),
        fit=data.get("fit", "reject"),
        max_length=data.get("max_length"),
        can_create=bool(data.get("can_create", True)),
    )


async def field_access(
    store: StateStore,
    mapping: Mapping,
    marketo: MarketoClient,
    dataverse: DataverseClient,
    *,
    force: bool = False,
) -> FieldAccess:
    fingerprint = _fingerprint(mapping)
    if not force:
        cached = await _cached(store, mapping)
        if cached is not None:
            return cached
    meta = await read_metadata(marketo, dataverse)
    fields: dict[Entity, tuple[FieldRule, ...]] = {}
    excluded: list[dict[str, str]] = []
    for entity in ENTITIES:
        columns = meta.columns[entity]
        kept, dropped = effective_rules(mapping, entity, columns, meta.marketo)
        fields[entity] = tuple(
            _with_limits(_with_options(r, columns[r.column]), columns[r.column], meta.marketo)
            for r in kept
        )
        excluded += [
            {"entity": entity, "field": x.field, "column": x.column, "reason": x.reason}
            for x in dropped
        ]
    row = {
        "fingerprint": fingerprint,
        "at": time.time(),
        "rules": {e: [asdict(r) for r in rules] for e, rules in fields.items()},
        "excluded": excluded,
    }
    await store.set_values("meta", {_ROW: json.dumps(row)})
    problems = [
        {"severity": p.severity, "entity": p.entity, "field": p.field, "column": p.column,
         "message": p.message, "fix": p.fix}
        for p in validate_mapping(mapping, meta.columns, meta.marketo)
        if p.severity in ("error", "warning")
    ]  # fmt: skip
    return FieldAccess(replace(mapping, fields=fields), excluded, True, problems)


async def _cached(store: StateStore, mapping: Mapping) -> FieldAccess | None:
    raw = await store.get_value("meta", _ROW)
    if not raw:
        return None
    data = json.loads(raw)
    if data["fingerprint"] != _fingerprint(mapping) or time.time() - data["at"] >= TTL_SECONDS:
        return None
    rules = {e: tuple(_rule(r) for r in data["rules"][e]) for e in ENTITIES}
    return FieldAccess(replace(mapping, fields=rules), data["excluded"], False)


async def known_mapping(store: StateStore, mapping: Mapping) -> Mapping:
    """The effective mapping as last read from metadata, without calling any API (for
    the webhook, which must answer fast); the configured mapping when none is fresh."""
    cached = await _cached(store, mapping)
    return cached.mapping if cached else mapping


def _with_options(rule: FieldRule, column: ColumnInfo) -> FieldRule:
    if not column.can_create:
        rule = replace(rule, can_create=False)
    if column.attribute_type != "Picklist" or not column.options:
        return rule
    return replace(rule, options=tuple(sorted(column.options.items())))


def _with_limits(
    rule: FieldRule, column: ColumnInfo, mfields: dict[str, MarketoField]
) -> FieldRule:
    """For fit = truncate: the shorter of the two sides' lengths, where either is known."""
    if rule.fit != "truncate":
        return rule
    mfield = mfields.get(rule.marketo)
    lengths = [n for n in (column.max_length, mfield.length if mfield else None) if n]
    return replace(rule, max_length=min(lengths)) if lengths else rule


async def invalidate(store: StateStore) -> None:
    """Make the next cycle re-read metadata (access may have changed)."""
    await store.set_values("meta", {_ROW: None})


def decode_row(rules: tuple[FieldRule, ...], row: dict[str, Any]) -> dict[str, Any]:
    """Dataverse option values -> labels, so the planner compares what Marketo holds."""
    out = row
    for rule in rules:
        if rule.options and row.get(rule.column) is not None:
            if out is row:
                out = dict(row)
            labels = dict(rule.options)
            value = row[rule.column]
            out[rule.column] = (
                labels.get(int(value), str(value)) if str(value).lstrip("-").isdigit() else value
            )
    return out


def encode_values(
    rules: tuple[FieldRule, ...], values: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Labels -> Dataverse option values for a write. Returns the body and, per column, a
    message for labels that are not options (those columns are left out of the write)."""
    body = dict(values)
    bad: dict[str, str] = {}
    for rule in rules:
        if not rule.options or rule.column not in body or body[rule.column] is None:
            continue
        label = str(body[rule.column]).strip().casefold()
        match = [v for v, text in rule.options if text.casefold() == label]
        if match:
            body[rule.column] = match[0]
        else:
            choices = ", ".join(text for _, text in rule.options)
            bad[rule.column] = (
                f"'{body.pop(rule.column)}' is not an option of {rule.column} ({choices})"
            )
    return body, bad
