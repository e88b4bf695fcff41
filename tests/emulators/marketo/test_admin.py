"""Admin API: deterministic seeding, reset, stats/quota, latency, limits, person log."""

from __future__ import annotations

import time

import httpx

from emulators.marketo import MarketoConfig, create_app
from emulators.marketo.seed import seed_people
from tests.emulators.marketo.support import Api


def test_seed_is_deterministic_and_queryable(http: httpx.Client, api: Api) -> None:
    r = http.post("/_emulator/seed", json={"count": 50, "seed": 7, "linked": 0.5}).json()
    assert r == {"created": 50, "firstId": 1, "lastId": 50, "total": 50}
    first = http.get("/_emulator/people/1").json()
    http.post("/_emulator/reset")
    http.post("/_emulator/seed", json={"count": 50, "seed": 7, "linked": 0.5})
    again = http.get("/_emulator/people/1").json()
    strip = ("createdAt", "updatedAt")
    assert {k: v for k, v in first.items() if k not in strip} == \
        {k: v for k, v in again.items() if k not in strip}
    found = api.get("/rest/v1/leads.json", filterType="email", filterValues=first["email"].upper(),
                    fields="firstName,company")
    assert found["result"][0]["id"] == 1
    people = [http.get(f"/_emulator/people/{i}").json() for i in range(1, 51)]
    linked = sum(1 for p in people if "dynamicsId" in p)
    assert 10 < linked < 40


def test_stats_reset_latency_and_limits(http: httpx.Client, api: Api) -> None:
    api.get("/rest/v1/leads/describe2.json")
    stats = http.get("/_emulator/stats").json()
    assert stats["quota"]["used"] == 1 and stats["quota"]["limit"] == 50_000
    http.post("/_emulator/latency", json={"endpoint": "GET /rest/v1/leads/describe2.json",
                                          "fixed_s": 0.2})
    t0 = time.monotonic()
    api.get("/rest/v1/leads/describe2.json")
    assert time.monotonic() - t0 >= 0.2
    http.delete("/_emulator/latency")
    cfg = http.patch("/_emulator/limits", json={"max_batch": 2, "daily_quota": 0}).json()
    assert cfg["max_batch"] == 2 and cfg["daily_quota"] == 0
    assert http.patch("/_emulator/limits", json={"bogus": 1}).status_code == 400
    http.post("/_emulator/reset", json={"defaults": True})
    assert http.get("/_emulator/limits").json()["max_batch"] == 300
    assert http.get("/_emulator/stats").json()["totals"]["calls"] == 0


def test_person_activity_log(http: httpx.Client, api: Api, marketer: Api) -> None:
    lead_id = api.sync([{"email": "log@example.com"}])["result"][0]["id"]
    marketer.sync([{"email": "log@example.com", "leadStatus": "Qualified"}])
    log = http.get(f"/_emulator/people/{lead_id}/activities").json()
    assert [a["activityTypeId"] for a in log] == [12, 13]
    users = [{x["name"]: x["value"] for x in a["attributes"]}["Modifying User"] for a in log]
    assert users == ["sync-app@marketo.emulator", "marketing-user@marketo.emulator"]


def test_million_people_storage_is_compact() -> None:
    """Cheap proxy for the 1M-in-3GB target: the per-person footprint of seeded rows."""
    import tracemalloc

    app = create_app(MarketoConfig())
    tracemalloc.start()
    seed_people(app.state.emulator, 20_000, 1)
    size, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert size / 20_000 < 2_500  # bytes per person → < 2.5 GB per million
