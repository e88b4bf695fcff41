"""The mass-change guard: one cycle never rewrites one field on a mass of records unasked.

A bad list import or a mistaken flow in Marketo can change one field on tens of thousands
of people in minutes, and a faithful sync would then overwrite the CRM. When a cycle would
write the same field in one direction on more records than the limit, the guard *holds*
that field and direction: nothing more is written for it, and the people concerned are
kept in a state set so the held changes are re-planned when someone releases the hold
(`python -m sync_core release --field F --direction D`) or raises the limit. Nothing is
lost: a held field's base stays as it was, so the change is still pending on its side.

Marketo-to-Dynamics changes are counted from the change feed before any write, so a
hold there means not one record was written. Dynamics-to-Marketo changes arrive page by
page; the guard trips on the page that crosses the limit, so at most the limit's worth of
writes can precede a hold in that direction.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from sync_core.state import StateStore

DIRECTIONS = ("to-dynamics", "to-marketo")
# Below this many records the share rule never trips: a small database's ordinary edits.
SHARE_FLOOR = 100
_ROW = "holds"


@dataclass
class Hold:
    field: str  # Marketo field name
    direction: str  # to-dynamics | to-marketo
    count: int  # writes the cycle that tripped it would have made
    limit: int
    since: str
    status: str = "held"  # held | released

    @property
    def key(self) -> str:
        return f"{self.direction}:{self.field}"

    @property
    def members(self) -> str:
        """The state set of Marketo ids whose change of this field is held."""
        return f"held-{self.direction}-{self.field}"

    def release_command(self) -> str:
        return f"python -m sync_core release --field {self.field} --direction {self.direction}"


class MassChangeGuard:
    def __init__(self, store: StateStore, *, limit: int, share: float) -> None:
        self.store = store
        self.limit = limit  # 0 switches the guard off
        self.share = share
        self.linked: int | None = None
        self.holds: dict[str, Hold] = {}
        self.tripped: list[Hold] = []  # in this cycle
        self._counts: Counter[str] = Counter()

    async def load(self) -> None:
        raw = await self.store.get_value("guard", _ROW)
        data = json.loads(raw) if raw else {}
        self.holds = {k: Hold(**v) for k, v in data.get("holds", {}).items()}
        linked = data.get("linked")
        self.linked = int(linked) if linked is not None else None
        threshold = self.threshold()
        for hold in self.holds.values():
            if hold.status == "held" and (threshold is None or hold.count <= threshold):
                hold.status = "released"  # the limit was raised past it

    async def save(self) -> None:
        raw = await self.store.get_value("guard", _ROW)
        stored = json.loads(raw).get("holds", {}) if raw else {}
        for key, hold in self.holds.items():
            # A release the admin gave while this cycle ran is not undone by it.
            if stored.get(key, {}).get("status") == "released":
                hold.status = "released"
        data = {"holds": {k: asdict(h) for k, h in self.holds.items()}, "linked": self.linked}
        await self.store.set_values("guard", {_ROW: json.dumps(data)})

    def threshold(self) -> int | None:
        if self.limit <= 0:
            return None
        if self.linked is None:
            return self.limit
        return min(self.limit, max(SHARE_FLOOR, int(self.share * self.linked)))

    def held(self, direction: str) -> frozenset[str]:
        return frozenset(
            h.field for h in self.holds.values() if h.direction == direction and h.status == "held"
        )

    def released(self) -> list[Hold]:
        return [h for h in self.holds.values() if h.status == "released"]

    async def count(self, direction: str, writes: dict[str, list[int]]) -> list[str]:
        """Add a batch of planned writes (field -> Marketo ids); return the fields that
        cross the limit now and are held from here on (their ids kept as members)."""
        threshold = self.threshold()
        if threshold is None:
            return []
        tripped = []
        for field, ids in writes.items():
            key = f"{direction}:{field}"
            existing = self.holds.get(key)
            if existing is not None and existing.status == "released":
                continue  # released: this cycle lets them through
            self._counts[key] += len(ids)
            if existing is None and self._counts[key] > threshold:
                hold = Hold(
                    field, direction, self._counts[key], threshold,
                    datetime.now(UTC).isoformat(timespec="seconds"),
                )  # fmt: skip
                self.holds[key] = hold
                self.tripped.append(hold)
                tripped.append(field)
        if tripped:
            await self.save()
        return tripped

    async def keep(self, direction: str, field: str, ids: Iterable[int]) -> None:
        """Remember people whose change of a held field waits for the release."""
        hold = self.holds[f"{direction}:{field}"]
        await self.store.add_to_set(hold.members, [str(i) for i in ids])

    async def waiting(self, hold: Hold) -> list[int]:
        return [int(x) for x in await self.store.members(hold.members)]

    async def finish_released(self) -> None:
        """After a cycle that applied them: released holds and their members are done."""
        done = self.released()
        for hold in done:
            members = await self.store.members(hold.members)
            await self.store.remove_from_set(hold.members, members)
            del self.holds[hold.key]
        if done:
            await self.save()

    def adjust_linked(self, delta: int) -> None:
        if self.linked is not None:
            self.linked = max(0, self.linked + delta)


async def release(store: StateStore, field: str, direction: str) -> Hold:
    """The admin lets a held field through: the next cycle writes every held change."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}")
    guard = MassChangeGuard(store, limit=0, share=0.0)
    raw = await store.get_value("guard", _ROW)
    data = json.loads(raw) if raw else {}
    holds = {k: Hold(**v) for k, v in data.get("holds", {}).items()}
    hold = holds.get(f"{direction}:{field}")
    if hold is None:
        held = ", ".join(sorted(holds)) or "none"
        raise LookupError(f"no hold on {field} {direction} (holds now: {held})")
    hold.status = "released"
    guard.holds, guard.linked = holds, data.get("linked")
    await guard.save()
    return hold
