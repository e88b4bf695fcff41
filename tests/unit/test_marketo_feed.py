"""Where a Marketo feed read starts: never later than one overlap before the previous
read began (late activities), and with a saved token when that costs no extra call."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sync_core.marketofeed import SEEN_CAP, FeedCursor, Mark, start_token

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


class TokenClient:
    """Only Get Paging Token, which is all `start_token` may call."""

    def __init__(self) -> None:
        self.asked: list[datetime] = []

    async def paging_token(self, since: datetime) -> str:
        self.asked.append(since)
        return f"fresh@{since.isoformat()}"


def start(cursor: FeedCursor, overlap: float = 120) -> tuple[str, TokenClient]:
    client = TokenClient()
    token = asyncio.run(start_token(client, cursor, overlap))  # type: ignore[arg-type]
    return token, client


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def test_after_a_short_read_an_old_enough_saved_token_costs_no_call():
    cursor = FeedCursor(
        read=at(300), pages=1, marks=[Mark("a", at(1)), Mark("b", at(150)), Mark("c", at(301))]
    )
    token, client = start(cursor)
    # "b" was handed out 150 s before the last read began: more than the overlap.
    assert token == "b" and client.asked == []


def test_a_token_younger_than_the_overlap_is_never_reused():
    cursor = FeedCursor(read=at(300), pages=1, marks=[Mark("c", at(250))])
    token, client = start(cursor)
    assert client.asked == [T0 + timedelta(seconds=180)]
    assert token.startswith("fresh@")


def test_after_a_busy_read_one_fresh_token_beats_re_reading_it():
    cursor = FeedCursor(read=at(300), pages=40, marks=[Mark("b", at(100))])
    token, client = start(cursor)
    assert client.asked == [T0 + timedelta(seconds=180)] and token.startswith("fresh@")


def test_a_token_saved_before_overlap_windows_resumes_as_it_was():
    token, client = start(FeedCursor.parse("OLDTOKEN=="))  # type: ignore[arg-type]
    assert token == "OLDTOKEN==" and client.asked == []


def test_cursor_round_trips_and_fits_one_state_value():
    seen = [str(10**9 + i) for i in range(SEEN_CAP)]
    cursor = FeedCursor(read=at(0), pages=3, marks=[Mark("x" * 60, at(0))] * 4, seen=seen)
    raw = cursor.dump()
    assert len(raw) < 32_000  # Table Storage: one string property holds 32K characters
    back: Any = FeedCursor.parse(raw)
    assert back == cursor
