"""Transport-neutral request/response objects for the Web API core.

The same handler code serves a direct HTTP request and an operation inside a $batch; a
tiny neutral type (rather than Starlette's Request) is what makes that possible, and it
keeps per-call overhead low enough for the 2,000 calls/s target.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from emulators.dynamics.config import UserConfig

API_PREFIX = "/api/data/v9.2/"
JSON_CT = "application/json; odata.metadata=minimal"


@dataclass
class ApiRequest:
    method: str
    path: str  # decoded, relative to /api/data/v9.2/
    query_string: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    base_url: str  # scheme://host[:port], no trailing slash
    user: UserConfig
    # $batch change-set Content-ID -> entity URL
    content_ids: dict[str, str] = field(default_factory=dict)
    journal: list[Any] | None = None
    _query: dict[str, str] | None = None

    @property
    def query(self) -> dict[str, str]:
        if self._query is None:
            self._query = dict(parse_qsl(self.query_string, keep_blank_values=True))
        return self._query

    @property
    def api_root(self) -> str:
        return self.base_url + API_PREFIX

    def prefer(self) -> dict[str, str]:
        """Parse `Prefer` (RFC 7240), comma-separated, case-insensitive names."""
        out: dict[str, str] = {}
        raw = self.headers.get("prefer", "")
        for part in _split_prefer(raw):
            name, _, value = part.partition("=")
            name = name.strip().lower()
            if name:
                out[name] = value.strip().strip('"')
        return out

    def json_body(self) -> Any:
        from emulators.dynamics.errors import bad_request

        if not self.body.strip():
            return {}
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise bad_request(f"Invalid JSON in request body: {e}") from e


def _split_prefer(raw: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in raw:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


@dataclass
class ApiResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    # operation count for per-operation latency (rows returned, batch parts)
    operations: int = 1
    # Drop the connection instead of answering (injected fault).
    drop: bool = False

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None,
             operations: int = 1) -> ApiResponse:
        h = {"Content-Type": JSON_CT, "OData-Version": "4.0"}
        if headers:
            h.update(headers)
        return cls(status, h, json.dumps(payload, separators=(",", ":")).encode(), operations)

    @classmethod
    def empty(cls, status: int = 204, headers: dict[str, str] | None = None) -> ApiResponse:
        h = {"OData-Version": "4.0"}
        if headers:
            h.update(headers)
        return cls(status, h)
