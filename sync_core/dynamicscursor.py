"""Where each Dynamics table's change feed stands, as typed values with explicit storage.

Three rows per table: `dynamics-<entity>` (the position after the last complete read:
a change-tracking delta link, or a modifiedon watermark when change tracking is off),
`dynamics-<entity>-resume` (the next page of a read the time budget cut short) and
`dynamics-<entity>-columns` (the columns that position was read with). The stored text
is what earlier versions wrote, byte for byte, so an upgraded deployment keeps reading
where it was instead of re-reading every table (and an older version still reads it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

WATERMARK_MODE = "modifiedon"


@dataclass(frozen=True, slots=True)
class DeltaLink:
    """Change tracking: the `@odata.deltaLink` the last complete read ended with."""

    url: str


@dataclass(frozen=True, slots=True)
class ResumeLink:
    """The `@odata.nextLink` of a read that ran out of time: it continues there."""

    url: str


@dataclass(frozen=True, slots=True)
class Watermark:
    """Change tracking off: the newest `modifiedon` read, and the row versions handled
    at the window's end (so an overlap re-read does not handle them twice)."""

    since: str | None = None
    seen: dict[str, str] = field(default_factory=dict)


Position = DeltaLink | Watermark  # where the next read starts; None: read everything


def parse_position(raw: str | None) -> Position | None:
    """A stored position: a watermark is a JSON object with mode "modifiedon"; anything
    else non-empty is a delta link (Dataverse's own URL, stored as handed out)."""
    if not raw:
        return None
    data = _object(raw)
    if data is not None and data.get("mode") == WATERMARK_MODE:
        since = data.get("since")
        seen = data.get("seen") or {}
        return Watermark(None if since is None else str(since),
                         {str(k): str(v) for k, v in seen.items()})  # fmt: skip
    return DeltaLink(raw)


def dump_position(position: Position | None) -> str | None:
    if position is None:
        return None
    if isinstance(position, DeltaLink):
        return position.url
    return json.dumps({"mode": WATERMARK_MODE, "since": position.since, "seen": position.seen})


def position_mode(raw: str | None) -> str:
    """How a stored position reads the table next (for `status`)."""
    position = parse_position(raw)
    if position is None:
        return "initial-load"
    return WATERMARK_MODE if isinstance(position, Watermark) else "change-tracking"


def _object(raw: str) -> dict[str, Any] | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True, slots=True)
class TableCursor:
    """One table's three rows, read together."""

    position: Position | None
    resume: ResumeLink | None
    columns: str | None

    @staticmethod
    def names(entity: str) -> tuple[str, str, str]:
        base = f"dynamics-{entity}"
        return base, f"{base}-resume", f"{base}-columns"

    @classmethod
    def parse(cls, main: str | None, resume: str | None, columns: str | None) -> TableCursor:
        return cls(parse_position(main), ResumeLink(resume) if resume else None, columns)


def finished_rows(entity: str, position: Position | None, columns: str) -> dict[str, str | None]:
    """A complete read: its position and columns saved, any resume link cleared."""
    main, resume, cols = TableCursor.names(entity)
    return {main: dump_position(position), cols: columns, resume: None}


def resume_rows(entity: str, resume: ResumeLink, columns: str) -> dict[str, str | None]:
    """A read cut short: where it continues (its position stays where it was)."""
    _, name, cols = TableCursor.names(entity)
    return {name: resume.url, cols: columns}
