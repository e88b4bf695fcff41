"""World profiles (production/hostile): overlap, limits, time scale, noise, late commits,
paging, duplicate upserts, lost answers, replay by seed and run-time switching.

Time is compressed with `timeScale` so each test takes well under a second of real
time while the ratios of the real service stay.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from emulators.marketo import MarketoConfig, create_app
from tests.emulators.marketo.support import Api, AsgiHttp


def _world(local: AsgiHttp, **body: Any) -> dict[str, Any]:
    r = local.post("/_emulator/profile", json=body)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _emu(local: AsgiHttp) -> Any:
    return local.app.state.emulator  # type: ignore[attr-defined]


def _gather(local: AsgiHttp, api: Api, calls: list[tuple[str, str, Any]]) -> list[Any]:
    """Send the calls at once (truly overlapping); an exception stands for its answer."""
    headers = {"Authorization": f"Bearer {api.token or api.login()}"}

    async def one(method: str, path: str, body: Any) -> Any:
        return await local.client.request(method, path, json=body, headers=headers)

    async def together() -> list[Any]:
        return await asyncio.gather(*(one(*c) for c in calls), return_exceptions=True)

    return local.run(together())  # type: ignore[no-any-return]


def _code(r: httpx.Response) -> str:
    body = r.json()
    return body["errors"][0]["code"] if body["errors"] else "ok"


def test_overlapping_calls_beyond_ten_get_615(local: AsgiHttp, lapi: Api) -> None:
    # Source: error-codes.md 615 "Concurrent access limit reached"; rest-api.md: 10 calls
    # in flight per instance. Each call takes 20 s of server time, compressed to 1 s.
    _world(local, profile="production", timeScale=0.05,
           knobs={"latency_model": {"*": [20, 20, 0]}})
    lapi.login()
    answers = _gather(local, lapi, [("GET", "/rest/v1/leads/describe2.json", None)] * 14)
    codes = [_code(r) for r in answers]
    assert codes.count("ok") == 10 and codes.count("615") == 4


def test_606_at_the_101st_call_of_a_compressed_window(local: AsgiHttp, lapi: Api) -> None:
    # Source: rest-api.md: 100 calls per 20 s → 606. At timeScale 0.5 the window is 10 s
    # (long enough that a slow machine sends the 101 calls well inside it); the clock is
    # then moved instead of waiting. The 615 limit is off so only the window decides.
    _world(local, profile="production", timeScale=0.5,
           knobs={"latency_model": {}, "max_concurrent": 0, "shared_calls_per_20s": 0})
    lapi.login()
    answers = _gather(local, lapi, [("GET", "/rest/v1/leads/describe2.json", None)] * 101)
    codes = [_code(r) for r in answers]
    assert codes.count("ok") == 100 and codes.count("606") == 1
    emu = _emu(local)
    emu.clock_offset += 6  # 12 simulated seconds: the window is still full
    assert lapi.get("/rest/v1/leads/describe2.json")["errors"][0]["code"] == "606"
    emu.clock_offset += 5  # 22 simulated seconds: the first 101 calls left the window
    assert lapi.get("/rest/v1/leads/describe2.json")["success"] is True


def test_latency_scales_with_time_scale(local: AsgiHttp, lapi: Api) -> None:
    # Assumption (README "World profiles"): every duration is multiplied by timeScale.
    lapi.login()
    took = []
    for scale in (0.05, 0.1):
        _world(local, profile="production", timeScale=scale,
               knobs={"latency_model": {"GET /rest/v1/leads/describe2.json": [10, 10, 0]}})
        t0 = time.perf_counter()
        lapi.get("/rest/v1/leads/describe2.json")
        took.append(time.perf_counter() - t0)
    assert 0.5 <= took[0] < 0.9 and 1.0 <= took[1] < 1.4  # 10 s x scale, plus overhead
    assert 1.5 < took[1] / took[0] < 2.3


def _page_all(api: Api, token: str, **params: Any) -> tuple[list[dict[str, Any]], list[int]]:
    items: list[dict[str, Any]] = []
    sizes: list[int] = []
    while True:
        body = api.get("/rest/v1/activities.json", nextPageToken=token, **params)
        assert body["success"], body
        items += body["result"]
        sizes.append(len(body["result"]))
        token = body["nextPageToken"]
        if not body["moreResult"]:
            return items, sizes


def test_noise_gives_empty_pages_and_paging_to_the_end_finds_everything(
    local: AsgiHttp, lapi: Api,
) -> None:
    # Source: activities.md / paging-tokens.md: the service scans blocks, pages can be
    # empty with moreResult true. Assumption: the log is mostly email/web activity.
    emu = _emu(local)
    _world(local, profile="production", timeScale=0.01, seed=5,
           knobs={"latency_model": {}, "late_share": 0, "noise_per_hour": 36_000,
                  # An in-process client pages faster than 100 calls / 0.2 s.
                  "rate_limit_calls": 0,
                  "activity_scan_block": 500})
    lapi.sync([{"email": f"seed{i}@example.com"} for i in range(20)])  # noise needs people
    token = lapi.paging_token(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5)))
    ids = []
    for i in range(3):
        # 3 s real = 300 s simulated ≈ 3,000 noise activities; the noise made as real
        # time passes (1,000 a second here) stays small beside it.
        emu.clock_offset += 3.0
        ids.append(lapi.sync([{"email": f"real{i}@example.com"}])["result"][0]["id"])
    stats = local.get("/_emulator/stats").json()
    assert stats["backgroundActivities"] == emu.world.noise_made > 6000
    assert stats["activities"] == stats["backgroundActivities"] + 23  # 20 + 3 New Lead
    found, sizes = _page_all(lapi, token, activityTypeIds="12")
    assert {a["leadId"] for a in found} >= set(ids)
    assert 0 in sizes[:-1]  # empty pages while moreResult was true
    sends, _ = _page_all(lapi, token, activityTypeIds="6,7")
    assert len(sends) > 1000


def test_late_activity_keeps_its_date_and_a_later_token_skips_it(
    local: AsgiHttp, lapi: Api,
) -> None:
    # Source: paging-tokens.md (tokens are date-based) and the KB "REST API Paging Tokens
    # Use Case" (activities committed after later ones are missed by a moved token).
    emu = _emu(local)
    _world(local, profile="production", timeScale=0.01,
           knobs={"latency_model": {}, "noise_per_hour": 0, "late_share": 1.0,
                  "late_delay_s": 100})
    before = lapi.paging_token(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5)))
    lead = lapi.sync([{"email": "late@example.com"}])["result"][0]["id"]
    created = local.get(f"/_emulator/people/{lead}").json()["createdAt"]
    first = lapi.get("/rest/v1/activities.json", nextPageToken=before, activityTypeIds="12")
    assert first["result"] == [] and first["moreResult"] is False
    saved = first["nextPageToken"]  # a client's checkpoint at the end of the feed
    emu.clock_offset += 2.0  # past the longest commit delay (100 s x 0.01 = 1 s)
    after = lapi.paging_token(time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                            time.gmtime(emu.now() - 1)))
    again, _ = _page_all(lapi, before, activityTypeIds="12")
    assert [(a["leadId"], a["activityDate"]) for a in again] == [(lead, created)]
    assert _page_all(lapi, saved, activityTypeIds="12")[0] == []  # the pitfall
    assert _page_all(lapi, after, activityTypeIds="12")[0] == []


def test_get_leads_pages_with_next_page_token_and_more_result(local: AsgiHttp, lapi: Api) -> None:
    # Source: paging-tokens.md: more results → moreResult true and a nextPageToken.
    _world(local, profile="production", timeScale=0.01, knobs={"lead_page_cap": 3})
    emails = [f"p{i}@example.com" for i in range(10)]
    made = sorted(r["id"] for r in lapi.sync([{"email": e} for e in emails])["result"])
    seen: list[int] = []
    params: dict[str, Any] = {"filterType": "email", "filterValues": ",".join(emails)}
    pages = 0
    while True:
        body = lapi.get("/rest/v1/leads.json", **params)
        pages += 1
        seen += [r["id"] for r in body["result"]]
        if not body.get("moreResult"):
            assert "nextPageToken" not in body
            break
        params["nextPageToken"] = body["nextPageToken"]
    assert pages == 4 and seen == made


def test_two_overlapping_upserts_of_one_new_email_make_two_people(
    local: AsgiHttp, lapi: Api,
) -> None:
    # Source: leads.md: "concurrent or closely timed upserts can create duplicate records".
    _world(local, profile="production", timeScale=0.05,
           knobs={"latency_model": {"POST /rest/v1/leads.json": [0.01, 0.01, 2.0]}})
    body = {"action": "createOrUpdate", "lookupField": "email",
            "input": [{"email": "twin@example.com"}]}
    answers = _gather(local, lapi, [("POST", "/rest/v1/leads.json", body)] * 2)
    results = [r.json()["result"][0] for r in answers]
    assert [r["status"] for r in results] == ["created", "created"]
    assert results[0]["id"] != results[1]["id"]
    found = lapi.get("/rest/v1/leads.json", filterType="email", filterValues="twin@example.com")
    assert len(found["result"]) == 2
    assert lapi.sync([{"email": "twin@example.com"}])["result"][0]["reasons"][0]["code"] == "1007"
    # Control: the same two calls one after the other make one person.
    lapi.sync([{"email": "single@example.com"}])
    assert lapi.sync([{"email": "single@example.com"}])["result"][0]["status"] == "updated"


def test_lost_answer_write_is_applied(local: AsgiHttp, lapi: Api) -> None:
    # Assumption (emulator-gaps.md item 5): a 502/604 or a dropped connection can follow a
    # committed write; the client sees an error, the person exists.
    _world(local, profile="hostile", timeScale=0.01, seed=11,
           knobs={"fault_rates": {"POST /rest/v1/leads.json": {"lost": 1.0}}})
    outcomes = set()
    for i in range(12):
        try:
            r = lapi.raw("POST", "/rest/v1/leads.json",
                         json={"input": [{"email": f"lost{i}@example.com"}]})
            outcomes.add(str(r.status_code) if r.status_code != 200 else _code(r))
            if r.status_code == 502:
                assert r.headers["content-type"].startswith("text/html")
        except Exception:
            outcomes.add("drop")
        found = lapi.get("/rest/v1/leads.json", filterType="email",
                         filterValues=f"lost{i}@example.com")
        assert len(found["result"]) == 1
    assert outcomes == {"502", "604", "drop"}


def test_lost_answer_drops_a_real_connection(http: httpx.Client, api: Api) -> None:
    # Over real HTTP a dropped answer is a broken connection, not a status code.
    r = http.post("/_emulator/profile", json={
        "profile": "hostile", "timeScale": 0.01,
        "knobs": {"fault_rates": {"POST /rest/v1/leads.json": {"lost-drop": 1.0}}}})
    assert r.status_code == 200
    with pytest.raises(httpx.RemoteProtocolError):
        api.raw("POST", "/rest/v1/leads.json", json={"input": [{"email": "cut@example.com"}]})
    found = api.get("/rest/v1/leads.json", filterType="email", filterValues="cut@example.com")
    assert len(found["result"]) == 1


def test_server_timeout_keeps_what_was_written(local: AsgiHttp, lapi: Api) -> None:
    # Source: leads.md "Timeouts": Sync Leads 90 s. Assumption: past it the call answers
    # 604 and the records processed before the deadline stay written.
    _world(local, profile="production", timeScale=0.005,
           knobs={"latency_model": {"POST /rest/v1/leads.json": [0.01, 0.01, 40]}})
    body = lapi.sync([{"email": f"slow{i}@example.com"} for i in range(3)])
    assert body["success"] is False and body["errors"][0]["code"] == "604"
    have = lapi.get("/rest/v1/leads.json", filterType="email",
                    filterValues="slow0@example.com,slow1@example.com,slow2@example.com")
    assert len(have["result"]) == 2


def test_token_expiry_mid_paging(local: AsgiHttp, lapi: Api) -> None:
    # Source: error-codes.md 601/602: get a new token and retry.
    _world(local, profile="hostile", timeScale=0.01,
           knobs={"fault_rates": {"*": {"token": 1.0}}, "late_share": 0, "noise_per_hour": 0})
    token = lapi.paging_token()  # no nextPageToken: not affected
    r = lapi.raw("GET", "/rest/v1/activities.json",
                 params={"nextPageToken": token, "activityTypeIds": "12"})
    assert _code(r) in ("601", "602")
    _world(local, knobs={"fault_rates": {}})
    assert _code(lapi.raw("GET", "/rest/v1/leads/describe2.json")) in ("601", "602")
    lapi.login()
    assert lapi.get("/rest/v1/activities.json", nextPageToken=token,
                    activityTypeIds="12")["success"] is True


def _codes_for(seed: int) -> list[str]:
    app = create_app(MarketoConfig())
    h = AsgiHttp(app)
    try:
        _world(h, profile="hostile", seed=seed, timeScale=0.01,
               knobs={"fault_rates": {"*": {"606": 0.2, "604": 0.2, "edge503": 0.1}}})
        api = Api(h)
        out = []
        for _ in range(40):
            r = api.raw("GET", "/rest/v1/leads/describe2.json")
            out.append(str(r.status_code) if r.status_code != 200 else _code(r))
        world = app.state.emulator.world
        out += [f"{world.sample('POST /rest/v1/leads.json')[0]:.9f}" for _ in range(5)]
        out += [str(world.visible_at(1_000_000)) for _ in range(20)]
        return out
    finally:
        h.close()


def test_same_seed_same_run() -> None:
    # Assumption (README): every random choice comes from the seed.
    first = _codes_for(7)
    assert first == _codes_for(7)
    assert first != _codes_for(8)
    assert {"ok", "606", "604", "503"} <= set(first)


def test_noise_stream_is_a_function_of_the_seed() -> None:
    def stream(seed: int) -> list[tuple[int, int, Any]]:
        emu = create_app(MarketoConfig(seed=seed)).state.emulator
        from emulators.marketo.profiles import apply_profile

        apply_profile(emu.config, "production")
        emu.config.time_scale = 0.001
        emu.store.insert({"email": "a@example.com"}, 0)
        emu.store.insert({"email": "b@example.com"}, 0)
        emu.world.catch_up(1000.0, emu.log, emu.store)
        emu.world.catch_up(1001.0, emu.log, emu.store)
        return [(a.type_id, a.lead_id, a.primary_value) for a in emu.log.items]

    assert len(stream(3)) > 1000
    assert stream(3) == stream(3) and stream(3) != stream(4)
    # A big clock jump makes at most noise_max_backlog draws (no stalled call).
    emu = create_app(MarketoConfig()).state.emulator
    emu.config.noise_per_hour, emu.config.noise_max_backlog = 20_000.0, 500
    emu.world.catch_up(0.0, emu.log, emu.store)
    t0 = time.perf_counter()
    assert emu.world.catch_up(365 * 86400.0, emu.log, emu.store) == 0  # nobody to act
    assert time.perf_counter() - t0 < 0.5 and emu.world.noise_next > 365 * 86400.0


def test_profile_switch_at_run_time(local: AsgiHttp, lapi: Api) -> None:
    # Assumption (README "World profiles"): the admin API switches the world, data stays.
    assert local.get("/_emulator/profile").json()["profile"] == "exact"
    people = lapi.sync([{"email": f"s{i}@example.com"} for i in range(5)])["result"]
    made = [r["id"] for r in people]
    position = lapi.paging_token()
    emails = ",".join(f"s{i}@example.com" for i in range(5))
    assert "moreResult" not in lapi.get("/rest/v1/leads.json", filterType="email",
                                        filterValues=emails)
    view = _world(local, profile="production", seed=3, timeScale=0.01,
                  knobs={"lead_page_cap": 2, "noise_per_hour": 0, "late_share": 0})
    assert (view["profile"], view["seed"], view["timeScale"]) == ("production", 3, 0.01)
    assert view["knobs"]["paging_tokens"] == "date"
    assert lapi.get("/rest/v1/leads.json", filterType="email",
                    filterValues=emails)["moreResult"] is True
    # A position token taken before the switch still reads the same activities.
    found, _ = _page_all(lapi, position, activityTypeIds="12")
    assert [a["leadId"] for a in found] == made
    view = _world(local, profile="exact", timeScale=1.0)
    assert view["knobs"]["lead_page_cap"] == 0 and view["knobs"]["latency_model"] == {}
    assert local.post("/_emulator/profile", json={"profile": "nope"}).status_code == 400
    assert local.post("/_emulator/limits", json={"profile": "hostile"}).json()[
        "fault_rates"]["POST /rest/v1/leads.json"] == {"lost": 0.03}


def test_held_connection_keeps_its_slot_then_answers_604(local: AsgiHttp, lapi: Api) -> None:
    # Assumption (README "World profiles"): a held call occupies a concurrency slot
    # (error-codes.md 615) until the server gives up with 604 (error-codes.md).
    _world(local, profile="hostile", timeScale=0.01,
           knobs={"fault_rates": {"GET /rest/v1/leads/describe.json": {"hold": 1.0}},
                  "client_hold_s": 30, "max_concurrent": 1, "latency_model": {}})
    lapi.login()
    t0 = time.perf_counter()
    held, other = _gather(local, lapi, [("GET", "/rest/v1/leads/describe.json", None),
                                        ("GET", "/rest/v1/leads/describe2.json", None)])
    assert _code(held) == "604" and time.perf_counter() - t0 >= 0.3
    assert _code(other) == "615"


def test_other_integrations_share_the_rate_window(local: AsgiHttp, lapi: Api) -> None:
    # Source: rest-api.md: the 100 / 20 s window is shared by every integration of the
    # instance. Assumption: other integrations call evenly (`shared_calls_per_20s`).
    # Real time (scale 1) so the few ms these calls take add at most one neighbour call.
    knobs = {"latency_model": {}, "max_concurrent": 0, "rate_limit_calls": 50,
             "shared_calls_per_20s": 0}
    _world(local, profile="production", timeScale=1.0, knobs=knobs)
    emu = _emu(local)
    lapi.login()
    alone = [_code(lapi.raw("GET", "/rest/v1/leads/describe2.json")) for _ in range(12)]
    assert alone == ["ok"] * 12
    _world(local, knobs={**knobs, "shared_calls_per_20s": 40})
    emu.clock_offset += 25  # our calls leave the window
    lapi.get("/rest/v1/leads/describe2.json")  # the neighbours start calling
    emu.clock_offset += 25  # a full window of their 40 calls
    codes = [_code(lapi.raw("GET", "/rest/v1/leads/describe2.json")) for _ in range(12)]
    ok = codes.count("ok")
    assert 8 <= ok <= 10 and codes == ["ok"] * ok + ["606"] * (12 - ok)
