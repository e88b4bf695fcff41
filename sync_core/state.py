"""The state seam: what the engine may ask of its durable state (`StateStore`, a
protocol whose calls are all awaitable), the `Link` it keeps, and the row format.

Two stores implement it: Table Storage (`sync_core.tablestore`, production) and memory
(`sync_core.memstore`, simulation and fast tests). Both build their rows with the
functions here (key encoding, link rows, log rows), so the two cannot drift apart in
format: a row the simulation's store holds is the row Table Storage would hold, and a
store that is kinder than the real one is caught by the contract test
(tests/state/test_store_contract.py) rather than by a production incident.

What the engine relies on, whichever store: cursors advance only after the link rows
they cover are written; a lease has exactly one owner; a link saved without `new` has
no Dynamics-id index row; logs list newest first.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sync_core.mapping import Entity

TABLES = ("state", "links", "cycles", "errors", "personlog")
BUCKET = 1000  # Marketo ids per links partition
# Not allowed in keys (`/ \ # ?` and control characters), and the escape character.
_UNSAFE = re.compile(r"[/\\#?%\x00-\x1f\x7f-\x9f]")


@dataclass(slots=True)
class Link:
    """A Marketo person paired with one Dynamics lead or contact, and their base."""

    marketo_id: int
    entity: Entity
    dynamics_id: str
    base: dict[str, str] = field(default_factory=dict)
    linked_at: str = ""


class StateStore(Protocol):
    """Every call may reach a remote service: awaited, never blocking the event loop."""

    def close(self) -> None: ...  # releases connections; sends no request
    async def ensure_tables(self) -> None: ...
    async def missing_tables(self) -> list[str]: ...

    # small key/value rows; a None value deletes the row
    async def get_value(self, kind: str, name: str) -> str | None: ...
    async def set_values(self, kind: str, values: dict[str, str | None]) -> None: ...
    async def add_to_value(self, kind: str, name: str, amount: int) -> int: ...
    async def get_cursor(self, name: str) -> str | None: ...
    async def set_cursors(self, values: dict[str, str | None]) -> None: ...
    async def hash_key(self, configured: str = "") -> bytes: ...
    async def saved(self, kind: str) -> dict[str, tuple[str, datetime | None]]: ...

    # open links per entity, kept as links are saved and closed
    async def link_counts(self) -> dict[str, int] | None: ...
    async def ensure_link_counts(self) -> dict[str, int]: ...

    # the lease: one writer at a time
    async def acquire_lease(self, owner: str, seconds: int, name: str = "cycle") -> bool: ...
    async def release_lease(self, owner: str, name: str = "cycle") -> None: ...

    # links
    async def links_by_marketo(self, ids: Iterable[int]) -> dict[int, Link]: ...
    async def links_by_dynamics(
        self, entity: Entity, ids: Iterable[str], hints: Mapping[str, int | None] | None = None
    ) -> dict[str, Link]: ...
    async def save_links(self, links: Iterable[Link], *, new: bool = False) -> None: ...
    async def close_links(self, links: Iterable[Link]) -> None: ...
    def iter_links(self) -> AsyncIterator[Link]: ...

    # sets of keys (intents, retries, paused, ...)
    async def add_to_set(
        self, kind: str, keys: Iterable[str], data: dict[str, str] | None = None
    ) -> None: ...
    async def members(self, kind: str) -> list[str]: ...
    async def remove_from_set(self, kind: str, keys: Iterable[str]) -> None: ...

    # logs, newest first
    async def record_cycle(self, cycle_id: str, summary: dict[str, Any]) -> None: ...
    async def recent_cycles(self, limit: int = 20) -> list[dict[str, Any]]: ...
    async def cycles_since(self, since: datetime) -> list[dict[str, Any]]: ...
    async def record_errors(self, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]: ...
    # A new row with a signature is also kept, in the same write, as owed to the
    # person's activity log, until error_logs_done says its line was sent.
    async def pending_error_logs(self, limit: int = 300) -> list[dict[str, Any]]: ...
    async def error_logs_done(self, signatures: Iterable[str]) -> None: ...
    async def list_errors(
        self, since: datetime | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]: ...
    async def record_person_events(self, events: Iterable[dict[str, Any]]) -> None: ...
    async def person_events(self, marketo_id: int) -> list[dict[str, Any]]: ...


# ---- keys ---------------------------------------------------------------------------
def safe_key(text: str) -> str:
    """Encode a PartitionKey/RowKey: `/ \\ # ?` and control characters are not allowed
    in keys, so they (and the escape char) become %XX instead of crashing a write."""
    if not _UNSAFE.search(text):
        return text  # nearly every key: checked at C speed, not a character at a time
    return _UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", text)


def unsafe_key(key: str) -> str:
    """The text `safe_key` encoded."""
    if "%" not in key:
        return key
    out, i = [], 0
    while i < len(key):
        if key[i] == "%" and i + 2 < len(key):
            out.append(chr(int(key[i + 1 : i + 3], 16)))
            i += 3
        else:
            out.append(key[i])
            i += 1
    return "".join(out)


def _now() -> datetime:
    return datetime.now(UTC)


def newest_first(t: datetime) -> str:
    # Table Storage sorts by RowKey ascending; an inverted timestamp lists newest first.
    return f"{10**15 - int(t.timestamp() * 1000):015d}"


def m_key(marketo_id: int) -> tuple[str, str]:
    # Zero-padded so RowKey order is numeric order: a bucket of 1,000 consecutive
    # ids is one partition that a single range query can read.
    return f"m{marketo_id // BUCKET:012d}", f"{marketo_id:012d}"


def d_key(entity: Entity, dynamics_id: str) -> tuple[str, str]:
    did = dynamics_id.lower()
    return f"d{entity[0]}{safe_key(did[:2])}", safe_key(did)


def person_range(marketo_id: int) -> tuple[str, str, str]:
    """Partition and exclusive RowKey bounds of one person's log rows."""
    mid = int(marketo_id)
    return f"p{mid // BUCKET:012d}", f"{mid:012d}-", f"{mid:012d}."


# ---- rows ---------------------------------------------------------------------------
def _flat(values: dict[str, Any]) -> dict[str, Any]:
    """Table Storage holds no lists or dicts: they are kept as JSON text."""
    return {k: (json.dumps(v) if isinstance(v, list | dict) else v) for k, v in values.items()}


def link_from_row(row: dict[str, Any]) -> Link:
    return Link(
        marketo_id=int(row["RowKey"]),
        entity=row["entity"],
        dynamics_id=row["dynamicsId"],
        base=json.loads(row.get("base") or "{}"),
        linked_at=row.get("linkedAt", ""),
    )


def link_row(link: Link, stamp: str) -> dict[str, Any]:
    """A link's main row (keyed by Marketo id), with its base."""
    pk, rk = m_key(link.marketo_id)
    return {
        "PartitionKey": pk,
        "RowKey": rk,
        "entity": link.entity,
        "dynamicsId": link.dynamics_id.lower(),
        "base": json.dumps(link.base, separators=(",", ":"), sort_keys=True),
        "linkedAt": link.linked_at or stamp,
        "updatedAt": stamp,
    }


def index_row(link: Link) -> dict[str, Any]:
    """A link's Dynamics-id index row: the record id -> the Marketo id."""
    pk, rk = d_key(link.entity, link.dynamics_id)
    return {"PartitionKey": pk, "RowKey": rk, "marketoId": str(link.marketo_id)}


def cycle_row(cycle_id: str, summary: dict[str, Any]) -> dict[str, Any]:
    started = datetime.fromisoformat(summary["started"])
    row = {"PartitionKey": "cycle", "RowKey": f"{newest_first(started)}-{cycle_id}"}
    return {**row, **_flat(summary)}


ERROR_SIG = "errorsig"  # state partition: one row per signature recorded (the dedupe)
PENDING_LOG = "~"  # ... and, prefixed so, one per line still owed to the activity log


def pending_log_row(row: dict[str, Any], stamp: datetime) -> dict[str, Any]:
    return {
        "PartitionKey": ERROR_SIG,
        "RowKey": PENDING_LOG + str(row["signature"]),
        "row": json.dumps({**row, "at": stamp.isoformat()}, default=str),
    }


def error_row(row: dict[str, Any], n: int, stamp: datetime) -> dict[str, Any]:
    """The n-th error row of one batch recorded at `stamp`."""
    key = f"{newest_first(stamp)}-{n:05d}-{secrets.token_hex(3)}"
    return {"PartitionKey": "error", "RowKey": key, "at": stamp.isoformat(), **_flat(row)}


def person_event_rows(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    stamp = _now()
    tag = secrets.token_hex(3)  # two batches in one millisecond must not collide
    rows = []
    for n, ev in enumerate(events):
        mid = int(ev["marketoId"])
        pk, lo, _ = person_range(mid)
        # Bucketed like links so one cycle's events batch into few transactions;
        # the RowKey starts with the person, newest first within them.
        rows.append(
            {
                "PartitionKey": pk,
                "RowKey": f"{lo}{newest_first(stamp)}-{n:06d}-{tag}",
                "marketoId": mid,
                "at": stamp.isoformat(),
                **_flat({k: v for k, v in ev.items() if k != "marketoId"}),
            }
        )
    return rows
