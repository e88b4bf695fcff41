"""One seed, start to end: a small world, steps of edits and faults each followed by a
cycle, then quiet cycles and every invariant.

Everything random comes from `random.Random(seed)` (and the emulators' own seeded dice),
so `replay_command(seed)` reruns the same steps. Concurrency (a delivery racing a cycle,
overlapping cycles) interleaves on one event loop (the memory store never waits); those steps
replay the same choices, and almost always the same interleaving.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from azure.core.exceptions import AzureError

from sync_core import access
from sync_core.activitylog import ensure_types
from sync_core.planner import Hasher, comparable
from sync_core.realtime import handle_sync_person
from sync_core.runtime import new_cycle
from tests.simulation.actions import (
    ACTIONS,
    Ctx,
    d_set,
    edit_while_paused,
    merge_fills,
    new_dynamics_record,
    resume_paused,
)
from tests.simulation.faults import FAULTS, StepPlan
from tests.simulation.invariants import Checker, Violation
from tests.simulation.model import InFlight, Model, rules, same
from tests.simulation.world import (
    KEYS,
    WEBHOOK_SECRET,
    Crash,
    MidWrite,
    SimStore,
    SimWorld,
    Snapshot,
    batch_patches,
    marketo_action,
    seeded_dynamics_ids,
    shared_wall_clock,
    sliced_pages,
)

QUIET_CYCLES = 2  # convergence is promised within this many quiet cycles
FAULT_CHANCE = 0.55
MERGE_GRANTED = 0.7  # share of worlds whose sync may carry a Marketo merge into Dynamics


def replay_command(seed: int) -> str:
    return f"make simulate SEEDS=1 FROM={seed} VERBOSE=1"


@dataclass
class SeedResult:
    seed: int
    steps: int = 0
    cycles: int = 0
    deliveries: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    checks: Counter[str] = field(default_factory=Counter)
    violations: list[Violation] = field(default_factory=list)
    trace: list[str] = field(default_factory=list)


class LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@dataclass
class CycleRun:
    label: str
    outcome: str
    writes: list[str]
    summary: dict[str, Any]


MakeStore = Callable[[Callable[[], float]], SimStore]


class Simulation:
    def __init__(self, seed: int, make_store: MakeStore | None = None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.world = SimWorld(seed, make_store=make_store)
        self.model = Model()
        self.ctx = Ctx(self.world, self.model, self.rng)
        self.result = SeedResult(seed)
        self.sync_as: dict[int, str] = {}
        # (person, record, Marketo field) a salesperson saved while a cycle wrote it
        self.saved_mid_write: set[tuple[int, str, str]] = set()
        # The engine's base hashes, recomputed with the configured key: what it agreed on.
        self.hasher = Hasher(self.world.settings.sync_hash_key.get_secret_value().encode())
        self.world.on_merge = self.engine_merged

    def say(self, line: str) -> None:
        self.result.trace.append(f"[{self.model.step}] {line}")

    def engine_merged(self, system: str, request: httpx.Request, before: Snapshot) -> None:
        """The engine carried a merge into the other system (a Merge there): what that
        merge filled into the survivor's empty fields counts as a change of the merge
        someone made, noted once it happened (a fault may have stopped it)."""
        if system == "dynamics":
            body = json.loads(request.content)
            entity = str(body["Target"]["@odata.type"]).rsplit(".", 1)[-1]
            master = str(body["Target"][KEYS[entity]]).lower()
            was = before.records[entity].get(master, {})
            now = self.world.records(entity).get(master, {})
            for rule in rules(entity):
                if not same(rule, was.get(rule.column), now.get(rule.column)):
                    self.model.edited_d(master, rule.marketo, now.get(rule.column))
            return
        winner = int(request.url.path.split("/")[-2])
        people = self.world.people()
        for raw in str(request.url.params.get("leadIds") or "").split(","):
            loser = int(raw) if raw.isdigit() else None
            if winner in people and loser in before.people and loser not in people:
                merge_fills(self.model, winner, before.people[winner], before.people[loser])

    # ---- running the engine -------------------------------------------------------------
    async def cycle(
        self,
        label: str,
        crash_at: int | None = None,
        crash_on: str = "",
        crash_after: str = "",
        mid_write: MidWrite | None = None,
    ) -> CycleRun:
        w = self.world
        er = w.parts(label, crash_at, crash_on, crash_after, mid_write)
        start = len(w.writes)
        summary: dict[str, Any] = {}
        try:
            cycle = new_cycle(await w.runtime(er))
            er.own(cycle.id)
            summary = await cycle.run()
            outcome = str(summary["outcome"])
        except Crash:
            outcome = "crashed"
            self.model.died.add(label)
        except AzureError as exc:
            outcome = f"store-error:{type(exc).__name__}"
        finally:
            # Let orphaned sibling tasks of a dead run hit the dead wires and stop.
            for _ in range(5):
                await asyncio.sleep(0)
            await er.aclose()
        self.superseded(er.fate.answered, er.fate.before)
        # A write with no answer, in a run that lived on too, leaves what a dead run's
        # sent write leaves: it may have landed (an answer lost after the commit), or
        # met a 412 for a save made since the read; judged against what the run had read.
        self.unanswered(er.fate.unanswered, before=er.fate.before)
        if outcome == "crashed":
            self.unanswered(er.fate.unsent)
            # Answered, but the run died before its journal noted the answer: the note
            # still says "sent", beside what the run had read of the record.
            self.unanswered(er.fate.answered, skip=er.fate.noted, before=er.fate.before)
        for left_out in summary.get("excludedFields", []):
            outage = (left_out.get("entity"), left_out.get("column"))
            if outage in self.model.outages:
                self.model.outages[outage] = True
        writes = [x.what for x in w.writes[start:] if x.run == label]
        self.result.cycles += 1
        self.result.outcomes[outcome] += 1
        counts = summary.get("counts", {})
        self.say(
            f"cycle {label}: {outcome} {summary.get('message', '')} "
            f"writes={len(writes)} counts={ {k: v for k, v in counts.items() if v} }"
        )
        return CycleRun(label, outcome, writes, summary)

    async def deliver(self, mid: int, label: str, sync_as: str | None = None) -> int:
        w = self.world
        er = w.parts(label)
        entity = sync_as or self.sync_as.setdefault(mid, self.rng.choice(["lead", "contact"]))
        body = json.dumps({"leadId": mid, "syncAs": entity}).encode()
        try:
            reply = await handle_sync_person(
                body, {"x-sync-secret": WEBHOOK_SECRET}, w.settings, **w.webhook_options(er)
            )
            status = reply.status
        except Crash:
            status = 0
        finally:
            await er.aclose()
        self.model.deliveries.setdefault(mid, []).append(status)
        self.result.deliveries += 1
        self.say(f"sync-person {mid} as {entity} ({label}): {status}")
        return status

    def observe(
        self, runs: list[CycleRun], before: set[tuple[int, str, str]] | None = None
    ) -> None:
        """After any cycle, however it ended: a field both sides agree on is synced for
        the engine once its stored base is that value (a crash after the base was saved
        does not undo the sync), and synced for a person looking at both systems as soon
        as both show it. The collision rule is judged against the first; a difference
        between the two is an edit lost in the window between a write and its base."""
        # First judge what just settled against the agreement before it.
        checker = Checker(self.world, self.model)
        checker.merges(f"{self.model.step}")
        self.absorb(checker)
        people, records = checker.people, checker.records
        for link in checker.links:
            person = people.get(link.marketo_id)
            row = records[link.entity].get(link.dynamics_id)
            if person is None or row is None:
                continue
            pair = (link.marketo_id, link.dynamics_id)
            agreed = self.model.agreed.setdefault(pair, {})
            seen = self.model.seen_equal.setdefault(pair, {})
            for rule in rules(link.entity):
                value = person.get(rule.marketo)
                if not same(rule, value, row.get(rule.column)):
                    continue
                # A person's view counts an agreement the engine made (equal only since
                # these runs), not two people typing the same value while no cycle read
                # them: that is a same-field change on both sides since the last sync.
                # Nor a save made while the cycle wrote that record: its write met a 412
                # and only that save made the two equal, unseen by the engine, which
                # reads one value of the record next cycle (seed 4055).
                key = (*pair, rule.marketo)
                made_by_sync = (before is None or key not in before) and (
                    key not in self.saved_mid_write
                )
                known = seen.get(rule.marketo)
                recorded = link.base.get(rule.marketo) == self.hasher(
                    comparable(value, rule.fold_case)
                )
                if recorded or made_by_sync or (known is not None and same(rule, known[1], value)):
                    seen[rule.marketo] = (self.model.seq, value)
                if recorded:
                    agreed[rule.marketo] = (self.model.seq, value)
        self.saved_mid_write.clear()

    def unanswered(
        self,
        unsent: list[tuple[str, httpx.Request]],
        skip: set[int] | frozenset[int] = frozenset(),
        before: dict[int, dict[Any, dict[str, Any]]] | None = None,
    ) -> None:
        """Note the field updates a dead cycle was sending (model.InFlight): its
        write-ahead journal holds them as sent with no answer. `skip`: people whose
        answers it noted after all; `before`: what each request's records showed before
        it went out (an answered write: the side now shows its value, or someone's save
        that made it fail), else what they show now (an unsent write changed nothing)."""
        for link, side, shown, values in self.sent(unsent, before):
            if link.marketo_id in skip:
                continue
            flights = self.model.in_flight.setdefault((link.marketo_id, link.dynamics_id), {})
            for rule in rules(link.entity):
                if rule.marketo in values:
                    flights[rule.marketo] = InFlight(
                        self.model.tick(), values[rule.marketo], side, shown.get(rule.marketo)
                    )

    def superseded(
        self,
        answered: list[tuple[str, httpx.Request]],
        before: dict[int, dict[Any, dict[str, Any]]],
    ) -> None:
        """Forget a dead run's unanswered write (model.InFlight) once a later run wrote
        that field to that side again from a read still showing what the dead run had
        read: that run's plan took the old write as not landed and saved the base it
        had before (planner.plan_pair drops the journal's markers with it), so a save
        made after that read is a new edit against that base, not one after a write
        that landed (seed 4461: the save came between the read and the resend, met
        the 412 and then collided with the Marketo edit the dead run had carried).
        A write whose side was put back since (Checker._note_revert) stays: its flight
        is what keeps the agreement through it from counting."""
        for link, side, shown, values in self.sent(answered, before):
            pair = (link.marketo_id, link.dynamics_id)
            flights = self.model.in_flight.get(pair, {})
            for rule in rules(link.entity):
                flight = flights.get(rule.marketo)
                if (
                    flight is not None
                    and rule.marketo in values
                    and flight.side == side
                    and same(rule, shown.get(rule.marketo), flight.shown)
                    and (pair, rule.marketo, flight.seq) not in self.model.reverted
                ):
                    del flights[rule.marketo]

    def sent(
        self,
        requests: list[tuple[str, httpx.Request]],
        before: dict[int, dict[Any, dict[str, Any]]] | None,
    ) -> list[tuple[Any, str, dict[str, Any], dict[str, Any]]]:
        """(link, side, what that side showed, {Marketo name: value sent}) of every field
        update in these writes; what a side showed is `before` (see unanswered) or, without
        it, what it shows now."""
        links = self.world.links()
        by_person = {lk.marketo_id: lk for lk in links}
        by_record = {(lk.entity, lk.dynamics_id): lk for lk in links}
        people = self.world.people()
        # (link, side, what that side shows, {Marketo name: value sent})
        sent: list[tuple[Any, str, dict[str, Any], dict[str, Any]]] = []
        for system, request in requests:
            if system == "dynamics":
                for entity, rid, body in batch_patches(request):
                    link, row = by_record.get((entity, rid)), self.world.records(entity).get(rid)
                    if before is not None:
                        row = before.get(id(request), {}).get((entity, rid), row)
                    if link is None or row is None:
                        continue
                    shown = {r.marketo: row.get(r.column) for r in rules(entity)}
                    values = {
                        r.marketo: dict(r.options or ()).get(body[r.column], body[r.column])
                        for r in rules(entity)
                        if r.column in body
                    }
                    sent.append((link, "dynamics", shown, values))
            elif marketo_action(request) == "updateOnly":
                for rec in json.loads(request.content).get("input", []):
                    mid = int(rec.get("id", 0))
                    link, person = by_person.get(mid), people.get(mid)
                    if before is not None:
                        person = before.get(id(request), {}).get(mid, person)
                    if link is not None and person is not None:
                        sent.append((link, "marketo", person, rec))
        return sent

    def absorb(self, checker: Checker) -> None:
        self.result.checks.update(checker.checks)
        seen = {(v.invariant, v.record, v.field, str(v.expected)) for v in self.result.violations}
        for v in checker.violations:
            if (v.invariant, v.record, v.field, str(v.expected)) not in seen:
                self.result.violations.append(v)

    # ---- the phases ------------------------------------------------------------------
    async def setup(self) -> None:
        # What an admin runs once: our activity types in Marketo (setup's Marketo part).
        er = self.world.parts("setup-types")
        await ensure_types((await self.world.runtime(er)).marketo)
        await er.aclose()
        # ... and, in most worlds, the Merge privilege for the sync (infra/README.md):
        # without it a Marketo merge of two linked records is an error and an unlink.
        if self.rng.random() < MERGE_GRANTED:
            await self.world.grant_merge()
            self.say("admin grants the sync the Merge privilege")
        for _ in range(self.rng.randint(2, 5)):
            await new_dynamics_record(self.ctx)
        for _ in range(self.rng.randint(0, 2)):
            await ACTIONS_BY_NAME["new-marketo-person"](self.ctx)
        self.observe([await self.cycle("setup")])

    async def step(self) -> None:
        self.model.step += 1
        self.result.steps += 1
        # The timer's period passes; what people do next happens just before it fires.
        await self.world.pass_time(300)
        names = [a[0] for a in ACTIONS]
        weights = [a[1] for a in ACTIONS]
        for due in self.ctx.agenda.pop(self.model.step, []):
            if said := await due(self.ctx):
                self.say(said)
        for _ in range(self.rng.randint(1, 3)):
            name = self.rng.choices(names, weights)[0]
            said = await ACTIONS_BY_NAME[name](self.ctx)
            if said:
                self.result.actions[name] += 1
                self.say(said)
        # A pause by the sync filter, once begun, often sees edits and then ends.
        if self.rng.random() < 0.5 and (said := await edit_while_paused(self.ctx)):
            self.result.actions["edit-while-paused"] += 1
            self.say(said)
        elif self.rng.random() < 0.45 and (said := await resume_paused(self.ctx)):
            self.result.actions["resume"] += 1
            self.say(said)
        # A delivery between cycles: single, duplicate, or two at once (maybe lead + contact).
        waiting = sorted(
            self.model.marketo_only
            - set(self.model.deliveries)
            - self.model.deleted_people
            - set(self.model.merged_people)
        )
        if waiting and self.rng.random() < 0.35:
            mid = self.rng.choice(waiting)
            mode = self.rng.choice(["single", "duplicate", "concurrent", "both-tables"])
            self.say(f"deliveries: {mode}")
            if mode == "single":
                await self.deliver(mid, f"webhook-{self.model.step}")
            elif mode == "duplicate":
                await self.deliver(mid, f"webhook-{self.model.step}a")
                await self.deliver(mid, f"webhook-{self.model.step}b")
            else:
                other = {"lead": "contact", "contact": "lead"}
                first = self.sync_as.setdefault(mid, self.rng.choice(["lead", "contact"]))
                second = other[first] if mode == "both-tables" else first
                await asyncio.gather(
                    self.deliver(mid, f"webhook-{self.model.step}a", first),
                    self.deliver(mid, f"webhook-{self.model.step}b", second),
                )
        plan = await self.arm()
        self.world.now += 300  # the timer's period
        before = self.equal_fields()
        runs = await self.run_planned(plan)
        await self.disarm()
        self.observe(runs, before)

    def equal_fields(self) -> set[tuple[int, str, str]]:
        """(person, record, field) the two systems show equal right now."""
        checker = Checker(self.world, self.model)
        out = set()
        for link in checker.links:
            person = checker.people.get(link.marketo_id)
            row = checker.records[link.entity].get(link.dynamics_id)
            if person is None or row is None:
                continue
            for rule in rules(link.entity):
                if same(rule, person.get(rule.marketo), row.get(rule.column)):
                    out.add((link.marketo_id, link.dynamics_id, rule.marketo))
        return out

    async def arm(self) -> StepPlan:
        plan = StepPlan()
        if self.rng.random() >= FAULT_CHANCE:
            return plan
        names = [f[0] for f in FAULTS]
        weights = [f[1] for f in FAULTS]
        for _ in range(1 if self.rng.random() < 0.8 else 2):
            name = self.rng.choices(names, weights)[0]
            if await FAULTS_BY_NAME[name](self.ctx, plan):
                self.result.faults[name] += 1
                self.say(f"fault: {name} {plan}")
        return plan

    async def run_planned(self, plan: StepPlan) -> list[CycleRun]:
        step = self.model.step
        if self.world.pending_outage:
            first, count = self.world.pending_outage
            self.world.store.fail_calls(first, count)
        mid_write = self.salesperson_saves(f"cycle-{step}") if plan.edit_mid_write else None
        jobs: list[Any] = [
            self.cycle(f"cycle-{step}", plan.crash_at, plan.crash_on, plan.crash_after, mid_write)
        ]
        if plan.overlap:
            jobs.append(self.cycle(f"cycle-{step}b", plan.crash_second_at))
        for n, mid in enumerate(plan.race):
            jobs.append(self.deliver(mid, f"webhook-{step}r{n}"))
        done = await asyncio.gather(*jobs)
        return [r for r in done if isinstance(r, CycleRun)]

    def salesperson_saves(self, run: str) -> MidWrite:
        """A salesperson saves a record this very $batch of `run` is about to update
        (between the cycle's read of it and its write), mostly a field the batch writes."""

        async def edit(request: httpx.Request) -> None:
            targets = batch_patches(request)
            if not targets:
                return
            entity, rid, columns = self.rng.choice(targets)
            both = [r for r in rules(entity) if r.direction == "both"]
            written = [r for r in both if r.column in columns]
            rule = self.rng.choice(written if written and self.rng.random() < 0.8 else both)
            row = self.world.records(entity).get(rid)
            if row is None:
                return
            value = self.ctx.fresh(rule, row.get(rule.column))
            if await d_set(self.ctx, entity, rid, rule, value):
                self.saved_mid_write.update(
                    (lk.marketo_id, rid, rule.marketo)
                    for lk in self.world.links()
                    if lk.dynamics_id == rid
                )
                self.say(
                    f"salesperson sets {rule.column} of {self.ctx.record(entity, rid)} "
                    "while the cycle writes it"
                )

        return edit

    async def disarm(self) -> None:
        self.world.pending_outage = None
        self.world.store.heal()
        await self.world.marketo_admin("DELETE", "faults")
        await self.world.dynamics_admin("DELETE", "faults")
        # The lost answers are world fault rates, aimed at the sync's calls only.
        self.world.losing.clear()
        no_rates = {"fault_rates": {}, "fault_users": []}
        await self.world.marketo_admin("POST", "config", json=no_rates)
        await self.world.dynamics_admin("PUT", "world", json=no_rates)

    async def quiet(self) -> None:
        self.model.step += 1
        label = f"quiet-{self.model.step}"
        await self.disarm()
        # Leases left by dead workers expire; a retry campaign redelivers what got a 5xx.
        self.world.now += self.world.settings.sync_lease_seconds + 1
        await self.world.pass_time(self.world.settings.sync_lease_seconds + 1)
        if self.world.regranted:
            # A column given back to the sync user is found by the engine's hourly
            # re-read of field access (no error says so); the quiet cycles stand for a
            # time after it, as the convergence they check is promised only then.
            await access.invalidate(self.world.store)
        for mid, statuses in sorted(self.model.deliveries.items()):
            if statuses[-1] not in (200, 400, 401, 404, 422) and mid in self.world.people():
                await self.deliver(mid, f"{label}-retry")
        runs = []
        for n in range(QUIET_CYCLES):
            self.world.now += 300
            await self.world.pass_time(300)
            runs.append(await self.cycle(f"{label}.{n + 1}"))
        checker = Checker(self.world, self.model)
        for r in runs:
            checker.checks["recovers"] += 1
            if r.outcome != "succeeded":
                checker._fail(
                    "recovers",
                    r.label,
                    "quiet cycle",
                    "outcome",
                    "succeeded",
                    r.outcome,
                    str(r.summary.get("message", "")),
                )
        where = f"{label} (after {QUIET_CYCLES} quiet cycles)"
        checker.convergence(where)
        checker.linked(where)
        checker.merges(where)
        checker.duplicates(where)
        checker.deletes(where)
        checker.deliveries(where)
        checker.rejections(where)
        checker.merged_away(where)
        checker.survivors(where)
        self.world.now += 300
        await self.world.pass_time(300)
        echo = await self.cycle(f"{label}.echo")
        checker.no_echo(f"{label}.echo", echo.writes)
        checker.single_writer()
        checker.personal_data(self.logs.lines)
        self.absorb(checker)

    async def run(self, steps: int | None = None) -> SeedResult:
        self.logs = LogCapture()
        logger = logging.getLogger("sync_core")
        old = logger.propagate, logger.level
        logger.addHandler(self.logs)
        logger.propagate, logger.level = False, logging.INFO
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(_quiet_crashes)
        try:
            with shared_wall_clock(self.world):
                await self.setup()
                for _ in range(steps if steps is not None else self.rng.randint(3, 7)):
                    await self.step()
                await self.quiet()
            if late := self.world.late_changes():
                self.result.faults["marketo-late-change"] += late
            for system, lost in self.world.answers_lost.items():
                self.result.faults[f"{system}-answer-lost"] += lost
        finally:
            logger.removeHandler(self.logs)
            logger.propagate, logger.level = old
            await self.world.aclose()
        return self.result


def _quiet_crashes(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # A dead run's orphaned tasks end with Crash; that is the point, not a bug.
    if isinstance(context.get("exception"), Crash):
        return
    loop.default_exception_handler(context)


ACTIONS_BY_NAME = {name: fn for name, _, fn in ACTIONS}
FAULTS_BY_NAME = {name: fn for name, _, fn in FAULTS}


def run_seed(
    seed: int, steps: int | None = None, make_store: MakeStore | None = None
) -> SeedResult:
    """One seed; `make_store` builds the state store on the world's clock (default: the
    memory store)."""
    with seeded_dynamics_ids(seed), sliced_pages(seed):
        return asyncio.run(Simulation(seed, make_store).run(steps))
