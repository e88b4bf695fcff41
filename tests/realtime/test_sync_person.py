"""The "Sync Person to Microsoft" webhook through the local functions host: creating,
already-synced people, the shared secret, body validation and token renderings."""

from __future__ import annotations

import re
from typing import Any

from tests.realtime.support import (
    SALES_USER_ID,
    SYNC_USER_ID,
    Webhook,
    activities,
    attributes,
    dynamics_records,
    snapshot,
)
from tests.scenarios.world import World

GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def new_person(world: World, **values: Any) -> int:
    values = {
        "email": "grace@example.com", "firstName": "Grace", "lastName": "Hopper",
        "company": "Navy", "title": "Rear Admiral",
    } | values  # fmt: skip
    return world.marketo_create(**values)


def test_new_person_becomes_a_linked_lead(world: World, hook: Webhook):
    mid = new_person(world)
    r = hook.sync(mid)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "created" and body["dynamicsType"] == "lead"
    assert GUID.fullmatch(body["dynamicsId"])
    (record,) = dynamics_records(world, "lead", mid)
    assert record["leadid"] == body["dynamicsId"]
    assert (record["firstname"], record["lastname"]) == ("Grace", "Hopper")
    assert (record["companyname"], record["jobtitle"]) == ("Navy", "Rear Admiral")
    assert record["emailaddress1"] == "grace@example.com"
    # The Dynamics id and type are written back on the person.
    person = world.person(mid)
    assert person is not None
    assert (person["dynamicsId"], person["dynamicsType"]) == (body["dynamicsId"], "lead")
    # Link and base are in Table Storage, so the background cycle treats it as synced.
    store = world.store()
    link = store.links_by_marketo([mid])[mid]
    assert (link.entity, link.dynamics_id) == ("lead", body["dynamicsId"])
    assert {"email", "firstName", "lastName", "company", "title"} <= set(link.base)
    assert store.person_events(mid)[0]["note"] == "created by Sync Person to Microsoft"
    # ... and the person's activity log says so.
    (act,) = activities(world, mid, "Sync Person to Microsoft")
    assert act["primaryAttributeValue"] == body["dynamicsId"]
    assert attributes(act)["syncAs"] == "lead"
    # The next background cycle finds nothing to do for the new pair.
    summary = world.cycle()
    counts = summary["counts"]
    assert counts["to_dynamics"] == counts["to_marketo"] == counts["created_in_marketo"] == 0


def test_sync_as_contact_with_an_owner(world: World, hook: Webhook):
    mid = new_person(world, email="ada@example.com", firstName="Ada", lastName="Lovelace")
    # Marketo may render the owner id in braces and upper case, as Dynamics shows it.
    r = hook.sync(mid, syncAs="Contact", assignTo="{" + SALES_USER_ID.upper() + "}")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "created" and r.json()["dynamicsType"] == "contact"
    assert dynamics_records(world, "lead", mid) == []
    (record,) = dynamics_records(world, "contact", mid)
    assert record["contactid"] == r.json()["dynamicsId"]
    assert record["_ownerid_value"] == SALES_USER_ID
    assert "companyname" not in record or record["companyname"] is None
    assert attributes(activities(world, mid, "Sync Person to Microsoft")[0]) == {
        "syncAs": "contact",
        "assignTo": SALES_USER_ID,
    }
    assert world.person(mid)["dynamicsType"] == "contact"  # type: ignore[index]


def test_default_owner_is_the_sync_user(world: World, hook: Webhook):
    mid = new_person(world)
    r = hook.sync(mid, assignTo="")
    assert r.status_code == 200, r.text
    (record,) = dynamics_records(world, "lead", mid)
    assert record["_ownerid_value"] == SYNC_USER_ID


def test_second_delivery_is_already_synced_and_writes_nothing(world: World, hook: Webhook):
    mid = new_person(world)
    first = hook.sync(mid).json()
    before = snapshot(world)
    again = hook.sync(mid, syncAs="contact")
    assert again.status_code == 200
    assert again.json() == {
        "status": "already-synced",
        "dynamicsId": first["dynamicsId"],
        "dynamicsType": "lead",
    }
    assert snapshot(world) == before
    assert len(activities(world, mid, "Sync Person to Microsoft")) == 1


def test_person_linked_by_the_background_cycle_is_already_synced(world: World, hook: Webhook):
    cid = world.dyn_create(
        "contact", firstname="Alan", lastname="Turing", emailaddress1="alan@example.com"
    )
    world.cycle()
    (person,) = world.people_by_email("alan@example.com")
    before = snapshot(world)
    r = hook.sync(int(person["id"]))
    assert r.json() == {"status": "already-synced", "dynamicsId": cid, "dynamicsType": "contact"}
    assert snapshot(world) == before


def test_person_whose_record_was_deleted_in_dynamics_gets_a_new_one(world: World, hook: Webhook):
    mid = new_person(world)
    old = hook.sync(mid).json()["dynamicsId"]
    world.cycle()  # the first cycle takes the snapshot the next one's delta starts from
    world.dyn_delete("lead", old)
    world.cycle()  # flags the person as deleted in Dynamics and closes the link
    assert world.person(mid)["dynamicsDeleted"] is True  # type: ignore[index]
    r = hook.sync(mid)
    assert r.json()["status"] == "created" and r.json()["dynamicsId"] != old
    person = world.person(mid)
    assert person is not None and person["dynamicsDeleted"] is False
    assert person["dynamicsId"] == r.json()["dynamicsId"]


def test_unknown_person_is_404_and_writes_nothing(world: World, hook: Webhook):
    before = snapshot(world)
    r = hook.sync(424242)
    assert r.status_code == 404 and r.json()["status"] == "not-found"
    assert snapshot(world) == before


def test_missing_or_wrong_secret_is_401_and_does_nothing(world: World, hook: Webhook):
    mid = new_person(world)
    before, calls = snapshot(world), world.api_calls()
    attempts: list[dict[str, str]] = [
        {},
        {"x-sync-secret": "wrong"},
        {"x-sync-secret": ""},
        {"x-sync-secret": "test-webhook-secre"},
        {"x-sync-secret": "test-webhook-secret-and-more"},
        {"x-sync-secret": "TEST-WEBHOOK-SECRET"},
        {"x-other-secret": "test-webhook-secret"},
        {"authorization": "Bearer test-webhook-secret"},
    ]
    for headers in attempts:
        r = hook.call({"leadId": mid}, secret=None, headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["status"] == "unauthorized", headers
    assert world.api_calls() == calls and snapshot(world) == before


def test_secret_header_name_is_case_insensitive(world: World, hook: Webhook):
    mid = new_person(world)
    r = hook.call({"leadId": mid}, secret=None, headers={"X-Sync-Secret": "test-webhook-secret"})
    assert r.status_code == 200 and r.json()["status"] == "created"


def test_function_key_is_required(world: World, hook: Webhook):
    mid = new_person(world)
    assert hook.call({"leadId": mid}, key=None).status_code == 401
    assert hook.call({"leadId": mid}, key="nope").status_code == 401
    assert "dynamicsId" not in world.person(mid)  # type: ignore[operator]


INVALID_BODIES: list[tuple[bytes, str]] = [
    (b"", "body"),
    (b"not json", "body"),
    (b"\xff\xfe", "body"),
    (b"[1, 2]", "body"),
    (b'"leadId"', "body"),
    (b"{}", "leadId"),
    (b'{"leadId": null}', "leadId"),
    (b'{"leadId": ""}', "leadId"),
    (b'{"leadId": "abc"}', "leadId"),
    (b'{"leadId": 1.5}', "leadId"),
    (b'{"leadId": "1.5"}', "leadId"),
    (b'{"leadId": -3}', "leadId"),
    (b'{"leadId": 0}', "leadId"),
    (b'{"leadId": true}', "leadId"),
    (b'{"leadId": [1]}', "leadId"),
    (b'{"leadId": 99999999999}', "leadId"),
    (b'{"leadId": "\\u0661\\u0662"}', "leadId"),
    (b'{"leadId": 1e400}', "leadId"),
    (b'{"leadId": 1, "syncAs": "account"}', "syncAs"),
    (b'{"leadId": 1, "syncAs": 2}', "syncAs"),
    (b'{"leadId": 1, "assignTo": "bob"}', "assignTo"),
    (b'{"leadId": 1, "assignTo": 12}', "assignTo"),
    (b'{"leadId": 1, "assignTo": "a b@c.d"}', "assignTo"),
    (b'{"leadId": "' + b"1" * 5000 + b'"}', "leadId"),
    (b"[" * 30_000, "body"),
    (b'{"leadId": 1, "pad": "' + b"x" * 70_000 + b'"}', "body"),
]


def test_invalid_body_is_400_naming_the_field_and_does_nothing(world: World, hook: Webhook):
    new_person(world)  # id 1 exists: only the validation may stop these
    before, calls = snapshot(world), world.api_calls()
    for raw, field in INVALID_BODIES:
        r = hook.call(raw=raw)
        assert r.status_code == 400, (raw[:60], r.text)
        assert r.json()["status"] == "invalid", raw[:60]
        assert r.json()["field"] == field, (raw[:60], r.json())
    assert world.api_calls() == calls and snapshot(world) == before


def test_token_renderings_are_tolerated(world: World, hook: Webhook):
    """However Marketo renders the tokens (number or string, quoted by Marketo, by the
    template, by both or by neither, empty), the person is synced."""
    bodies = [
        '{{"leadId": {id}}}',
        '{{"leadId": "{id}", "syncAs": "lead"}}',
        '{{"leadId": " {id} ", "syncAs": "", "assignTo": ""}}',
        '{{"leadId": {id}.0, "syncAs": null, "assignTo": null}}',
        '{{"LeadID": {id}, "SYNCAS": "LEAD"}}',
        # A string token quoted by both Marketo and the template; an empty one too.
        '{{"leadId": {id}, "syncAs": ""contact"", "assignTo": """"}}',
        # ...by neither: bare text, and an empty token that leaves nothing.
        '{{"leadId": {id}, "syncAs": contact, "assignTo": }}',
        '{{"leadId": {id}, "assignTo": ""' + SALES_USER_ID + '""}}',
        '\ufeff{{"leadId": {id}}}\n',
    ]
    for n, template in enumerate(bodies):
        mid = new_person(world, email=f"p{n}@example.com")
        r = hook.call(raw=template.format(id=mid).encode())
        assert r.status_code == 200, (template, r.text)
        assert r.json()["status"] == "created", template
        entity = "contact" if "contact" in template else "lead"
        assert r.json()["dynamicsType"] == entity, template
        (record,) = dynamics_records(world, entity, mid)
        owner = SALES_USER_ID if SALES_USER_ID in template else SYNC_USER_ID
        assert record["_ownerid_value"] == owner, template
