"""`POST $batch`: multipart/mixed parsing, change sets, Content-ID references, responses.

Change sets run against one journal and roll back as a unit; outside change sets the batch
stops at the first failure unless `Prefer: odata.continue-on-error`. Responses use the
documented `batchresponse_`/`changesetresponse_` framing. The failure this prevents: a
sync that assumes partial success semantics Dataverse doesn't have (or vice versa).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from emulators.dynamics.errors import DataverseError, bad_request
from emulators.dynamics.messages import API_PREFIX, ApiRequest, ApiResponse
from emulators.dynamics.store import rollback

# execute-batch-operations-using-web-api: a GET inside a $batch may carry a URL of up to
# 64 KB (twice a plain request's 32 KB); the reason to send long reads in a batch.
MAX_INNER_URL_CHARS = 65_536
_BOUNDARY = re.compile(r'boundary="?([^";,\s]+)"?', re.I)


@dataclass
class Op:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    content_id: str | None = None


@dataclass
class ChangeSet:
    ops: list[Op] = field(default_factory=list)


def _split(body: bytes, boundary: str) -> list[bytes]:
    delim = b"--" + boundary.encode()
    chunks = body.split(delim)
    parts = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        parts.append(chunk.strip(b"\r\n") if chunk.strip(b"\r\n \t") else b"")
    return [p for p in parts if p]


def _headers_and_rest(data: bytes) -> tuple[dict[str, str], bytes]:
    norm = data.replace(b"\r\n", b"\n")
    head, _, rest = norm.partition(b"\n\n")
    headers: dict[str, str] = {}
    for line in head.decode("utf-8", "replace").split("\n"):
        if ":" in line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    return headers, rest


def _parse_http(data: bytes, content_id: str | None) -> Op:
    norm = data.replace(b"\r\n", b"\n").lstrip(b"\n")
    line, _, rest = norm.partition(b"\n")
    bits = line.decode().split()
    if len(bits) < 2:
        raise bad_request("Invalid request line in batch part.")
    headers, body = _headers_and_rest(rest) if rest.strip() else ({}, b"")
    if rest.startswith(b"\n"):  # no headers at all
        headers, body = {}, rest[1:]
    cid = content_id or headers.get("content-id")
    return Op(bits[0].upper(), bits[1], headers, body.rstrip(b"\n"), cid)


def parse_batch(body: bytes, content_type: str) -> list[Op | ChangeSet]:
    m = _BOUNDARY.search(content_type)
    if not content_type.lower().startswith("multipart/mixed") or not m:
        raise bad_request("The batch request must be multipart/mixed with a boundary.")
    items: list[Op | ChangeSet] = []
    for part in _split(body, m.group(1)):
        headers, rest = _headers_and_rest(part)
        ctype = headers.get("content-type", "")
        if ctype.lower().startswith("multipart/mixed"):
            cm = _BOUNDARY.search(ctype)
            if not cm:
                raise bad_request("Change set without boundary.")
            cs = ChangeSet()
            for inner in _split(rest, cm.group(1)):
                ih, irest = _headers_and_rest(inner)
                cs.ops.append(_parse_http(irest, ih.get("content-id")))
            items.append(cs)
        else:
            items.append(_parse_http(rest, headers.get("content-id")))
    return items


def _render_part(resp: ApiResponse, content_id: str | None) -> bytes:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id:
        lines.append(f"Content-ID: {content_id}")
    reason = HTTPStatus(resp.status).phrase if resp.status in HTTPStatus._value2member_map_ \
        else ""
    lines += ["", f"HTTP/1.1 {resp.status} {reason}"]
    lines += [f"{k}: {v}" for k, v in resp.headers.items()]
    lines.append(f"REQ_ID: {uuid.uuid4()}")
    lines += ["", ""]
    return "\r\n".join(lines).encode() + resp.body + b"\r\n"


class BatchRunner:
    def __init__(self, handle: Callable[[ApiRequest], ApiResponse], max_ops: int) -> None:
        self.handle = handle
        self.max_ops = max_ops

    def _inner(self, outer: ApiRequest, op: Op, content_ids: dict[str, str],
               journal: list[Any] | None) -> ApiResponse:
        url = op.url
        if len(url) > MAX_INNER_URL_CHARS:
            # Same answer as the 32 KB limit outside (emulator README, item 29).
            return ApiResponse(414, {"Content-Type": "text/plain"}, b"URI Too Long")
        if url.startswith("$"):
            ref, _, tail = url.partition("/")
            if ref not in content_ids:
                return _error(bad_request(
                    f"Content-ID Reference: '{ref}' does not exist in the batch context."))
            url = content_ids[ref] + ("/" + tail if tail else "")
        split = urlsplit(url)
        path = split.path
        if API_PREFIX in path:
            path = path.split(API_PREFIX, 1)[1]
        elif path.startswith("/"):
            return _error(DataverseError(404, "0x80060888", f"Resource not found: '{url}'."))
        from urllib.parse import unquote

        headers = dict(outer.headers)
        for k in ("content-type", "prefer", "if-match", "if-none-match", "content-length"):
            headers.pop(k, None)
        headers.update(op.headers)
        req = ApiRequest(op.method, unquote(path), split.query, headers, op.body,
                         outer.base_url, outer.user, content_ids, journal)
        return self.handle(req)

    def run(self, req: ApiRequest) -> ApiResponse:
        items = parse_batch(req.body, req.headers.get("content-type", ""))
        total = sum(len(i.ops) if isinstance(i, ChangeSet) else 1 for i in items)
        for item in items:
            if isinstance(item, ChangeSet) and len(item.ops) > self.max_ops:
                raise bad_request("The current change set contains too many operations. A "
                                  f"maximum number of '{self.max_ops}' operations are allowed "
                                  "in a change set", code="0x80040203")
        if total > self.max_ops:
            raise bad_request("The current batch message contains too many parts. Only batch "
                              f"messages with a maximum number of '{self.max_ops}' query "
                              "operations, including changeset operations, are allowed.",
                              code="0x80040203")
        continue_on_error = "odata.continue-on-error" in req.prefer()
        boundary = f"batchresponse_{uuid.uuid4()}"
        out: list[bytes] = []
        status = 200
        for item in items:
            if isinstance(item, Op):
                if item.url.startswith("$"):
                    resp = _error(bad_request(
                        f"Content-ID Reference: '{item.url.split('/')[0]}' does not exist in "
                        "the batch context."))
                else:
                    resp = self._inner(req, item, {}, None)
                if resp.status >= 400 and not continue_on_error:
                    return _multipart(boundary, [_render_part(resp, item.content_id)],
                                      resp.status, total)
                out.append(_render_part(resp, item.content_id))
                continue
            journal: list[Any] = []
            content_ids: dict[str, str] = {}
            parts: list[bytes] = []
            failed: tuple[ApiResponse, str | None] | None = None
            try:
                for op in item.ops:
                    if op.method == "GET":
                        resp = _error(bad_request(
                            "GET requests are not allowed inside a change set."))
                    else:
                        resp = self._inner(req, op, content_ids, journal)
                    if resp.status >= 400:
                        failed = (resp, op.content_id)
                        break
                    loc = resp.headers.get("OData-EntityId") or resp.headers.get("Location")
                    if op.content_id and loc:
                        content_ids["$" + op.content_id] = loc
                    parts.append(_render_part(resp, op.content_id))
            except Exception:
                rollback(journal)  # e.g. the request timed out inside the change set
                raise
            if failed is not None:
                rollback(journal)
                part = _render_part(*failed)
                if not continue_on_error:
                    return _multipart(boundary, [part], failed[0].status, total)
                out.append(part)
                continue
            cs_boundary = f"changesetresponse_{uuid.uuid4()}"
            inner = b"".join(b"--" + cs_boundary.encode() + b"\r\n" + p for p in parts)
            inner += b"--" + cs_boundary.encode() + b"--\r\n"
            out.append(f"Content-Type: multipart/mixed; boundary={cs_boundary}\r\n\r\n".encode()
                       + inner)
        return _multipart(boundary, out, status, total)


def _error(e: DataverseError) -> ApiResponse:
    h = {"Content-Type": "application/json; odata.metadata=minimal", "OData-Version": "4.0"}
    h.update(e.headers)
    return ApiResponse(e.status, h, e.body())


def _multipart(boundary: str, parts: list[bytes], status: int, ops: int) -> ApiResponse:
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + p for p in parts)
    body += b"--" + boundary.encode() + b"--\r\n"
    return ApiResponse(status, {"Content-Type": f"multipart/mixed; boundary={boundary}",
                                "OData-Version": "4.0"}, body, operations=max(1, ops))
