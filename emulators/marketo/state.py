"""The emulator's whole mutable state behind one object, plus the per-call context.

Keeping every store in one place makes `/_emulator/reset` exact (nothing survives a
reset by accident) and lets the clock be shifted for expiry/quota/pruning tests. The
stores get the instance as a `Core` (core.py), so none of them imports this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from emulators.marketo.bulk_jobs import BulkJobs
from emulators.marketo.config import ApiUser
from emulators.marketo.core import Core
from emulators.marketo.custom_types import CustomTypes
from emulators.marketo.envelope import ApiError
from emulators.marketo.webhooks import Webhooks


class Emulator(Core):
    def reset_data(self) -> None:
        super().reset_data()
        self.custom_types = CustomTypes(self)
        self.bulk = BulkJobs(self)
        old = getattr(self, "webhooks", None)
        self.webhooks = Webhooks(self, client=old.client if old else None)


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
            raise ApiError("1003", f"Invalid value '{raw}' for '{name}'") from None

    def list_param(self, name: str) -> list[str]:
        raw = self.params.get(name, "")
        return [v.strip() for v in raw.split(",") if v.strip()]

    def json(self) -> Any:
        """Parse the JSON body: 612 for a non-JSON content type, 609 for bad JSON."""
        if "json" not in self.content_type:
            raise ApiError("612", "Invalid Content Type")
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            raise ApiError("609", "Invalid JSON") from None
