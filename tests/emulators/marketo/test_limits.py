"""§2.5 Limits: 606 sliding window, 615 concurrency, 607 daily quota, 1003 batch size."""

from __future__ import annotations

import concurrent.futures

import httpx

from tests.emulators.marketo.support import Api, AsgiHttp


def test_rate_limit_606_sliding_window(http: httpx.Client, api: Api) -> None:
    http.post("/_emulator/limits", json={"rate_limit_calls": 5, "rate_limit_window_s": 20})
    codes = [api.get("/rest/v1/leads/describe2.json").get("errors") for _ in range(7)]
    assert codes[:5] == [[]] * 5
    assert codes[5][0] == {"code": "606",
                           "message": "Max rate limit '5' exceeded with in '20' secs"}
    http.post("/_emulator/clock", json={"advance_s": 21})
    assert api.get("/rest/v1/leads/describe2.json")["success"] is True
    assert http.get("/_emulator/stats").json()["totals"]["throttled"] == 2


def test_concurrency_615(http: httpx.Client, api: Api) -> None:
    http.post("/_emulator/limits", json={"max_concurrent": 2})
    http.post("/_emulator/latency", json={"endpoint": "*", "fixed_s": 0.3})
    api.login()
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        bodies = list(pool.map(lambda _: api.get("/rest/v1/leads/describe2.json"), range(6)))
    codes = [b["errors"][0]["code"] if b["errors"] else "ok" for b in bodies]
    assert codes.count("615") >= 1 and codes.count("ok") >= 2


def test_daily_quota_607(local: AsgiHttp, lapi: Api) -> None:
    emu = local.app.state.emulator  # type: ignore[attr-defined]
    emu.config.daily_quota = 3
    results = [lapi.get("/rest/v1/leads/describe2.json") for _ in range(4)]
    assert results[3]["errors"][0]["code"] == "607"
    # Quota resets at the next midnight in Chicago.
    emu.clock_offset += 86_400
    lapi.login()  # the old token expired meanwhile
    assert lapi.get("/rest/v1/leads/describe2.json")["success"] is True


def test_batch_over_300_is_1003(local: AsgiHttp, lapi: Api) -> None:
    body = lapi.sync([{"email": f"p{i}@example.com"} for i in range(301)])
    assert body["success"] is False and body["errors"][0]["code"] == "1003"
    local.app.state.emulator.config.max_batch = 2  # type: ignore[attr-defined]
    assert lapi.sync([{"email": f"p{i}@example.com"} for i in range(3)])["errors"][0][
        "code"] == "1003"
