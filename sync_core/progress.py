"""A one-line progress display for long CLI runs (`run-once` on a first load or a
reconcile, `plan` on a big backlog).

On a terminal it redraws one stderr line with `\\r`, at most a few times a second; when
stderr is piped or redirected it prints nothing at all, so scripts and logs that parse
the command's output see exactly what they did before. It only reads the cycle's
counters while the cycle runs, so the engine needs no hook for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator
from typing import Any, TextIO

INTERVAL = 0.25


class Progress:
    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled
        self.started = time.monotonic()
        self._last = 0.0
        self._shown = False

    @classmethod
    def for_stream(cls, stream: TextIO) -> Progress:
        isatty = getattr(stream, "isatty", None)
        return cls(stream, bool(isatty and isatty()))

    def update(self, text: str, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < INTERVAL:
            return
        self._last = now
        width = shutil.get_terminal_size((100, 20)).columns - 1
        line = f"{now - self.started:6.1f} s  {text}"[:width]
        # \r back to the start, then erase to the end of the line: no leftovers.
        self.stream.write(f"\r{line}\033[K")
        self.stream.flush()
        self._shown = True

    def done(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._shown = False


def describe(counts: Any) -> str:
    c = counts.as_dict() if hasattr(counts, "as_dict") else dict(counts)
    return (
        f"to Marketo {c.get('to_marketo', 0):,}, created {c.get('created_in_marketo', 0):,}, "
        f"to Dynamics {c.get('to_dynamics', 0):,}, linked {c.get('linked', 0):,}, "
        f"collisions {c.get('collisions', 0):,}, rejected {c.get('rejected', 0):,}"
    )


@contextlib.asynccontextmanager
async def watching(cycle: Any, progress: Progress) -> AsyncIterator[None]:
    """Redraw the cycle's running counts until the block ends."""
    if not progress.enabled:
        yield
        return

    def draw() -> None:
        calls = f"calls M{cycle.marketo.calls}/D{cycle.dataverse.calls}"
        progress.update(f"{describe(cycle.counts)}, {calls}", force=True)

    async def tick() -> None:
        while True:
            draw()
            await asyncio.sleep(INTERVAL)

    task = asyncio.create_task(tick())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        draw()  # the final counts, then the line makes way for the summary
        progress.done()
