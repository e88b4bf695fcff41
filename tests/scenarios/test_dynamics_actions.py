"""The sync meets Dataverse's own actions: QualifyLead, Merge, a privilege revoked mid-run.

Each scenario is what a salesperson (or an administrator) does in Dynamics through the
Web API, followed by real cycles. They pin down that the emulator's shapes (emulator
README: QualifyLead, Merge, security roles) fit what the engine reads today.
"""

from __future__ import annotations

import asyncio

from sync_core.entrypoints import run_cycle
from tests.scenarios.test_delta_sync import linked_lead
from tests.scenarios.world import World


def test_a_lead_qualified_with_the_qualifylead_action_keeps_its_person(world: World):
    lid, mid = linked_lead(world)
    created = world.dyn_qualify(lid, account=True)
    cid = created["contact"]
    assert world.dyn_get("contact", cid)["_originatingleadid_value"] == lid  # type: ignore[index]
    summary = world.cycle()
    assert summary["counts"]["created_in_marketo"] == 0
    (person,) = world.people_by_email("grace@example.com")
    assert int(person["id"]) == mid
    assert person["dynamicsType"] == "contact" and person["dynamicsId"] == cid
    world.dyn_edit("contact", cid, jobtitle="Admiral")
    world.cycle()
    assert world.person(mid)["title"] == "Admiral"  # type: ignore[index]


def test_a_merge_keeps_the_subordinate_as_an_inactive_record(world: World):
    a = world.dyn_create("contact", firstname="Ada", lastname="L", emailaddress1="a@x.test")
    b = world.dyn_create(
        "contact", firstname="Ada", lastname="L", emailaddress1="b@x.test", telephone1="555"
    )
    world.cycle()
    world.dyn_merge("contact", a, b)
    summary = world.cycle()
    assert summary["counts"]["deleted_in_dynamics"] == 0  # an update, not a delete
    master = world.person(int(world.people_by_email("a@x.test")[0]["id"]))
    assert master is not None and master["phone"] == "555"  # filled by the merge
    sub = world.dyn_get("contact", b)
    assert sub is not None and sub["statecode"] == 1 and sub["_masterid_value"] == a


def test_revoked_read_privilege_fails_the_cycle_until_granted_back(world: World):
    world.dyn_create("contact", firstname="Ada", lastname="L", emailaddress1="a@x.test")
    world.dyn_revoke("contact", "Read")
    failed = asyncio.run(run_cycle(world.settings(), ca_bundle=world.ca_bundle))
    assert failed["outcome"] == "failed"
    assert "0x80040220" in failed["message"] and "prvReadContact" in failed["message"]
    assert not world.people_by_email("a@x.test")
    world.dyn_grant("contact", "Read")
    world.cycle()
    assert world.people_by_email("a@x.test")
