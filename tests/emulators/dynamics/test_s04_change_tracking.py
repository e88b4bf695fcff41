"""§4 Change tracking: snapshot + deltaLink on last page, deltas, $deletedEntity, expiry."""

from __future__ import annotations

from typing import Any

import httpx

from tests.emulators.dynamics.conftest import Dv

TRACK = {"Prefer": "odata.track-changes,odata.maxpagesize=5"}


def _snapshot(dv: Dv) -> tuple[list[dict[str, Any]], str]:
    url = "contacts?$select=firstname,lastname,_modifiedby_value"
    rows: list[dict[str, Any]] = []
    while True:
        r = dv.get(url, headers=TRACK)
        assert r.status_code == 200, r.text
        body = r.json()
        rows += body["value"]
        if "@odata.nextLink" in body:
            assert "@odata.deltaLink" not in body
            url = body["@odata.nextLink"]
            continue
        assert "odata.track-changes" in r.headers["Preference-Applied"]
        return rows, body["@odata.deltaLink"]


def test_snapshot_then_delta_with_changes_and_deletes(dv: Dv, sales: Dv,
                                                      admin: httpx.Client) -> None:
    admin.post("/seed", json={"contacts": 12})
    rows, delta = _snapshot(dv)
    assert len(rows) == 12
    assert delta.startswith(dv.base + "/api/data/v9.2/contacts?$select=")
    assert "$deltatoken=" in delta
    # nothing changed yet
    r = dv.get(delta, headers=TRACK)
    assert r.json()["value"] == [] and "@odata.deltaLink" in r.json()
    changed = rows[0]["contactid"]
    deleted = rows[1]["contactid"]
    assert sales.patch(f"contacts({changed})", json={"firstname": "Edited"},
                       headers={"If-Match": "*"}).status_code == 204
    assert dv.delete(f"contacts({deleted})").status_code == 204
    new = dv.create("contacts", {"lastname": "New"})
    temp = dv.create("contacts", {"lastname": "Temp"})
    dv.delete(f"contacts({temp['contactid']})")
    body = dv.get(delta, headers=TRACK).json()
    assert body["@odata.context"].endswith("/$delta")
    upserts = [v for v in body["value"] if "reason" not in v]
    deletes = [v for v in body["value"] if v.get("reason") == "deleted"]
    assert {u["contactid"] for u in upserts} == {changed, new["contactid"]}
    assert {d["id"] for d in deletes} == {deleted, temp["contactid"]}
    assert all(d["@odata.context"].endswith("$metadata#contacts/$deletedEntity") for d in deletes)
    assert body["value"].index(deletes[0]) > body["value"].index(upserts[-1])
    edited = next(u for u in upserts if u["contactid"] == changed)
    assert edited["firstname"] == "Edited" and set(edited) >= {"lastname", "_modifiedby_value"}
    # the fresh deltaLink only reports later changes
    assert dv.get(body["@odata.deltaLink"], headers=TRACK).json()["value"] == []


def test_delta_pages_when_many_changes(dv: Dv, admin: httpx.Client) -> None:
    _, delta = _snapshot(dv)
    admin.post("/seed", json={"contacts": 12})
    r = dv.get(delta, headers=TRACK).json()
    got = list(r["value"])
    while "@odata.nextLink" in r:
        r = dv.get(r["@odata.nextLink"], headers=TRACK).json()
        got += r["value"]
    assert len(got) == 12 and "@odata.deltaLink" in r


def test_filter_orderby_expand_top_rejected_with_tracking(dv: Dv) -> None:
    for opt, value in (("$filter", "lastname eq 'x'"), ("$orderby", "lastname"),
                       ("$expand", "parentcustomerid_account"), ("$top", "1")):
        r = dv.get("contacts", params={opt: value}, headers=TRACK)
        assert r.status_code == 400
        assert r.json()["error"]["message"] == \
            f'The "{opt}" query parameter isn\'t supported when Change Tracking is enabled.'


def test_tracking_requires_table_flag(dv: Dv, admin: httpx.Client) -> None:
    assert dv.get("accounts", headers=TRACK).status_code == 400
    admin.put("/change-tracking", json={"table": "account", "enabled": True})
    assert dv.get("accounts", headers=TRACK).status_code == 200


def test_expired_token_gives_documented_error(dv: Dv, admin: httpx.Client) -> None:
    _, delta = _snapshot(dv)
    admin.post("/change-tracking/age", json={"days": 8})
    r = dv.get(delta, headers=TRACK)
    assert r.status_code == 400
    assert r.json()["error"] == {"code": "0x80044352", "message": "Version stamp associated "
                                 "with the client has expired. Please perform a full sync."}
