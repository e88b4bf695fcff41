"""What other people do between cycles, drawn from the seed: edits on either side
(single, colliding, split across fields, rapid, clearing, case-only, unmapped), sync
filter flips, deletes, new records (some sharing an email), new Marketo-only people, big
campaign sends, merges in either system and a lead qualified into a contact.

Each action goes through the vendors' public APIs with the person's own identity, and
records in the model only what really changed (an edit that leaves the value as it was
is no change to either system, so it must not count as one for the collision rule).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sync_core.mapping import FieldRule
from sync_core.planner import as_id
from sync_core.state import Link
from tests.simulation.model import Model, rules, same
from tests.simulation.world import SimWorld

Action = Callable[["Ctx"], Awaitable["str | None"]]
BOOLEAN = {"unsubscribed", "doNotCall"}
NEVER_CLEARED = {"lastName"}  # required in Dynamics: clearing it is another kind of test
UNMAPPED_MARKETO = ("website", "industry")
UNMAPPED_DYNAMICS = ("description", "websiteurl")


@dataclass
class Ctx:
    world: SimWorld
    model: Model
    rng: random.Random
    # step -> actions due then: storylines that span cycles (pause, edit, resume)
    agenda: dict[int, list[Action]] = field(default_factory=dict)

    def later(self, steps: int, action: Action) -> None:
        self.agenda.setdefault(self.model.step + steps, []).append(action)

    def note(self, value: Any) -> Any:
        if isinstance(value, str):
            self.model.personal.add(value)
        return value

    def token(self) -> str:
        return f"{self.rng.getrandbits(32):08x}"

    def fresh(self, rule: FieldRule, current: Any) -> Any:
        if rule.marketo in BOOLEAN:
            return not bool(current)
        if rule.marketo == "email":
            return self.note(f"p{self.token()}@ex.sim")
        return self.note(f"{rule.marketo[:6]}-{self.token()}")

    def record(self, entity: str, rid: str) -> str:
        """How a trace names a record: its table, id prefix and linked person."""
        link = next((lk for lk in self.links() if lk.dynamics_id == rid), None)
        return f"{entity} {rid[:8]}" + (f" (person {link.marketo_id})" if link else "")

    # ---- what exists now -----------------------------------------------------------
    def links(self) -> list[Link]:
        return self.world.links()

    def live_people(self) -> list[int]:
        return sorted(self.world.people())

    def live_records(self) -> list[tuple[str, str]]:
        return [(e, rid) for e in ("lead", "contact") for rid in sorted(self.world.records(e))]

    def live_pairs(self) -> list[Link]:
        people = self.world.people()
        out = []
        for link in self.links():
            if link.marketo_id in people and link.dynamics_id in self.world.records(link.entity):
                out.append(link)
        return out


# ---- edits with bookkeeping ----------------------------------------------------------
async def m_set(ctx: Ctx, mid: int, rule: FieldRule, value: Any) -> bool:
    person = ctx.world.people().get(mid)
    if person is None:
        return False
    before = person.get(rule.marketo)
    if not await ctx.world.m_edit(mid, {rule.marketo: value}):
        return False
    if not same(rule, before, value):
        ctx.model.edited_m(mid, rule.marketo, value)
    return True


async def d_set(ctx: Ctx, entity: str, rid: str, rule: FieldRule, value: Any) -> bool:
    row = ctx.world.records(entity).get(rid)
    if row is None:
        return False
    before = row.get(rule.column)
    if not await ctx.world.d_edit(entity, rid, {rule.column: value}):
        return False
    if not same(rule, before, value):
        ctx.model.edited_d(rid, rule.marketo, value)
    return True


def _entity_of(ctx: Ctx, mid: int) -> str:
    link = next((lk for lk in ctx.links() if lk.marketo_id == mid), None)
    if link is not None:
        return link.entity
    return str(ctx.world.people().get(mid, {}).get("dynamicsType") or "lead")


def _pick_rule(ctx: Ctx, entity: str, *, clearable: bool = False) -> FieldRule:
    options = [r for r in rules(entity) if r.direction == "both"]
    if clearable:
        options = [r for r in options if r.marketo not in BOOLEAN | NEVER_CLEARED]
    return ctx.rng.choice(options)


# ---- the actions -----------------------------------------------------------------------
async def marketer_edits(ctx: Ctx) -> str | None:
    people = ctx.live_people()
    if not people:
        return None
    mid = ctx.rng.choice(people)
    rule = _pick_rule(ctx, _entity_of(ctx, mid))
    value = ctx.fresh(rule, ctx.world.people()[mid].get(rule.marketo))
    await m_set(ctx, mid, rule, value)
    return f"marketer sets {rule.marketo} of person {mid}"


async def salesperson_edits(ctx: Ctx) -> str | None:
    records = ctx.live_records()
    if not records:
        return None
    entity, rid = ctx.rng.choice(records)
    rule = _pick_rule(ctx, entity)
    value = ctx.fresh(rule, ctx.world.records(entity)[rid].get(rule.column))
    await d_set(ctx, entity, rid, rule, value)
    return f"salesperson sets {rule.column} of {ctx.record(entity, rid)}"


async def collision(ctx: Ctx) -> str | None:
    pairs = ctx.live_pairs()
    if not pairs:
        return None
    link = ctx.rng.choice(pairs)
    rule = _pick_rule(ctx, link.entity)
    if rule.marketo in BOOLEAN:
        current = ctx.world.people()[link.marketo_id].get(rule.marketo)
        m_value = d_value = not bool(current)  # a flip on both sides: no real collision
    else:
        m_value, d_value = ctx.fresh(rule, None), ctx.fresh(rule, None)
    await m_set(ctx, link.marketo_id, rule, m_value)
    await d_set(ctx, link.entity, link.dynamics_id, rule, d_value)
    return f"both sides set {rule.marketo} of person {link.marketo_id}"


async def split_fields(ctx: Ctx) -> str | None:
    pairs = ctx.live_pairs()
    if not pairs:
        return None
    link = ctx.rng.choice(pairs)
    options = [r for r in rules(link.entity) if r.direction == "both"]
    a, b = ctx.rng.sample(options, 2)
    people, records = ctx.world.people(), ctx.world.records(link.entity)
    await m_set(ctx, link.marketo_id, a, ctx.fresh(a, people[link.marketo_id].get(a.marketo)))
    await d_set(
        ctx, link.entity, link.dynamics_id, b, ctx.fresh(b, records[link.dynamics_id].get(b.column))
    )
    return f"marketer sets {a.marketo}, salesperson {b.column}, person {link.marketo_id}"


async def rapid_edits(ctx: Ctx) -> str | None:
    pairs = ctx.live_pairs()
    if not pairs:
        return None
    link = ctx.rng.choice(pairs)
    rule = _pick_rule(ctx, link.entity)
    n = ctx.rng.randint(2, 4)
    on_marketo = ctx.rng.random() < 0.5
    for _ in range(n):
        if on_marketo:
            cur = ctx.world.people()[link.marketo_id].get(rule.marketo)
            await m_set(ctx, link.marketo_id, rule, ctx.fresh(rule, cur))
        else:
            cur = ctx.world.records(link.entity)[link.dynamics_id].get(rule.column)
            await d_set(ctx, link.entity, link.dynamics_id, rule, ctx.fresh(rule, cur))
    side = "Marketo" if on_marketo else "Dynamics"
    return f"{n} rapid edits of {rule.marketo} in {side}, person {link.marketo_id}"


async def clear_value(ctx: Ctx) -> str | None:
    pairs = ctx.live_pairs()
    if not pairs:
        return None
    link = ctx.rng.choice(pairs)
    rule = _pick_rule(ctx, link.entity, clearable=True)
    if ctx.rng.random() < 0.5:
        await m_set(ctx, link.marketo_id, rule, None)
        return f"marketer clears {rule.marketo} of person {link.marketo_id}"
    await d_set(ctx, link.entity, link.dynamics_id, rule, None)
    return f"salesperson clears {rule.column} of person {link.marketo_id}"


# Longer than the Dynamics column (Marketo takes 255): Dynamics rejects the write.
TOO_LONG = {"title": 120, "firstName": 60, "city": 90}


async def too_long_value(ctx: Ctx) -> str | None:
    pairs = ctx.live_pairs()
    if not pairs:
        return None
    link = ctx.rng.choice(pairs)
    name = ctx.rng.choice(sorted(TOO_LONG))
    rule = next(r for r in rules(link.entity) if r.marketo == name)
    value = ctx.note(f"{name}-{ctx.token()}-".ljust(TOO_LONG[name], "x"))
    await m_set(ctx, link.marketo_id, rule, value)
    ctx.model.too_long.setdefault((link.marketo_id, name), set()).add(value)
    return f"marketer sets a too-long {name} on person {link.marketo_id}"


async def email_case_only(ctx: Ctx) -> str | None:
    pairs = ctx.live_pairs()
    if not pairs:
        return None
    link = ctx.rng.choice(pairs)
    rule = next(r for r in rules(link.entity) if r.marketo == "email")
    current = ctx.world.people()[link.marketo_id].get("email")
    if not current:
        return None
    # Same address to anyone who compares case-insensitively: no change to sync.
    await m_set(ctx, link.marketo_id, rule, str(current).upper())
    return f"marketer upper-cases the email of person {link.marketo_id}"


async def unmapped_edit(ctx: Ctx) -> str | None:
    if ctx.rng.random() < 0.5:
        people = ctx.live_people()
        if not people:
            return None
        mid = ctx.rng.choice(people)
        name = ctx.rng.choice(UNMAPPED_MARKETO)
        await ctx.world.m_edit(mid, {name: ctx.note(f"u-{ctx.token()}")})
        return f"marketer sets unmapped {name} of person {mid}"
    records = ctx.live_records()
    if not records:
        return None
    entity, rid = ctx.rng.choice(records)
    column = ctx.rng.choice(UNMAPPED_DYNAMICS)
    await ctx.world.d_edit(entity, rid, {column: ctx.note(f"https://u{ctx.token()}.sim")})
    return f"salesperson sets unmapped {column} of {ctx.record(entity, rid)}"


def _paused(ctx: Ctx) -> list[Link]:
    return [
        lk
        for lk in ctx.live_pairs()
        if ctx.world.records(lk.entity)[lk.dynamics_id].get("new_synctomkto") is False
    ]


async def resume_paused(ctx: Ctx) -> str | None:
    paused = _paused(ctx)
    if not paused:
        return None
    link = ctx.rng.choice(paused)
    value = ctx.rng.choice([True, None])
    await ctx.world.d_edit(link.entity, link.dynamics_id, {"new_synctomkto": value})
    return f"salesperson sets new_synctomkto={value} on paused person {link.marketo_id}"


async def filter_flip(ctx: Ctx) -> str | None:
    records = ctx.live_records()
    if not records:
        return None
    entity, rid = ctx.rng.choice(records)
    paused = _paused(ctx)
    if paused and ctx.rng.random() < 0.5:
        resumed = ctx.rng.choice(paused)  # a pause usually ends
        entity, rid = resumed.entity, resumed.dynamics_id
    current = ctx.world.records(entity)[rid].get("new_synctomkto")
    # No when it syncs; Yes (or empty, which also syncs) when it is held back.
    value = ctx.rng.choice([True, None]) if current is False else False
    await ctx.world.d_edit(entity, rid, {"new_synctomkto": value})
    return f"salesperson sets new_synctomkto={value} on {ctx.record(entity, rid)}"


async def edit_while_paused(ctx: Ctx) -> str | None:
    """Someone edits a pair whose sync filter says No: it must sync once the pause ends."""
    paused = _paused(ctx)
    if not paused:
        return None
    link = ctx.rng.choice(paused)
    rule = _pick_rule(ctx, link.entity)
    if ctx.rng.random() < 0.7:
        cur = ctx.world.people()[link.marketo_id].get(rule.marketo)
        await m_set(ctx, link.marketo_id, rule, ctx.fresh(rule, cur))
        return f"marketer sets {rule.marketo} of paused person {link.marketo_id}"
    cur = ctx.world.records(link.entity)[link.dynamics_id].get(rule.column)
    await d_set(ctx, link.entity, link.dynamics_id, rule, ctx.fresh(rule, cur))
    return f"salesperson sets {rule.column} of paused person {link.marketo_id}"


async def pause_episode(ctx: Ctx) -> str | None:
    """A linked pair is held back by its sync filter for a few cycles, edited meanwhile
    (mostly in Marketo, whose changes the feed passes over during the pause), then let
    through again: the edits must sync then."""
    pairs = [lk for lk in ctx.live_pairs() if lk not in _paused(ctx)]
    if not pairs:
        return None
    link = ctx.rng.choice(pairs)
    await ctx.world.d_edit(link.entity, link.dynamics_id, {"new_synctomkto": False})
    rule = _pick_rule(ctx, link.entity)
    in_marketo = ctx.rng.random() < 0.8

    async def edit(ctx: Ctx) -> str | None:
        if in_marketo:
            cur = ctx.world.people().get(link.marketo_id, {}).get(rule.marketo)
            if await m_set(ctx, link.marketo_id, rule, ctx.fresh(rule, cur)):
                return f"marketer sets {rule.marketo} of paused person {link.marketo_id}"
            return None
        row = ctx.world.records(link.entity).get(link.dynamics_id, {})
        if await d_set(
            ctx, link.entity, link.dynamics_id, rule, ctx.fresh(rule, row.get(rule.column))
        ):
            return f"salesperson sets {rule.column} of paused person {link.marketo_id}"
        return None

    async def resume(ctx: Ctx) -> str | None:
        value = ctx.rng.choice([True, None])
        if await ctx.world.d_edit(link.entity, link.dynamics_id, {"new_synctomkto": value}):
            return f"salesperson sets new_synctomkto={value} on paused person {link.marketo_id}"
        return None

    wait = ctx.rng.randint(1, 2)
    ctx.later(wait, edit)
    ctx.later(wait + ctx.rng.randint(0, 2), resume)
    return f"salesperson pauses person {link.marketo_id} ({link.entity} {link.dynamics_id[:8]})"


async def dynamics_delete(ctx: Ctx) -> str | None:
    records = ctx.live_records()
    if not records:
        return None
    entity, rid = ctx.rng.choice(records)
    linked = next((lk for lk in ctx.links() if lk.dynamics_id == rid), None)
    said = f"salesperson deletes {ctx.record(entity, rid)}"
    await ctx.world.d_delete(entity, rid)
    ctx.model.deleted_records.add(rid)
    if linked is not None:
        ctx.model.deleted_linked[rid] = linked.marketo_id
    return said


async def marketo_delete(ctx: Ctx) -> str | None:
    people = ctx.live_people()
    if not people:
        return None
    mid = ctx.rng.choice(people)
    await ctx.world.m_delete(mid)
    ctx.model.deleted_people.add(mid)
    return f"marketer deletes person {mid}"


async def new_dynamics_record(ctx: Ctx) -> str | None:
    entity = ctx.rng.choice(["lead", "contact"])
    roll = ctx.rng.random()
    people = ctx.world.people()
    email = ctx.note(f"n{ctx.token()}@ex.sim")
    how = "a new email"
    if roll < 0.3 and people:
        # Someone Marketo already knows (maybe linked elsewhere), written in other case.
        known = [p.get("email") for p in people.values() if p.get("email")]
        if known:
            email, how = str(ctx.rng.choice(known)).swapcase(), "a known person's email"
    elif roll < 0.45:
        # Two people share this email: no single match, so a person of its own.
        for _ in range(2):
            await ctx.world.m_create({"email": email, "lastName": ctx.note(f"Twin-{ctx.token()}")})
        how = "an email two people share"
    values: dict[str, Any] = {
        "firstname": ctx.note(f"First-{ctx.token()}"),
        "lastname": ctx.note(f"Last-{ctx.token()}"),
        "emailaddress1": email,
        "jobtitle": ctx.note(f"title-{ctx.token()}"),
    }
    if entity == "lead":
        values["subject"] = "Simulated interest"
        values["companyname"] = ctx.note(f"compan-{ctx.token()}")
    if ctx.rng.random() < 0.15:
        values["new_synctomkto"] = False
    rid = await ctx.world.d_try_create(entity, values)
    if rid is None:
        return f"salesperson's new {entity} ({how}) is refused by a business rule"
    ctx.model.entity_of[rid] = entity
    return f"salesperson creates {entity} {rid[:8]} with {how}"


async def new_marketo_person(ctx: Ctx) -> str | None:
    values = {
        "email": ctx.note(f"m{ctx.token()}@ex.sim"),
        "firstName": ctx.note(f"First-{ctx.token()}"),
        "lastName": ctx.note(f"Last-{ctx.token()}"),
        "title": ctx.note(f"title-{ctx.token()}"),
    }
    mid = await ctx.world.m_create(values)
    ctx.model.marketo_only.add(mid)
    return f"marketer creates person {mid} (Marketo only)"


async def campaign_send(ctx: Ctx) -> str | None:
    """A big email send logs a thousand or two activities in a few seconds, and Marketo's
    commits lag under the load: the next feed read runs to several pages (so the read
    after it starts from a fresh paging token, one overlap window before that read
    began), and a marketer's edit made meanwhile reaches the feeds only after it."""
    await ctx.world.commits_lag(late_share=0.5)
    said = await marketer_edits(ctx)
    await ctx.world.campaign_burst(ctx.rng.randint(1200, 2000), seconds=5.0)
    return f"a campaign send logs many activities; meanwhile {said}"


# ---- merges and lead qualification ------------------------------------------------------
def _open_links(ctx: Ctx) -> dict[int, Link]:
    """Person -> its link, for people still in Marketo."""
    people = ctx.world.people()
    return {lk.marketo_id: lk for lk in ctx.links() if lk.marketo_id in people}


def _links_once_followed(ctx: Ctx) -> dict[int, Link]:
    """Person -> the link it has once the engine follows the Marketo merges it has not
    followed yet (the loser gone from Marketo, its link still open), in the order made.
    Why: two merges into one person before a cycle (seed 1990) are followed one after
    the other; judged by the stored links alone, the second saw an unlinked winner and
    expected the winner on both the first loser's lead and its own loser's contact."""
    people = ctx.world.people()
    out = {lk.marketo_id: lk for lk in ctx.links()}
    for loser, winner in ctx.model.merged_people.items():
        gone = out.get(loser)
        if gone is None or loser in people:
            continue  # followed already, nothing to follow, or an engine merge to come
        del out[loser]
        kept = out.get(winner)
        # As marketomerges.follow_marketo_merges: the winner's record survives, but a lead
        # gives way to the loser's contact; an unlinked winner takes the loser's link.
        if kept is None or (kept.entity, gone.entity) == ("lead", "contact"):
            out[winner] = Link(winner, gone.entity, gone.dynamics_id, dict(gone.base))
    return {mid: lk for mid, lk in out.items() if mid in people}


def _active(ctx: Ctx, entity: str) -> list[str]:
    """Records a salesperson can still merge or qualify (Dataverse refuses inactive ones)."""
    return [
        rid for rid, row in sorted(ctx.world.records(entity).items()) if not row.get("statecode")
    ]


def _claims(ctx: Ctx, rid: str) -> set[int]:
    """People linked to a record or naming it as theirs (a crash can leave one unlinked)."""
    out = {lk.marketo_id for lk in ctx.links() if lk.dynamics_id == rid}
    for mid, person in ctx.world.people().items():
        if str(person.get("dynamicsId") or "").lower() == rid:
            out.add(mid)
    return out


def _pick_two(ctx: Ctx, linked: list[Any], unlinked: list[Any]) -> tuple[Any, Any] | None:
    """Both linked, or one linked and one not (in either order)."""
    if len(linked) >= 2 and (not unlinked or ctx.rng.random() < 0.5):
        a, b = ctx.rng.sample(linked, 2)
        return a, b
    if not linked or not unlinked:
        return None
    a, b = ctx.rng.choice(linked), ctx.rng.choice(unlinked)
    return (a, b) if ctx.rng.random() < 0.5 else (b, a)


async def dynamics_merge(ctx: Ctx) -> str | None:
    entity = ctx.rng.choice(["lead", "contact"])
    linked = set(_links_of(ctx, entity))
    active = _active(ctx, entity)
    picked = _pick_two(
        ctx, [r for r in active if r in linked], [r for r in active if r not in linked]
    )
    if picked is None:
        return None
    master, sub = picked
    said = f"salesperson merges {ctx.record(entity, sub)} into {ctx.record(entity, master)}"
    if not await merge_records(ctx, entity, master, sub):
        return f"{said}: refused by a validation rule"
    return said


async def merge_records(ctx: Ctx, entity: str, master: str, sub: str) -> bool:
    """A salesperson merges two records of one table: the master keeps its values and
    Dataverse fills its empty columns from the subordinate, which is deactivated."""
    by_record = _links_of(ctx, entity)
    before = ctx.world.records(entity)[master]
    claims = _claims(ctx, sub)
    if not await ctx.world.d_merge(entity, master, sub):
        return False
    after = ctx.world.records(entity)[master]
    for rule in rules(entity):
        if not same(rule, before.get(rule.column), after.get(rule.column)):
            ctx.model.edited_d(master, rule.marketo, after.get(rule.column))
    kept, gone = by_record.get(master) or _unsaved_link(ctx, entity, master), by_record.get(sub)
    model = ctx.model
    if master in model.left_unlinked:
        # A Marketo merge took the master away, maybe not followed yet (its link still
        # open): the engine reads Marketo's merges first, so it meets this merge into a
        # record merged away, and the merged person stops syncing (seed 3800; the mirror
        # of _merged_into_unlinked, where the salesperson's merge came first).
        kept = None
    if model.replaced_by.get(master) == sub:
        # A marketer merged the two people the other way round since the last cycle
        # (their records to follow as master into sub): Dataverse did this merge, and
        # only this master is still active, so the person lives on with it (the mirror
        # of merge_people's case; a cycle in the chain never ended, seed 3488).
        del model.replaced_by[master]
        model.away_records.pop(master, None)
    model.replaced_by[sub] = master
    model.away_records[sub] = claims
    held = ctx.world.records(entity)[sub].get("new_synctomkto") is False
    merged = (
        kept is not None
        and gone is not None
        and (model.survivor(kept.marketo_id, master)[0] == gone.marketo_id)
    )
    if merged:
        pass  # that marketer's merge already made the two people one
    elif kept is not None and gone is not None and not held:
        # The engine merges the people (none while the subordinate's filter says No: it
        # does not read it then).
        model.merged_people[gone.marketo_id] = kept.marketo_id
        model.away_people[gone.marketo_id] = {sub, gone.dynamics_id}
    elif gone is not None and kept is None and after.get("new_synctomkto") is False:
        return True  # the master's sync filter says No: the merged person stops syncing
    elif gone is not None and kept is None and master in model.away_records:
        # The master was merged away by a Marketo merge (a lead only unlinked): it lives
        # on as that merge's survivor, so the merged person stops syncing rather than
        # give it a person of its own (dynamicsmerges.follow_dynamics_merges).
        return True
    survivor = kept or gone
    if survivor is not None:
        model.expected_pairs.append(("merge-survivor", model.step, survivor.marketo_id, master))
    return True


def _unsaved_link(ctx: Ctx, entity: str, rid: str) -> Link | None:
    """A link both systems show (the record carries the person's id, the person names the
    record) that the state store lacks: a run died before saving it. It is a link to
    anyone looking at the two systems, and the engine follows a merge into that record
    as into a linked one (seeds 5713, 5960)."""
    mid = as_id(ctx.world.records(entity).get(rid, {}).get("new_marketoid"))
    person = ctx.world.people().get(mid) if mid is not None else None
    if person is None or str(person.get("dynamicsId") or "").lower() != rid:
        return None
    if any(lk.marketo_id == mid for lk in ctx.links()):
        return None  # linked to a record (the subordinate, another): this id is stale
    return Link(mid, entity, rid)  # type: ignore[arg-type]


def _links_of(ctx: Ctx, entity: str) -> dict[str, Link]:
    """Record -> the link its person has: its own, or for a contact qualified from a
    linked lead and not linked yet, that lead's (the person follows it there)."""
    links = _open_links(ctx).values()
    out = {lk.dynamics_id: lk for lk in links if lk.entity == entity}
    if entity == "contact":
        leads = {lk.dynamics_id: lk for lk in links if lk.entity == "lead"}
        for rid, row in ctx.world.records("contact").items():
            origin = str(row.get("originatingleadid") or "").lower()
            if rid not in out and origin in leads:
                out[rid] = leads[origin]
    return out


async def marketo_merge(ctx: Ctx) -> str | None:
    links = _open_links(ctx)
    people = sorted(ctx.world.people())
    picked = _pick_two(ctx, sorted(links), [m for m in people if m not in links])
    if picked is None:
        return None
    winner, loser = picked
    await merge_people(ctx, winner, loser)
    return f"marketer merges person {loser} into person {winner}"


async def merge_people(ctx: Ctx, winner: int, loser: int) -> None:
    """A marketer merges two people: the winner keeps its values and takes the loser's
    for its empty fields; the loser is gone."""
    links = _links_once_followed(ctx)
    before = ctx.world.people()[winner]
    kept, gone = links.get(winner), links.get(loser)
    claims = {lk.dynamics_id: _claims(ctx, lk.dynamics_id) for lk in (kept, gone) if lk}
    await ctx.world.m_merge(winner, loser)
    after = ctx.world.people()[winner]
    for name, rule in MARKETO_RULES.items():
        if not same(rule, before.get(name), after.get(name)):
            ctx.model.edited_m(winner, name, after.get(name))
    model = ctx.model
    # The winner may be slated to be merged into the loser (a Dynamics merge of their
    # records the engine has not followed yet): the marketer's merge settles it the
    # other way round, and a cycle in the chain would never end (seed 845).
    step, chain = winner, []
    while step in model.merged_people and step != loser:
        chain.append(step)
        step = model.merged_people[step]
    if step == loser and chain:
        del model.merged_people[chain[-1]]
        model.away_people.pop(chain[-1], None)
    model.merged_people[loser] = winner
    model.away_people[loser] = {gone.dynamics_id} if gone else set()
    survivor = kept or gone
    if kept is not None and gone is not None:
        # One table: the records are merged too. A lead and a contact: the contact
        # survives and the lead is only unlinked (Dataverse merges within one table).
        if kept.entity != gone.entity:
            survivor = kept if kept.entity == "contact" else gone
        away = gone if survivor is kept else kept
        if away.entity == "lead" and away.dynamics_id in model.replaced_by:
            # A lead qualified since the last cycle: the engine follows this merge
            # before it reads the new contact, so the lead is unlinked here and its
            # contact then comes from a lead with no person, like any new contact. The
            # person stays with the merge's survivor; it cannot follow both.
            qualified = model.survivor(away.marketo_id, model.replaced_by[away.dynamics_id])
            model.expected_pairs = [
                p
                for p in model.expected_pairs
                if p[0] != "qualified-lead" or model.survivor(p[2], p[3]) != qualified
            ]
        if model.replaced_by.get(survivor.dynamics_id) == away.dynamics_id:
            # A salesperson merged these two records the other way round since the last
            # cycle: only that merge's master is still active, and no merge can revive
            # the other, so the person lives on with the master (seed 845).
            survivor, away = away, survivor
        else:
            model.replaced_by[away.dynamics_id] = survivor.dynamics_id
            model.away_records[away.dynamics_id] = claims[away.dynamics_id]
            if kept.entity != gone.entity or not ctx.world.merge_granted:
                model.left_unlinked.add(away.dynamics_id)
                _merged_into_unlinked(ctx, away.dynamics_id)
    if survivor is not None:
        model.expected_pairs.append(("merge-survivor", model.step, winner, survivor.dynamics_id))


def _merged_into_unlinked(ctx: Ctx, rid: str) -> None:
    """A Marketo merge leaves `rid` active but unlinked (a lead beside a contact, or a
    Merge the sync may not make): the people a salesperson's merge into it still has the
    engine merge (their person still in Marketo) stop syncing instead. The engine reads
    Marketo's merges first, so it meets that merge into a record merged away before,
    and follows the README: the person stops syncing (seed 7019)."""
    model, people = ctx.model, ctx.world.people()
    for mid in [
        m
        for m in model.merged_people
        if m in people
        and any(model.replaced_by.get(r) == rid for r in model.away_people.get(m, ()))
    ]:
        del model.merged_people[mid]
        del model.away_people[mid]


MARKETO_RULES = {r.marketo: r for e in ("lead", "contact") for r in rules(e)}


def merge_fills(model: Model, winner: int, before: dict[str, Any], loser: dict[str, Any]) -> None:
    """Note what a Marketo merge the engine made (following a Dynamics merge) changed:
    the winner's empty fields took the loser's values, as the salesperson's merge
    asked, so they count as a change made then (`before`: the winner just before)."""
    for name, rule in MARKETO_RULES.items():
        value = loser.get(name)
        if before.get(name) is None and value is not None and not same(rule, None, value):
            model.edited_m(winner, name, value)


async def qualify_lead(ctx: Ctx) -> str | None:
    leads = set(_active(ctx, "lead"))
    pairs = [
        lk for lk in _open_links(ctx).values() if lk.entity == "lead" and lk.dynamics_id in leads
    ]
    if not pairs:
        return None
    link = ctx.rng.choice(sorted(pairs, key=lambda lk: lk.marketo_id))
    said = f"salesperson qualifies {ctx.record('lead', link.dynamics_id)}"
    contact = await qualify(ctx, link, account=ctx.rng.random() < 0.5)
    if contact is None:
        return f"{said}: refused by a validation rule"
    return f"{said} into contact {contact[:8]}"


async def qualify(ctx: Ctx, link: Link, *, account: bool) -> str | None:
    """A salesperson qualifies a linked lead into a new contact (and maybe an account)."""
    claims = _claims(ctx, link.dynamics_id)
    contact = await ctx.world.d_qualify(link.dynamics_id, account=account)
    if contact is None:
        return None
    model = ctx.model
    model.entity_of[contact] = "contact"
    if link.dynamics_id in model.replaced_by:
        # A Marketo merge since the last cycle already took the lead's person to a
        # contact (merge_people): the engine follows it before it reads this contact,
        # so, as when the lead is qualified first, the contact comes from a lead with
        # no person and the person stays with the merge's survivor (seed 5312).
        return contact
    model.replaced_by[link.dynamics_id] = contact
    model.away_records[link.dynamics_id] = claims
    model.expected_pairs.append(("qualified-lead", model.step, link.marketo_id, contact))
    return contact


# name, weight, action: one line per kind of thing people do.
ACTIONS: list[tuple[str, float, Action]] = [
    ("marketer-edit", 3.0, marketer_edits),
    ("salesperson-edit", 3.0, salesperson_edits),
    ("collision", 2.0, collision),
    ("split-fields", 1.5, split_fields),
    ("rapid-edits", 1.0, rapid_edits),
    ("clear", 1.0, clear_value),
    ("email-case", 0.5, email_case_only),
    ("too-long-value", 0.6, too_long_value),
    ("unmapped-edit", 0.7, unmapped_edit),
    ("filter-flip", 2.0, filter_flip),
    ("edit-while-paused", 1.0, edit_while_paused),
    ("pause-episode", 1.0, pause_episode),
    ("dynamics-delete", 0.4, dynamics_delete),
    ("marketo-delete", 0.3, marketo_delete),
    ("new-dynamics-record", 1.0, new_dynamics_record),
    ("new-marketo-person", 0.6, new_marketo_person),
    ("campaign-send", 0.5, campaign_send),
    ("dynamics-merge", 0.4, dynamics_merge),
    ("marketo-merge", 0.4, marketo_merge),
    ("qualify-lead", 0.3, qualify_lead),
]
