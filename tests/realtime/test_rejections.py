"""Dynamics says no: a business rule or plug-in, field security, duplicate detection,
an owner that does not exist. Each answers 422 with Dynamics' code and message, shows
in the person's activity log and in the sync error table, and creates nothing."""

from __future__ import annotations

from typing import Any

from tests.realtime.support import SALES_USER_ID, Webhook, activities, attributes, snapshot
from tests.scenarios.world import World


def rejected(world: World, hook: Webhook, mid: int, **body: Any) -> dict[str, Any]:
    """Call the webhook, expect a 422 that changed nothing but the two error logs."""
    before = snapshot(world)
    r = hook.sync(mid, **body)
    assert r.status_code == 422, r.text
    reply: dict[str, Any] = r.json()
    assert reply["status"] == "rejected" and reply["code"] and reply["message"]
    after = snapshot(world)
    assert after["errors"] == before["errors"] + 1
    assert after["marketo_activities"] == before["marketo_activities"] + 1
    unchanged = ("leads", "contacts", "links")
    assert {k: after[k] for k in unchanged} == {k: before[k] for k in unchanged}
    assert "dynamicsId" not in (world.person(mid) or {})
    # The person's activity log carries Dynamics' own code and message...
    (act,) = activities(world, mid, "Dynamics Sync Error")
    assert act["primaryAttributeValue"] == reply["code"]
    attrs = attributes(act)
    assert attrs["errorMessage"] == reply["message"]
    assert (attrs["operation"], attrs["direction"]) == ("create", "to-dynamics")
    # ... and so does the sync error table.
    store = world.store()
    (row,) = [e for e in store.list_errors() if e.get("marketoId") == mid]
    assert (row["code"], row["message"]) == (reply["code"], reply["message"])
    assert row["entity"] == attrs["entity"] == body.get("syncAs", "lead")
    return reply


def test_business_rule_rejection_then_success_once_fixed(world: World, hook: Webhook):
    rule = world.dynamics_admin(
        "POST", "rules",
        json={"table": "lead", "condition": "companyname eq null",
              "message": "Company is required for leads.", "on": ["create"]},
    )  # fmt: skip
    mid = world.marketo_create(email="nocompany@example.com", lastName="Solo")
    reply = rejected(world, hook, mid)
    assert (reply["code"], reply["message"]) == ("0x80040265", "Company is required for leads.")
    # Nothing sticky: fixed in Marketo (or the rule relaxed), the next call creates.
    world.dynamics_admin("DELETE", f"rules/{rule['id']}")
    assert hook.sync(mid).json()["status"] == "created"


def test_field_security_rejection(world: World, hook: Webhook):
    world.dynamics_admin(
        "PUT", "field-security",
        json={"table": "contact", "column": "telephone1", "secured": True,
              "permissions": {"sync-app": {"read": True, "create": False, "update": False}}},
    )  # fmt: skip
    mid = world.marketo_create(email="phone@example.com", lastName="Bell", phone="+1 555 0100")
    reply = rejected(world, hook, mid, syncAs="contact")
    assert reply["code"] == "0x8004F502"


def test_duplicate_detection_rejection(world: World, hook: Webhook):
    world.dyn_create("lead", lastname="Existing", emailaddress1="dup@example.com")
    mid = world.marketo_create(email="DUP@example.com", lastName="Newcomer")
    reply = rejected(world, hook, mid)
    assert reply["code"] == "0x80040333"


def test_owner_that_does_not_exist(world: World, hook: Webhook):
    mid = world.marketo_create(email="owner@example.com", lastName="Orphan")
    reply = rejected(world, hook, mid, assignTo="00000000-0000-4000-8000-0000000000ff")
    assert reply["code"] == "0x80040217"


def test_owner_by_email(world: World, hook: Webhook):
    mid = world.marketo_create(email="byemail@example.com", lastName="Owned")
    r = hook.sync(mid, assignTo="sales-user@emulator.local")
    assert r.status_code == 200, r.text
    record = world.dyn_get("lead", r.json()["dynamicsId"])
    assert record is not None and record["_ownerid_value"] == SALES_USER_ID


def test_a_column_the_identity_may_not_create_is_left_out_and_said(world: World, hook: Webhook):
    world.dynamics_admin(
        "PUT", "field-security",
        json={"table": "contact", "column": "telephone1", "secured": True,
              "permissions": {"sync-app": {"read": True, "create": False, "update": True}}},
    )  # fmt: skip
    world.cycle()  # the cycle reads field access; the webhook uses what it found
    mid = world.marketo_create(email="bell@example.com", lastName="Bell", phone="+1 555 0100")
    r = hook.sync(mid, syncAs="contact")
    assert r.status_code == 200, r.text
    reply = r.json()
    assert reply["status"] == "created"
    assert reply["leftOut"] == [
        {"field": "phone", "column": "telephone1", "reason": "the sync identity may not create it"}
    ]
    record = world.dyn_get("contact", reply["dynamicsId"])
    assert record is not None and record["lastname"] == "Bell" and record["telephone1"] is None
    (event,) = world.store().person_events(mid)
    assert "phone" in str(event["leftOut"])
