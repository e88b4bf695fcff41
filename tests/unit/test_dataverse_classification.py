"""How the Dataverse client classifies answers, and reads a $batch response."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from sync_core.dataverse import DataverseClient, Op, _error_of, parse_batch_response
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
from sync_core.pacing import ExecutionPacer

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


class SlowBatches(httpx.AsyncBaseTransport):
    """Answers every $batch with 204s after a pause; notes how many were open at once,
    each batch's operation count, and the read timeout each request carried."""

    def __init__(self) -> None:
        self.open = self.most = 0
        self.sizes: list[int] = []
        self.read_timeouts: dict[str, float] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.read_timeouts[request.url.path.rsplit("/", 1)[-1]] = request.extensions["timeout"][
            "read"
        ]
        body = await request.aread()
        n = body.count(b"PATCH ")
        self.sizes.append(n)
        self.open += 1
        self.most = max(self.most, self.open)
        await asyncio.sleep(0.01)
        self.open -= 1
        parts = "".join(
            "--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n\r\n"
            for _ in range(n)
        )
        return httpx.Response(
            200,
            headers={"Content-Type": 'multipart/mixed; boundary="b"', "x-ms-dop-hint": "2"},
            content=(parts + "--b--\r\n").encode(),
        )


async def _token(refresh: bool) -> str:
    return "t"


def _hundred() -> ExecutionPacer:
    """Measured already, 100 operations a batch."""
    pacer = ExecutionPacer(max_ops=100)
    pacer.recall("0.0001")
    return pacer


def _patches(n: int) -> list[Op]:
    return [
        Op("PATCH", f"contacts({i:08d}-0000-0000-0000-000000000000)", {"x": i}) for i in range(n)
    ]


def test_batch_calls_at_once_share_the_batches_in_flight_and_wait_past_two_minutes():
    wire = SlowBatches()

    async def go() -> list[list[Any]]:
        client = DataverseClient(
            "https://org.test", _token, transport=wire, timeout=5.0, pacer=_hundred()
        )
        client.pacer.parallel = 2
        try:
            return await asyncio.gather(client.batch(_patches(450)), client.batch(_patches(300)))
        finally:
            await client.aclose()

    first, second = asyncio.run(go())
    assert len(first) == 450 and len(second) == 300
    assert all(r.error is None for r in [*first, *second])
    assert wire.most == 2  # the pacer's two in flight, not two for each call
    assert sorted(wire.sizes) == [50] + [100] * 7
    # Dataverse gives a request 2 minutes; a batch is not cut off before that.
    assert wire.read_timeouts["$batch"] >= 120


def test_a_tail_of_a_few_operations_rides_in_the_batch_before_it():
    wire = SlowBatches()

    async def go() -> None:
        client = DataverseClient("https://org.test", _token, transport=wire, pacer=_hundred())
        try:
            await client.batch(_patches(105))
            await client.batch(_patches(120))
        finally:
            await client.aclose()

    asyncio.run(go())
    assert wire.sizes == [105, 100, 20]
