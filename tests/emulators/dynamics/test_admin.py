"""Admin API: reset, deterministic seed, statistics, users."""

from __future__ import annotations

import httpx

from tests.emulators.dynamics.conftest import Dv


def test_seed_is_deterministic_and_reset_clears(dv: Dv, admin: httpx.Client) -> None:
    admin.post("/seed", json={"contacts": 5, "leads": 4, "seed": 7})
    first = dv.get("contacts", params={"$select": "emailaddress1,new_marketoid"}).json()["value"]
    assert len(first) == 5 and all("@" in r["emailaddress1"] for r in first)
    assert len(dv.get("leads").json()["value"]) == 4
    admin.post("/reset")
    assert dv.get("contacts").json()["value"] == []
    admin.post("/seed", json={"contacts": 5, "leads": 4, "seed": 7})
    again = dv.get("contacts", params={"$select": "emailaddress1,new_marketoid"}).json()["value"]
    strip = [{k: v for k, v in r.items() if k != "@odata.etag"} for r in again]
    assert strip == [{k: v for k, v in r.items() if k != "@odata.etag"} for r in first]


def test_stats_per_endpoint(dv: Dv, admin: httpx.Client) -> None:
    dv.get("contacts")
    dv.get("contacts(00000000-0000-0000-0000-000000000001)")
    dv.post("contacts", json={"lastname": "s"})
    stats = admin.get("/stats").json()
    assert stats["GET contacts"]["calls"] == 2 and stats["GET contacts"]["errors"] == 1
    assert stats["POST contacts"]["calls"] == 1
    assert stats["GET contacts"]["execution_ms"] > 0
    admin.delete("/stats")
    assert admin.get("/stats").json() == {}


def test_users_and_unknown_route(admin: httpx.Client) -> None:
    assert {u["client_id"] for u in admin.get("/users").json()} == {"sync-app", "sales-user"}
    assert admin.get("/nope").status_code == 404
