"""§10 Identity and echo suppression: WhoAmI per user, modifiedby stamping by caller."""

from __future__ import annotations

from tests.emulators.dynamics.conftest import SALES_USER, SYNC_USER, Dv


def test_whoami_per_user(dv: Dv, sales: Dv) -> None:
    assert dv.get("WhoAmI").json()["UserId"] == SYNC_USER
    body = sales.get("WhoAmI()").json()
    assert body["UserId"] == SALES_USER and {"BusinessUnitId", "OrganizationId"} <= set(body)


def test_echo_detection_via_modifiedby_in_delta(dv: Dv, sales: Dv) -> None:
    track = {"Prefer": "odata.track-changes"}
    delta = dv.get("contacts?$select=lastname,_modifiedby_value,versionnumber",
                   headers=track).json()["@odata.deltaLink"]
    mine = dv.create("contacts", {"lastname": "by sync"})
    theirs = sales.create("contacts", {"lastname": "by person"})
    rows = {v["contactid"]: v for v in dv.get(delta, headers=track).json()["value"]}
    assert rows[mine["contactid"]]["_modifiedby_value"] == SYNC_USER
    assert rows[theirs["contactid"]]["_modifiedby_value"] == SALES_USER
