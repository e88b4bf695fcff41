"""Token renewal in the clients' auth flows: a refused token is renewed once and the
request resent once, below the retry loop; refused again, the call stops (AuthFailed);
requests refused together share one renewal. Against the real emulators where they can
produce the refusal, through httpx.MockTransport where only a script can."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from emulators.dynamics import create_app as create_dynamics
from emulators.marketo import MarketoConfig
from emulators.marketo import create_app as create_marketo
from sync_core.dataverse import DataverseClient
from sync_core.errors import AuthFailed, SyncError
from sync_core.http import RetryPolicy
from sync_core.marketo import _TOKENS, MarketoClient

MARKETO = "http://marketo.test"
DYNAMICS = "http://dynamics.test"


async def no_sleep(seconds: float) -> None:
    raise AssertionError(f"the retry loop waited {seconds} s; a token renewal must not")


async def until(condition: Callable[[], bool]) -> None:
    """Wait (a second at most, so a broken client fails instead of hanging) for it."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.001)


def envelope(code: str | None = None) -> httpx.Response:
    if code is None:
        return httpx.Response(200, json={"success": True, "result": [{"id": 1}]})
    errors = [{"code": code, "message": f"error {code}"}]
    return httpx.Response(200, json={"success": False, "errors": errors})


class ScriptedMarketo:
    """Identity issues t1, t2, ...; REST calls are answered from `script` in order."""

    def __init__(self, script: list[httpx.Response]) -> None:
        self.script = iter(script)
        self.seen: list[str] = []  # "token", or the token a REST call carried

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/identity/oauth/token":
            self.seen.append("token")
            issued = self.seen.count("token")
            return httpx.Response(200, json={"access_token": f"t{issued}", "expires_in": 3599})
        self.seen.append(request.headers["Authorization"].removeprefix("Bearer "))
        return next(self.script)


def marketo(transport: httpx.AsyncBaseTransport, attempts: int = 4) -> MarketoClient:
    _TOKENS.clear()
    retry = RetryPolicy(attempts=attempts, sleep=no_sleep)
    return MarketoClient(MARKETO, "sync-app", "sync-app-secret", transport=transport, retry=retry)


def list_types(handler: ScriptedMarketo) -> tuple[dict[str, object] | SyncError, int]:
    """One idempotent call; its answer (or error) and the calls the client counted."""

    async def go() -> tuple[dict[str, object] | SyncError, int]:
        client = marketo(httpx.MockTransport(handler))
        try:
            return await client.call("GET", "/rest/v1/activities/types.json"), client.calls
        except SyncError as exc:
            return exc, client.calls
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_marketo_601_in_a_200_body_renews_once_and_resends_once():
    handler = ScriptedMarketo([envelope("601"), envelope()])
    body, calls = list_types(handler)
    assert isinstance(body, dict) and body["success"] is True
    assert handler.seen == ["token", "t1", "token", "t2"]
    assert calls == 2  # the resent call counts against the budget like any other


def test_marketo_601_again_right_after_a_renewal_stops_without_a_loop():
    handler = ScriptedMarketo([envelope("601"), envelope("601"), envelope()])
    error, _ = list_types(handler)
    assert isinstance(error, AuthFailed) and "601" in str(error)
    assert handler.seen == ["token", "t1", "token", "t2"]


def test_marketo_calls_refused_together_share_one_renewal():
    """Five calls in flight with the same expired token: one identity call renews it
    for all of them (and one issued it in the first place)."""
    identity = 0
    refused = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal identity, refused
        if request.url.path == "/identity/oauth/token":
            identity += 1
            await asyncio.sleep(0.01)  # the others reach the lock meanwhile
            return httpx.Response(200, json={"access_token": f"t{identity}", "expires_in": 3599})
        if request.headers["Authorization"] == "Bearer t1":
            refused += 1
            await until(lambda: refused == 5)  # all five are in flight with t1
            return envelope("602")
        return envelope()

    async def go() -> list[object]:
        client = marketo(httpx.MockTransport(handler))
        try:
            calls = [client.call("GET", "/rest/v1/activities/types.json") for _ in range(5)]
            return list(await asyncio.gather(*calls))
        finally:
            await client.aclose()

    results = asyncio.run(go())
    assert all(r["success"] for r in results)  # type: ignore[index]
    assert identity == 2 and refused == 5


def test_marketo_expired_token_renewed_for_a_write_that_must_not_run_twice():
    """The real emulator: every token expires between two calls; the next createDuplicate
    is refused with 602, resent once with a new token, and creates exactly one person."""
    app = create_marketo(MarketoConfig())

    async def go() -> tuple[list[dict[str, object]], dict[str, object]]:
        transport = httpx.ASGITransport(app=app)
        client = marketo(transport)
        async with httpx.AsyncClient(transport=transport, base_url=MARKETO) as admin:
            try:
                await client.call("GET", "/rest/v1/activities/types.json")
                await admin.post("/_emulator/tokens/expire")
                created = await client.sync_leads("createDuplicate", [{"email": "a@example.com"}])
                stats = (await admin.get("/_emulator/stats")).json()
            finally:
                await client.aclose()
        return created, stats

    created, stats = asyncio.run(go())
    assert [r["status"] for r in created] == ["created"]
    assert stats["people"] == 1
    writes = stats["endpoints"]["POST /rest/v1/leads.json"]  # type: ignore[index]
    assert writes["calls"] == 2 and writes["errorCodes"] == {"602": 1}


def test_marketo_token_renewal_is_not_a_throttle_for_add_activities():
    """A 602 on a non-idempotent activity write: resent (Marketo ran nothing), never
    reported as an outcome-unknown line."""
    handler = ScriptedMarketo([envelope("602"), envelope()])

    async def go() -> list[dict[str, object]]:
        client = marketo(httpx.MockTransport(handler))
        try:
            return await client.add_activities([{"leadId": 1, "activityTypeId": 100001}])
        finally:
            await client.aclose()

    assert asyncio.run(go()) == [{"id": 1}]
    assert handler.seen == ["token", "t1", "token", "t2"]


def test_dataverse_401_renews_the_token_once_and_resends():
    """The real emulator: a token that has already expired gets 401 (0x8005F101); the
    provider is asked for a fresh one once and the request succeeds with it."""
    app = create_dynamics()
    asked: list[bool] = []

    async def go() -> tuple[dict[str, object], int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=DYNAMICS) as admin:

            async def token(refresh: bool) -> str:
                asked.append(refresh)
                issued = await admin.post(
                    "/_emulator/tokens",
                    json={"client_id": "sync-app", "expires_in": 3599 if refresh else 0},
                )
                return str(issued.json()["access_token"])

            retry = RetryPolicy(attempts=4, sleep=no_sleep)
            client = DataverseClient(DYNAMICS, token, transport=transport, retry=retry)
            try:
                return await client.get_json("WhoAmI"), client.calls
            finally:
                await client.aclose()

    who, calls = asyncio.run(go())
    assert who["UserId"] and asked == [False, True] and calls == 2


def test_dataverse_requests_refused_together_share_one_renewal():
    asked: list[bool] = []
    refused: list[str] = []

    async def token(refresh: bool) -> str:
        asked.append(refresh)
        await asyncio.sleep(0.01)
        return "fresh" if refresh else "stale"

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == "Bearer stale":
            refused.append(request.url.path)
            await until(lambda: len(refused) == 5)  # all five carry the stale token
            return httpx.Response(401, json={"error": {"code": "0x8005F101", "message": "x"}})
        return httpx.Response(200, json={"value": []})

    async def go() -> list[dict[str, object]]:
        retry = RetryPolicy(attempts=4, sleep=no_sleep)
        client = DataverseClient(
            DYNAMICS, token, transport=httpx.MockTransport(handler), retry=retry
        )
        try:
            return list(await asyncio.gather(*(client.get_json("contacts") for _ in range(5))))
        finally:
            await client.aclose()

    assert asyncio.run(go()) == [{"value": []}] * 5
    assert asked.count(True) == 1 and len(refused) == 5
