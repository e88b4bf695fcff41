"""`python -m sync_core plan`: a dry run of the next cycle that writes nothing anywhere.

The plan is compared with what the real cycle then does, and both systems and every
state row are compared before and after the plan (Dynamics versionnumber, Marketo
updatedAt, each table row's ETag)."""

from __future__ import annotations

import json
from typing import Any

from azure.data.tables import TableServiceClient

from tests.scenarios.test_cli import run
from tests.scenarios.world import World


def world_state(world: World) -> dict[str, Any]:
    versions = {
        entity: {
            r[f"{entity}id"]: r["versionnumber"]
            for r in world.dynamics("GET", f"{entity}s?$select={entity}id,versionnumber").json()[
                "value"
            ]
        }
        for entity in ("lead", "contact")
    }
    body = world.marketo(
        "GET", "/rest/v1/leads.json",
        params={"filterType": "id", "filterValues": ",".join(str(i) for i in range(1, 60)),
                "fields": "id,updatedAt"},
    )  # fmt: skip
    people = {p["id"]: p["updatedAt"] for p in body["result"]}
    rows = {}
    with TableServiceClient.from_connection_string(world.storage) as service:
        for table in service.list_tables():
            if not table.name.startswith(world.prefix):
                continue
            for e in service.get_table_client(table.name).list_entities():
                rows[(table.name, e["PartitionKey"], e["RowKey"])] = e.metadata["etag"]
    # A $batch is no write by itself: the metadata read is one of GETs. A write inside
    # one would show in the row versions above, and the plan's capture never sends one.
    writes = {
        k: v["calls"]
        for k, v in world.dynamics_admin("GET", "stats").items()
        if k.split(" ")[0] in ("POST", "PATCH", "PUT", "DELETE")
        and k not in ("POST token", "POST $batch")
    }
    return {
        "dynamics": versions,
        "marketo": people,
        "state": rows,
        "dynamics_writes": writes,
        # Activities the sync would log; background activity (production world) aside.
        "marketo_activities": _own_activities(world.marketo_admin("GET", "stats")),
    }


def plan(world: World, *args: str) -> dict[str, Any]:
    result = run(world.env(), "plan", "--json", *args)
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr  # not a terminal: no progress line
    return json.loads(result.stdout)


def test_plan_predicts_the_cycle_and_changes_nothing(world: World):
    world.setup()
    c1 = world.dyn_create("contact", lastname="One", emailaddress1="one@example.com",
                          jobtitle="Engineer")  # fmt: skip
    c2 = world.dyn_create("contact", lastname="Two", emailaddress1="two@example.com")
    lead = world.dyn_create("lead", lastname="Lead", emailaddress1="lead@example.com",
                            jobtitle="Analyst")  # fmt: skip
    world.cycle()
    store = world.store()
    links = {link.dynamics_id: link.marketo_id for link in store.iter_links()}
    store.close()
    world.dyn_edit("contact", c1, jobtitle="Director")
    world.marketo_edit(links[c2], city="York")
    world.dyn_edit("lead", lead, jobtitle="CTO")
    world.marketo_edit(links[lead], title="CIO")
    c3 = world.dyn_create("contact", lastname="Three", emailaddress1="three@example.com")

    before = world_state(world)
    got = plan(world)
    assert world_state(world) == before  # nothing written anywhere, not even a state row
    assert plan(world) == {**got, "apiCalls": plan(world)["apiCalls"]}  # repeatable

    assert got["schema"] == 1 and got["outcome"] == "succeeded"
    (create,) = got["creates"]
    assert create["entity"] == "contact" and create["dynamicsId"] == c3
    assert {"email", "lastName"} <= set(create["fields"])
    updates = {(u["direction"], u.get("dynamicsId") or u["marketoId"]): u for u in got["updates"]}
    title = {c["field"]: c for c in updates[("to-marketo", links[c1])]["changes"]}["title"]
    assert (title["old"], title["new"], title["rule"]) == (
        "Engineer",
        "Director",
        "changed-in-dynamics",
    )
    city = {c["field"]: c for c in updates[("to-dynamics", c2)]["changes"]}["address1_city"]
    assert (city["old"], city["new"], city["rule"]) == (None, "York", "changed-in-marketo")
    job = {c["field"]: c for c in updates[("to-dynamics", lead)]["changes"]}["jobtitle"]
    # A lead's collision goes to Marketo, its system of record.
    assert (job["old"], job["new"], job["rule"]) == ("CTO", "CIO", "collision-system-of-record")
    (collision,) = got["collisions"]
    assert collision["field"] == "title" and collision["marketoId"] == links[lead]
    assert collision["direction"] == "to-dynamics"

    text = run(world.env(), "plan")
    assert "title: 'Engineer' -> 'Director'  (changed only in Dynamics" in text.stdout
    assert f"create person for contact {c3}" in text.stdout

    # The real cycle then does what the plan said.
    done = world.cycle()
    for key in ("to_marketo", "to_dynamics", "created_in_marketo", "collisions", "linked"):
        assert done["counts"][key] == got["counts"][key], key
    assert world.person(links[c1])["title"] == "Director"
    assert world.dyn_get("lead", lead)["jobtitle"] == "CIO"
    idle = plan(world)
    assert idle["updates"] == [] and idle["creates"] == []


def test_plan_limit_stops_early_and_writes_nothing(world: World):
    world.setup()
    for n in range(5):
        world.dyn_create("contact", lastname=f"L{n}", emailaddress1=f"l{n}@example.com")
    world.extra_env["SYNC_DYNAMICS_PAGE_SIZE"] = "2"
    before = world_state(world)
    got = plan(world, "--limit", "2")
    assert got["outcome"] == "truncated" and got["limit"] == 2
    assert len(got["creates"]) == 2  # the first page; the rest is not planned
    assert world_state(world) == before
    full = plan(world)
    assert full["outcome"] == "succeeded" and len(full["creates"]) == 5
    assert run(world.env(), "plan", "--limit", "0").returncode == 2


def test_plan_captures_generic_writes_instead_of_sending_them(world: World):
    # Tables but no `setup`: the cycle would create the Marketo activity types itself.
    store = world.store()
    store.ensure_tables()
    store.close()
    world.dyn_create("contact", lastname="Generic", emailaddress1="generic@example.com")
    types_before = world.marketo("GET", "/rest/v1/activities/external/types.json")["result"]
    before = world_state(world)
    got = plan(world)
    assert world_state(world) == before
    after = world.marketo("GET", "/rest/v1/activities/external/types.json")["result"]
    assert after == types_before == []
    paths = [w["path"] for w in got["otherWrites"] if w["system"] == "marketo"]
    assert "/rest/v1/activities/external/type.json" in paths
    assert len(got["creates"]) == 1
    text = run(world.env(), "plan")
    assert "marketo: POST /rest/v1/activities/external/type.json" in text.stdout


def _own_activities(stats: dict[str, Any]) -> int:
    return int(stats["activities"]) - int(stats.get("backgroundActivities", 0))
