"""The Marketo response envelope and its error layers.

API-level failures are HTTP 200 with `success:false` and string codes; only size
limits (413/414), identity (401) and bulk-file misses (404) use HTTP status codes.
Getting this wrong makes clients treat a throttle as a transport error or vice versa.
"""

from __future__ import annotations

import itertools
import json
import logging
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


_REASONS = {500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}


def edge_error(status: int) -> Response:
    """An HTML error page as Marketo's edge proxy sends it (not a JSON envelope)."""
    title = f"{status} {_REASONS.get(status, 'Error')}"
    page = (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n")
    return Response(page, status_code=status, media_type="text/html")


class ConnectionDropped(Exception):
    """Raised after a response head was sent: the server closes the connection."""


class Dropped(Response):
    """The connection breaks mid-answer (a client sees a protocol/read error)."""

    def __init__(self) -> None:
        super().__init__(b"")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", b"4096")]})
        await send({"type": "http.response.body", "body": b'{"requestId":"', "more_body": True})
        raise ConnectionDropped("answer lost after the write committed")


class _QuietDrops(logging.Filter):
    """A deliberate drop is not a server bug: keep it out of the server's error log."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionDropped)


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())
