"""Records a full Dataverse re-read did not return: deleted while no delta could say so.

Change tracking reports deletes only in a delta. After a change token expired (or the
selected columns changed) the engine re-reads the whole table, and that snapshot has no
deletes in it: a record deleted meanwhile would keep its link, and its person would never
be flagged `dynamicsDeleted`. So a full read in one cycle notes every id it saw, in 8
bytes each (a million records: 8 MB), and afterwards each link of that table older than
the read whose record was not seen is treated as deleted in Dynamics. Each page's ids are
sorted as the page comes and the sorted runs are merged, streaming, at the first look-up:
sorting them all at once would build a list of a million Python ints (about 44 MB) at
the very moment the read's last pages are still held.

A 64-bit hash can collide; the cost of a collision is one missed delete flag, never a
wrong write.
"""

from __future__ import annotations

import hashlib
import heapq
from array import array
from bisect import bisect_left
from collections.abc import Iterable

from sync_core.mapping import Entity
from sync_core.state import Link, StateStore


def _h(record_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(record_id.lower().encode(), digest_size=8).digest())


class SeenIds:
    def __init__(self) -> None:
        self._runs: list[array[int]] = []  # each sorted

    def add(self, ids: Iterable[str]) -> None:
        self._runs.append(array("Q", sorted(_h(i) for i in ids)))

    def _merged(self) -> array[int]:
        if len(self._runs) != 1:
            self._runs = [array("Q", heapq.merge(*self._runs))]
        return self._runs[0]

    def __contains__(self, record_id: str) -> bool:
        ids = self._merged()
        h = _h(record_id)
        i = bisect_left(ids, h)
        return i < len(ids) and ids[i] == h


async def unseen_links(store: StateStore, entity: Entity, seen: SeenIds, before: str) -> list[Link]:
    """Links of `entity` made before `before` (ISO time) whose record the read missed.
    Streams the links table, so memory stays at the page size plus the result."""
    return [
        link
        async for link in store.iter_links()
        if link.entity == entity and link.linked_at < before and link.dynamics_id not in seen
    ]
