"""Group commit of the webhook's Marketo calls: a request alone goes at once, requests
that arrive during a call go together in the next one (in order, at most a call's worth),
each waiter gets its own result or its call's exception, and a waiter that gives up
leaves the others and the batcher unharmed. Then the Marketo batcher over a scripted
Marketo: results mapped back per person, activities never resent, calls counted once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from sync_core.errors import SyncError, Throttled
from sync_core.http import RetryPolicy
from sync_core.marketo import MarketoClient
from sync_core.marketobatch import GroupCommit, MarketoBatcher


class Send:
    """A `send` that records each call's items; while `held`, a call waits for its
    release."""

    def __init__(self, fail: Callable[[list[Any]], Exception | None] = lambda items: None):
        self.calls: list[list[Any]] = []
        self.finished: list[list[Any]] = []
        self.held = False
        self._gates: list[asyncio.Event] = []
        self._fail = fail

    async def __call__(self, items: list[Any]) -> list[str]:
        gate = asyncio.Event()
        if not self.held:
            gate.set()
        self._gates.append(gate)
        self.calls.append(list(items))
        await gate.wait()
        self.finished.append(list(items))
        error = self._fail(items)
        if error is not None:
            raise error
        return [f"result of {item}" for item in items]

    def release(self, call: int | None = None) -> None:
        """Let call number `call` finish (all calls, now and later, when None)."""
        if call is None:
            self.held = False
        for gate in self._gates if call is None else [self._gates[call]]:
            gate.set()


async def ticks(n: int = 5) -> None:
    """Let ready tasks run without letting any time pass."""
    for _ in range(n):
        await asyncio.sleep(0)


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


async def started(send: Send, count: int) -> None:
    await until(lambda: len(send.calls) >= count)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), timeout=10))


def test_a_request_alone_is_sent_at_once_and_alone():
    async def go() -> None:
        send = Send()
        commit: GroupCommit[int, str] = GroupCommit(send)
        waiter = asyncio.create_task(commit.submit(1))
        await ticks()  # no time passes: there is no linger timer to wait out
        assert send.calls == [[1]] and waiter.done()
        assert await waiter == "result of 1"
        for n in (2, 3):
            assert await commit.submit(n) == f"result of {n}"
        assert send.calls == [[1], [2], [3]]  # one after another: nothing to batch
        assert not commit.busy

    run(go)


def test_requests_arriving_during_a_call_go_together_in_order_with_their_own_results():
    async def go() -> None:
        send = Send()
        send.held = True
        commit: GroupCommit[int, str] = GroupCommit(send)
        first = asyncio.create_task(commit.submit(0))
        await started(send, 1)
        rest = [asyncio.create_task(commit.submit(n)) for n in (5, 3, 9, 1)]
        await ticks()
        assert send.calls == [[0]]  # they wait for the call in flight
        send.release()
        assert await first == "result of 0"
        assert await asyncio.gather(*rest) == [f"result of {n}" for n in (5, 3, 9, 1)]
        assert send.calls == [[0], [5, 3, 9, 1]]

    run(go)


def test_a_call_carries_at_most_max_batch_requests():
    async def go() -> None:
        send = Send()
        send.held = True
        commit: GroupCommit[int, str] = GroupCommit(send, max_batch=3)
        waiters = [asyncio.create_task(commit.submit(0))]
        await started(send, 1)
        waiters += [asyncio.create_task(commit.submit(n)) for n in range(1, 8)]
        await ticks()
        send.release()
        assert await asyncio.gather(*waiters) == [f"result of {n}" for n in range(8)]
        assert send.calls == [[0], [1, 2, 3], [4, 5, 6], [7]]

    run(go)


def test_requests_kept_apart_never_share_a_call():
    async def go() -> None:
        send = Send()
        send.held = True
        commit: GroupCommit[str, str] = GroupCommit(send, apart=lambda item: item[0])
        waiters = [asyncio.create_task(commit.submit("a1"))]
        await started(send, 1)
        waiters += [asyncio.create_task(commit.submit(x)) for x in ("a2", "b1", "a3", "c1")]
        await ticks()
        send.release()
        await asyncio.gather(*waiters)
        assert send.calls == [["a1"], ["a2", "b1", "c1"], ["a3"]]

    run(go)


def test_a_failed_call_raises_to_each_of_its_waiters_and_to_no_one_else():
    async def go() -> None:
        throttled = Throttled("Marketo 606: max rate limit", retry_after=20)
        send = Send(fail=lambda items: throttled if 2 in items else None)
        send.held = True
        commit: GroupCommit[int, str] = GroupCommit(send, max_batch=2)
        first = asyncio.create_task(commit.submit(0))
        await started(send, 1)
        failing = [asyncio.create_task(commit.submit(n)) for n in (1, 2)]
        fine = asyncio.create_task(commit.submit(3))
        await ticks()
        send.release()
        assert await first == "result of 0"
        for waiter in failing:
            with pytest.raises(Throttled) as caught:
                await waiter
            assert caught.value.retry_after == 20
        assert await fine == "result of 3"
        assert send.calls == [[0], [1, 2], [3]]
        assert await commit.submit(4) == "result of 4"  # and it goes on working

    run(go)


def test_a_short_answer_fails_the_whole_call_rather_than_misattribute_results():
    async def go() -> None:
        async def short(items: list[int]) -> list[str]:
            return ["only one"]

        commit: GroupCommit[int, str] = GroupCommit(short)
        results = await asyncio.gather(commit.submit(1), commit.submit(2), return_exceptions=True)
        assert all(isinstance(r, SyncError) for r in results), results

    run(go)


def test_a_waiter_that_gives_up_leaves_the_call_and_the_others_unharmed():
    async def go() -> None:
        send = Send()
        send.held = True
        commit: GroupCommit[int, str] = GroupCommit(send)
        # The delivery whose request started the call hits its deadline during it.
        first = asyncio.create_task(commit.submit(0))
        await started(send, 1)
        queued = [asyncio.create_task(commit.submit(n)) for n in (1, 2, 3)]
        await ticks()
        first.cancel()
        queued[1].cancel()  # gives up before its call: it is not sent at all
        await ticks()
        send.release()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert await queued[0] == "result of 1" and await queued[2] == "result of 3"
        assert send.finished == [[0], [1, 3]]  # the started call ran to its end

        # One waiter of a call in flight hits its deadline: the others get their results.
        send.held = True
        head = asyncio.create_task(commit.submit(4))
        await started(send, 3)
        mates = [asyncio.create_task(commit.submit(n)) for n in (5, 6)]
        await ticks()
        send.release(2)
        await started(send, 4)  # [5, 6] in flight, held

        async def deadline() -> str:
            async with asyncio.timeout(0.05):
                return await mates[0]

        with pytest.raises(TimeoutError):
            await deadline()
        send.release()
        assert await head == "result of 4" and await mates[1] == "result of 6"
        assert send.finished[-1] == [5, 6]
        assert await commit.submit(7) == "result of 7"  # alone again: at once
        assert send.calls[-1] == [7] and not commit.busy

    run(go)


# ---- the Marketo batcher over a scripted Marketo -----------------------------------
class Marketo:
    """People 1..5 exist. Every REST call waits while `gate` is clear."""

    def __init__(self) -> None:
        self.people = {n: {"id": n, "email": f"p{n}@example.com"} for n in range(1, 6)}
        self.requests: list[tuple[str, Any]] = []
        self.arrived = 0  # REST calls that reached Marketo
        self.gate = asyncio.Event()
        self.gate.set()
        self.activities_fail = False

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/oauth/token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        self.arrived += 1
        await self.gate.wait()
        if request.url.path == "/rest/v1/leads.json" and request.url.params.get("_method"):
            form = parse_qs(request.content.decode())
            ids = [int(v) for v in form["filterValues"][0].split(",")]
            self.requests.append(("get", ids))
            found = [dict(self.people[i]) for i in ids if i in self.people]
            return httpx.Response(200, json={"success": True, "result": found})
        body = json.loads(request.content)
        if request.url.path == "/rest/v1/leads.json":
            self.requests.append(("sync", [r["id"] for r in body["input"]]))
            result = [
                {"id": r["id"], "status": "updated"}
                if r["id"] in self.people
                else {"status": "skipped", "reasons": [{"code": "1004"}]}
                for r in body["input"]
            ]
            return httpx.Response(200, json={"success": True, "result": result})
        self.requests.append(("activities", [r["leadId"] for r in body["input"]]))
        if self.activities_fail:
            return httpx.Response(502)
        result = [{"id": r["leadId"], "status": "added"} for r in body["input"]]
        return httpx.Response(200, json={"success": True, "result": result})


def batcher(marketo: Marketo, url: str) -> tuple[MarketoBatcher, list[MarketoClient]]:
    clients: list[MarketoClient] = []

    def new_client() -> MarketoClient:
        client = MarketoClient(
            url, "id", "secret", transport=httpx.MockTransport(marketo),
            retry=RetryPolicy(attempts=3, base_delay=0.0),
        )  # fmt: skip
        clients.append(client)
        return client

    return MarketoBatcher(new_client), clients


FIELDS = ["id", "email"]


def test_people_are_read_together_and_handed_back_by_id():
    async def go() -> None:
        marketo = Marketo()
        b, _ = batcher(marketo, "https://batch-read.mktorest.test")
        marketo.gate.clear()
        first = asyncio.create_task(b.read(1, FIELDS))
        await until(lambda: marketo.arrived == 1)
        rest = [asyncio.create_task(b.read(n, FIELDS)) for n in (4, 99, 2, 4)]
        await ticks(20)
        marketo.gate.set()
        assert (await first or {})["id"] == 1
        four, missing, two, four_again = await asyncio.gather(*rest)
        assert missing is None  # not found
        assert (four or {})["id"] == 4 and (two or {})["id"] == 2
        assert four == four_again and four is not four_again  # each its own copy
        assert marketo.requests == [("get", [1]), ("get", [4, 99, 2])]  # read once each

    run(go)


def test_write_backs_and_activities_get_their_own_results_in_order():
    async def go() -> None:
        marketo = Marketo()
        b, _ = batcher(marketo, "https://batch-write.mktorest.test")
        marketo.gate.clear()
        first = asyncio.create_task(b.update({"id": 1, "dynamicsId": "x"}))
        await until(lambda: marketo.arrived == 1)
        updates = [asyncio.create_task(b.update({"id": n, "dynamicsId": "x"})) for n in (3, 7)]
        logs = asyncio.create_task(b.add_activities([{"leadId": 3}, {"leadId": 2}]))
        await ticks(20)
        marketo.gate.set()
        assert (await first)["status"] == "updated"
        three, seven = await asyncio.gather(*updates)
        assert three == {"id": 3, "status": "updated"} and seven["status"] == "skipped"
        assert [r["id"] for r in await logs] == [3, 2]
        assert ("sync", [3, 7]) in marketo.requests
        assert ("activities", [3, 2]) in marketo.requests

    run(go)


def test_a_lost_activity_answer_is_unknown_and_never_resent():
    async def go() -> None:
        marketo = Marketo()
        marketo.activities_fail = True  # a 502: the activities may have been added
        b, _ = batcher(marketo, "https://batch-log.mktorest.test")
        results = await asyncio.gather(
            b.add_activities([{"leadId": 1}]), b.add_activities([{"leadId": 2}])
        )
        assert results == [[{"status": "unknown"}], [{"status": "unknown"}]]
        sent = [r for r in marketo.requests if r[0] == "activities"]
        assert sum(len(ids) for _, ids in sent) == 2  # each line sent once

    run(go)


def test_every_call_of_the_batchers_client_is_counted_exactly_once():
    async def go() -> None:
        marketo = Marketo()
        b, clients = batcher(marketo, "https://batch-count.mktorest.test")
        assert b.take_calls() == 0
        await asyncio.gather(b.read(1, FIELDS), b.update({"id": 1}))
        assert b.take_calls() == 2
        assert b.take_calls() == 0
        await b.read(2, FIELDS)
        b.close_when_idle()  # the worker replaced it: its client is closed when idle
        await ticks()
        assert clients[0]._http.is_closed
        assert b.take_calls() == 1  # a closed client's calls are still counted
        # A delivery that still holds it gets a new client rather than an error.
        assert (await b.read(3, FIELDS) or {})["id"] == 3
        assert len(clients) == 2
        await ticks()
        assert clients[1]._http.is_closed
        assert b.take_calls() == 1 and b.take_calls() == 0

    run(go)
