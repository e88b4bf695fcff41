"""The Marketo response envelope and its error layers.

API-level failures are HTTP 200 with `success:false` and string codes; only size
limits (413/414), identity (401) and bulk-file misses (404) use HTTP status codes.
Getting this wrong makes clients treat a throttle as a transport error or vice versa.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from starlette.responses import Response

_counter = itertools.count(0x1000)


def request_id(now: float) -> str:
    """`hex#hex` like real request ids (`e42b#14272d07d78`)."""
    return f"{next(_counter) & 0xFFFF:x}#{int(now * 1000):x}"


class ApiError(Exception):
    """A response-level error: the whole request failed (HTTP 200, success:false)."""

    def __init__(self, code: str | int, message: str) -> None:
        super().__init__(message)
        self.code = str(code)
        self.message = message


def dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(body), status_code=status, media_type="application/json",
                    headers=headers)


def success(rid: str, result: list[Any] | None = None, **extra: Any) -> dict[str, Any]:
    """Success envelope. `errors`/`warnings` are always present (swagger requires them)."""
    body: dict[str, Any] = {"requestId": rid, "success": True}
    if result is not None:
        body["result"] = result
    body["errors"] = []
    body["warnings"] = []
    body.update(extra)
    return body


def failure(rid: str, code: str, message: str, with_result: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {"requestId": rid, "success": False}
    if with_result:
        body["result"] = []
    body["errors"] = [{"code": code, "message": message}]
    body["warnings"] = []
    return body


def reason(code: int | str, message: str) -> dict[str, str]:
    return {"code": str(code), "message": message}


def skipped(code: int | str, message: str, key: str = "reasons") -> dict[str, Any]:
    return {"status": "skipped", key: [reason(code, message)]}


def plain(status: int, text: str) -> Response:
    return Response(text, status_code=status, media_type="text/plain")
