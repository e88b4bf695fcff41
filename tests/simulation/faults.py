"""The fault menu: what can go wrong around one cycle, one line per kind.

A fault is armed after people have acted and before the cycle runs: through the
emulators' admin APIs (throttling, server errors, the same codes a real org answers),
on the memory store (an outage, a lost ETag race on the lease), or on how the cycle
runs (the worker dies at its N-th I/O call or right after Marketo created people, two
cycles overlap, a sync-person delivery races the cycle, a salesperson saves a record
the cycle is writing), or on what the vendors answer once the write ran (the hostile
world's lost answers: the write commits, the answer never arrives). Everything is
disarmed after the cycle, except two changes an admin makes to the org that outlive it:
a validation rule that starts rejecting, and a mapped column's field-security grant
taken from the sync user; each stays for the rest of the seed or is undone some steps
later. Late Marketo commits are part of the world (world.MARKETO_WORLD, and the campaign
sends in actions). New faults plug in as one more row in FAULTS.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tests.simulation.actions import Ctx


@dataclass
class StepPlan:
    """How this step's cycle runs; faults fill it in."""

    crash_at: int | None = None
    crash_on: str = ""  # die at the first I/O call described so (e.g. "store.save_links")
    crash_after: str = ""  # die at the I/O call after one answered so ("marketo created")
    edit_mid_write: bool = False  # a salesperson saves a record the cycle's $batch updates
    overlap: bool = False
    crash_second_at: int | None = None  # the overlapping cycle may die too
    race: list[int] = field(default_factory=list)  # people delivered during the cycle
    notes: list[str] = field(default_factory=list)  # what a fault did, for the trace


Arm = Callable[[Ctx, StepPlan], Awaitable[bool]]


def marketo_code(*kinds: str) -> Arm:
    async def arm(ctx: Ctx, plan: StepPlan) -> bool:
        kind = ctx.rng.choice(kinds)
        count = ctx.rng.randint(1, 8)
        await ctx.world.marketo_admin(
            "POST", "faults", json={"endpoint": "*", "kind": kind, "count": count}
        )
        return True

    return arm


def dynamics_status(*kinds: str) -> Arm:
    async def arm(ctx: Ctx, plan: StepPlan) -> bool:
        kind = ctx.rng.choice(kinds)
        count = ctx.rng.randint(1, 8)
        await ctx.world.dynamics_admin(
            "POST",
            "faults",
            json={"endpoint": "*", "fault": kind, "count": count, "retry_after": 1},
        )
        return True

    return arm


async def marketo_tokens_expire(ctx: Ctx, plan: StepPlan) -> bool:
    # Every access token dies at once (601/602 on the next call): the client signs in again.
    await ctx.world.marketo_admin("POST", "tokens/expire")
    return True


async def delta_links_expire(ctx: Ctx, plan: StepPlan) -> bool:
    # Dataverse ages out change-tracking tokens: the saved delta links no longer work and
    # the cycle must re-read both tables in full (a full reconcile), losing nothing.
    await ctx.world.dynamics_admin("POST", "change-tracking/age", json={"days": 8})
    return True


async def crash(ctx: Ctx, plan: StepPlan) -> bool:
    plan.crash_at = ctx.rng.randint(1, 45)
    return True


async def crash_before_base(ctx: Ctx, plan: StepPlan) -> bool:
    # The narrowest window: the writes have landed, the link rows (bases) are not saved.
    plan.crash_on = "store.save_links"
    return True


async def crash_before_logs(ctx: Ctx, plan: StepPlan) -> bool:
    # Links saved, the error rows and activities of the cycle not yet written.
    plan.crash_on = "store.record_errors"
    return True


async def crash_after_create(ctx: Ctx, plan: StepPlan) -> bool:
    # Marketo created people for new Dynamics records; the worker dies before anything
    # (the record's person id, the link row) says whose they are.
    linked = {lk.dynamics_id for lk in ctx.links()}
    waiting = [
        rid
        for entity, rid in ctx.live_records()
        if rid not in linked
        and ctx.world.records(entity)[rid].get("new_synctomkto") is not False
        and ctx.world.records(entity)[rid].get("statecode") != 1
    ]
    if not waiting:
        return False
    # After either create (createOnly, for an email no person has, or createDuplicate),
    # once it has created someone: a createOnly that only skipped people made nothing.
    plan.crash_after = "marketo created"
    return True


async def edit_mid_write(ctx: Ctx, plan: StepPlan) -> bool:
    # Salespeople work while the cycle runs: one saves a record after the cycle read it
    # and before its update lands (the cycle's PATCH must not overwrite that edit).
    if not ctx.live_records():
        return False
    plan.edit_mid_write = True
    return True


async def store_outage(ctx: Ctx, plan: StepPlan) -> bool:
    # The cycle's own calls only: the world arms it right before the cycle starts.
    ctx.world.pending_outage = (ctx.rng.randint(1, 30), ctx.rng.randint(1, 40))
    return True


async def lease_conflict(ctx: Ctx, plan: StepPlan) -> bool:
    ctx.world.store.lease_conflicts = 1
    return True


async def overlapping_cycles(ctx: Ctx, plan: StepPlan) -> bool:
    plan.overlap = True
    if ctx.rng.random() < 0.3:
        plan.crash_second_at = ctx.rng.randint(1, 30)
    return True


async def webhook_race(ctx: Ctx, plan: StepPlan) -> bool:
    waiting = sorted(ctx.model.marketo_only - set(ctx.model.deliveries) - ctx.model.deleted_people)
    if not waiting:
        return False
    mid = ctx.rng.choice(waiting)
    plan.race = [mid] * ctx.rng.choice([1, 1, 2])  # sometimes a duplicate delivery too
    return True


async def dynamics_lost_answer(ctx: Ctx, plan: StepPlan) -> bool:
    # The sync's $batch commits, then its answer is lost: a gateway 502, a 504 after the
    # front end's hold, or a dropped connection (the emulator's lost-502/504/drop). Some
    # or all of this cycle's batches: the engine resends one whose answer it lost.
    kind = ctx.rng.choice(["lost-502", "lost-504", "lost-drop"])
    rate = ctx.rng.choice([0.5, 1.0])
    await ctx.world.dynamics_admin(
        "PUT",
        "world",
        json={"fault_rates": {"POST $batch": {kind: rate}}, "fault_users": ["sync-app"]},
    )
    ctx.world.losing.add("dynamics")
    plan.notes.append(f"Dataverse $batch answers {kind} at rate {rate}")
    return True


async def marketo_lost_answer(ctx: Ctx, plan: StepPlan) -> bool:
    # A Sync Leads call of the sync commits, then its answer is lost: Marketo's edge 502,
    # a 604 envelope or a dropped connection (the emulator's lost-edge502/604/drop).
    kind = ctx.rng.choice(["lost-edge502", "lost-604", "lost-drop"])
    rate = ctx.rng.choice([0.5, 1.0])
    await ctx.world.marketo_admin(
        "POST",
        "config",
        json={
            "fault_rates": {"POST /rest/v1/leads.json": {kind: rate}},
            "fault_users": ["sync-app"],
        },
    )
    ctx.world.losing.add("marketo")
    plan.notes.append(f"Sync Leads answers {kind} at rate {rate}")
    return True


# Mapped text columns a rule or a field-security change can be about, and the characters
# a rule looks for: none of them occurs in the words the simulation's values start with
# ("title-", "First-", "firstN-"), so a rule matches some made-up values, not all.
RULE_COLUMNS = ("jobtitle", "firstname")
RULE_CHARS = "abcd0123456789"
SECURED_COLUMNS = ("jobtitle", "telephone1", "address1_city", "firstname")


async def validation_rule(ctx: Ctx, plan: StepPlan) -> bool:
    # An admin registers a business rule (a plug-in) that refuses a record whose mapped
    # column holds a value (400 0x80040265, for the sync and for salespeople alike), as
    # the hostile world's start-rule event does; it stays on, or is removed later.
    table = ctx.rng.choice(["lead", "contact"])
    column = ctx.rng.choice(RULE_COLUMNS)
    char = ctx.rng.choice(RULE_CHARS)
    done = await ctx.world.dynamics_admin(
        "POST",
        "events",
        json={
            "event": "start-rule",
            "table": table,
            "condition": f"contains({column},'{char}')",
            "message": f"{column} may not contain '{char}'.",
            "on": ["create", "update"],
        },
    )
    plan.notes.append(f"a rule on {table} refuses {column} containing '{char}'")
    if ctx.rng.random() < 0.5:
        rule_id = done["rule"]

        async def remove(ctx: Ctx) -> str:
            await ctx.world.dynamics_admin("DELETE", f"rules/{rule_id}")
            return f"admin removes the rule on {table}.{column}"

        ctx.later(ctx.rng.randint(1, 3), remove)
    return True


async def field_revoked(ctx: Ctx, plan: StepPlan) -> bool:
    # An admin secures a mapped column and leaves the sync user out (reads give null,
    # writes 403 0x8004F502/7), as the hostile world's revoke-field event does; some
    # steps later the grant may come back.
    table = ctx.rng.choice(["lead", "contact"])
    column = ctx.rng.choice(SECURED_COLUMNS)
    if (table, column) in ctx.world.inaccessible():
        return False
    await ctx.world.dynamics_admin(
        "POST",
        "events",
        json={"event": "revoke-field", "table": table, "column": column, "user": "sync-app"},
    )
    plan.notes.append(f"the sync user loses {table}.{column}")
    ctx.model.outages[(table, column)] = False
    if ctx.rng.random() < 0.6:

        async def restore(ctx: Ctx) -> str:
            await ctx.world.grant_field(table, column)
            if not ctx.model.outages.pop((table, column), True):
                ctx.model.unseen_outages[(table, column)] = ctx.model.tick()
            return f"admin gives the sync user {table}.{column} back"

        ctx.later(ctx.rng.randint(1, 3), restore)
    return True


# name, weight, arm: one line per kind of fault.
FAULTS: list[tuple[str, float, Arm]] = [
    ("marketo-606", 1.0, marketo_code("606")),
    ("marketo-615", 0.7, marketo_code("615")),
    ("marketo-5xx", 1.0, marketo_code("http500", "http502", "http503", "608", "611", "713")),
    ("marketo-604", 0.5, marketo_code("604")),
    ("dynamics-429", 1.0, dynamics_status("429")),
    ("dynamics-5xx", 1.0, dynamics_status("500", "502", "503", "504")),
    ("marketo-tokens-expire", 0.5, marketo_tokens_expire),
    ("delta-links-expire", 0.5, delta_links_expire),
    ("crash", 2.0, crash),
    ("crash-before-base", 0.7, crash_before_base),
    ("crash-before-logs", 0.4, crash_before_logs),
    ("crash-after-create", 1.0, crash_after_create),
    ("store-outage", 1.0, store_outage),
    ("lease-conflict", 0.5, lease_conflict),
    ("overlapping-cycles", 1.0, overlapping_cycles),
    ("webhook-race", 1.5, webhook_race),
    ("edit-mid-write", 1.5, edit_mid_write),
    ("dynamics-lost-answer", 1.0, dynamics_lost_answer),
    ("marketo-lost-answer", 1.0, marketo_lost_answer),
    ("validation-rule", 0.4, validation_rule),
    ("field-revoked", 0.4, field_revoked),
]
