"""How the Dataverse client classifies answers, and reads a $batch response."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from sync_core.dataverse import DataverseClient, _error_of, parse_batch_response
from sync_core.errors import (
    AuthFailed,
    ChangeTrackingOff,
    DeltaExpired,
    OutcomeUnknown,
    RecordRejected,
    StaleRecord,
    Throttled,
    TransientError,
)
from sync_core.http import RetryPolicy

EXPIRED = "Version stamp associated with the client has expired."
TRACKING_OFF = "Change tracking is not enabled"


def body(code: str, message: str) -> str:
    return json.dumps({"error": {"code": code, "message": message}})


@pytest.mark.parametrize(
    ("status", "text", "kind"),
    [
        (429, body("0x80072322", "Number of requests exceeded"), Throttled),
        (503, body("", "busy"), TransientError),
        (504, "", TransientError),
        (412, body("0x80060882", "version mismatch"), StaleRecord),
        (412, "", StaleRecord),
        (412, body("0x80040333", "duplicate"), RecordRejected),
        (400, body("0x80044352", f"{EXPIRED} Please perform a full sync."), DeltaExpired),
        (400, body("", f"{EXPIRED} Please perform a full sync."), DeltaExpired),  # older services
        (400, body("0x80040333", f"{EXPIRED} (quoted in another error)"), RecordRejected),
        (400, body("0x80040203", f"{TRACKING_OFF} for entity 'contact'."), ChangeTrackingOff),
        (400, body("0x80044331", "too long"), RecordRejected),
        (403, body("0x8004F507", "no update permission"), RecordRejected),
    ],
)  # fmt: skip
def test_status_and_code_become_an_action(status: int, text: str, kind: type):
    err = _error_of(status, text, "7")
    assert type(err) is kind
    if isinstance(err, Throttled):
        assert err.retry_after == 7.0
    if isinstance(err, RecordRejected):
        assert err.code == json.loads(text)["error"]["code"]


def test_batch_response_with_a_change_set_and_errors():
    raw = (
        "--batchresponse_1\r\nContent-Type: application/http\r\n"
        "Content-Transfer-Encoding: binary\r\n\r\n"
        "HTTP/1.1 204 No Content\r\nOData-EntityId: https://x/api/data/v9.2/contacts(AAA-1)\r\n\r\n\r\n"
        "--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_2\r\n\r\n"
        "--changesetresponse_2\r\nContent-Type: application/http\r\n\r\n"
        "HTTP/1.1 412 Precondition Failed\r\nContent-Type: application/json\r\n\r\n"
        + body("0x80060882", "changed") + "\r\n"
        "--changesetresponse_2\r\nContent-Type: application/http\r\n\r\n"
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\r\n"
        + body("0x80040265", "rule says no") + "\r\n"
        "--changesetresponse_2--\r\n"
        "--batchresponse_1--\r\n"
    )  # fmt: skip
    results = parse_batch_response('multipart/mixed; boundary="batchresponse_1"', raw.encode())
    assert [r.status for r in results] == [204, 412, 400]
    assert results[0].entity_id == "aaa-1" and results[0].error is None
    assert isinstance(results[1].error, StaleRecord)
    assert isinstance(results[2].error, RecordRejected) and results[2].error.code == "0x80040265"


def test_401_refreshes_the_token_once_then_gives_up():
    tokens: list[bool] = []

    async def token(refresh: bool) -> str:
        tokens.append(refresh)
        return "t"

    async def go() -> Exception:
        client = DataverseClient(
            "https://org.test",
            token,
            transport=httpx.MockTransport(lambda r: httpx.Response(401, text="")),
            retry=RetryPolicy(attempts=4, sleep=lambda s: asyncio.sleep(0)),
        )
        try:
            await client.get_json("WhoAmI")
        except AuthFailed as exc:
            return exc
        finally:
            await client.aclose()
        raise AssertionError("no error")

    assert isinstance(asyncio.run(go()), AuthFailed)
    assert tokens == [False, True]


def test_an_expired_delta_is_told_by_its_code_alone():
    # ExpiredVersionStamp; the wording of the message does not matter.
    assert type(_error_of(400, body("0x80044352", "stamp too old"))) is DeltaExpired


@pytest.mark.parametrize(
    "answer", [httpx.ReadError("connection reset"), httpx.Response(503, text="")]
)
def test_a_request_that_must_not_run_twice_is_not_resent_after_a_lost_answer(answer):
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def token(refresh: bool) -> str:
        return "t"

    async def go() -> Exception:
        client = DataverseClient(
            "https://org.test",
            token,
            transport=httpx.MockTransport(handler),
            retry=RetryPolicy(attempts=4, sleep=lambda s: asyncio.sleep(0)),
        )
        try:
            await client.request("POST", "contacts", json={"lastname": "x"}, idempotent=False)
        except OutcomeUnknown as exc:
            return exc
        finally:
            await client.aclose()
        raise AssertionError("no error")

    assert isinstance(asyncio.run(go()), OutcomeUnknown)
    assert sent == ["POST"]
