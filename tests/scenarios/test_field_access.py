"""Issue 7 end to end: the effective field set, access changes while running, option
sets, and each kind of rejection landing in the error table and the activity log."""

from __future__ import annotations

from pathlib import Path

from sync_core.settings import DEFAULT_MAPPING_FILE
from tests.scenarios.test_delta_sync import linked_contact, linked_lead
from tests.scenarios.world import World


def secure(world: World, table: str, column: str, **grants: bool) -> None:
    world.dynamics_admin(
        "PUT",
        "field-security",
        json={"table": table, "column": column, "secured": True,
              "permissions": {"sync-app": {"read": False, "create": False, "update": False,
                                           **grants},
                              "sales-user": {"read": True, "create": True, "update": True}}},
    )  # fmt: skip


def test_a_column_the_sync_identity_cannot_read_is_left_out_with_a_reason(world: World):
    secure(world, "contact", "telephone1")
    world.dyn_create(
        "contact", lastname="Secret", emailaddress1="s@example.com", telephone1="+44 1"
    )
    summary = world.cycle()
    assert {"entity": "contact", "field": "phone", "column": "telephone1",
            "reason": "not readable by the sync identity"} in summary["excludedFields"]  # fmt: skip
    (person,) = world.people_by_email("s@example.com")
    assert person.get("phone") is None and person["lastName"] == "Secret"


def test_a_column_secured_mid_operation_is_not_taken_for_a_cleared_value(world: World):
    cid, mid = linked_contact(world, telephone1="+44 20 7946 0000")
    assert world.person(mid)["phone"] == "+44 20 7946 0000"  # type: ignore[index]
    secure(world, "contact", "telephone1")
    world.dyn_edit("contact", cid, jobtitle="Still syncing")
    summary = world.cycle()
    person = world.person(mid)
    assert person["title"] == "Still syncing"  # type: ignore[index]
    assert person["phone"] == "+44 20 7946 0000"  # type: ignore[index]
    assert any(x["column"] == "telephone1" for x in summary["excludedFields"])
    assert summary["outcome"] == "succeeded"


def test_write_refused_by_field_security_is_logged_then_the_field_left_out(world: World):
    world.setup()
    cid, mid = linked_contact(world)
    secure(world, "contact", "jobtitle", read=True)  # may read, may not update
    world.marketo_edit(mid, title="Refused", city="Kept")
    first = world.cycle()
    assert first["counts"]["rejected"] == 1
    record = world.dyn_get("contact", cid)
    assert record["jobtitle"] != "Refused"  # type: ignore[index]
    assert record["address1_city"] == "Kept"  # type: ignore[index]
    (err,) = world.store().list_errors()
    assert err["code"].lower() == "0x8004f507" and err["direction"] == "to-dynamics"
    log = world.marketo_admin("GET", f"people/{mid}/activities")
    assert any("0x8004F507".lower() in str(a).lower() for a in log)
    second = world.cycle()
    excluded = {"entity": "contact", "field": "title", "column": "jobtitle",
                "reason": "column not updatable by the sync identity"}  # fmt: skip
    assert excluded in second["excludedFields"]
    world.marketo_edit(mid, city="Still flows")
    world.cycle()
    assert world.dyn_get("contact", cid)["address1_city"] == "Still flows"  # type: ignore[index]


def test_value_too_long_for_dynamics_is_rejected_and_not_retried(world: World):
    world.setup()
    cid, mid = linked_contact(world)
    world.marketo_edit(mid, title="x" * 150, city="Fits")  # jobtitle holds 100
    summary = world.cycle()
    assert summary["counts"]["rejected"] == 1
    (err,) = world.store().list_errors()
    assert err["code"] == "0x80044331"
    record = world.dyn_get("contact", cid)
    assert record["jobtitle"] is None or len(record["jobtitle"]) <= 100  # type: ignore[index]
    assert record["address1_city"] == "Fits"  # type: ignore[index]
    assert err["fields"] == '["title"]'  # the rejection names the field, not the record
    assert world.cycle()["counts"]["rejected"] == 0


def test_a_rejected_field_is_logged_once_and_retried_only_when_it_changes(world: World):
    world.setup()
    cid, mid = linked_contact(world)
    world.marketo_edit(mid, title="x" * 150)
    world.cycle()
    # Another edit of the same person re-plans the pair: the refused value stays unsent.
    world.marketo_edit(mid, city="Leeds")
    summary = world.cycle()
    assert summary["counts"]["rejected"] == 0 and summary["counts"]["to_dynamics"] == 1
    assert len(world.store().list_errors()) == 1
    log = world.marketo_admin("GET", f"people/{mid}/activities")
    assert sum("0x80044331" in str(a) for a in log) == 1
    world.marketo_edit(mid, title="Fits now")
    world.cycle()
    assert world.dyn_get("contact", cid)["jobtitle"] == "Fits now"  # type: ignore[index]
    assert world.cycle()["counts"]["to_dynamics"] == 0


def test_marketo_skip_is_logged_as_a_rejection(world: World):
    cid, mid = linked_contact(world)
    world.dyn_edit("contact", cid, emailaddress1="not an email")
    summary = world.cycle()
    assert summary["counts"]["rejected"] == 1
    (err,) = world.store().list_errors()
    assert err["direction"] == "to-marketo" and err["code"] == "1001"
    assert world.person(mid)["email"] == "ada@example.com"  # type: ignore[index]


def test_option_set_maps_labels_both_ways(world: World, tmp_path: Path):
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(
        DEFAULT_MAPPING_FILE.read_text()
        + '\n[[fields]]\nmarketo = "leadSource"\nlead = "leadsourcecode"\n'
    )
    world.extra_env["SYNC_MAPPING_FILE"] = str(mapping)
    world.setup()
    lid, mid = linked_lead(world, leadsourcecode=7)
    assert world.person(mid, "id,leadSource")["leadSource"] == "Trade Show"  # type: ignore[index]
    world.marketo_edit(mid, leadSource="web")
    world.cycle()
    assert world.dyn_get("lead", lid)["leadsourcecode"] == 8  # type: ignore[index]
    world.marketo_edit(mid, leadSource="Carrier Pigeon", title="Pigeon Fancier")
    summary = world.cycle()
    assert summary["counts"]["rejected"] == 1
    record = world.dyn_get("lead", lid)
    assert record["leadsourcecode"] == 8 and record["jobtitle"] == "Pigeon Fancier"  # type: ignore[index]
    (err,) = world.store().list_errors()
    assert err["code"] == "option-set" and "Carrier Pigeon" in err["message"]


def test_a_mapped_column_deleted_while_running_is_dropped_without_stopping(world: World):
    cid, mid = linked_contact(world)
    world.dyn_edit("contact", cid, address1_city="Before")
    world.cycle()
    # An admin deletes the job title column in Dataverse (no admin call exists for it).
    table = world.apps["dynamics"].state.tables["contact"]
    column = table.columns.pop("jobtitle")
    table.by_json.pop(getattr(column, "json_name", "jobtitle"), None)
    world.marketo_edit(mid, city="After", title="Nowhere to go")
    summary = world.cycle()
    assert summary["outcome"] == "succeeded"
    assert any(x["column"] == "jobtitle" and x["reason"] == "column unknown"
               for x in summary["excludedFields"])  # fmt: skip
    assert world.dyn_get("contact", cid)["address1_city"] == "After"  # type: ignore[index]


def test_mapping_problems_are_reported_with_the_fix_when_metadata_is_read(
    world: World, tmp_path: Path
):
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(
        DEFAULT_MAPPING_FILE.read_text()
        + '\n[[fields]]\nmarketo = "favouriteColour"\ncontact = "new_colour"\n'
    )
    world.extra_env["SYNC_MAPPING_FILE"] = str(mapping)
    world.dyn_create("contact", lastname="Problem", emailaddress1="p@example.com")
    summary = world.cycle()
    errors = [p for p in summary["mappingProblems"] if p["severity"] == "error"]
    assert {p["field"] for p in errors} == {"favouriteColour"}
    assert all(p["fix"] for p in errors)
    assert len(world.people_by_email("p@example.com")) == 1  # the rest still syncs
    assert world.cycle()["mappingProblems"] == []  # reported when metadata is read
