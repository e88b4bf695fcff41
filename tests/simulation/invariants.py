"""The promises, each a named check over the world after a run.

Every violation names the invariant, the step where it broke (the step of the edit it
concerns, or the quiet cycle), the record and field, and the expected and actual values,
so a failing seed explains itself before anyone replays it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sync_core.activitylog import SYNC_ERROR
from sync_core.planner import REJECTED_BY, as_id
from tests.simulation.model import Model, rules, same
from tests.simulation.world import SimWorld

REFUSED_MARKS = tuple(REJECTED_BY.values())  # base keys of values a side refused

# Engine bugs already reported, by tag: a violation carrying one is still reported, but
# does not fail the test suite. Each has a strict xfail storyline in test_simulation.py;
# when the engine is fixed that test passes, fails as XPASS, and its tag goes from here.
KNOWN: dict[str, str] = {}  # none open


@dataclass(frozen=True)
class Violation:
    invariant: str
    step: int | str
    record: str
    field: str = ""
    expected: Any = None
    actual: Any = None
    detail: str = ""
    known: str = ""  # a KNOWN tag when this is an engine bug already reported

    def __str__(self) -> str:
        where = f"{self.record} {self.field}".strip()
        values = f" expected {self.expected!r}, actual {self.actual!r}" if self.field else ""
        extra = f" ({self.detail})" if self.detail else ""
        tag = f" [known engine bug: {self.known}]" if self.known else ""
        return f"[{self.invariant}] step {self.step}: {where}:{values}{extra}{tag}"


@dataclass(frozen=True)
class Verdict:
    invariant: str
    expected: Any
    step: int
    loser: Any
    detail: str


class Checker:
    def __init__(self, world: SimWorld, model: Model) -> None:
        self.world, self.model = world, model
        self.violations: list[Violation] = []
        self.checks: Counter[str] = Counter()
        self.people = world.people()
        self.records = {e: world.records(e) for e in ("lead", "contact")}
        self.links = world.links()
        self.rejected = self._rejected()
        self.inaccessible = world.inaccessible()

    def _fail(self, *args: Any, **kwargs: Any) -> None:
        self.violations.append(Violation(*args, **kwargs))

    def _rejected(self) -> set[tuple[str, str]]:
        """(person or record, Marketo field) pairs with a recorded rejection: Dynamics (or
        Marketo) said no to that value, so the pair may rightly disagree on it."""
        out: set[tuple[str, str]] = set()
        for row in self.world.store.table("errors"):
            fields = json.loads(row.get("fields") or "[]")
            for key in (str(row.get("marketoId") or ""), str(row.get("dynamicsId") or "")):
                out.update((key, f) for f in fields if key)
        return out

    def live_pairs(self) -> list[tuple[Any, dict[str, Any], dict[str, Any]]]:
        out = []
        for link in self.links:
            person = self.people.get(link.marketo_id)
            row = self.records[link.entity].get(link.dynamics_id)
            if person is None or row is None or row.get("new_synctomkto") is False:
                continue
            out.append((link, person, row))
        return out

    def _skip(self, link: Any, name: str) -> bool:
        """A field the pair may rightly disagree on: a side refused its value (an error
        row says so, or the engine's base marks the value refused; whether that refusal
        was recorded is the rejections check's business), or the sync identity cannot
        read or write its column now (field security: the engine leaves it out), or its
        column came back from an outage the engine never saw and the field has not been
        edited since (Model.unseen_outages: a Dynamics value read as null meanwhile)."""
        if any(f"{side}{name}" in link.base for side in REFUSED_MARKS):
            return True
        if self._no_access(link.entity, name) or self._masked(link, name):
            return True
        return (str(link.marketo_id), name) in self.rejected or (
            link.dynamics_id,
            name,
        ) in self.rejected

    def _masked(self, link: Any, name: str) -> bool:
        column = next((r.column for r in rules(link.entity) if r.marketo == name), "")
        back = self.model.unseen_outages.get((link.entity, column))
        if back is None:
            return False
        edits = [
            *self.model.m_edits.get(link.marketo_id, {}).get(name, []),
            *self.model.d_edits.get(link.dynamics_id, {}).get(name, []),
        ]
        return not any(e.seq > back for e in edits)

    def _no_access(self, entity: str, name: str) -> bool:
        column = next((r.column for r in rules(entity) if r.marketo == name), "")
        return (entity, column) in self.inaccessible

    # ---- 1. convergence ---------------------------------------------------------------
    def convergence(self, step: str) -> None:
        for link, person, row in self.live_pairs():
            for rule in rules(link.entity):
                if rule.direction != "both" or self._skip(link, rule.marketo):
                    continue
                self.checks["convergence"] += 1
                m, d = person.get(rule.marketo), row.get(rule.column)
                if not same(rule, m, d):
                    self._fail(
                        "convergence",
                        step,
                        f"person {link.marketo_id} / {link.entity} {link.dynamics_id}",
                        rule.marketo,
                        f"Dynamics {d!r}",
                        f"Marketo {m!r}",
                        "the pair still disagrees",
                    )

    def linked(self, step: str) -> None:
        """Every syncable Dynamics record has a person, as the native connector promises."""
        linked = {(lk.entity, lk.dynamics_id) for lk in self.links}
        for entity, rows in self.records.items():
            for rid, row in rows.items():
                if row.get("new_synctomkto") is False or (entity, rid) in linked:
                    continue
                if entity == "lead" and row.get("statecode") == 1:
                    continue  # a qualified lead lives on as its contact
                claimed = as_id(row.get("new_marketoid"))
                # (a person merged away lives on as the winner: that one may be deleted)
                if claimed is not None:
                    claimed = self.model.survivor(claimed, rid)[0]
                if claimed in self.model.deleted_people:
                    continue  # its person was deleted in Marketo: relinked on its next change
                if rid in self.model.away_records:
                    continue  # merged away, or qualified: it lives on as another record
                self.checks["linked"] += 1
                if any(k == rid for k, _ in self.rejected):
                    continue  # its person could not be created; the error says why
                self._fail("linked", step, f"{entity} {rid}", detail="no person linked")

    # ---- 2 + 3. the collision rule and no lost update ----------------------------------
    def _verdict(
        self, link: Any, rule: Any, *, seen: bool, since: tuple[int, Any] | None = None
    ) -> Verdict | None:
        at, m_edits, d_edits = self.model.since(
            link.marketo_id, link.dynamics_id, rule, seen=seen, at=since
        )
        if at is None or not (m_edits or d_edits):
            return None
        if m_edits and d_edits:
            win, lose = (m_edits, d_edits) if rule.winner == "marketo" else (d_edits, m_edits)
            step = max(win[-1].step, lose[-1].step)
            return Verdict(
                "collision-rule", win[-1].value, step, lose[-1].value, f"{rule.winner} should win"
            )
        edits, side = (m_edits, "Marketo") if m_edits else (d_edits, "Dynamics")
        return Verdict(
            "lost-update",
            edits[-1].value,
            edits[-1].step,
            None,
            f"{side} edit did not reach the other side",
        )

    def merges(self, where: str) -> None:
        for link, person, row in self.live_pairs():
            for rule in rules(link.entity):
                if rule.direction != "both" or self._skip(link, rule.marketo):
                    continue
                actual = person.get(rule.marketo)
                pair = (link.marketo_id, link.dynamics_id)
                self._note_revert(pair, rule, person, row)
                if not same(rule, actual, row.get(rule.column)):
                    continue  # reported by convergence
                who = f"person {link.marketo_id} / {link.entity} {link.dynamics_id}"
                # Judge against the last sync: the one the engine recorded, or a later one
                # its own writes made (both sides showed it) that a dead run did not record
                # but its write-ahead journal lets the next cycle know about.
                agreed_at = self.model.agreed.get(pair, {}).get(rule.marketo)
                seen_at = self.model.seen_equal.get(pair, {}).get(rule.marketo)
                reverted = self._was_reverted(pair, rule, agreed_at)
                if reverted:
                    seen_at = None  # the agreement through that write does not count
                later = seen_at is not None and (agreed_at is None or seen_at[0] > agreed_at[0])
                flight = (
                    None
                    if reverted
                    else self._in_flight(pair, rule, agreed_at, seen_at, person, row)
                )
                verdict = self._verdict(link, rule, seen=later, since=flight)
                if verdict is not None:
                    self.checks[verdict.invariant] += 1
                    if not same(rule, actual, verdict.expected):
                        beaten = verdict.loser is not None and same(rule, actual, verdict.loser)
                        detail = verdict.detail + ("; the loser's value won" if beaten else "")
                        self._fail(
                            verdict.invariant,
                            f"{verdict.step} (seen at {where})",
                            who,
                            rule.marketo,
                            verdict.expected,
                            actual,
                            detail,
                            known=self._stale_base(link, rule, actual),
                        )
                        continue
                # As people saw it: a value both systems already showed counts as synced,
                # whether or not the engine got to record that before it died.
                seen = None if reverted else self._verdict(link, rule, seen=True, since=flight)
                if seen is None:
                    continue
                self.checks["lost-update"] += 1
                if not same(rule, actual, seen.expected):
                    # Both sides showed a value the engine had not recorded: stale base.
                    self._fail(
                        "lost-update",
                        f"{seen.step} (seen at {where})",
                        who,
                        rule.marketo,
                        seen.expected,
                        actual,
                        f"{seen.detail}: overwritten by a value both sides "
                        "already showed but the engine had not recorded as synced "
                        "(a run died between its write and its base)",
                        known="stale-base",
                    )

    def _in_flight(
        self,
        pair: tuple[int, str],
        rule: Any,
        agreed_at: tuple[int, Any] | None,
        seen_at: tuple[int, Any] | None,
        person: dict[str, Any],
        row: dict[str, Any],
    ) -> tuple[int, Any] | None:
        """(seq, value sent) to judge from when a cycle died sending a write to this field
        and the side it was going to has moved since; else None.

        Why: a run that died sending a write leaves what a run leaves whose write landed
        and whose answer was lost with it: the journal's "sent, no answer" note, nothing
        else. Once someone edits that side, the next cycle cannot tell the two apart
        (planner.plan_pair). Had the write landed, both systems showed it and the edit is
        the only change since, so the edit must win; the engine must then take the write
        as made in both histories, and the promise is judged so. While that side still
        shows what it showed when the run died, the write visibly did not land and the
        last agreement stands. test_simulation.py runs both histories."""
        flight = self.model.in_flight.get(pair, {}).get(rule.marketo)
        points = [p[0] for p in (agreed_at, seen_at) if p is not None]
        if flight is None or not points or flight.seq <= max(points):
            return None
        now = person.get(rule.marketo) if flight.side == "marketo" else row.get(rule.column)
        if same(rule, now, flight.shown):
            return None
        return flight.seq, flight.value

    def _note_revert(
        self, pair: tuple[int, str], rule: Any, person: dict[str, Any], row: dict[str, Any]
    ) -> None:
        """Remember when both sides agreed only through a write a dead run's journal holds
        as "sent" (its answer came back, the run died before noting it) and that side then
        shows again what the run had read: someone put the old value back (A, B, A). The
        next cycle sees what it sees when the write never landed and takes it so; from
        then on the agreement the engine recorded before stands (as in _in_flight)."""
        flight = self.model.in_flight.get(pair, {}).get(rule.marketo)
        seen_at = self.model.seen_equal.get(pair, {}).get(rule.marketo)
        if flight is None or seen_at is None or seen_at[0] < flight.seq:
            return
        now = person.get(rule.marketo) if flight.side == "marketo" else row.get(rule.column)
        if same(rule, seen_at[1], flight.value) and same(rule, now, flight.shown):
            self.model.reverted.add((pair, rule.marketo, flight.seq))

    def _was_reverted(
        self, pair: tuple[int, str], rule: Any, agreed_at: tuple[int, Any] | None
    ) -> bool:
        flight = self.model.in_flight.get(pair, {}).get(rule.marketo)
        if flight is None or (pair, rule.marketo, flight.seq) not in self.model.reverted:
            return False
        return agreed_at is None or agreed_at[0] < flight.seq

    def _stale_base(self, link: Any, rule: Any, actual: Any) -> str:
        """ "stale-base" when the value that won is one both sides showed after the last
        agreement the engine recorded: its own write, taken for someone's edit."""
        pair = (link.marketo_id, link.dynamics_id)
        agreed = self.model.agreed.get(pair, {}).get(rule.marketo)
        seen = self.model.seen_equal.get(pair, {}).get(rule.marketo)
        if agreed is None or seen is None or seen[0] <= agreed[0]:
            return ""
        return "stale-base" if same(rule, actual, seen[1]) else ""

    # ---- 4. no duplicates -------------------------------------------------------------
    def duplicates(self, step: str) -> None:
        by_record: dict[str, list[int]] = {}
        for mid, p in self.people.items():
            did = str(p.get("dynamicsId") or "").lower()
            if did and not p.get("dynamicsDeleted"):
                by_record.setdefault(did, []).append(mid)
        for entity, rows in self.records.items():
            for rid in rows:
                self.checks["no-duplicates"] += 1
                if len(by_record.get(rid, [])) > 1:
                    self._fail(
                        "no-duplicates",
                        step,
                        f"{entity} {rid}",
                        "dynamicsId",
                        1,
                        sorted(by_record[rid]),
                        "two people for one record",
                    )
        by_person: dict[int, list[str]] = {}
        for entity, rows in self.records.items():
            for rid, row in rows.items():
                if row.get("statecode") or rid in self.model.away_records:
                    # Merged away, or a qualified lead: the record keeps the Marketo id it
                    # had (Dataverse copies nothing back), which is history, not a claim.
                    continue
                claimed = as_id(row.get("new_marketoid"))
                if claimed is not None:
                    by_person.setdefault(claimed, []).append(f"{entity} {rid}")
        for mid, found in by_person.items():
            self.checks["no-duplicates"] += 1
            if len(found) > 1 and mid in self.people:
                self._fail(
                    "no-duplicates",
                    step,
                    f"person {mid}",
                    "new_marketoid",
                    1,
                    sorted(found),
                    "two Dynamics records for one person",
                )
        per_record = Counter((lk.entity, lk.dynamics_id) for lk in self.links)
        for (entity, rid), n in per_record.items():
            self.checks["no-duplicates"] += 1
            if n > 1:
                self._fail(
                    "no-duplicates",
                    step,
                    f"{entity} {rid}",
                    "link",
                    1,
                    n,
                    "two open links for one record",
                )

    # ---- deletes and deliveries ---------------------------------------------------------
    def deletes(self, step: str) -> None:
        open_links = {lk.marketo_id: lk for lk in self.links}
        for rid, mid in self.model.deleted_linked.items():
            person = self.people.get(mid)
            if person is None or mid in open_links:
                continue
            self.checks["dynamics-delete"] += 1
            if not person.get("dynamicsDeleted"):
                self._fail(
                    "dynamics-delete",
                    step,
                    f"person {mid}",
                    "dynamicsDeleted",
                    True,
                    person.get("dynamicsDeleted"),
                    f"record {rid} was deleted",
                )

    def deliveries(self, step: str) -> None:
        open_links = {lk.marketo_id for lk in self.links}
        for mid, statuses in self.model.deliveries.items():
            person = self.people.get(mid)
            if person is None or any(s == 422 for s in statuses):
                continue
            self.checks["sync-person"] += 1
            if mid not in open_links and not person.get("dynamicsId"):
                self._fail(
                    "sync-person",
                    step,
                    f"person {mid}",
                    "dynamicsId",
                    "a record",
                    None,
                    f"deliveries answered {statuses}",
                )

    # ---- 6. a rejection is recorded once per rejected value ----------------------------
    def rejections(self, step: str) -> None:
        rows: Counter[tuple[int, str]] = Counter()
        for row in self.world.store.table("errors"):
            mid = as_id(row.get("marketoId"))
            for name in json.loads(row.get("fields") or "[]"):
                if mid is not None:
                    rows[(mid, name)] += 1
        for (mid, name), values in self.model.too_long.items():
            # Any value the marketer set may be refused once (a validation rule turned on
            # in this world refuses values that are not too long, or a record whose other
            # column it dislikes): the bound is every distinct value set, not only these.
            edits = self.model.m_edits.get(mid, {}).get(name, [])
            refusable = len({json.dumps(v, default=str) for v in values} | {
                json.dumps(e.value, default=str) for e in edits
            })  # fmt: skip
            self.checks["rejection-once"] += 1
            if rows[(mid, name)] > refusable:
                self._fail(
                    "rejection-once",
                    step,
                    f"person {mid}",
                    name,
                    f"at most {refusable} error row(s)",
                    rows[(mid, name)],
                    "the same rejected value was recorded again",
                )
        # And at least once: a value the engine holds back as refused has an error row.
        for link in self.links:
            for key in link.base:
                side = next((m for m in REFUSED_MARKS if key.startswith(m)), None)
                if side is None:
                    continue
                name = key[len(side) :]
                self.checks["rejection-once"] += 1
                # A merged person's refusal lives on in its winner's base (seed 1402).
                merged = [m for m in self.model.merged_people if self.model.survivor(m, "")[0]
                          == link.marketo_id]  # fmt: skip
                if not any(rows[(m, name)] for m in [link.marketo_id, *merged]):
                    self._fail(
                        "rejection-once",
                        step,
                        f"person {link.marketo_id} / {link.entity} {link.dynamics_id}",
                        name,
                        "an error row",
                        0,
                        "the engine holds the value back as refused, but nobody was told",
                    )

        # ... and in the person's Marketo activity log: exactly one line per refused value
        # the error table holds (a line Marketo could not take is sent by a later cycle).
        emu = self.world.apps["marketo"].state.emulator
        ours = {i for i, t in emu.custom_types.by_id.items() if t.get("apiName") == SYNC_ERROR}
        lines: Counter[tuple[int, str, str]] = Counter()
        for act in emu.log.items:
            if act.type_id in ours:
                attrs = {a[2]: a[1] for a in act.attrs if len(a) > 2}
                for name in str(attrs.get("fields") or "").split(","):
                    lines[(act.lead_id, str(act.primary_value), name)] += 1
        owed: Counter[tuple[int, str, str]] = Counter()
        for row in self.world.store.table("errors"):
            mid = as_id(row.get("marketoId"))
            if not row.get("signature") or mid is None or mid not in self.people:
                continue
            for name in json.loads(row.get("fields") or "[]"):
                owed[(mid, str(row.get("code")), name)] += 1
        for (mid, code, name), count in owed.items():
            self.checks["rejection-once"] += 1
            if lines[(mid, code, name)] != count:
                self._fail(
                    "rejection-once",
                    step,
                    f"person {mid}",
                    name,
                    f"{count} activity-log line(s) for {code}",
                    lines[(mid, code, name)],
                    "a refusal in the error table is not in the person's activity log once",
                )

    # ---- 9. merges and qualified leads ---------------------------------------------
    def merged_away(self, step: str) -> None:
        """A record or person merged away (or a lead qualified) never gets a new
        counterpart: no link, and no person naming the record, but those it had then
        (or where they live on after a later merge)."""
        by_record = {lk.dynamics_id: lk.marketo_id for lk in self.links}
        by_person = {lk.marketo_id: lk.dynamics_id for lk in self.links}
        naming: dict[str, set[int]] = {}
        for mid, p in self.people.items():
            did = str(p.get("dynamicsId") or "").lower()
            if did and not p.get("dynamicsDeleted"):
                naming.setdefault(did, set()).add(mid)
        for rid, had in sorted(self.model.away_records.items()):
            allowed = had | {self.model.survivor(m, rid)[0] for m in had}
            self.checks["merged-away"] += 1
            linked = by_record.get(rid)
            new = sorted(naming.get(rid, set()) - allowed)
            if linked is not None and linked not in allowed:
                new = sorted({*new, linked})
            if new:
                self._fail(
                    "merged-away",
                    step,
                    f"record {rid}",
                    "person",
                    sorted(had) or None,
                    new,
                    "a record merged away (or qualified) got a person of its own",
                )
        for mid, into in sorted(self.model.merged_people.items()):
            # Merged by the marketer, or (a Dynamics merge) by the engine after it.
            had = self.model.away_people.get(mid, set())
            lives_on = {self.model.survivor(mid, r)[1] for r in had}
            if had & self.model.deleted_records or (
                lives_on and all(self._row(r)[1] is None for r in lives_on)
            ):
                continue  # deleted since: the engine may have found a delete, not a merge
            if any((self._row(r)[1] or {}).get("new_synctomkto") is False for r in had):
                # The subordinate's filter says No now (set after the merge, before a
                # cycle read it): the engine does not read it, as when it said No at the
                # merge (actions.merge_records); had it read it first, the person is gone.
                continue
            self.checks["merged-away"] += 1
            if mid in self.people:
                self._fail(
                    "merged-away",
                    step,
                    f"person {mid}",
                    "person",
                    f"merged into person {into}",
                    "still in Marketo",
                    "its record was merged away in Dynamics, the person not in Marketo",
                )
        for mid, had_records in sorted(self.model.away_people.items()):
            self.checks["merged-away"] += 1
            now = by_person.get(mid)
            if now is not None and now not in had_records:
                self._fail(
                    "merged-away",
                    step,
                    f"person {mid}",
                    "link",
                    sorted(had_records) or None,
                    now,
                    "a person merged away got a record of its own",
                )

    def _row(self, rid: str) -> tuple[str, dict[str, Any] | None]:
        for entity, rows in self.records.items():
            if rid in rows:
                return entity, rows[rid]
        return "", None

    def _merge_held_back(self, rid: str) -> bool:
        """A record on the way from `rid` to where it lives on was merged away in
        Dynamics and its sync filter says No now: the engine passes over a row held back
        so, and follows that merge only once the filter lets the subordinate through
        (README: a merge is followed when the subordinate shows up with its master). Set
        No after the merge, before any cycle read it, the survivor is not one pair yet
        (seed 4199; merge_records covers a filter No at the merge)."""
        seen = set()
        while rid in self.model.replaced_by and rid not in seen:
            seen.add(rid)
            row = self._row(rid)[1] or {}
            if row.get("masterid") and row.get("new_synctomkto") is False:
                return True
            rid = self.model.replaced_by[rid]
        return False

    def survivors(self, step: str) -> None:
        """After a merge the survivors are linked to each other, and a qualified lead's
        person follows its contact; each judged where both live on after later merges,
        while both still sync (deleted, qualified or held back since: no promise)."""
        link_of = {lk.marketo_id: lk for lk in self.links}
        # Records Dynamics refused a write for (a validation rule on the record itself):
        # the Marketo id the sync writes on them may be refused too (no promise there).
        refused = {
            str(r.get("dynamicsId") or "").lower()
            for r in self.world.store.table("errors")
            if r.get("direction") == "to-dynamics"
        }
        for invariant, at, mid, rid in self.model.expected_pairs:
            if self._merge_held_back(rid):
                continue
            mid, rid = self.model.survivor(mid, rid)
            entity, row = self._row(rid)
            person = self.people.get(mid)
            if person is None or row is None or row.get("statecode"):
                continue
            if row.get("new_synctomkto") is False:
                continue
            self.checks[invariant] += 1
            link = link_of.get(mid)
            linked = f"{link.entity} {link.dynamics_id}" if link else None
            others = sorted(
                m
                for m, p in self.people.items()
                if m != mid
                and str(p.get("dynamicsId") or "").lower() == rid
                and not p.get("dynamicsDeleted")
            )
            seen = (
                linked,
                str(person.get("dynamicsId") or "").lower(),
                person.get("dynamicsType"),
                as_id(row.get("new_marketoid")),
                others,
            )
            want = (f"{entity} {rid}", rid, entity, mid, [])
            # Refused, the record keeps the id it had: none yet, or that of a person
            # merged into this one (a link moved by a Marketo merge; seed 1785).
            kept = {None} | {
                m for m in self.model.merged_people if self.model.survivor(m, "")[0] == mid
            }
            if rid in refused and seen[3] in kept:
                want = (*want[:3], seen[3], [])
            if seen != want:
                self._fail(
                    invariant,
                    f"{at} (seen at {step})",
                    f"person {mid} / {entity} {rid}",
                    "link, dynamicsId, dynamicsType, new_marketoid, other people",
                    want,
                    seen,
                    "the survivors are not one pair"
                    if invariant == "merge-survivor"
                    else "the person did not follow the lead into its contact",
                )

    # ---- 5. no echo ------------------------------------------------------------------
    def no_echo(self, step: str, writes: list[str]) -> None:
        self.checks["no-echo"] += 1
        if writes:
            self._fail(
                "no-echo", step, "quiet cycle", "writes", 0, len(writes), "; ".join(writes[:4])
            )

    # ---- 7. one writer ----------------------------------------------------------------
    def single_writer(self) -> None:
        for w in self.world.writes:
            if not w.owner:
                continue  # sync-person deliveries serialise per person, not on the cycle lease
            self.checks["single-writer"] += 1
            if w.lease_holder != w.owner:
                self._fail(
                    "single-writer",
                    w.run,
                    w.what,
                    "lease",
                    w.owner,
                    w.lease_holder,
                    "a cycle wrote without holding the lease",
                )

    # ---- 8. no personal data at rest or in logs ---------------------------------------
    def personal_data(self, logs: list[str]) -> None:
        texts = {
            f"table {t}": json.dumps(self.world.store.table(t), default=str).lower()
            for t in self.world.store.TABLES
        }
        texts["logs"] = "\n".join(logs).lower()
        for where, text in texts.items():
            self.checks["no-personal-data"] += 1
            leaked = sorted(v for v in self.model.personal if v.lower() in text)
            if leaked:
                self._fail(
                    "no-personal-data",
                    "end",
                    where,
                    "values",
                    "none",
                    leaked[:3],
                    f"{len(leaked)} personal value(s) stored",
                )
