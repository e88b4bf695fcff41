"""Group commit for the webhook's Marketo calls, and the port the use case calls them by.

Each Sync Person delivery makes three Marketo calls (read the person, write the Dynamics
id back, log an activity), and all the deliveries a worker serves share one pacing of 50
Marketo calls per 20 s. With a call per delivery and step, a burst of 40 deliveries is
120 calls, more than two windows: the later ones miss the deadline Marketo waits for
and answer 503. Marketo takes up to 300 ids or records per call, so here the calls of
concurrent deliveries go out together: while one call of a kind is in flight, the
requests of that kind that arrive queue up and go out in the next call. A delivery alone
is sent at once (there is no linger timer); under load a call carries many deliveries.

What it holds:

* `GroupCommit`: the queue for one kind of call (one call in flight, one result per
  request, a failed call's exception raised to each of its waiters, a waiter that gives
  up dropped without disturbing the others).
* `MarketoBatcher`: the three kinds over a Marketo client of its own, one per worker and
  event loop (a delivery's client is closed when its delivery ends; a call it joined may
  still be running), and the count of that client's calls for the daily quota.
* `MarketoPort` with `DirectPort` (one delivery's own client, for callers without a
  worker) and `BatchedPort` (through the worker's batcher): what the use case calls.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Generic, Protocol, TypeVar

from sync_core.activitylog import Entry, log_activities
from sync_core.errors import SyncError
from sync_core.marketo import BATCH, MarketoClient

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """Requests of one kind, sent `max_batch` at a time by `send`, one call at a time.

    `send` gets the items in arrival order and returns one result per item in the same
    order. Items whose `apart` keys are equal never share a call (a later one waits
    for the next). Nothing is ever sent twice: the batcher does not retry, `send` does
    what its client's retry policy allows."""

    def __init__(
        self,
        send: Callable[[list[T]], Awaitable[list[R]]],
        *,
        max_batch: int = BATCH,
        apart: Callable[[T], Hashable] | None = None,
    ) -> None:
        self._send = send
        self._max = max_batch
        self._apart = apart
        self._queue: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._task: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        return self._task is not None

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._queue.append((item, future))
        if self._task is None:
            # A task of its own: the call must not die with the delivery that happened
            # to start it (its deadline cancels it) while others wait on the same call.
            # An empty context, so the call's log lines carry no one delivery's
            # correlation id.
            self._task = loop.create_task(self._run(), context=contextvars.Context())
        # A cancelled waiter cancels only its own future; the call goes on for the rest.
        return await future

    async def _run(self) -> None:
        try:
            while self._queue:
                batch = self._next_batch()
                if batch:
                    await self._commit(batch)
        except BaseException as exc:
            # The loop cancels this task (shutting down) or a bug: nobody is left to
            # serve the queue, so its waiters hear of it rather than wait forever.
            for _, future in self._queue:
                if future.done():
                    continue
                if isinstance(exc, Exception):
                    future.set_exception(exc)
                else:
                    future.cancel()
            self._queue.clear()
            raise
        finally:
            self._task = None

    def _next_batch(self) -> list[tuple[T, asyncio.Future[R]]]:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        later: deque[tuple[T, asyncio.Future[R]]] = deque()
        keys: set[Hashable] = set()
        for item, future in self._queue:
            if future.done():
                continue  # its delivery gave up before the call: do not send it
            key = self._apart(item) if self._apart else None
            if len(batch) >= self._max or (key is not None and key in keys):
                later.append((item, future))
                continue
            if key is not None:
                keys.add(key)
            batch.append((item, future))
        self._queue = later
        return batch

    async def _commit(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        items = [item for item, _ in batch]
        try:
            results = await self._send(items)
            if len(results) != len(items):
                # Results are matched to waiters by position: a short answer would give
                # one delivery another's result.
                raise SyncError(f"Marketo returned {len(results)} results for {len(items)}")
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:
            # The loop cancels this task (shutting down): no answer is coming.
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


class MarketoBatcher:
    """The worker's Marketo calls for Sync Person, grouped per kind (see GroupCommit).

    `new_client` makes the client the calls go through; it is opened on first use and
    closed by `close_when_idle` (the worker replaced this batcher)."""

    def __init__(self, new_client: Callable[[], MarketoClient]) -> None:
        self._new_client = new_client
        self._client: MarketoClient | None = None
        self._reads: dict[tuple[str, ...], GroupCommit[int, dict[str, Any] | None]] = {}
        # One person twice in one Sync Leads call: Marketo does not say which write wins.
        self._updates: GroupCommit[dict[str, Any], dict[str, Any]] = GroupCommit(
            self._update, apart=lambda record: record["id"]
        )
        self._activities: GroupCommit[dict[str, Any], dict[str, Any]] = GroupCommit(self._add)
        self._sending = 0
        self._closing = False
        self._closes: set[asyncio.Task[None]] = set()
        self._retired_calls = 0  # made by clients closed since the last take_calls
        self._taken_calls = 0  # of the current client's calls, already taken

    async def read(self, lead_id: int, fields: Sequence[str]) -> dict[str, Any] | None:
        """The person with this id (None: not found)."""
        key = tuple(fields)
        commit = self._reads.get(key)
        if commit is None:
            commit = self._reads[key] = GroupCommit(lambda ids: self._get(ids, key))
        return await commit.submit(lead_id)

    async def update(self, record: dict[str, Any]) -> dict[str, Any]:
        """Sync Leads updateOnly by id; the record's own result (updated, skipped...)."""
        return await self._updates.submit(record)

    async def add_activities(self, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Add Custom Activities (never resent); one result per record, in order."""
        return list(await asyncio.gather(*(self._activities.submit(r) for r in records)))

    def take_calls(self) -> int:
        """Calls made since the last take; each call is taken exactly once."""
        current = self._client.calls if self._client else 0
        calls = self._retired_calls + current - self._taken_calls
        self._retired_calls, self._taken_calls = 0, current
        return calls

    def close_when_idle(self) -> None:
        """Close the client once no call is in flight (and again after any later call:
        a delivery that started before the worker replaced this batcher may still use
        it, so a call after this opens a new client instead of failing)."""
        self._closing = True
        if not self._sending:
            self._close()

    async def _get(self, ids: list[int], fields: tuple[str, ...]) -> list[dict[str, Any] | None]:
        async with self._using() as client:
            # Two deliveries for one person read it once.
            people = await client.get_leads("id", list(dict.fromkeys(ids)), fields)
        by_id = {int(p["id"]): p for p in people}
        # A copy each: the deliveries must not share one mutable record.
        return [dict(by_id[i]) if i in by_id else None for i in ids]

    async def _update(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        async with self._using() as client:
            return await client.sync_leads("updateOnly", records, "id")

    async def _add(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        async with self._using() as client:
            # Sent once (idempotent=False in the client): a lost answer is "unknown".
            return await client.add_activities(records)

    @asynccontextmanager
    async def _using(self) -> AsyncIterator[MarketoClient]:
        if self._client is None:
            self._client = self._new_client()
        self._sending += 1
        try:
            yield self._client
        finally:
            self._sending -= 1
            if self._closing and not self._sending:
                self._close()

    def _close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        self._retired_calls += client.calls - self._taken_calls
        self._taken_calls = 0
        task = asyncio.get_running_loop().create_task(client.aclose())
        self._closes.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._closes.discard)


class MarketoPort(Protocol):
    """The Marketo calls of the Sync Person use case."""

    async def read_person(self, lead_id: int, fields: Sequence[str]) -> dict[str, Any] | None: ...

    async def write_back(self, update: dict[str, Any]) -> dict[str, Any]: ...

    async def log(self, api_name: str, entries: list[Entry]) -> int: ...

    def take_batch_calls(self) -> int:
        """Calls made on a shared client since the last take, for the daily quota."""
        ...


class DirectPort:
    """Through one delivery's own client (its calls are counted from `client.calls`)."""

    def __init__(self, client: MarketoClient) -> None:
        self._client = client

    async def read_person(self, lead_id: int, fields: Sequence[str]) -> dict[str, Any] | None:
        people = await self._client.get_leads("id", [lead_id], fields)
        return people[0] if people else None

    async def write_back(self, update: dict[str, Any]) -> dict[str, Any]:
        (result,) = await self._client.sync_leads("updateOnly", [update], "id")
        return result

    async def log(self, api_name: str, entries: list[Entry]) -> int:
        return await log_activities(self._client, api_name, entries)

    def take_batch_calls(self) -> int:
        return 0


class BatchedPort:
    """Through the worker's batcher; `client` (the delivery's) only looks up the
    activity type ids, once per process."""

    def __init__(self, client: MarketoClient, batcher: MarketoBatcher) -> None:
        self._client = client
        self._batcher = batcher

    async def read_person(self, lead_id: int, fields: Sequence[str]) -> dict[str, Any] | None:
        return await self._batcher.read(lead_id, fields)

    async def write_back(self, update: dict[str, Any]) -> dict[str, Any]:
        return await self._batcher.update(update)

    async def log(self, api_name: str, entries: list[Entry]) -> int:
        return await log_activities(
            self._client, api_name, entries, add=self._batcher.add_activities
        )

    def take_batch_calls(self) -> int:
        return self._batcher.take_calls()
