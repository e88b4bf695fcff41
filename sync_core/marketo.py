"""Marketo Engage REST client: token, Lead Database reads/writes and change feeds.

Marketo reports most failures as HTTP 200 with `success: false` and a code; this client
turns every code into an action (wait, retry, stop) so callers never see a
half-understood envelope. An expired or invalid token (601/602) is handled below the
retry loop, by `MarketoAuth`: renewed once, the call resent once. The client paces
itself under the instance-wide 100 calls / 20 s and 10-concurrent limits, and counts
calls against the daily budget so the background cycle stops before the org's quota
runs dry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from sync_core.errors import (
    AccessDenied,
    AuthFailed,
    ConfigError,
    OutcomeUnknown,
    QuotaExhausted,
    StopCycle,
    Throttled,
    TransientError,
)
from sync_core.http import RetryPolicy, SlidingWindow, transport_error

log = logging.getLogger("sync_core")
BATCH = 300
RATE_WINDOW_S = 20.0  # Marketo's rate limit window (100 calls per 20 s per instance)
_RETRY_CODES = {"604", "608", "611", "614", "713", "500", "502"}
_TOKEN_CODES = {"601", "602"}
# Process-wide token cache: a warm Functions worker reuses its token across invocations,
# which saves an identity call per cycle (tokens live an hour).
_TOKENS: dict[tuple[str, str], tuple[str, float]] = {}


class MarketoAuth(httpx.Auth):
    """The access token for one API user on every call: one token shared by all calls
    (cached per process), renewed a minute before it expires, and renewed once more
    when Marketo refuses it (601 invalid, 602 expired), after which the call is resent
    once. A token refused again reaches the client's classifier, which stops there
    (AuthFailed): a refresh can never loop."""

    # 601/602 come as HTTP 200 with the code in the JSON body.
    requires_response_body = True

    def __init__(
        self, http: httpx.AsyncClient, base_url: str, client_id: str, client_secret: str
    ) -> None:
        self._http = http
        self._base_url = base_url
        self._client_id = client_id
        self._secret = client_secret
        self._key = (base_url, client_id)
        # Calls that find the token stale wait for one renewal instead of each asking.
        self._lock = asyncio.Lock()
        self._renewals = 0

    def forget(self) -> None:
        _TOKENS.pop(self._key, None)

    async def token(self, refused: str | None = None) -> str:
        """The shared token, renewed when it is about to expire or is `refused` (unless
        another call has renewed it meanwhile)."""
        cached = _TOKENS.get(self._key)
        if cached and cached[0] != refused and cached[1] > time.monotonic():
            return cached[0]
        renewals = self._renewals
        async with self._lock:
            cached = _TOKENS.get(self._key)
            renewed = self._renewals != renewals  # by another call while this one waited
            if cached and cached[0] != refused and (renewed or cached[1] > time.monotonic()):
                return cached[0]
            token, lifetime = await self._issue()
            # Renew a minute early so a token never expires between check and use.
            _TOKENS[self._key] = (token, time.monotonic() + lifetime - 60)
            self._renewals += 1
            return token

    async def _issue(self) -> tuple[str, float]:
        try:
            resp = await self._http.post(
                f"{self._base_url}/identity/oauth/token",
                params={
                    "grant_type": "client_credentials",
                    "client_id": self._client_id,
                    "client_secret": self._secret,
                },
            )
        except httpx.HTTPError as exc:
            # No call has run (a refused one did nothing): retrying is safe even for a write.
            raise transport_error(exc) from exc
        if resp.status_code in (400, 401, 403):
            raise AuthFailed(
                f"Marketo rejected the client credentials (HTTP {resp.status_code}); "
                "check MARKETO_CLIENT_ID / MARKETO_CLIENT_SECRET"
            )
        if resp.status_code >= 500:
            raise TransientError(f"Marketo identity HTTP {resp.status_code}")
        body = resp.json()
        return str(body["access_token"]), float(body.get("expires_in", 0))

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        await response.aread()
        if _error_code(response) in _TOKEN_CODES:
            # Marketo checks the token before it runs the call, so a 601/602 means the
            # call did nothing: resending is safe even for a write that must not run
            # twice (createDuplicate, add_activities).
            request.headers["Authorization"] = f"Bearer {await self.token(refused=token)}"
            yield request

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("MarketoAuth works with httpx.AsyncClient only")


def _error_code(resp: httpx.Response) -> str | None:
    """The first error code of a Marketo envelope, None for anything else."""
    if resp.status_code != 200:
        return None
    try:
        body = resp.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("success"):
        return None
    errors = body.get("errors")
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return None
    return str(errors[0].get("code"))


@dataclass(slots=True)
class Activity:
    id: str
    lead_id: int
    type_id: int
    date: str
    fields: dict[str, Any]  # name -> new value (lead changes only)
    attributes: dict[str, Any]
    primary: str = ""  # primaryAttributeValue


def marketo_limiter(time_scale: float = 1.0) -> SlidingWindow:
    """Half the instance's 100 calls per 20 s and 5 of its 10 concurrent: the documented
    share for one integration. One per process, shared by the timer and the webhook."""
    return SlidingWindow(calls=50, period=RATE_WINDOW_S * time_scale, concurrent=5)


class MarketoClient:
    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        limiter: SlidingWindow | None = None,
        retry: RetryPolicy | None = None,
        budget: int | None = None,
        time_scale: float = 1.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(transport=transport, timeout=timeout)
        self._auth = MarketoAuth(self._http, self.base_url, client_id, client_secret)
        # `time_scale` shrinks every window and wait for compressed-time test worlds.
        window = RATE_WINDOW_S * time_scale
        self._limiter = limiter or marketo_limiter(time_scale)
        self._retry = retry or RetryPolicy().scaled(time_scale)
        self.budget = budget
        self.rate_limit_wait = window  # a 606 means the window is full: wait it out
        self.busy_wait = time_scale  # a 615: a second for a slot to free up
        self.calls = 0

    async def aclose(self) -> None:
        await self._http.aclose()

    # ---- auth ---------------------------------------------------------------
    def forget_token(self) -> None:
        """Drop the cached token so the next call proves the credentials again."""
        self._auth.forget()

    # ---- one REST call with classification ---------------------------------
    async def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        form: dict[str, str] | None = None,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        """Send one REST call (retried as its classification allows); return the envelope.

        With `idempotent=False` a lost answer (timeout, dropped connection, 604) is not
        retried: the outcome is unknown and the caller must re-resolve before resending."""

        async def attempt() -> dict[str, Any]:
            if self.budget is not None and self.calls >= self.budget:
                raise QuotaExhausted(
                    f"Marketo call budget for background sync reached ({self.budget} calls)"
                )
            async with self._limiter:
                self.calls += 1
                try:
                    resp = await self._http.request(
                        method,
                        f"{self.base_url}{path}",
                        params=params,
                        json=json,
                        data=form,
                        auth=self._auth,
                    )
                except httpx.HTTPError as exc:
                    if not idempotent:
                        raise OutcomeUnknown(f"{path}: no answer ({exc!r})") from exc
                    raise transport_error(exc) from exc
            # A call resent after a token renewal (its refused answer is in the history)
            # counts too, as it did when the retry loop resent it.
            self.calls += len(resp.history)
            if resp.status_code >= 500:
                if not idempotent:
                    raise OutcomeUnknown(f"Marketo HTTP {resp.status_code} on {path}")
                raise TransientError(f"Marketo HTTP {resp.status_code} on {path}")
            if resp.status_code != 200:
                raise ConfigError(f"Marketo HTTP {resp.status_code} on {path}: {resp.text[:200]}")
            body: dict[str, Any] = resp.json()
            if body.get("success"):
                return body
            errors = body.get("errors") or [{"code": "?", "message": "no error given"}]
            code, message = str(errors[0].get("code")), str(errors[0].get("message"))
            if code in _TOKEN_CODES:
                # MarketoAuth has already renewed the token once and resent the call.
                raise AuthFailed(f"Marketo refused a newly issued access token ({code}): {message}")
            if code == "606":
                raise Throttled(f"Marketo 606: {message}", retry_after=self.rate_limit_wait)
            if code == "615":
                raise Throttled(f"Marketo 615: {message}", retry_after=self.busy_wait)
            if code in _RETRY_CODES:
                if not idempotent and code == "604":
                    raise OutcomeUnknown(f"Marketo 604 on {path}: {message}; outcome unknown")
                raise TransientError(f"Marketo {code}: {message}")
            if code == "607":
                raise QuotaExhausted(f"Marketo daily quota reached (607): {message}")
            if code == "603":
                raise AccessDenied(f"Marketo access denied (603): {message}")
            if code == "702":
                return {**body, "result": []}
            raise StopCycle(f"Marketo {code} on {path}: {message}")

        return await self._retry.run(attempt)

    # ---- lead database ------------------------------------------------------
    async def get_leads(
        self, filter_type: str, values: Sequence[Any], fields: Sequence[str]
    ) -> list[dict[str, Any]]:
        """People whose `filter_type` is one of `values` (any count; 300 per call, the
        calls in flight together within the concurrency limit)."""
        chunks = [[str(v) for v in values[i : i + BATCH]] for i in range(0, len(values), BATCH)]
        pages = await asyncio.gather(*(self._get_chunk(filter_type, c, fields) for c in chunks))
        return [person for page in pages for person in page]

    async def _get_chunk(
        self, filter_type: str, chunk: list[str], fields: Sequence[str]
    ) -> list[dict[str, Any]]:
        form = {
            "filterType": filter_type,
            "filterValues": ",".join(chunk),
            "fields": ",".join(fields),
            "batchSize": str(BATCH),
        }
        out: list[dict[str, Any]] = []
        while True:
            # POST with _method=GET: 300 emails would overflow the 8 KB URI limit.
            body = await self.call(
                "POST", "/rest/v1/leads.json", params={"_method": "GET"}, form=form
            )
            out.extend(body.get("result") or [])
            token = body.get("nextPageToken")
            if not token or not body.get("moreResult", False):
                return out
            form["nextPageToken"] = str(token)

    async def sync_leads(
        self, action: str, records: Sequence[dict[str, Any]], lookup_field: str = "id"
    ) -> list[dict[str, Any]]:
        """Create/update people; one result per input record, in input order."""
        chunks = [list(records[i : i + BATCH]) for i in range(0, len(records), BATCH)]
        # The creates are not idempotent: never resend them blindly. A resent
        # createDuplicate mints the people again; a resent createOnly skips the ones the
        # lost call created, as if someone else had them (the caller resolves them by
        # the Dynamics id they carry).
        idempotent = action not in ("createDuplicate", "createOnly")
        pages = await asyncio.gather(
            *(self._sync_chunk(action, c, lookup_field, idempotent) for c in chunks)
        )
        return [result for page in pages for result in page]

    async def _sync_chunk(
        self, action: str, chunk: list[dict[str, Any]], lookup_field: str, idempotent: bool
    ) -> list[dict[str, Any]]:
        payload: dict[str, Any] = {"action": action, "input": chunk}
        if action != "createDuplicate":
            payload["lookupField"] = lookup_field
        body = await self.call("POST", "/rest/v1/leads.json", json=payload, idempotent=idempotent)
        got = list(body.get("result") or [])
        if len(got) != len(chunk):
            # The write went through, but which records landed cannot be told apart.
            raise OutcomeUnknown(f"Marketo returned {len(got)} results for {len(chunk)} records")
        return got

    # ---- change feeds -------------------------------------------------------
    async def paging_token(self, since: datetime) -> str:
        body = await self.call(
            "GET",
            "/rest/v1/activities/pagingtoken.json",
            params={"sinceDatetime": since.isoformat()},
        )
        return str(body["nextPageToken"])

    async def _feed(
        self, path: str, token: str, params: dict[str, str]
    ) -> AsyncIterator[tuple[list[Activity], str]]:
        """Pages of activities with the token to resume *after* each page. Pages may
        be short or empty while moreResult is true; only moreResult ends the feed."""
        while True:
            body = await self.call(
                "GET", path, params={**params, "nextPageToken": token, "batchSize": str(BATCH)}
            )
            token = str(body.get("nextPageToken") or token)
            page = [_activity(a) for a in body.get("result") or []]
            yield page, token
            if not body.get("moreResult"):
                return

    def lead_changes(
        self, token: str, fields: Sequence[str]
    ) -> AsyncIterator[tuple[list[Activity], str]]:
        return self._feed(
            "/rest/v1/activities/leadchanges.json", token, {"fields": ",".join(fields)}
        )

    def deleted_leads(self, token: str) -> AsyncIterator[tuple[list[Activity], str]]:
        return self._feed("/rest/v1/activities/deletedleads.json", token, {})

    def activities(
        self, token: str, type_ids: Sequence[int], lead_ids: Sequence[int] = ()
    ) -> AsyncIterator[tuple[list[Activity], str]]:
        params = {"activityTypeIds": ",".join(map(str, type_ids))}
        if lead_ids:
            params["leadIds"] = ",".join(map(str, lead_ids))  # at most 30
        return self._feed("/rest/v1/activities.json", token, params)

    async def merge(self, winner: int, losers: Sequence[int]) -> None:
        """Merge people into `winner` (its values win; its empty fields take a loser's).
        Repeating a merge whose losers are gone fails with 1004, never merges twice."""
        await self.call(
            "POST",
            f"/rest/v1/leads/{winner}/merge.json",
            params={"leadIds": ",".join(str(x) for x in losers)},
        )

    # ---- custom activities --------------------------------------------------
    async def activity_types(self) -> list[dict[str, Any]]:
        body = await self.call("GET", "/rest/v1/activities/types.json")
        return list(body.get("result") or [])

    async def add_activities(self, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Add to activity logs, at most once: a resent chunk would log each line twice,
        so a chunk whose answer is lost is reported as unknown, not retried."""
        results: list[dict[str, Any]] = []
        for i in range(0, len(records), BATCH):
            chunk = records[i : i + BATCH]
            try:
                body = await self.call(
                    "POST", "/rest/v1/activities/external.json", json={"input": chunk},
                    idempotent=False,
                )  # fmt: skip
            except OutcomeUnknown as exc:
                log.warning("activity log write of %d entries: %s", len(chunk), exc)
                results.extend({"status": "unknown"} for _ in chunk)
                continue
            results.extend(body.get("result") or [])
        return results


def _activity(raw: dict[str, Any]) -> Activity:
    attrs = {a.get("name"): a.get("value") for a in raw.get("attributes") or []}
    fields = {f.get("name"): f.get("newValue") for f in raw.get("fields") or []}
    return Activity(
        id=str(raw.get("marketoGUID") or raw.get("id")),
        lead_id=int(raw.get("leadId") or raw.get("primaryAttributeValueId") or 0),
        type_id=int(raw.get("activityTypeId") or 0),
        date=str(raw.get("activityDate") or ""),
        fields=fields,
        attributes=attrs,
        primary=str(raw.get("primaryAttributeValue") or ""),
    )
