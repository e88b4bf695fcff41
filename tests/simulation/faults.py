"""The fault menu: what can go wrong around one cycle, one line per kind.

A fault is armed after people have acted and before the cycle runs: through the
emulators' admin APIs (throttling, server errors, the same codes a real org answers),
on the memory store (an outage, a lost ETag race on the lease), or on how the cycle
runs (the worker dies at its N-th I/O call or right after Marketo created people, two
cycles overlap, a sync-person delivery races the cycle, a salesperson saves a record
the cycle is writing). Everything is disarmed after the cycle. Late Marketo commits
are part of the world (world.MARKETO_WORLD, and the campaign sends in actions). New
faults (lost answers, merges) plug in as one more row in FAULTS.
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
]
