"""The composition root of one Functions worker process: the parts the timer and every
webhook delivery in that process share.

Built once per process (and again only if the settings it was built from change): the
settings, the mapping, the state store with its tables checked and its hash key read,
the rate limiters of both APIs, and the webhook's Marketo batcher (`marketobatch`: the
Marketo calls of concurrent deliveries go out together). Each unit of work then gets its
own pair of HTTP clients over those shared limiters, with the retry policy that unit
needs (the webhook's is short: Marketo waits 30 s for it).

What it prevents: concurrent work in one worker each pacing itself as if alone (20
deliveries with a Marketo window of 50 calls per 20 s each are 20 calls at once and far
more than the instance's 100 per window; Dataverse counts its 6,000 requests and 52 in
flight per user, not per call site), and every delivery paying three Table Storage
round trips (tables, hash key) and a mapping parse before it can start.

Which work shares a worker depends on the plan: on Flex Consumption the HTTP functions
scale as one group and the timer as its own, so the deliveries an instance serves share
its limiters and the timer paces alone; on a Premium or Dedicated plan the timer joins
them. Across instances the APIs' own throttling answers (606, 429) are the guard.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from sync_core.dataverse import dataverse_limiter
from sync_core.http import RetryPolicy, SlidingWindow
from sync_core.mapping import Mapping as SyncMapping
from sync_core.mapping import load_mapping
from sync_core.marketo import MarketoClient, marketo_limiter
from sync_core.marketobatch import MarketoBatcher
from sync_core.pacing import ExecutionPacer
from sync_core.planner import Hasher
from sync_core.runtime import Runtime, build_clients, build_marketo, build_store
from sync_core.settings import Settings, load_settings
from sync_core.state import StateStore


@dataclass
class _Shared:
    settings: Settings
    mapping: SyncMapping
    store: StateStore
    hasher: Hasher


@dataclass
class _Limits:
    loop: asyncio.AbstractEventLoop  # asyncio primitives belong to the loop they wait on
    shared: _Shared  # the parts (settings) these were made for
    marketo: SlidingWindow
    dataverse: SlidingWindow
    pacer: ExecutionPacer
    batcher: MarketoBatcher | None = None  # made by the first delivery on this loop


class Worker:
    """One per process (function_app.py makes it); safe for concurrent invocations."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ
        self._shared: _Shared | None = None
        self._limits: _Limits | None = None
        # One build lock per event loop (an asyncio.Lock belongs to the loop it waits on).
        self._building: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def settings(self) -> Settings:
        """Read on every invocation: cheap, and a bad setting is named every time."""
        return load_settings(dict(self._environ) if self._environ is not None else None)

    async def _parts(self, settings: Settings) -> _Shared:
        shared = self._shared
        if shared is not None and shared.settings == settings:
            return shared
        loop = asyncio.get_running_loop()
        building = self._building.setdefault(loop, asyncio.Lock())
        async with building:  # concurrent first invocations build once
            if self._shared is not None and self._shared.settings == settings:
                return self._shared
            store = build_store(settings)
            await store.ensure_tables()
            hasher = Hasher(await store.hash_key(settings.sync_hash_key.get_secret_value()))
            mapping = load_mapping(settings.sync_mapping_file)
            self._shared = _Shared(settings, mapping, store, hasher)
            return self._shared

    def _limiters(self, shared: _Shared) -> _Limits:
        loop = asyncio.get_running_loop()
        old = self._limits
        if old is not None and old.loop is loop and old.shared is shared:
            return old
        scale = shared.settings.sync_time_scale
        self._limits = limits = _Limits(
            loop, shared, marketo_limiter(scale), dataverse_limiter(scale),
            ExecutionPacer(time_scale=scale),
        )  # fmt: skip
        if old is not None and old.loop is loop and old.batcher is not None:
            # Its client would keep connections to the old settings' Marketo open.
            # (A batcher of another loop cannot be closed from this one.)
            old.batcher.close_when_idle()
        return limits

    @asynccontextmanager
    async def runtime(
        self, settings: Settings | None = None, *, retry: RetryPolicy | None = None, **options: Any
    ) -> AsyncIterator[Runtime]:
        """A runtime over the shared parts; its clients are closed on exit, the store
        (shared) is not. `options` go to build_clients (transports, CA bundle)."""
        settings = settings or self.settings()
        shared = await self._parts(settings)
        limits = self._limiters(shared)
        marketo, dataverse = build_clients(
            settings, retry=retry, marketo_limiter=limits.marketo,
            dataverse_limiter=limits.dataverse, pacer=limits.pacer, **options,
        )  # fmt: skip
        rt = Runtime(
            settings, shared.mapping, shared.store, marketo, dataverse, shared.hasher,
            owns_store=False,
        )  # fmt: skip
        try:
            yield rt
        finally:
            await rt.aclose()

    async def marketo_batcher(
        self,
        settings: Settings | None = None,
        *,
        retry: RetryPolicy | None = None,
        marketo_transport: httpx.AsyncBaseTransport | None = None,
    ) -> MarketoBatcher:
        """This event loop's batcher of webhook Marketo calls, over the shared limiter.
        Its client is the worker's, not a delivery's (a batch may outlive the delivery
        that joined it first); `retry` and `marketo_transport` are taken from the first
        delivery that asks (every delivery passes the same)."""
        settings = settings or self.settings()
        shared = await self._parts(settings)
        limits = self._limiters(shared)
        if limits.batcher is None:
            s, limiter = shared.settings, limits.marketo

            def new_client() -> MarketoClient:
                return build_marketo(s, transport=marketo_transport, retry=retry, limiter=limiter)

            limits.batcher = MarketoBatcher(new_client)
        return limits.batcher
