"""The write-ahead journal: which values a page was about to write, saved before it writes.

A run that dies after its writes landed but before their link rows (the new base) were
saved leaves the old base behind. An edit made before the next cycle then looks like a
collision with the engine's own write, and on the winner's side of the field the engine's
stale value overwrites that newer edit (a lost update the seeded simulation found). So
each page first notes, per person, the hash of every value it is about to write to each
side; the note is deleted once the page's link rows are saved. The next cycle turns any
note left behind into markers on the links, and the planner takes the noted value as the
base where the write is known to have landed (its answer came back before the run died:
`=d:` / `=m:` + field) or the side still shows it (sent, answer unknown: `~d:` / `~m:`);
see planner.plan_pair. A write answered as not landed (a 412, a refusal) is noted as
answered too, with the base it was planned from: left as "sent", a salesperson's save
that caused the 412 would pass for an edit made after our write landed. The first plan
after a dead run stores the base the markers gave (the markers go when its link is
saved); without it the stale base came back and our own write passed for an edit.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

from sync_core.state import Link, StateStore

KIND = "journal"
LANDED_ON = {"dynamics": "~d:", "marketo": "~m:"}  # base keys: a write that may have landed
CONFIRMED = {"dynamics": "=d:", "marketo": "=m:"}  # ... and one whose answer came back
LANDED = "_landed"  # journal row flag: these writes were answered (the base for sure)
CHUNK = 100  # people per journal row (one state value holds 32K characters)


async def note(
    store: StateStore, entries: dict[int, dict[str, Any]], *, landed: bool = False
) -> list[str]:
    """Save the page's writes ({person: {"d": {field: hash}, "m": {...}}}): before they
    are sent, or with `landed` once their answers came back (the base each answer leaves).
    Return the journal keys to clear once the page is committed."""
    items = [(mid, sides) for mid, sides in entries.items() if sides["d"] or sides["m"]]
    rows = {}
    for i in range(0, len(items), CHUNK):
        chunk: dict[str, Any] = {str(mid): sides for mid, sides in items[i : i + CHUNK]}
        chunk[LANDED] = landed
        rows[uuid.uuid4().hex] = json.dumps(chunk, separators=(",", ":"))
    if rows:
        await store.set_values(KIND, rows)  # type: ignore[arg-type]
    return list(rows)


async def clear(store: StateStore, keys: Iterable[str]) -> None:
    keys = list(keys)
    if keys:
        await store.set_values(KIND, dict.fromkeys(keys))


async def recover(store: StateStore) -> int:
    """Turn notes a dead run left into markers on its links; return how many people."""
    keys = await store.members(KIND)
    touched = 0
    for key in keys:
        raw = await store.get_value(KIND, key)
        data = json.loads(raw) if raw else {}
        markers = CONFIRMED if data.pop(LANDED, False) else LANDED_ON
        links = await store.links_by_marketo([int(m) for m in data])
        marked: list[Link] = []
        for mid, sides in data.items():
            link = links.get(int(mid))
            if link is None:
                continue
            for side, short in (("dynamics", "d"), ("marketo", "m")):
                for field, value in sides.get(short, {}).items():
                    link.base[markers[side] + field] = value
            marked.append(link)
        if marked:
            await store.save_links(marked)
        await clear(store, [key])
        touched += len(marked)
    return touched
