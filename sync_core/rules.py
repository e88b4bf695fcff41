"""Which merge rule decided each field of a sync event, as recorded in the person log.

`explain` and `plan` show an admin *why* a value moved ("collision, Dynamics wins as the
system of record for contacts"), not just that it did. The planner already knows; this
turns its plan into short, stable codes kept with each event, so the answer survives in
the log after the cycle is gone instead of being re-derived (wrongly) from today's mapping.
"""

from __future__ import annotations

from sync_core.mapping import DEFAULT_WINNER, Entity
from sync_core.planner import PairPlan

# code -> what an admin reads
RULES: dict[str, str] = {
    "changed-in-dynamics": "changed only in Dynamics since the last sync",
    "changed-in-marketo": "changed only in Marketo since the last sync",
    "collision-system-of-record": "changed on both sides; the system of record wins",
    "collision-override": "changed on both sides; the field's winner override decides",
    "new-link": "first sync of this pair; the side holding a value wins",
    "rejected": "the write was rejected; the base stays as it was",
}


def field_rules(
    plan: PairPlan, entity: Entity, direction: str, fields: list[str], *, new: bool
) -> dict[str, str]:
    """Rule code per field written in `direction` ("to-marketo" / "to-dynamics")."""
    winners = {c.field: c.winner for c in plan.collisions}
    source = "dynamics" if direction == "to-marketo" else "marketo"
    out = {}
    for name in fields:
        if name in winners:
            default = winners[name] == DEFAULT_WINNER[entity]
            out[name] = "collision-system-of-record" if default else "collision-override"
        elif new:
            out[name] = "new-link"
        else:
            out[name] = f"changed-in-{source}"
    return out
