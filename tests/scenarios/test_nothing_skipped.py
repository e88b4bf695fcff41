"""Nothing silently skipped: a set-up step the cycle needs (the Marketo activity types) is
done by the cycle itself when it is missing, or every summary says why it cannot be."""

from __future__ import annotations

from tests.scenarios.test_delta_sync import linked_contact
from tests.scenarios.world import World


def test_missing_activity_types_are_created_by_the_cycle_as_setup_does(world: World):
    # No `setup` here: the admin skipped it.
    _, mid = linked_contact(world)
    world.marketo_edit(mid, title="x" * 150)  # Dataverse rejects it (jobtitle holds 100)
    summary = world.cycle()
    assert summary["activityLog"] == "on" and summary["counts"]["rejected"] == 1
    log = world.marketo_admin("GET", f"people/{mid}/activities")
    assert sum("0x80044331" in str(a) for a in log) == 1


def test_an_activity_log_that_cannot_be_set_up_is_reported_in_every_summary(world: World):
    world.marketo_admin(
        "POST", "faults",
        json={"endpoint": "POST /rest/v1/activities/external/type.json", "kind": "603"},
    )  # fmt: skip
    world.dyn_create("contact", lastname="Logless", emailaddress1="logless@example.com")
    first = world.cycle()
    assert first["outcome"] == "succeeded"
    assert first["activityLog"].startswith("off: the Marketo activity types could not be created")
    assert "Activity Metadata" in first["activityLog"]
    assert world.cycle()["activityLog"] == first["activityLog"]


def test_activity_types_recreated_after_a_cycle_cached_them_still_get_the_log_line(world: World):
    world.setup()
    _, mid = linked_contact(world)
    world.marketo_edit(mid, title="y" * 150)
    assert world.cycle()["counts"]["rejected"] == 1  # this process now knows the type's id
    # An admin deletes the type and runs setup again: the type comes back with a new id.
    world.marketo("POST", "/rest/v1/activities/external/type/msdynSyncError/delete.json")
    world.setup()
    world.marketo_edit(mid, title="z" * 150)
    assert world.cycle()["counts"]["rejected"] == 1
    log = world.marketo_admin("GET", f"people/{mid}/activities")
    assert sum("0x80044331" in str(a) for a in log) == 2
