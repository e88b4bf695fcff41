"""Framework-neutral answers of the HTTP functions: a status, a JSON payload, headers.

What it prevents: `azure.functions` leaking into the engine, and the webhook's use case
depending on the entry points that call it (the Reply type sits below both).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    status: int
    payload: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def body(self) -> bytes:
        return json.dumps(self.payload).encode()


@dataclass
class Page:
    status: int
    html: str


def unavailable(message: str, retry_after: float) -> Reply:
    """503 with a whole-second Retry-After (at least 1), which Marketo's retry campaign
    and the Functions host both read."""
    seconds = str(max(1, int(retry_after + 0.999)))
    return Reply(503, {"status": "unavailable", "message": message}, {"Retry-After": seconds})


def misconfigured(message: str) -> Reply:
    return Reply(500, {"status": "error", "message": f"the function is misconfigured: {message}"})
