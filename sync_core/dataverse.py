"""Dataverse (Dynamics 365) Web API client: auth, change tracking, reads and $batch.

Every response is classified once, here, by Dataverse's documented error code where
one exists: 429 waits `Retry-After`; 5xx/timeouts back off (for a request that must
not run twice: OutcomeUnknown); 412 means "changed since read" (StaleRecord, re-plan
next cycle, never overwrite); other 4xx is the server's 'no' for that record
(RecordRejected with Dataverse's hex code). A 401 is handled below the retry loop, by
`DataverseAuth`: the token renewed once, the request resent once. Writes go through
`$batch` with `odata.continue-on-error`, so one rejected row does not sink its
neighbours.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import time
import uuid
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from sync_core.errors import (
    AuthFailed,
    ChangeTrackingOff,
    DeltaExpired,
    OutcomeUnknown,
    RecordRejected,
    StaleRecord,
    SyncError,
    Throttled,
    TooLarge,
    TransientError,
)
from sync_core.http import RetryPolicy, SlidingWindow, transport_error
from sync_core.pacing import ExecutionPacer

API = "/api/data/v9.2"
PAGE_SIZE = 5000
# The documented cap: a $batch is one request for service protection, so full batches
# keep the call count at its minimum (execution time still counts per operation).
BATCH_OPS = 1000
# Documented: a request URL may be at most 32 KB (inside a $batch, 64 KB).
MAX_URL_CHARS = 32_768
# A GET inside a $batch may carry up to 64 KB (execute-batch-operations-using-web-api),
# and one $batch several GETs: a page's worth of ids read back in one call, not ten.
MAX_BATCH_URL_CHARS = 65_536
TokenProvider = Callable[[bool], Awaitable[str]]
_TRANSIENT = {408, 502, 503, 504}
# Error codes (web service error codes reference). "SQL timeout expired": the request
# ran past the 2-minute limit and was rolled back.
SQL_TIMEOUT = "0x80044151"
EXPIRED_VERSION_STAMP = "0x80044352"  # change-tracking token too old: full sync needed
_EXPIRED_TEXT = "Version stamp associated with the client has expired"
VERSION_MISMATCH = "0x80060882"  # ConcurrencyVersionMismatch: If-Match failed
# How long a $batch answer is waited for: past Dataverse's own 2-minute limit, so a slow
# batch ends in the server's SQL_TIMEOUT (rolled back, split and resent: pacing.py), not
# in our client giving up on a batch still writing (its outcome then unknown, its
# resend refused by its own If-Match writes). Batches aim at 30 s; SYNC_HTTP_TIMEOUT_SECONDS
# (30 s by default) is for everything else.
BATCH_TIMEOUT_S = 130.0


@dataclass(slots=True)
class ChangePage:
    rows: list[dict[str, Any]]
    deleted: list[str]
    delta_link: str | None  # set on the last page only
    next_link: str | None = None  # where the rest continues (resumable later)


@dataclass(slots=True)
class Op:
    """One write inside a $batch."""

    method: str
    path: str  # relative to /api/data/v9.2, e.g. "contacts(<id>)"
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class OpResult:
    status: int
    error: SyncError | None = None
    entity_id: str | None = None
    body: dict[str, Any] | None = None


def _error_of(status: int, text: str, retry_after: str | None = None) -> SyncError:
    try:
        err = jsonlib.loads(text).get("error", {})
    except (ValueError, AttributeError):
        err = {}
    code = str(err.get("code") or f"HTTP{status}")
    message = str(err.get("message") or text[:200] or f"HTTP {status}")
    if code == SQL_TIMEOUT:
        return TooLarge(f"Dataverse {code}: {message}")
    if status == 429:
        return Throttled(f"Dataverse {code}: {message}", retry_after=float(retry_after or 5))
    if status >= 500 or status in _TRANSIENT:
        return TransientError(f"Dataverse HTTP {status} {code}: {message}")
    if status == 412 and code in (VERSION_MISMATCH, "HTTP412"):
        return StaleRecord(message)
    # Older services send this one with an empty code (HTTP400 here): then the text tells.
    if code == EXPIRED_VERSION_STAMP or (code.startswith("HTTP") and _EXPIRED_TEXT in message):
        return DeltaExpired(message)
    # No documented code of its own (seen as the generic 0x80040203): only the text tells.
    if "Change tracking is not enabled" in message:
        return ChangeTrackingOff(message)
    return RecordRejected(code, message)


def dataverse_limiter(time_scale: float = 1.0) -> SlidingWindow:
    """6,000 requests per 300 s and 52 concurrent per user: stay a little under both.
    One per process, shared by the timer and the webhook (the limits are per user)."""
    return SlidingWindow(calls=5500, period=300.0 * time_scale, concurrent=16)


class DataverseAuth(httpx.Auth):
    """The bearer token on every request, from the TokenProvider (azure-identity, which
    caches it); on a 401 the token is renewed once and the request resent once. A 401
    again reaches the client's classifier, which stops there (AuthFailed)."""

    def __init__(self, provider: TokenProvider) -> None:
        self._provider = provider
        # Requests refused together wait for one renewal instead of each asking.
        self._lock = asyncio.Lock()
        self._renewals = 0
        self._renewed = ""

    async def _renew(self, renewals: int) -> str:
        async with self._lock:
            if self._renewals == renewals:  # nobody renewed since this request began
                self._renewed = await self._provider(True)
                self._renewals += 1
            return self._renewed

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        renewals = self._renewals
        request.headers["Authorization"] = f"Bearer {await self._provider(False)}"
        response = yield request
        if response.status_code == 401:
            # A 401 is answered before anything runs: resending even a write is safe.
            request.headers["Authorization"] = f"Bearer {await self._renew(renewals)}"
            yield request

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("DataverseAuth works with httpx.AsyncClient only")


def id_filters(key: str, ids: Sequence[str], budget: int) -> Iterator[str]:
    """`key eq a or key eq b ...` filters, each at most `budget` characters as sent
    (httpx sends a space as %20)."""
    terms: list[str] = []
    used = 0
    for x in ids:
        piece = (" or " if terms else "") + f"{key} eq {quote(x)}"
        cost = len(piece) + 2 * piece.count(" ")
        if terms and used + cost > budget:
            yield "".join(terms)
            piece = piece.removeprefix(" or ")
            terms, used, cost = [], 0, len(piece) + 2 * piece.count(" ")
        terms.append(piece)
        used += cost
    if terms:
        yield "".join(terms)


class DataverseClient:
    def __init__(
        self,
        url: str,
        token: TokenProvider,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: Any = True,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        limiter: SlidingWindow | None = None,
        page_size: int = PAGE_SIZE,
        pacer: ExecutionPacer | None = None,
        time_scale: float = 1.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.pacer = pacer or ExecutionPacer(time_scale=time_scale)
        self.page_size = page_size
        self._auth = DataverseAuth(token)
        self._http = httpx.AsyncClient(transport=transport, timeout=timeout, verify=verify)
        self._timeout = timeout
        self._retry = retry or RetryPolicy().scaled(time_scale)
        self._limiter = limiter or dataverse_limiter(time_scale)
        self.calls = 0
        # $batch requests in flight, over every `batch` call at once (pacer.in_flight).
        self._writing = 0
        self._slot_freed = asyncio.Condition()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        idempotent: bool = True,
        unanswered: Callable[[], None] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """One call with classification and retries. `url` may be absolute (next/delta
        links) or relative to the API root. `unanswered` is called for each attempt
        that may have run without its answer reaching us (no answer, a 5xx). `timeout`
        replaces the client's for this call."""
        if not url.startswith("http"):
            url = f"{self.url}{API}/{url.lstrip('/')}"

        async def attempt() -> httpx.Response:
            all_headers = {
                "Accept": "application/json",
                "OData-MaxVersion": "4.0",
                "OData-Version": "4.0",
                **(headers or {}),
            }
            async with self._limiter:
                self.calls += 1
                try:
                    resp = await self._http.request(
                        method, url, headers=all_headers, json=json, content=content,
                        auth=self._auth,
                        timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
                    )  # fmt: skip
                except httpx.HTTPError as exc:
                    if not idempotent:
                        # Outcome unknown: the caller must re-resolve before any retry.
                        raise OutcomeUnknown(
                            f"no answer to {method} {url} ({exc!r}); outcome unknown"
                        ) from exc
                    if unanswered is not None:
                        unanswered()
                    raise transport_error(exc) from exc
            # A request resent after a token renewal counts as the call it is.
            self.calls += len(resp.history)
            if resp.status_code == 401:
                # DataverseAuth has already renewed the token once and resent the request.
                raise AuthFailed("Dataverse rejected the sync identity's token twice (401)")
            if resp.status_code >= 400:
                error = _error_of(resp.status_code, resp.text, resp.headers.get("Retry-After"))
                if not idempotent and type(error) is TransientError:
                    # A 5xx may come after the write ran: as unknown as no answer at all.
                    raise OutcomeUnknown(f"{error}; outcome unknown") from error
                if unanswered is not None and type(error) is TransientError:
                    unanswered()
                raise error
            return resp

        return await self._retry.run(attempt)

    async def get_json(self, url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        resp = await self.request("GET", url, headers=headers)
        result: dict[str, Any] = resp.json()
        return result

    async def get_many(
        self, urls: Sequence[str], headers: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Several independent GETs in one `$batch` (read-only, so resending is safe):
        the bodies in order; the first failed read raises its error. For reads that are
        needed together (the metadata of a refresh: eleven GETs, one call; a page's rows
        read back by id)."""
        if len(urls) > BATCH_OPS:
            raise ValueError(f"{len(urls)} reads for one $batch; at most {BATCH_OPS}")
        ops = [Op("GET", url.replace(" ", "%20"), headers=dict(headers or {})) for url in urls]
        parsed, _ = await self._batch(ops)
        out: list[dict[str, Any]] = []
        for result in parsed:
            if result.error is not None:
                raise result.error
            out.append(result.body or {})
        return out

    # ---- reads ---------------------------------------------------------------
    async def changes(
        self, entity_set: str, select: Sequence[str], delta_link: str | None
    ) -> AsyncIterator[ChangePage]:
        """Change-tracking pages: a full snapshot without `delta_link`, else the delta.
        Only the last page carries the next delta link; save it only after every page
        before it has been applied."""
        prefer = f"odata.track-changes,odata.maxpagesize={self.page_size}"
        url: str | None = delta_link or f"{entity_set}?$select={','.join(select)}"
        while url:
            body = await self.get_json(url, headers={"Prefer": prefer})
            rows, deleted = [], []
            for item in body.get("value", []):
                if str(item.get("@odata.context", "")).endswith("$deletedEntity"):
                    deleted.append(str(item["id"]).lower())
                else:
                    rows.append(item)
            url = body.get("@odata.nextLink")
            yield ChangePage(rows, deleted, None if url else body.get("@odata.deltaLink"), url)

    async def modified_since(
        self, entity_set: str, key: str, select: Sequence[str], since: str | None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of rows modified at or after `since` (all rows without it), oldest
        first with the key as tie-breaker, so a server cursor pages a stable order."""
        cols = ",".join(dict.fromkeys([key, *select, "modifiedon", "versionnumber"]))
        first = f"{entity_set}?$select={cols}&$orderby=modifiedon asc,{key} asc"
        if since:
            first += f"&$filter=modifiedon ge {since}"
        url: str | None = first
        while url:
            body = await self.get_json(
                url, headers={"Prefer": f"odata.maxpagesize={self.page_size}"}
            )
            url = body.get("@odata.nextLink")
            yield list(body.get("value", []))

    async def get_by_ids(
        self, entity_set: str, key: str, ids: Sequence[str], select: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Current rows for `ids` (missing ones are simply absent): as many ids per query
        as Dataverse's URL limit allows (about 500), not a fixed small chunk, since a
        5,000-row change set read 50 ids at a time costs 100 calls instead of 10."""
        head = f"{entity_set}?$select={','.join([key, *select])}&$filter="
        conds = list(id_filters(key, ids, MAX_URL_CHARS - len(self.url + API) - len(head) - 64))
        if len(conds) <= 1:
            return await self._pages([head + c for c in conds])
        # More than one plain query: GETs of up to 64 KB inside $batch calls, each call
        # asking for at most a page of rows (a response no bigger than a page's).
        out: list[dict[str, Any]] = []
        budget = MAX_BATCH_URL_CHARS - len(API) - len(head) - 64
        for lo in range(0, len(ids), self.page_size):
            chunk = ids[lo : lo + self.page_size]
            reads = [head + c for c in id_filters(key, chunk, budget)]
            bodies = await self.get_many(
                reads, headers={"Prefer": f"odata.maxpagesize={self.page_size}"}
            )
            more: list[str] = []
            for body in bodies:
                out.extend(body.get("value", []))
                if body.get("@odata.nextLink"):
                    more.append(str(body["@odata.nextLink"]))
            out.extend(await self._pages(more))
        return out

    async def _pages(self, urls: Sequence[str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for first in urls:
            url: str | None = first
            while url:
                body = await self.get_json(
                    url, headers={"Prefer": f"odata.maxpagesize={self.page_size}"}
                )
                out.extend(body.get("value", []))
                url = body.get("@odata.nextLink")
        return out

    # ---- writes --------------------------------------------------------------
    async def batch(self, ops: Sequence[Op]) -> list[OpResult]:
        """Run independent writes via $batch with continue-on-error; one result per op,
        in order. Batches are sized and paced by their execution time (see pacing.py);
        a batch that still fails transiently gives each of its ops that error, so the
        batches that landed keep their results. Calls made at once (the page sync writes
        several slices at a time) share the pacer's batches in flight.

        Not UpdateMultiple/CreateMultiple: on standard tables one failing row rolls the
        whole request back (no per-row results), and each update here must carry its
        own If-Match so an edit made since we read the row is never overwritten."""
        results: list[OpResult | None] = [None] * len(ops)
        pacer = self.pacer

        async def run(lo: int, hi: int) -> None:
            reserved = await pacer.reserve(hi - lo)
            began = time.monotonic()
            try:
                parsed, headers = await self._batch(ops[lo:hi])
            except TooLarge as exc:
                # Rolled back for taking too long: learn the cost, then send it in halves.
                pacer.observe(hi - lo, time.monotonic() - began, reserved, {})
                if hi - lo == 1:
                    results[lo] = OpResult(0, TransientError(str(exc)))
                    return
                mid = (lo + hi) // 2
                await run(lo, mid)
                await run(mid, hi)
                return
            except TransientError as exc:
                parsed, headers = [OpResult(0, exc) for _ in range(lo, hi)], {}
            pacer.observe(hi - lo, time.monotonic() - began, reserved, headers)
            results[lo:hi] = parsed

        async def in_slot(lo: int, hi: int) -> None:
            try:
                await run(lo, hi)
            finally:
                self._writing -= 1
                async with self._slot_freed:
                    self._slot_freed.notify_all()

        running: set[asyncio.Task[None]] = set()
        start = 0
        try:
            while start < len(ops):
                async with self._slot_freed:
                    await self._slot_freed.wait_for(lambda: self._writing < pacer.in_flight)
                for task in [t for t in running if t.done()]:
                    task.result()  # a stop-the-cycle error surfaces here
                self._writing += 1
                size = min(pacer.batch_size(), BATCH_OPS)
                # A tail of a few operations rides in the batch before it: a call of its
                # own would cost a request for almost nothing.
                hi = len(ops) if len(ops) - start <= min(size * 1.1, BATCH_OPS) else start + size
                running.add(asyncio.create_task(in_slot(start, hi)))
                start = hi
        finally:
            # Writes already in flight are let finish: abandoning them would leave
            # their outcome unknown.
            outcomes = await asyncio.gather(*running, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return [r for r in results if r is not None]

    async def _batch(self, ops: Sequence[Op]) -> tuple[list[OpResult], dict[str, str]]:
        boundary = f"batch_{uuid.uuid4().hex}"
        parts = []
        for op in ops:
            lines = [f"{op.method} {API}/{op.path} HTTP/1.1", "Accept: application/json"]
            for k, v in op.headers.items():
                lines.append(f"{k}: {v}")
            body = ""
            if op.body is not None:
                lines.append("Content-Type: application/json; type=entry")
                body = jsonlib.dumps(op.body)
            parts.append(
                f"--{boundary}\r\nContent-Type: application/http\r\n"
                f"Content-Transfer-Encoding: binary\r\n\r\n"
                + "\r\n".join(lines)
                + f"\r\n\r\n{body}"
            )
        payload = ("\r\n".join(parts) + f"\r\n--{boundary}--\r\n").encode()
        lost: list[bool] = []
        # Every op is conditional (If-Match) or keyed, so resending the batch is safe.
        resp = await self.request(
            "POST",
            "$batch",
            headers={
                "Content-Type": f'multipart/mixed; boundary="{boundary}"',
                "Prefer": "odata.continue-on-error",
                "If-None-Match": "null",
            },
            content=payload,
            unanswered=lambda: lost.append(True),
            timeout=max(BATCH_TIMEOUT_S, self._timeout),
        )
        parsed = parse_batch_response(resp.headers.get("content-type", ""), resp.content)
        if len(parsed) != len(ops):
            raise TransientError(f"$batch answered {len(parsed)} parts for {len(ops)} requests")
        if lost:
            # Resent after an attempt whose answer never came: that attempt may have
            # landed, and then its own write is what fails the resend's If-Match. A 412
            # here says "changed since read" by us or by someone: outcome unknown.
            parsed = [
                OpResult(r.status, OutcomeUnknown(f"{r.error} after a resend; outcome unknown"))
                if isinstance(r.error, StaleRecord)
                else r
                for r in parsed
            ]
        return parsed, {k.lower(): v for k, v in resp.headers.items()}


def _boundary(content_type: str) -> str:
    for piece in content_type.split(";"):
        name, _, value = piece.strip().partition("=")
        if name.lower() == "boundary":
            return value.strip('"')
    raise TransientError(f"$batch response without a boundary: {content_type!r}")


def parse_batch_response(content_type: str, data: bytes) -> list[OpResult]:
    """Parse a multipart/mixed $batch response into one OpResult per inner response
    (change-set responses are flattened in order)."""
    boundary = _boundary(content_type)
    text = data.decode("utf-8", errors="replace")
    results: list[OpResult] = []
    for raw in text.split(f"--{boundary}")[1:]:
        if raw.startswith("--"):
            break
        head, _, rest = raw.lstrip("\r\n").partition("\r\n\r\n")
        part_type = ""
        for line in head.split("\r\n"):
            if line.lower().startswith("content-type:"):
                part_type = line.split(":", 1)[1].strip()
        if part_type.lower().startswith("multipart/mixed"):
            results.extend(parse_batch_response(part_type, rest.encode()))
            continue
        status_line, _, after = rest.partition("\r\n")
        status = int(status_line.split()[1])
        headers_block, _, body = after.partition("\r\n\r\n")
        headers = {}
        for line in headers_block.split("\r\n"):
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        body = body.strip()
        entity_id = None
        ref = headers.get("odata-entityid") or headers.get("location")
        if ref and "(" in ref:
            entity_id = ref.rsplit("(", 1)[1].rstrip(")").lower()
        parsed_body = None
        if body.startswith("{"):
            try:
                parsed_body = jsonlib.loads(body)
            except ValueError:
                parsed_body = None
        error = _error_of(status, body, headers.get("retry-after")) if status >= 400 else None
        results.append(OpResult(status, error, entity_id, parsed_body))
    return results
