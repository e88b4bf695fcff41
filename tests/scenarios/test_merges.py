"""Merges followed both ways (issue: the rest of the native connector's life cycle).

A merge someone makes in one system is carried into the other and never undone by a
duplicate: after each merge, edits on the survivor keep flowing and no cycle mints a new
person or record for what was merged away."""

from __future__ import annotations

from typing import Any

from tests.scenarios.world import World


def linked(world: World, entity: str, email: str, **values: Any) -> tuple[str, int]:
    rid = world.dyn_create(entity, lastname="Merge", emailaddress1=email, **values)
    world.cycle()
    (person,) = world.people_by_email(email)
    return rid, int(person["id"])


def marketo_merge(world: World, winner: int, loser: int) -> None:
    world.marketo("POST", f"/rest/v1/leads/{winner}/merge.json", params={"leadIds": str(loser)})


def people_count(world: World, *emails: str) -> int:
    return sum(len(world.people_by_email(e)) for e in emails)


def test_dynamics_merge_of_two_contacts_merges_their_people(world: World):
    master, winner = linked(world, "contact", "keep@example.com", jobtitle="CTO")
    sub, loser = linked(world, "contact", "dup@example.com", telephone1="555")
    world.dyn_merge("contact", master, sub)
    summary = world.cycle()
    assert summary["counts"]["merged"] == 1 and summary["counts"]["created_in_marketo"] == 0
    assert world.person(loser) is None  # merged away in Marketo too
    person = world.person(winner)
    assert person is not None and person["dynamicsId"] == master and person["phone"] == "555"
    events = world.store().person_events(winner)
    assert any(e.get("direction") == "merge" and sub in str(e) for e in events)
    world.dyn_edit("contact", sub, jobtitle="Edited after the merge")  # the inactive loser
    world.dyn_edit("contact", master, address1_city="Leeds")
    after = world.cycle()
    assert after["counts"]["created_in_marketo"] == 0
    assert world.person(winner)["city"] == "Leeds"  # type: ignore[index]
    assert people_count(world, "keep@example.com", "dup@example.com") == 1


def test_dynamics_merge_of_two_leads_merges_their_people(world: World):
    master, winner = linked(world, "lead", "lead1@example.com", companyname="Acme")
    sub, loser = linked(world, "lead", "lead2@example.com")
    world.dyn_merge("lead", master, sub)
    assert world.cycle()["counts"]["merged"] == 1
    assert world.person(loser) is None and world.person(winner) is not None
    world.cycle()
    assert people_count(world, "lead1@example.com", "lead2@example.com") == 1


def grant_merge(world: World) -> None:
    # Carrying a Marketo merge into Dynamics needs the Merge privilege (infra/README.md).
    admin = world.dynamics_admin
    admin("PUT", "security/privileges", json={"user": "sync-app", "privilege": "prvMerge"})
    for table in ("contact", "lead"):
        admin("PUT", "security/privileges",
              json={"user": "sync-app", "table": table, "privilege": "Share",
                    "depth": "Organization"})  # fmt: skip


def test_marketo_merge_of_two_linked_contacts_merges_the_records(world: World):
    grant_merge(world)
    keep, winner = linked(world, "contact", "w@example.com")
    gone, loser = linked(world, "contact", "l@example.com", telephone1="777")
    marketo_merge(world, winner, loser)
    summary = world.cycle()
    assert summary["counts"]["merged"] == 1
    sub = world.dyn_get("contact", gone)
    assert sub is not None and sub["statecode"] == 1 and sub["_masterid_value"] == keep
    assert world.dyn_get("contact", keep)["telephone1"] == "777"  # type: ignore[index]
    world.dyn_edit("contact", keep, jobtitle="Survivor")
    world.cycle()
    assert world.person(winner)["title"] == "Survivor"  # type: ignore[index]
    assert people_count(world, "w@example.com", "l@example.com") == 1
    assert world.dyn_count("contact") == 2  # merged, nothing deleted


def test_marketo_merge_of_a_lead_and_a_contact_keeps_the_contact(world: World):
    lead, winner = linked(world, "lead", "lead@example.com", companyname="Acme")
    contact, loser = linked(world, "contact", "contact@example.com")
    marketo_merge(world, winner, loser)
    world.cycle()
    person = world.person(winner)
    assert person is not None
    assert person["dynamicsType"] == "contact" and person["dynamicsId"] == contact
    assert world.dyn_get("contact", contact)["new_marketoid"] == str(winner)  # type: ignore[index]
    world.dyn_edit("lead", lead, jobtitle="Old lead edited")  # never gets a person again
    world.dyn_edit("contact", contact, jobtitle="Contact edited")
    after = world.cycle()
    assert after["counts"]["created_in_marketo"] == 0
    assert world.person(winner)["title"] == "Contact edited"  # type: ignore[index]
    assert world.dyn_get("lead", lead) is not None  # nothing deleted


def test_marketo_merge_into_an_unlinked_person_moves_the_link(world: World):
    record, loser = linked(world, "contact", "crm@example.com")
    winner = world.marketo_create(email="mkto@example.com", lastName="Marketo only")
    marketo_merge(world, winner, loser)
    world.cycle()
    person = world.person(winner)
    assert person is not None and person["dynamicsId"] == record
    assert world.dyn_get("contact", record)["new_marketoid"] == str(winner)  # type: ignore[index]
    world.dyn_edit("contact", record, jobtitle="Moved")
    assert world.cycle()["counts"]["created_in_marketo"] == 0
    assert world.person(winner)["title"] == "Moved"  # type: ignore[index]


def test_without_the_merge_privilege_the_record_is_unlinked_and_the_error_said(world: World):
    _, winner = linked(world, "contact", "w2@example.com")
    gone, loser = linked(world, "contact", "l2@example.com")
    marketo_merge(world, winner, loser)
    summary = world.cycle()
    assert summary["outcome"] == "succeeded" and summary["counts"]["rejected"] == 1
    (err,) = world.store().list_errors()
    assert err["operation"] == "merge" and "Merge privilege" in err["message"]
    assert world.dyn_get("contact", gone)["statecode"] == 0  # type: ignore[index]
    world.dyn_edit("contact", gone, jobtitle="Still here")
    assert world.cycle()["counts"]["created_in_marketo"] == 0
