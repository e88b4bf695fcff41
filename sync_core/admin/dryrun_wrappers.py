"""The dry run's three wrappers: Marketo and Dataverse clients that pass reads through
and capture writes (answering as a successful write would), and a state store whose
writes land in an in-memory overlay.

What it prevents: a dry run that writes. Each wrapper lists every public method of
what it wraps as a read or a write; anything unlisted is refused (DryRunRefused), so a
write method added later cannot slip through unnoticed (a test checks the lists).
"""

from __future__ import annotations

from typing import Any

import httpx

from sync_core.dataverse import DataverseClient, Op, OpResult
from sync_core.errors import DryRunRefused, PlanLimitReached
from sync_core.mapping import ENTITY_KEY
from sync_core.marketo import MarketoClient
from sync_core.state import StateStore

READ_ONLY_HTTP = ("GET",)
LEAD_EXISTS = {"code": "1005", "message": "Lead already exists"}


class Capture:
    """Everything the dry-run cycle would have written, and what it read to decide."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.limited = False
        self.marketo_updates: list[dict[str, Any]] = []
        self.marketo_creates: list[dict[str, Any]] = []
        self.dynamics_writes: list[Op] = []
        self.activities = 0
        self.merges: list[dict[str, Any]] = []  # Marketo merges the cycle would make
        self.other_writes: list[dict[str, str]] = []  # generic calls that write
        self.events: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.people: dict[int, dict[str, Any]] = {}  # Marketo values read, by id
        self.rows: dict[str, dict[str, Any]] = {}  # Dataverse rows read, by record id
        self.planned: set[tuple[str, Any]] = set()

    def check_limit(self, keys: list[tuple[str, Any]]) -> None:
        if self.limit is not None and len(self.planned) >= self.limit:
            self.limited = True
            raise PlanLimitReached(f"plan stopped at {self.limit} people (--limit)")
        self.planned.update(keys)


def _refuse(owner: str, name: str) -> Any:
    raise DryRunRefused(f"dry run: {owner}.{name} is not classified as a read or a write")


class DryRunMarketo:
    READS = frozenset(
        {"get_leads", "paging_token", "lead_changes", "deleted_leads", "activities",
         "activity_types", "aclose", "forget_token", "call"}
    )  # fmt: skip
    WRITES = frozenset({"sync_leads", "add_activities", "merge"})
    ATTRIBUTES = frozenset({"base_url", "budget", "calls", "rate_limit_wait"})

    def __init__(self, inner: MarketoClient, capture: Capture) -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_capture", capture)
        object.__setattr__(self, "_fake_id", 0)

    def __getattr__(self, name: str) -> Any:
        if name in self.READS or name in self.ATTRIBUTES:
            return getattr(self._inner, name)
        return _refuse("MarketoClient", name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self.ATTRIBUTES:
            _refuse("MarketoClient", name)
        setattr(self._inner, name, value)  # the cycle sets its daily budget

    async def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        # The generic call is a read only as GET (or Marketo's POST with _method=GET);
        # anything else (creating activity types, say) is captured and answered as done.
        params = kwargs.get("params") or {}
        if method.upper() not in READ_ONLY_HTTP and params.get("_method") != "GET":
            self._capture.other_writes.append({"system": "marketo", "method": method,
                                               "path": path})  # fmt: skip
            return {"success": True, "requestId": "dry-run", "result": []}
        result: dict[str, Any] = await self._inner.call(method, path, **kwargs)
        return result

    async def merge(self, winner: int, losers: list[int]) -> None:
        self._capture.merges.append({"winner": winner, "losers": list(losers)})

    async def get_leads(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        people: list[dict[str, Any]] = await self._inner.get_leads(*args, **kwargs)
        for p in people:
            if "id" in p:
                self._capture.people.setdefault(int(p["id"]), dict(p))
        return people

    async def sync_leads(
        self, action: str, records: list[dict[str, Any]], lookup_field: str = "id"
    ) -> list[dict[str, Any]]:
        cap = self._capture
        if action in ("createDuplicate", "createOnly"):
            exists = await self._existing(action, records, lookup_field)
            skips = [str(r.get(lookup_field) or "").lower() in exists for r in records]
            made = [r for r, skip in zip(records, skips, strict=True) if not skip]
            cap.check_limit([("create", r.get("dynamicsId")) for r in made])
            out: list[dict[str, Any]] = []
            for r, skip in zip(records, skips, strict=True):
                if skip:
                    out.append({"status": "skipped", "reasons": [LEAD_EXISTS]})
                    continue
                fake = self._fake_id - 1
                object.__setattr__(self, "_fake_id", fake)
                cap.marketo_creates.append({"id": fake, **r})
                out.append({"id": fake, "status": "created"})
            return out
        cap.check_limit([("marketo", r.get(lookup_field)) for r in records])
        cap.marketo_updates.extend({"lookup": lookup_field, **r} for r in records)
        return [{"id": r.get("id"), "status": "updated"} for r in records]

    async def _existing(
        self, action: str, records: list[dict[str, Any]], lookup_field: str
    ) -> set[str]:
        """The lookup values a person has already: createOnly skips those records (a
        read, so the plan links them by email as the cycle would)."""
        values = sorted({str(r[lookup_field]) for r in records if r.get(lookup_field)})
        if action != "createOnly" or not values:
            return set()
        found = await self._inner.get_leads(lookup_field, values, ["id", lookup_field])
        return {str(p.get(lookup_field) or "").lower() for p in found}

    async def add_activities(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self._capture.activities += len(records)
        return [{"status": "added"} for _ in records]


class DryRunDataverse:
    # get_many: GETs only, though sent as one POST $batch.
    READS = frozenset(
        {"changes", "modified_since", "get_by_ids", "get_many", "get_json", "aclose", "request"}
    )
    WRITES = frozenset({"batch"})
    ATTRIBUTES = frozenset({"calls", "page_size", "base_url", "pacer"})

    def __init__(self, inner: DataverseClient, capture: Capture) -> None:
        self._inner = inner
        self._capture = capture

    def __getattr__(self, name: str) -> Any:
        if name in self.READS or name in self.ATTRIBUTES:
            return getattr(self._inner, name)
        return _refuse("DataverseClient", name)

    def _remember(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            for key in ENTITY_KEY.values():
                if row.get(key):
                    self._capture.rows.setdefault(str(row[key]).lower(), dict(row))

    async def request(self, method: str, url: str, **kwargs: Any) -> Any:
        if method.upper() not in READ_ONLY_HTTP:
            # A generic write (a Dataverse Merge, say): captured, answered as done.
            self._capture.other_writes.append({"system": "dynamics", "method": method,
                                               "path": url})  # fmt: skip
            return httpx.Response(204, request=httpx.Request(method, "https://dry-run/"))
        return await self._inner.request(method, url, **kwargs)

    async def changes(self, *args: Any, **kwargs: Any) -> Any:
        async for page in self._inner.changes(*args, **kwargs):
            self._remember(page.rows)
            yield page

    async def modified_since(self, *args: Any, **kwargs: Any) -> Any:
        async for rows in self._inner.modified_since(*args, **kwargs):
            self._remember(rows)
            yield rows

    async def get_by_ids(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = await self._inner.get_by_ids(*args, **kwargs)
        self._remember(rows)
        return rows

    async def batch(self, ops: list[Op]) -> list[OpResult]:
        self._capture.check_limit([("dynamics", op.path) for op in ops])
        self._capture.dynamics_writes.extend(ops)
        return [OpResult(204) for _ in ops]


class DryRunStore:
    """Reads pass through to the real tables; writes land in memory. Key/value rows
    written during the run read back from the overlay, as they would from the table."""

    READS = frozenset(
        {"links_by_marketo", "links_by_dynamics", "iter_links", "members", "recent_cycles",
         "list_errors", "person_events", "saved", "link_counts", "cycles_since", "close",
         "missing_tables"}
    )  # fmt: skip
    WRITES = frozenset(
        {"get_value", "get_cursor", "set_values", "set_cursors", "hash_key", "acquire_lease",
         "release_lease", "save_links", "close_links", "add_to_set", "remove_from_set",
         "record_cycle", "record_errors", "record_person_events", "ensure_tables",
         "ensure_link_counts", "add_to_value", "pending_error_logs", "error_logs_done"}
    )  # fmt: skip
    # get_value / get_cursor / hash_key are listed as writes: they must see the overlay.

    def __init__(self, inner: StateStore, capture: Capture) -> None:
        self._inner = inner
        self._capture = capture
        self._values: dict[tuple[str, str], str | None] = {}
        self.cycle: dict[str, Any] = {}
        self.links_saved = 0

    def __getattr__(self, name: str) -> Any:
        if name in self.READS:
            return getattr(self._inner, name)
        return _refuse("StateStore", name)

    async def get_value(self, kind: str, name: str) -> str | None:
        if (kind, name) in self._values:
            return self._values[(kind, name)]
        return await self._inner.get_value(kind, name)

    async def get_cursor(self, name: str) -> str | None:
        return await self.get_value("cursor", name)

    async def set_values(self, kind: str, values: dict[str, str | None]) -> None:
        self._values.update(((kind, k), v) for k, v in values.items())

    async def set_cursors(self, values: dict[str, str | None]) -> None:
        await self.set_values("cursor", values)

    async def add_to_value(self, kind: str, name: str, amount: int) -> int:
        total = int(await self.get_value(kind, name) or 0) + amount
        self._values[(kind, name)] = str(total)
        return total

    async def hash_key(self, configured: str = "") -> bytes:
        if configured:
            return configured.encode()
        existing = await self.get_value("meta", "hashkey")
        # No key yet means no link yet: any key plans the same first load.
        return bytes.fromhex(existing) if existing else b"dry-run-key-no-state-yet"

    async def acquire_lease(self, owner: str, seconds: int, name: str = "cycle") -> bool:
        return True  # a plan writes nothing, so it may run beside a real cycle

    async def release_lease(self, owner: str, name: str = "cycle") -> None:
        return None

    async def save_links(self, links: Any, *, new: bool = False) -> None:
        self.links_saved += len(list(links))

    async def close_links(self, links: Any) -> None:
        return None

    async def add_to_set(self, kind: str, keys: Any, data: Any = None) -> None:
        return None

    async def remove_from_set(self, kind: str, keys: Any) -> None:
        return None

    async def record_cycle(self, cycle_id: str, summary: dict[str, Any]) -> None:
        self.cycle = summary

    async def record_errors(self, rows: Any) -> list[dict[str, Any]]:
        rows = list(rows)
        self._capture.errors.extend(rows)
        return rows

    async def pending_error_logs(self, limit: int = 300) -> list[dict[str, Any]]:
        owed = await self._inner.pending_error_logs(limit)
        return owed + [r for r in self._capture.errors if r.get("signature")][: limit - len(owed)]

    async def error_logs_done(self, signatures: Any) -> None:
        return None

    async def record_person_events(self, events: Any) -> None:
        self._capture.events.extend(events)

    async def ensure_tables(self) -> None:
        return None

    async def ensure_link_counts(self) -> dict[str, int]:
        return await self._inner.link_counts() or {}
