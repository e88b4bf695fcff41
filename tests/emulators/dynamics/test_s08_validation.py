"""§8 Errors and validation: MaxLength, option ranges, SystemRequired, duplicates, rules."""

from __future__ import annotations

import httpx

from tests.emulators.dynamics.conftest import Dv


def test_max_length(dv: Dv) -> None:
    r = dv.post("contacts", json={"lastname": "x", "new_marketoid": "1" * 21})
    assert r.status_code == 400
    assert r.json()["error"] == {
        "code": "0x80044331",
        "message": "A validation error occurred.  The length of the 'new_marketoid' attribute of "
                   "the 'contact' entity exceeded the maximum allowed length of '20'."}


def test_option_set_range(dv: Dv) -> None:
    r = dv.post("contacts", json={"lastname": "x", "leadsourcecode": 999})
    assert r.status_code == 400 and r.json()["error"]["code"] == "0x8004431A"


def test_type_mismatch_and_unknown_property(dv: Dv) -> None:
    assert dv.post("contacts", json={"donotemail": "yes"}).status_code == 400
    r = dv.post("contacts", json={"nosuch": 1})
    assert r.status_code == 400 and "does not exist on type" in r.json()["error"]["message"]


def test_application_required_not_enforced_system_required_is(dv: Dv) -> None:
    assert dv.post("contacts", json={"firstname": "No last name"}).status_code == 204
    c = dv.create("contacts", {"lastname": "x"})
    r = dv.patch(f"contacts({c['contactid']})", json={"statecode": None},
                 headers={"If-Match": "*"})
    assert r.status_code == 400


def test_duplicate_detection_only_when_requested(dv: Dv) -> None:
    dv.create("contacts", {"lastname": "a", "emailaddress1": "dup@example.com"})
    assert dv.post("contacts", json={"lastname": "b", "emailaddress1": "DUP@example.com"}
                   ).status_code == 204
    r = dv.post("contacts", json={"lastname": "c", "emailaddress1": "dup@example.com"},
                headers={"MSCRM.SuppressDuplicateDetection": "false"})
    assert r.status_code == 412 and r.json()["error"]["code"] == "0x80040333"


def test_business_rule_via_admin(dv: Dv, admin: httpx.Client) -> None:
    r = admin.post("/rules", json={"table": "contact",
                                   "condition": "endswith(emailaddress1,'@blocked.example')",
                                   "message": "Blocked domain.", "on": ["create", "update"]})
    assert r.status_code == 201
    r = dv.post("contacts", json={"lastname": "x", "emailaddress1": "a@blocked.example"})
    assert r.status_code == 400
    assert r.json()["error"] == {"code": "0x80040265", "message": "Blocked domain."}
    c = dv.create("contacts", {"lastname": "ok", "emailaddress1": "a@fine.example"})
    r = dv.patch(f"contacts({c['contactid']})", json={"emailaddress1": "b@blocked.example"},
                 headers={"If-Match": "*"})
    assert r.status_code == 400
    admin.delete("/rules")
    assert dv.post("contacts", json={"emailaddress1": "a@blocked.example"}).status_code == 204


def test_bad_rule_condition_rejected(admin: httpx.Client) -> None:
    assert admin.post("/rules", json={"table": "contact", "condition": "nosuch eq 1"}
                      ).status_code == 400
