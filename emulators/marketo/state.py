"""The emulator's whole mutable state behind one object, plus the per-call context.

Keeping every store in one place makes `/_emulator/reset` exact (nothing survives a
reset by accident) and lets the clock be shifted for expiry/quota/pruning tests.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from emulators.marketo.activities import ActivityLog
from emulators.marketo.auth import TokenStore
from emulators.marketo.config import ApiUser, MarketoConfig
from emulators.marketo.fields import Schema
from emulators.marketo.limits import Faults, Latency, Limiter, Stats
from emulators.marketo.store import LeadStore
from emulators.marketo.world import World

if TYPE_CHECKING:
    from emulators.marketo.bulk import BulkJobs
    from emulators.marketo.custom_activities import CustomTypes
    from emulators.marketo.webhooks import Webhooks

PARTITIONS = [{"id": 1, "name": "Default", "description": "Initial system lead partition"}]


class Emulator:
    def __init__(self, config: MarketoConfig | None = None) -> None:
        self.config = config or MarketoConfig()
        self.clock_offset = 0.0
        self.tokens = TokenStore(self.config)
        self.limiter = Limiter(self.config)
        self.stats = Stats()
        self.faults = Faults(self.config.seed)
        #: Extra latency per endpoint name (`*` = every endpoint), set by the admin API.
        self.latency: dict[str, Latency] = {}
        #: Random side of the world profile (latency draws, faults, noise, late commits).
        self.world = World(self.config)
        self.reset_data()

    def reset_data(self) -> None:
        # Imported here: these modules import `state` for type hints.
        from emulators.marketo.bulk import BulkJobs
        from emulators.marketo.custom_activities import CustomTypes
        from emulators.marketo.webhooks import Webhooks

        self.schema = Schema()
        self.store = LeadStore()
        self.log = ActivityLog(visibility=self.world.visible_at)
        self.custom_types: CustomTypes = CustomTypes(self)
        self.bulk: BulkJobs = BulkJobs(self)
        old = getattr(self, "webhooks", None)
        self.webhooks: Webhooks = Webhooks(self, client=old.client if old else None)

    def reset(self) -> None:
        self.reset_data()
        self.tokens = TokenStore(self.config)
        self.limiter = Limiter(self.config)
        self.stats = Stats()
        self.faults = Faults(self.config.seed)
        self.latency = {}
        self.clock_offset = 0.0
        self.world.reseed()

    def now(self) -> float:
        return time.time() + self.clock_offset

    def now_ms(self) -> int:
        return int(self.now() * 1000)


@dataclass
class Call:
    """One authenticated API call as seen by a handler."""

    emu: Emulator
    user: ApiUser
    rid: str
    params: dict[str, str]
    path: dict[str, str]
    body: bytes
    headers: dict[str, str]
    content_type: str
    #: Set by handlers: how many records the call touched (per-record latency).
    records: int = 0
    #: Real seconds of server time per input record; handlers that spend it themselves
    #: (between a record's lookup and its write) set `spent`.
    per_record_s: float = 0.0
    spent: bool = False
    #: Set by feeds: activity-log entries scanned (scan cost).
    scanned: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def int_param(self, name: str, default: int | None = None) -> int | None:
        raw = self.params.get(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            from emulators.marketo.envelope import ApiError

            raise ApiError("1003", f"Invalid value '{raw}' for '{name}'") from None

    def list_param(self, name: str) -> list[str]:
        raw = self.params.get(name, "")
        return [v.strip() for v in raw.split(",") if v.strip()]

    def json(self) -> Any:
        """Parse the JSON body: 612 for a non-JSON content type, 609 for bad JSON."""
        import json as _json

        from emulators.marketo.envelope import ApiError

        if "json" not in self.content_type:
            raise ApiError("612", "Invalid Content Type")
        try:
            return _json.loads(self.body or b"null")
        except ValueError:
            raise ApiError("609", "Invalid JSON") from None
