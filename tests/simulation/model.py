"""What the simulation knows independently of the engine: who edited which field of
which record when, which pairs were last seen in agreement, what was deleted, and every
personal value it made up (to look for them later where they must not be).

The collision and lost-update promises are judged against this: for a linked pair and
a field, the edits that count are those after the pair was last seen agreeing on that
field at the end of a cycle that completed. One side edited: its last value must win;
both edited: the field's winner's last value must win. A write a cycle was sending when
it died can stand in for that agreement (`InFlight`, Checker._in_flight says when).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sync_core
from sync_core.mapping import FieldRule, Mapping, load_mapping
from sync_core.planner import comparable

MAPPING: Mapping = load_mapping(Path(sync_core.__file__).parent / "mapping.toml")


def rules(entity: str) -> list[FieldRule]:
    return list(MAPPING.fields[entity])  # type: ignore[index]


def same(rule: FieldRule, a: Any, b: Any) -> bool:
    ca, cb = comparable(a, rule.fold_case), comparable(b, rule.fold_case)
    return bool(ca == cb and type(ca) is type(cb))


@dataclass(frozen=True, slots=True)
class Edit:
    seq: int
    step: int
    value: Any


@dataclass(frozen=True, slots=True)
class InFlight:
    """A write a dead cycle's journal holds as sent with no answer: it was sending it
    when it died, or the answer came back and the run died before noting it."""

    seq: int
    value: Any  # the value it carried
    side: str  # "marketo" | "dynamics": where it was going
    # what that side showed when the run read it: while it still shows that, the next
    # cycle takes the write as not landed (an ABA edit back to it cannot be told apart)
    shown: Any


@dataclass
class Model:
    seq: int = 0
    step: int = 0
    # person id -> Marketo field -> edits; record id -> Marketo field name -> edits
    m_edits: dict[int, dict[str, list[Edit]]] = field(default_factory=dict)
    d_edits: dict[str, dict[str, list[Edit]]] = field(default_factory=dict)
    # (person, record) -> Marketo field -> (seq, value) of the last agreement the engine
    # recorded (both sides equal and its base that value)
    agreed: dict[tuple[int, str], dict[str, tuple[int, Any]]] = field(default_factory=dict)
    # the same, from what a person sees: both systems showing one value
    seen_equal: dict[tuple[int, str], dict[str, tuple[int, Any]]] = field(default_factory=dict)
    entity_of: dict[str, str] = field(default_factory=dict)  # record id -> lead|contact
    deleted_people: set[int] = field(default_factory=set)
    deleted_records: set[str] = field(default_factory=set)
    # record id -> the person linked to it when the salesperson deleted it
    deleted_linked: dict[str, int] = field(default_factory=dict)
    marketo_only: set[int] = field(default_factory=set)  # people made by the marketer
    deliveries: dict[int, list[int]] = field(default_factory=dict)  # person -> statuses
    personal: set[str] = field(default_factory=set)  # every personal value made up
    # (person, Marketo field) -> values set there that Dynamics cannot hold
    too_long: dict[tuple[int, str], set[str]] = field(default_factory=dict)
    died: set[str] = field(default_factory=set)  # engine runs that crashed
    # (table, column) whose grant the sync user lost -> whether a cycle's summary has
    # listed it as left out since (the engine noticed the outage)
    outages: dict[tuple[str, str], bool] = field(default_factory=dict)
    # (table, column) -> seq at which its grant came back after an outage no cycle
    # noticed. Dataverse reads a column the sync may not read as null, like a real null:
    # a cycle that read a Dynamics value there as empty, its base empty too, saw neither
    # a change nor a sign of the outage (README "Known behaviours": an error, a missing
    # column or a value that suddenly reads as empty), and metadata read before and
    # after shows the grant. Such a value syncs with the pair's next edit of that field.
    unseen_outages: dict[tuple[str, str], int] = field(default_factory=dict)
    # (person, record) -> Marketo field -> the last write a dead cycle left unanswered
    in_flight: dict[tuple[int, str], dict[str, InFlight]] = field(default_factory=dict)
    # (pair, Marketo field, flight seq) of such writes whose side was put back to what
    # the dead run had read (Checker._note_revert)
    reverted: set[tuple[tuple[int, str], str, int]] = field(default_factory=set)
    # Merges and qualifications (Checker.merged_away, .survivors): a person merged away
    # -> the person it lives on as; a record merged away (in Dynamics, or a lead only
    # unlinked because a Marketo merge kept a contact) or a lead qualified -> the record
    # it lives on as.
    merged_people: dict[int, int] = field(default_factory=dict)
    replaced_by: dict[str, str] = field(default_factory=dict)
    # ... and who claimed each when it went (its link, or a person whose Dynamics id
    # names it): the only counterparts it may keep
    away_people: dict[int, set[str]] = field(default_factory=dict)
    away_records: dict[str, set[int]] = field(default_factory=dict)
    # records a Marketo merge took away but left active and unlinked (a lead beside a
    # contact, or a Merge the sync may not make): a salesperson may still merge into them
    left_unlinked: set[str] = field(default_factory=set)
    # who must end up linked to whom: (invariant, step, person, record), each judged
    # through the merges made since (`survivor`)
    expected_pairs: list[tuple[str, int, int, str]] = field(default_factory=list)

    def survivor(self, mid: int, rid: str) -> tuple[int, str]:
        """Where a person and a record live on after every merge made since."""
        while mid in self.merged_people:
            mid = self.merged_people[mid]
        while rid in self.replaced_by:
            rid = self.replaced_by[rid]
        return mid, rid

    def tick(self) -> int:
        self.seq += 1
        return self.seq

    def edited_m(self, mid: int, name: str, value: Any) -> None:
        self.m_edits.setdefault(mid, {}).setdefault(name, []).append(
            Edit(self.tick(), self.step, value)
        )

    def edited_d(self, rid: str, name: str, value: Any) -> None:
        self.d_edits.setdefault(rid, {}).setdefault(name, []).append(
            Edit(self.tick(), self.step, value)
        )

    def since(
        self,
        mid: int,
        rid: str,
        rule: FieldRule,
        *,
        seen: bool = False,
        at: tuple[int, Any] | None = None,
    ) -> tuple[int | None, list[Edit], list[Edit]]:
        """(seq of the last agreement or None, Marketo edits since, Dynamics edits since);
        `seen`: agreement as both systems showed it rather than as the engine stored it;
        `at`: (seq, value) to judge from instead. A side whose last edit put back the
        agreed value has, in net, not changed."""
        name = rule.marketo
        found = at or (self.seen_equal if seen else self.agreed).get((mid, rid), {}).get(name)
        if found is None:
            return None, [], []
        at, value = found
        m = [e for e in self.m_edits.get(mid, {}).get(name, []) if e.seq > at]
        d = [e for e in self.d_edits.get(rid, {}).get(name, []) if e.seq > at]
        m = [] if m and same(rule, m[-1].value, value) else m
        d = [] if d and same(rule, d[-1].value, value) else d
        return at, m, d
