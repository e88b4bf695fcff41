"""How the Marketo client acts on each kind of answer (one odd response at a time)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest

from sync_core.errors import (
    AuthFailed,
    OutcomeUnknown,
    QuotaExhausted,
    StopCycle,
    SyncError,
    TransientError,
)
from sync_core.http import RetryPolicy
from sync_core.marketo import _TOKENS, MarketoClient

Handler = Callable[[httpx.Request], httpx.Response]


def envelope(success: bool, code: str | None = None, **extra: object) -> httpx.Response:
    body: dict[str, object] = {"requestId": "1#1", "success": success, **extra}
    if code:
        body["errors"] = [{"code": code, "message": f"error {code}"}]
    return httpx.Response(200, json=body)


def run(script: list[httpx.Response | Exception], call: str = "updateOnly"):
    """Answer REST calls from `script` in order; return (result or error, calls, sleeps)."""
    _TOKENS.clear()
    seen: list[str] = []
    sleeps: list[float] = []
    answers = iter(script)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/oauth/token"):
            seen.append("token")
            return httpx.Response(200, json={"access_token": f"t{len(seen)}", "expires_in": 3599})
        seen.append(json.loads(request.content)["action"] if request.content else "get")
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def go() -> object:
        client = MarketoClient(
            "https://mkto.test",
            "id",
            "secret",
            transport=httpx.MockTransport(handler),
            retry=RetryPolicy(attempts=4, sleep=sleep),
        )
        try:
            return await client.sync_leads(call, [{"id": 1, "title": "x"}])
        except SyncError as exc:
            return exc
        finally:
            await client.aclose()

    return asyncio.run(go()), seen, sleeps


OK = envelope(True, result=[{"id": 1, "status": "updated"}])


def test_expired_token_is_refreshed_and_the_call_repeated():
    result, seen, sleeps = run([envelope(False, "602"), OK])
    assert result == [{"id": 1, "status": "updated"}]
    # Renewed and resent by the auth flow, below the retry loop: nothing waited.
    assert seen == ["token", "updateOnly", "token", "updateOnly"] and sleeps == []


def test_rate_limit_waits_out_the_window():
    result, _, sleeps = run([envelope(False, "606"), OK])
    assert isinstance(result, list) and sleeps == [20.0]


@pytest.mark.parametrize("code", ["604", "608", "611", "713"])
def test_transient_codes_back_off_and_retry(code: str):
    result, _, sleeps = run([envelope(False, code), OK])
    assert isinstance(result, list) and len(sleeps) == 1 and 0 < sleeps[0] <= 30


def test_retries_are_bounded():
    result, seen, _ = run([envelope(False, "608")] * 4)
    assert isinstance(result, TransientError) and seen.count("updateOnly") == 4


@pytest.mark.parametrize(
    ("code", "kind"),
    [("607", QuotaExhausted), ("603", AuthFailed), ("1003", StopCycle), ("610", StopCycle)],
)
def test_codes_that_stop_the_cycle(code: str, kind: type):
    result, seen, sleeps = run([envelope(False, code)])
    assert isinstance(result, kind) and seen.count("updateOnly") == 1 and sleeps == []


@pytest.mark.parametrize("action", ["createDuplicate", "createOnly"])
@pytest.mark.parametrize("lost", ["timeout", "604"])
def test_a_create_whose_answer_was_lost_is_never_resent(action: str, lost: str):
    answer = httpx.ReadTimeout("lost") if lost == "timeout" else envelope(False, "604")
    result, seen, _ = run([answer, OK], call=action)
    assert isinstance(result, OutcomeUnknown) and not isinstance(result, TransientError)
    assert seen.count(action) == 1


@pytest.mark.parametrize("action", ["createDuplicate", "createOnly"])
def test_a_create_answered_with_the_wrong_number_of_results_is_an_unknown_outcome(action: str):
    result, seen, _ = run([envelope(True, result=[])], call=action)
    assert isinstance(result, OutcomeUnknown) and seen.count(action) == 1


def test_an_update_whose_answer_was_lost_is_resent():
    result, seen, _ = run([httpx.ReadTimeout("lost"), OK])
    assert isinstance(result, list) and seen.count("updateOnly") == 2


def test_bad_credentials_name_the_settings():
    _TOKENS.clear()

    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": "invalid_client"})

    async def go() -> Exception:
        client = MarketoClient(
            "https://mkto.test", "id", "bad", transport=httpx.MockTransport(refuse)
        )
        try:
            await client.sync_leads("updateOnly", [{"id": 1}])
        except AuthFailed as exc:
            return exc
        finally:
            await client.aclose()
        raise AssertionError("no error")

    assert "MARKETO_CLIENT_SECRET" in str(asyncio.run(go()))
