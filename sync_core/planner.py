"""The pure merge planner: current values on both sides + base + rules -> decisions.

No I/O and no clocks, so every merge rule is table-tested and the planner can run
over a million pairs without touching a network. It is a per-field three-way merge
(Unison's model): a side "changed" a field when its value's hash differs from the
base hash; one-sided changes copy across, equal two-sided changes settle, differing
two-sided changes are collisions decided by the field's winner (the system of record
for the entity unless the mapping overrides it). The two systems' clocks are never
compared, which is what keeps skewed clocks from silently picking the wrong value.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping as MappingT
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sync_core.mapping import FieldRule

Values = MappingT[str, Any]
# Base keys (beside the field's own hash) holding the hash of a value a side rejected
# for one field: that value is not sent again; a new value on either side is.
REJECTED_BY = {"dynamics": "!d:", "marketo": "!m:"}
# Base keys the write-ahead journal leaves after a dead run (journal.LANDED_ON).
LANDED_ON_D, LANDED_ON_M = "~d:", "~m:"
CONFIRMED_D, CONFIRMED_M = "=d:", "=m:"


def normalize(value: Any) -> Any:
    """One canonical form per meaning: Marketo omits nulls and Dataverse turns '' into
    null, so '' / whitespace / None must all compare equal or every cycle would churn."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def as_id(value: Any) -> int | None:
    """A Marketo person id as stored in a Dataverse text column ("123", " 123", None)."""
    try:
        return int(str(value).strip()) if value not in (None, "") else None
    except ValueError:
        return None


def comparable(value: Any, fold_case: bool) -> Any:
    """The form two values are compared (and hashed) in; writes keep the original."""
    value = normalize(value)
    return value.casefold() if fold_case and isinstance(value, str) else value


class Hasher:
    """Keyed hash of a value, so the stored base reveals no personal data."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("hash key must be at least 16 bytes")
        self._key = key[:64]

    def __call__(self, value: Any) -> str:
        return self.normalized(normalize(value))

    def normalized(self, value: Any) -> str:
        """Hash of an already-normalized value (the planner's hot path)."""
        if value is None:
            return "-"  # a cleared field is a value too; its hash must be stable and short
        # A type tag keeps True, 1 and "1" apart; json only for the rare non-scalar.
        if isinstance(value, str):
            data = b"s" + value.encode()
        elif isinstance(value, bool):
            data = b"T" if value else b"F"
        elif isinstance(value, int | float):
            data = b"n" + repr(value).encode()
        else:
            data = b"j" + json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
        return hashlib.blake2b(data, key=self._key, digest_size=12).hexdigest()


@dataclass(slots=True)
class Collision:
    field: str  # Marketo field name
    winner: str  # "marketo" | "dynamics"


@dataclass(slots=True)
class PairPlan:
    """What to do for one linked pair. Field keys are Marketo names for `to_marketo`
    and Dataverse column names for `to_dynamics`."""

    to_marketo: dict[str, Any] = field(default_factory=dict)
    to_dynamics: dict[str, Any] = field(default_factory=dict)
    # Base hashes to store once the writes above have landed (keyed by Marketo name);
    # also a base the write-ahead journal restored, stored whatever the writes do.
    settled: dict[str, str] = field(default_factory=dict)
    pending_marketo: dict[str, str] = field(default_factory=dict)
    pending_dynamics: dict[str, str] = field(default_factory=dict)
    collisions: list[Collision] = field(default_factory=list)
    # Marketo names of fields left unsent: this exact value was rejected there before.
    held_rejected: list[str] = field(default_factory=list)
    # Fields a per-field rule kept from being overwritten (name -> the rule).
    kept: dict[str, str] = field(default_factory=dict)
    # Fields whose written value was cut to fit (fit = truncate).
    truncated: list[str] = field(default_factory=list)
    # (direction, Marketo name) of changes the mass-change guard holds back.
    held: list[tuple[str, str]] = field(default_factory=list)
    # Hash of each written field's target value as read (the write-ahead journal tells
    # "not landed" from "landed, then edited" with it).
    read_target: dict[str, str] = field(default_factory=dict)

    @property
    def idle(self) -> bool:
        return not (self.to_marketo or self.to_dynamics or self.settled)


def plan_pair(
    rules: Sequence[FieldRule],
    dynamics: Values,
    marketo: Values,
    base: MappingT[str, str] | None,
    hasher: Hasher,
    *,
    skip: frozenset[str] = frozenset(),
    hold_to_marketo: frozenset[str] = frozenset(),
    hold_to_dynamics: frozenset[str] = frozenset(),
) -> PairPlan:
    """Decide, field by field, what to copy where.

    `base` None means no agreed state exists (a new or rebuilt link): both sides are
    treated as changed since an empty base, so one-sided values propagate and two
    different values go to the winner. `skip` names Marketo fields to leave alone this
    time (e.g. unreadable by the sync identity). `hold_to_*` name fields whose writes in
    that direction the mass-change guard holds: planned, not written, base unchanged.
    """
    plan = PairPlan()
    hash_of = hasher.normalized
    for rule in rules:
        name = rule.marketo
        if name in skip:
            continue
        d_val = normalize(dynamics.get(rule.column))
        m_val = normalize(marketo.get(name))
        cut = rule.max_length if rule.fit == "truncate" else None
        if cut:
            # Compare (and write) what fits both sides: the tail past the shorter side's
            # length is not part of the synced value.
            long_d, long_m = _longer(d_val, cut), _longer(m_val, cut)
            d_val, m_val = _cut(d_val, cut), _cut(m_val, cut)
        if rule.fold_case:
            d_cmp, m_cmp = comparable(d_val, True), comparable(m_val, True)
        else:
            d_cmp, m_cmp = d_val, m_val
        stored = raw = base.get(name) if base is not None else None
        if base is not None:
            # A write of ours a dead run may have sent (journal: "written|as read"). The
            # side shows the value written: it landed. It shows the value the run read:
            # it did not. A third value: it landed and someone edited it since (an edit
            # between the run's read and its write would have failed the If-Match).
            for marker, side_cmp in ((LANDED_ON_D, d_cmp), (LANDED_ON_M, m_cmp)):
                noted = base.get(marker + name)
                if noted is not None:
                    written, _, as_read = noted.partition("|")
                    if hash_of(side_cmp) != as_read:
                        stored = written
            # Answered before the run died: the base for sure (the value written where
            # the write landed, the base it was planned from where the answer said no).
            for marker in (CONFIRMED_D, CONFIRMED_M):
                if (noted := base.get(marker + name)) is not None:
                    stored = noted
            if stored is not None and stored != raw:
                # Saving this link drops the markers: their base must go in with it, or
                # the stale one comes back and our own write later passes for an edit.
                plan.settled[name] = stored
        if d_cmp == m_cmp and type(d_cmp) is type(m_cmp):
            h = hash_of(d_cmp)
            if stored != h:
                plan.settled[name] = h  # in agreement already: record it, write nothing
            continue
        d_hash, m_hash = hash_of(d_cmp), hash_of(m_cmp)
        if base is None or stored is None:
            # Unknown base: an empty side is "unchanged from nothing", a filled side changed.
            d_changed, m_changed = d_val is not None, m_val is not None
        else:
            d_changed, m_changed = d_hash != stored, m_hash != stored
        if d_changed and m_changed:
            plan.collisions.append(Collision(name, rule.winner))
            source = rule.winner
            if rule.blank == "never-overwrites" and (d_val is None) != (m_val is None):
                source = "dynamics" if m_val is None else "marketo"  # a value beats none
        elif d_changed:
            source = "dynamics"
        elif m_changed:
            source = "marketo"
        else:  # both equal the base yet differ from each other: only if base is stale
            source = rule.winner
        value, target = (d_val, m_val) if source == "dynamics" else (m_val, d_val)
        if target is not None and (
            rule.update == "if-empty" or (value is None and rule.blank == "never-overwrites")
        ):
            plan.kept[name] = "update = if-empty" if rule.update == "if-empty" else "blank"
            continue
        if source == "dynamics" and rule.direction != "to-dynamics":
            if name in hold_to_marketo:
                plan.held.append(("to-marketo", name))
                continue
            if base is not None and base.get(REJECTED_BY["marketo"] + name) == d_hash:
                plan.held_rejected.append(name)
                continue
            plan.to_marketo[name] = d_val
            plan.pending_marketo[name] = d_hash
            plan.read_target[name] = m_hash
            if cut and long_d:
                plan.truncated.append(name)
        elif source == "marketo" and rule.direction != "to-marketo":
            if name in hold_to_dynamics:
                plan.held.append(("to-dynamics", name))
                continue
            if base is not None and base.get(REJECTED_BY["dynamics"] + name) == m_hash:
                plan.held_rejected.append(name)
                continue
            plan.to_dynamics[rule.column] = m_val
            plan.pending_dynamics[name] = m_hash
            plan.read_target[name] = d_hash
            if cut and long_m:
                plan.truncated.append(name)
    return plan


def _cut(value: Any, length: int) -> Any:
    return value[:length].rstrip() or None if isinstance(value, str) else value


def _longer(value: Any, length: int) -> bool:
    return isinstance(value, str) and len(value) > length
