"""The Dynamics cursor rows as earlier versions stored them read back as the same typed
positions, and writing a position gives the very text those versions wrote: an upgraded
deployment resumes where it was instead of re-reading every table."""

from __future__ import annotations

import json

from sync_core.dynamicscursor import (
    DeltaLink,
    ResumeLink,
    TableCursor,
    Watermark,
    dump_position,
    finished_rows,
    parse_position,
    position_mode,
    resume_rows,
)

DELTA = "https://org.crm.dynamics.com/api/data/v9.2/contacts?$select=a,b&$deltatoken=919042!0815"
# What the cycle wrote for a table without change tracking (json.dumps, default spacing).
WATERMARK = json.dumps(
    {"mode": "modifiedon", "since": "2026-11-01T12:00:05Z", "seen": {"a1": "77", "b2": "78"}}
)


def test_todays_stored_rows_read_as_typed_positions() -> None:
    assert parse_position(DELTA) == DeltaLink(DELTA)
    assert parse_position(WATERMARK) == Watermark("2026-11-01T12:00:05Z", {"a1": "77", "b2": "78"})
    # An empty table read by modifiedon left no watermark time yet.
    empty = json.dumps({"mode": "modifiedon", "since": None, "seen": {}})
    assert parse_position(empty) == Watermark(None, {})
    assert parse_position(None) is None and parse_position("") is None
    cursor = TableCursor.parse(DELTA, "https://org/api/data/v9.2/contacts?$skiptoken=5", "a,b")
    assert cursor.position == DeltaLink(DELTA)
    assert cursor.resume == ResumeLink("https://org/api/data/v9.2/contacts?$skiptoken=5")
    assert cursor.columns == "a,b"


def test_positions_are_written_exactly_as_before() -> None:
    assert dump_position(parse_position(DELTA)) == DELTA
    assert dump_position(parse_position(WATERMARK)) == WATERMARK
    assert dump_position(None) is None


def test_row_names_and_modes() -> None:
    assert finished_rows("lead", DeltaLink(DELTA), "a,b") == {
        "dynamics-lead": DELTA,
        "dynamics-lead-columns": "a,b",
        "dynamics-lead-resume": None,
    }
    assert resume_rows("contact", ResumeLink("next"), "c") == {
        "dynamics-contact-resume": "next",
        "dynamics-contact-columns": "c",
    }
    assert [position_mode(x) for x in (None, DELTA, WATERMARK)] == [
        "initial-load",
        "change-tracking",
        "modifiedon",
    ]
