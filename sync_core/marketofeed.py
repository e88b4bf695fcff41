"""Reading Marketo's lead-change and deleted-lead feeds without missing a late activity.

Marketo's activity paging tokens are date-based, and an activity can be committed (become
visible) after activities dated later than it. A cursor that simply resumes where the
last read ended skips such an activity for ever. So each read starts an *overlap window*
behind the previous read's start and skips, by activity id, what an earlier read already
handled: a late activity is found, a re-read one is not handled twice.

Where the read starts, at the fewest calls: a token saved at the end of an earlier read
is safe once it was obtained at least one overlap before the previous read began (its
position can only be earlier than the moment it was handed out). When that earlier read
was short, starting there re-reads a page or two and costs nothing extra; after a busy
read, one Get Paging Token call for exactly the overlap is cheaper than re-reading it.

What was read is held as `MarketoChanges` for the rest of the cycle, which tells a pair
whose Marketo side moved off its base (dirty) from one whose change is already synced.
"""

from __future__ import annotations

import json
from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sync_core.marketo import Activity, MarketoClient
from sync_core.planner import Hasher, comparable
from sync_core.state import Link

CHANGE_DATA_VALUE = 13
MERGE_LEADS = 32
DELETE_LEAD = 37
# Previous read had more pages than this: a fresh token beats re-reading all of them.
SHORT_READ_PAGES = 2
# Ids kept for de-duplication; one state value holds at most 32K characters.
SEEN_CAP = 1500
MARKS_KEPT = 4


@dataclass(slots=True)
class Mark:
    """A token handed out at `at` (our clock): its position is no later than that."""

    token: str
    at: str


@dataclass
class FeedCursor:
    read: str = ""  # when the last completed read began (our clock, UTC ISO)
    pages: int = 0  # lead-change pages that read took
    marks: list[Mark] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    legacy_token: str = ""  # a plain token saved before overlap windows existed

    @classmethod
    def parse(cls, raw: str | None) -> FeedCursor | None:
        if raw is None:
            return None
        if not raw.startswith("{"):
            return cls(legacy_token=raw)
        data = json.loads(raw)
        return cls(
            read=str(data.get("read") or ""),
            pages=int(data.get("pages") or 0),
            marks=[Mark(str(m["token"]), str(m["at"])) for m in data.get("marks") or []],
            seen=[str(x) for x in data.get("seen") or []],
        )

    def dump(self) -> str:
        return json.dumps(
            {
                "v": 2,
                "read": self.read,
                "pages": self.pages,
                "marks": [{"token": m.token, "at": m.at} for m in self.marks],
                "seen": self.seen,
            },
            separators=(",", ":"),
        )


@dataclass
class FeedRead:
    changes: dict[int, list[tuple[str, Any]]]  # person id -> (field, new value)
    deleted: set[int]
    cursor: FeedCursor  # to save once everything read here is applied
    fresh_start: bool = False  # first read ever: nothing before now was looked at
    merged: dict[int, int] = field(default_factory=dict)  # merged-away person -> winner


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def start_token(client: MarketoClient, cursor: FeedCursor, overlap: float) -> str:
    """The token to read from: safe against late activities, cheapest in calls."""
    if cursor.legacy_token:
        return cursor.legacy_token
    safe_before = _at(cursor.read) - timedelta(seconds=overlap)
    eligible = [m for m in cursor.marks if _at(m.at) <= safe_before]
    if eligible and cursor.pages <= SHORT_READ_PAGES:
        return max(eligible, key=lambda m: _at(m.at)).token
    return await client.paging_token(safe_before)


async def read_feeds(
    client: MarketoClient,
    saved: str | None,
    fields: Sequence[str],
    *,
    overlap: float,
    now: datetime | None = None,
) -> FeedRead:
    began = now or datetime.now(UTC)
    cursor = FeedCursor.parse(saved)
    if cursor is None:
        # First run: history before now arrives through the Dynamics snapshot, which
        # re-reads every linked person anyway.
        token = await client.paging_token(began)
        fresh = FeedCursor(read=_iso(began), marks=[Mark(token, _iso(began))])
        return FeedRead({}, set(), fresh, fresh_start=True)
    token = await start_token(client, cursor, overlap)
    seen = set(cursor.seen)
    wanted = set(fields)
    changes: dict[int, list[tuple[str, Any]]] = {}
    handled: list[Activity] = []
    end, pages = token, 0
    async for page, next_token in client.lead_changes(token, list(fields)):
        pages += 1
        for act in page:
            if act.id in seen or act.type_id != CHANGE_DATA_VALUE:
                continue
            seen.add(act.id)
            handled.append(act)
            # The fields filter is not always honoured server-side; filter here too.
            found = [(f, v) for f, v in act.fields.items() if f in wanted]
            if found:
                changes.setdefault(act.lead_id, []).extend(found)
        end = next_token
    # One feed for deletes and merges (the same activities deletedleads.json lists, plus
    # Merge Leads, which names the people merged away into its lead).
    deleted: set[int] = set()
    merged: dict[int, int] = {}
    async for page, _ in client.activities(token, (MERGE_LEADS, DELETE_LEAD)):
        for act in page:
            if act.id in seen:
                continue
            seen.add(act.id)
            handled.append(act)
            if act.type_id == DELETE_LEAD:
                deleted.add(act.lead_id)
            elif act.type_id == MERGE_LEADS:
                for loser in _ids(act.attributes.get("Merge IDs")):
                    merged[loser] = act.lead_id
    deleted -= set(merged)
    for mid in [*deleted, *merged]:
        changes.pop(mid, None)
    got_end = datetime.now(UTC)
    marks = [*cursor.marks, Mark(end, _iso(got_end))][-MARKS_KEPT:]
    # Ids of everything handled lately: the next read re-scans part of it. Newest last,
    # so the cap drops the oldest, which no later read reaches any more.
    recent = list(dict.fromkeys([*cursor.seen, *(a.id for a in handled)]))[-SEEN_CAP:]
    new = FeedCursor(read=_iso(began), pages=pages, marks=marks, seen=recent)
    return FeedRead(changes, deleted, new, merged=merged)


def _ids(text: Any) -> list[int]:
    out = []
    for part in str(text or "").replace(";", ",").split(","):
        part = part.strip()
        if part.isdigit():
            out.append(int(part))
    return out


ALWAYS = ("*", object())  # a change marker no base matches: always re-plan the person


class MarketoChanges:
    """Marketo changes of this cycle still to handle: person id -> (field, new value)
    pairs from the feed, or ALWAYS (a retry, a released hold, a moved link), which
    re-plans the pair whatever the base says. A person is popped once a Dynamics row
    or a delete has handled them; whoever is left is handled on their own."""

    def __init__(self) -> None:
        self.by_person: dict[int, list[tuple[str, Any]]] = {}

    def __bool__(self) -> bool:
        return bool(self.by_person)

    def ids(self) -> list[int]:
        return list(self.by_person)

    def add(self, marketo_id: int, changes: Sequence[tuple[str, Any]]) -> None:
        self.by_person.setdefault(marketo_id, []).extend(changes)

    def always(self, marketo_id: int) -> None:
        self.by_person.setdefault(marketo_id, []).append(ALWAYS)

    def pop(self, marketo_id: int) -> None:
        self.by_person.pop(marketo_id, None)

    def changed_fields(self, link: Link, hasher: Hasher, fold: Container[str]) -> set[str]:
        """Fields whose feed value differs from the base (ALWAYS names no field)."""
        return {
            f for f, v in self.by_person.get(link.marketo_id, ())
            if v is not ALWAYS[1] and hasher(comparable(v, f in fold)) != link.base.get(f)
        }  # fmt: skip

    def dirty(self, link: Link, hasher: Hasher, fold: Container[str]) -> bool:
        """Anything for this pair to plan: a value off the base, or ALWAYS."""
        return any(
            v is ALWAYS[1] or hasher(comparable(v, f in fold)) != link.base.get(f)
            for f, v in self.by_person.get(link.marketo_id, ())
        )
