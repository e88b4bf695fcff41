"""`python -m sync_core explain <email | Marketo id | Dynamics id>`: one person's values,
base agreement, next step and history with the rule behind each field."""

from __future__ import annotations

import json

from tests.scenarios.test_cli import run
from tests.scenarios.world import World


def explain(world: World, key: str) -> dict:
    result = run(world.env(), "explain", key, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def fields_of(doc: dict) -> dict[str, dict]:
    (person,) = doc["people"]
    return {f["field"]: f for f in person["fields"]}


def test_explain_a_collision_before_and_after_the_cycle(world: World):
    world.setup()
    cid = world.dyn_create(
        "contact", lastname="Explain", emailaddress1="explain@example.com",
        jobtitle="Engineer", address1_city="Leeds",
    )  # fmt: skip
    world.cycle()
    doc = explain(world, "EXPLAIN@example.com")
    (person,) = doc["people"]
    mid = person["marketoId"]
    assert person["link"]["entity"] == "contact" and person["link"]["dynamicsId"] == cid
    title = fields_of(doc)["title"]
    assert (title["marketo"], title["dynamics"]) == ("Engineer", "Engineer")
    assert title["marketoMatchesBase"] and title["dynamicsMatchesBase"]
    assert title["verdict"] == "in sync"
    (created,) = person["history"]
    assert created["note"] == "created in Marketo" and created["direction"] == "to-marketo"

    world.marketo_edit(mid, title="Marketer")
    world.dyn_edit("contact", cid, jobtitle="Sales")
    world.marketo_edit(mid, city="York")
    before = fields_of(explain(world, str(mid)))
    assert before["title"]["marketo"] == "Marketer" and before["title"]["dynamics"] == "Sales"
    assert before["title"]["marketoMatchesBase"] is False
    assert before["title"]["dynamicsMatchesBase"] is False
    assert before["title"]["verdict"] == "collision: both changed; dynamics wins"
    assert before["city"]["dynamicsMatchesBase"] is True
    assert before["city"]["verdict"] == "next cycle copies the Marketo value to Dynamics"

    world.cycle()
    after = explain(world, cid)  # by Dynamics id
    assert after["people"][0]["marketoId"] == mid
    f = fields_of(after)
    assert f["title"]["marketo"] == f["title"]["dynamics"] == "Sales"
    assert f["title"]["verdict"] == "in sync" and f["title"]["marketoMatchesBase"] is True
    history = after["people"][0]["history"]
    to_marketo = next(h for h in history if "title" in h["rules"])
    assert to_marketo["rules"]["title"] == "collision-system-of-record"
    to_dynamics = next(h for h in history if h["direction"] == "to-dynamics")
    assert to_dynamics["rules"] == {"city": "changed-in-marketo"}

    text = run(world.env(), "explain", cid)
    assert text.returncode == 0
    assert "title: changed on both sides; the system of record wins" in text.stdout
    assert "city: changed only in Marketo since the last sync" in text.stdout


def test_explain_shows_a_rejection(world: World):
    world.setup()
    cid = world.dyn_create("contact", lastname="Rule", emailaddress1="rule@example.com")
    world.cycle()
    world.dynamics_admin(
        "POST", "rules",
        json={"table": "contact", "condition": "jobtitle eq 'Intern'",
              "message": "Interns are not tracked in the CRM", "on": ["update"]},
    )  # fmt: skip
    mid = explain(world, cid)["people"][0]["marketoId"]
    world.marketo_edit(mid, title="Intern")
    world.cycle()
    (person,) = explain(world, "rule@example.com")["people"]
    rejected = next(h for h in person["history"] if h["rules"].get("title") == "rejected")
    assert rejected["direction"] == "to-dynamics" and rejected["note"].startswith("rejected")
    (error,) = person["errors"]
    assert error["message"] == "Interns are not tracked in the CRM"
    title = {f["field"]: f for f in person["fields"]}["title"]
    # Still pending: the base was not moved, so the next cycle tries again.
    assert title["marketoMatchesBase"] is False
    assert title["verdict"] == "next cycle copies the Marketo value to Dynamics"


def test_explain_unlinked_unknown_and_bad_keys(world: World):
    world.setup()
    mid = world.marketo_create(email="only.marketo@example.com", lastName="Only")
    (person,) = explain(world, str(mid))["people"]
    assert person["link"] is None and person["inMarketo"] and person["fields"] == []
    hidden = world.dyn_create("lead", lastname="Hidden", emailaddress1="hid@example.com",
                              new_synctomkto=False)  # fmt: skip
    (record,) = explain(world, "hid@example.com")["people"]
    assert record["marketoId"] is None and record["dynamicsId"] == hidden
    assert all(f["verdict"].startswith("not linked") for f in record["fields"])
    missing = run(world.env(), "explain", "nobody@example.com")
    assert missing.returncode == 1 and "nobody@example.com" in missing.stderr
    bad = run(world.env(), "explain", "not-a-key")
    assert bad.returncode == 2 and "neither an email" in bad.stderr
