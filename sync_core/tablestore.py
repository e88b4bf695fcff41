"""Sync state in Azure Table Storage: cursors, the cycle lease, links with their base,
create intents, the retry set, the cycle / error / per-person logs, and link counters.

`TableStateStore` is the production `StateStore` and the only place in the engine that
hops threads for state: each call runs the blocking SDK code (`sync_core.tables`) in a
worker thread, so a slow storage account never stalls the event loop that the cycle's
Marketo and Dataverse calls share. (The SDK's async client would need aiohttp, which is
not among the project's packages.)

Keeping all state in one store (Azurite locally, identity-based in Azure) is what lets a
cycle killed at any instant resume without losing or duplicating anything. Link counts
per entity are kept as links are saved and closed, so `status` never scans the links.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableClient, TableServiceClient

from sync_core.mapping import Entity
from sync_core.state import TABLES, Link, StateStore
from sync_core.tablelogs import TableLogs
from sync_core.tables import TableRows

# The proxy variables `requests` reads from the environment when a session trusts it,
# and its CA-bundle variables, in the order it reads them.
_PROXY_ENV = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
_CA_ENV = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def transport_options() -> dict[str, Any]:
    """`requests` reads its proxy and CA variables by scanning the whole environment on
    every request, a tenth of a state read's client CPU with a hundred-odd variables
    (a Functions host has that many). Where no proxy variable is set the transport is
    told not to look, and a CA bundle, if one is named, is read once here instead;
    where a proxy is set, it is honoured as before (no_proxy matching included)."""
    if any(name.lower() in _PROXY_ENV for name in os.environ):
        return {}
    bundle = next((os.environ[n] for n in _CA_ENV if os.environ.get(n)), None)
    if bundle:
        return {"transport": RequestsTransport(use_env_settings=False, connection_verify=bundle)}
    return {"transport": RequestsTransport(use_env_settings=False)}


class TableStateStore:
    TABLES = TABLES

    def __init__(self, service: TableServiceClient, prefix: str = "mktosync") -> None:
        self._rows = TableRows(service, prefix)
        self._logs = TableLogs(self._rows)

    @classmethod
    def from_connection_string(cls, conn: str, prefix: str = "mktosync") -> TableStateStore:
        return cls(TableServiceClient.from_connection_string(conn, **transport_options()), prefix)

    @classmethod
    def from_account_url(
        cls, url: str, credential: Any, prefix: str = "mktosync"
    ) -> TableStateStore:
        service = TableServiceClient(endpoint=url, credential=credential, **transport_options())
        return cls(service, prefix)

    def _t(self, name: str) -> TableClient:
        """One table's blocking client (tests use it to age a lease)."""
        return self._rows.table(name)

    def close(self) -> None:
        self._rows.close()

    async def ensure_tables(self) -> None:
        await asyncio.to_thread(self._rows.ensure_tables)

    async def missing_tables(self) -> list[str]:
        """State tables that do not exist (all five before `setup` or the first cycle)."""
        return await asyncio.to_thread(self._rows.missing_tables)

    # ---- small key/value rows ---------------------------------------------
    async def get_value(self, kind: str, name: str) -> str | None:
        return await asyncio.to_thread(self._rows.get_value, kind, name)

    async def set_values(self, kind: str, values: dict[str, str | None]) -> None:
        await asyncio.to_thread(self._rows.set_values, kind, values)

    async def add_to_value(self, kind: str, name: str, amount: int) -> int:
        return await asyncio.to_thread(self._rows.add_to_value, kind, name, amount)

    async def get_cursor(self, name: str) -> str | None:
        return await self.get_value("cursor", name)

    async def set_cursors(self, values: dict[str, str | None]) -> None:
        await self.set_values("cursor", values)

    async def hash_key(self, configured: str = "") -> bytes:
        """The base-hash key: the configured one, else one generated once and kept here."""
        return await asyncio.to_thread(self._rows.hash_key, configured)

    async def saved(self, kind: str) -> dict[str, tuple[str, datetime | None]]:
        """Every row of one small partition (e.g. "cursor"): name -> (value, when the
        service last wrote it). The row's own timestamp dates a cursor at no extra cost."""
        return await asyncio.to_thread(self._rows.saved, kind)

    # ---- counters -----------------------------------------------------------
    async def link_counts(self) -> dict[str, int] | None:
        """Open links per entity, or None when the counters were never seeded."""
        return await asyncio.to_thread(self._rows.link_counts)

    async def ensure_link_counts(self) -> dict[str, int]:
        """Seed the link counters once by counting the links table (a fresh install
        counts nothing; an older install pays one scan); afterwards they are kept."""
        return await asyncio.to_thread(self._rows.ensure_link_counts)

    # ---- lease --------------------------------------------------------------
    async def acquire_lease(self, owner: str, seconds: int, name: str = "cycle") -> bool:
        """Take the lease if free, expired or already ours."""
        return await asyncio.to_thread(self._rows.acquire_lease, owner, seconds, name)

    async def release_lease(self, owner: str, name: str = "cycle") -> None:
        await asyncio.to_thread(self._rows.release_lease, owner, name)

    # ---- links ----------------------------------------------------------------
    async def links_by_marketo(self, ids: Iterable[int]) -> dict[int, Link]:
        """Links of these people."""
        return await asyncio.to_thread(self._rows.links_by_marketo, list(ids))

    async def links_by_dynamics(
        self, entity: Entity, ids: Iterable[str], hints: Mapping[str, int | None] | None = None
    ) -> dict[str, Link]:
        """Links of these records."""
        return await asyncio.to_thread(self._rows.links_by_dynamics, entity, list(ids), hints)

    async def save_links(self, links: Iterable[Link], *, new: bool = False) -> None:
        """Upsert main rows (with base); with `new`, also the Dynamics-id index rows."""
        await asyncio.to_thread(self._rows.save_links, list(links), new=new)

    async def close_links(self, links: Iterable[Link]) -> None:
        await asyncio.to_thread(self._rows.close_links, list(links))

    async def iter_links(self) -> AsyncIterator[Link]:
        """Every open link, one service page per thread hop (memory stays bounded)."""
        pages = self._rows.link_pages()  # lazy: the first page is read below
        while (page := await asyncio.to_thread(next, pages, None)) is not None:
            for link in page:
                yield link

    # ---- sets -------------------------------------------------------------------
    async def add_to_set(
        self, kind: str, keys: Iterable[str], data: dict[str, str] | None = None
    ) -> None:
        await asyncio.to_thread(self._rows.add_to_set, kind, list(keys), data)

    async def members(self, kind: str) -> list[str]:
        return await asyncio.to_thread(self._rows.members, kind)

    async def remove_from_set(self, kind: str, keys: Iterable[str]) -> None:
        await asyncio.to_thread(self._rows.remove_from_set, kind, list(keys))

    # ---- logs -------------------------------------------------------------------
    async def record_cycle(self, cycle_id: str, summary: dict[str, Any]) -> None:
        await asyncio.to_thread(self._logs.record_cycle, cycle_id, summary)

    async def recent_cycles(self, limit: int = 20) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._logs.recent_cycles, limit)

    async def cycles_since(self, since: datetime) -> list[dict[str, Any]]:
        """Cycles started at or after `since`, newest first (one range read)."""
        return await asyncio.to_thread(self._logs.cycles_since, since)

    async def record_errors(self, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Add error rows; return those added. A row with a `signature` another run
        already recorded is skipped (the same refusal met again after a crash)."""
        return await asyncio.to_thread(self._logs.record_errors, list(rows))

    async def pending_error_logs(self, limit: int = 300) -> list[dict[str, Any]]:
        """Error rows whose activity-log line is still owed (oldest signature first)."""
        return await asyncio.to_thread(self._logs.pending_error_logs, limit)

    async def error_logs_done(self, signatures: Iterable[str]) -> None:
        await asyncio.to_thread(self._logs.error_logs_done, list(signatures))

    async def list_errors(
        self, since: datetime | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Errors newest first; `limit` stops after that many (one page, not the table)."""
        return await asyncio.to_thread(self._logs.list_errors, since, limit)

    async def record_person_events(self, events: Iterable[dict[str, Any]]) -> None:
        await asyncio.to_thread(self._logs.record_person_events, list(events))

    async def person_events(self, marketo_id: int) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._logs.person_events, marketo_id)


if TYPE_CHECKING:
    _conforms: StateStore = TableStateStore(TableServiceClient("https://x"))  # vs the protocol
