"""`python -m sync_core status [--json] [--live]`: the health document, end to end.

Cycles run against the emulators and Azurite; the document is read through the CLI in a
subprocess, as an admin would, and checked against what really happened.
"""

from __future__ import annotations

import json
import time

from sync_core.health import SCHEMA
from tests.scenarios.test_cli import run
from tests.scenarios.world import World

# The stable contract of schema 1 (README documents it): a renamed key fails here.
TOP_KEYS = {
    "schema", "generatedAt", "live", "cycles", "failedInARow", "lastSucceeded", "cursors",
    "backlog", "people", "quota", "activityLog", "changeTracking", "fieldsCheckedAt",
    "fieldsStale", "fields", "holds",
}  # fmt: skip
CYCLE_KEYS = {
    "cycleId", "started", "ended", "durationSeconds", "outcome", "message", "toMarketo",
    "toDynamics", "createdInMarketo", "linked", "collisions", "rejected", "retryLater",
    "filteredOut", "apiCalls", "fullReconcile", "watermarkMode",
}  # fmt: skip
PEOPLE_KEYS = {
    "linked", "linkedLeads", "linkedContacts", "excludedByFilter", "filteredOutLastCycles",
    "retrying", "rejectedLast24h",
}  # fmt: skip
QUOTA_KEYS = {"day", "daily", "syncBudget", "used", "left"}
CURSOR_KEYS = {"name", "mode", "savedAt", "lagSeconds"}
FIELD_KEYS = {"entity", "field", "column", "direction", "winner", "active", "reason"}
BACKLOG_KEYS = {"entity", "kind", "resumable", "pageSavedAt", "records", "remainingEstimate"}


def status(world: World, *args: str) -> dict:
    result = run(world.env(), "status", "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_status_json_after_cycles(world: World):
    world.setup()
    before = status(world)
    assert before["schema"] == SCHEMA == 1
    assert set(before) == TOP_KEYS
    assert before["cycles"] == [] and before["people"]["linked"] == 0
    assert before["activityLog"]["active"] is True  # setup approved both types
    assert all(f["active"] is None for f in before["fields"])  # no metadata read yet

    for n in range(3):
        world.dyn_create("contact", lastname=f"C{n}", emailaddress1=f"c{n}@example.com")
    lead = world.dyn_create("lead", lastname="L", emailaddress1="l@example.com")
    world.dyn_create("contact", lastname="Hidden", emailaddress1="h@example.com",
                     new_synctomkto=False)  # fmt: skip
    first = world.cycle()
    world.dyn_edit("lead", lead, jobtitle="CTO")
    second = world.cycle()

    doc = status(world)
    assert set(doc) == TOP_KEYS and doc["live"] is False
    newest, oldest = doc["cycles"]
    assert set(newest) == CYCLE_KEYS and newest["cycleId"] == second["cycleId"]
    assert oldest["createdInMarketo"] == 4 and oldest["filteredOut"] == 1
    assert newest["toMarketo"] == 1 and newest["toDynamics"] == 0
    assert newest["apiCalls"] == second["apiCalls"]
    assert doc["failedInARow"] == 0 and doc["lastSucceeded"] == second["started"]

    people = doc["people"]
    assert set(people) == PEOPLE_KEYS
    # The counters kept as links commit agree with a scan of the links table.
    store = world.store()
    scanned = list(store.iter_links())
    store.close()
    assert people["linked"] == len(scanned) == 4
    assert (people["linkedLeads"], people["linkedContacts"]) == (1, 3)
    assert people["excludedByFilter"] is None  # only --live asks Dynamics

    quota = doc["quota"]
    assert set(quota) == QUOTA_KEYS
    calls = first["apiCalls"]["marketo"] + second["apiCalls"]["marketo"]
    assert quota["used"] == calls and quota["left"] == quota["syncBudget"] - calls

    cursors = {c["name"]: c for c in doc["cursors"]}
    assert set(cursors) == {"dynamics-lead", "dynamics-contact", "marketo-activities"}
    for c in cursors.values():
        assert set(c) == CURSOR_KEYS
        assert 0 <= c["lagSeconds"] < 60
    assert cursors["dynamics-lead"]["mode"] == "change-tracking"
    assert doc["changeTracking"] == {"lead": True, "contact": True}
    assert doc["backlog"] == [] and doc["holds"] == []
    assert doc["activityLog"]["active"] is True and doc["activityLog"]["reason"] == ""

    assert doc["fieldsCheckedAt"] is not None and doc["fieldsStale"] is False
    for f in doc["fields"]:
        assert set(f) == FIELD_KEYS and f["active"] is True

    # Lag grows while nothing saves the cursors.
    time.sleep(1.2)
    later = {c["name"]: c for c in status(world)["cursors"]}
    assert later["dynamics-lead"]["lagSeconds"] > cursors["dynamics-lead"]["lagSeconds"]

    live = status(world, "--live")
    assert live["live"] is True and live["people"]["excludedByFilter"] == 1


def test_link_counts_follow_moves_merges_and_closes(world: World):
    world.setup()
    ids = [world.dyn_create("contact", lastname=f"D{n}", emailaddress1=f"d{n}@example.com")
           for n in range(3)]  # fmt: skip
    lead = world.dyn_create("lead", lastname="Q", emailaddress1="q@example.com")
    world.cycle()
    before = status(world)["people"]
    assert (before["linkedLeads"], before["linkedContacts"]) == (1, 3)
    world.dyn_qualify(lead, account=True)  # the person moves from the lead to its contact
    world.dyn_merge("contact", ids[1], ids[2])  # the subordinate's link goes
    world.dyn_delete("contact", ids[0])
    world.cycle()
    people = status(world)["people"]
    store = world.store()
    scanned = list(store.iter_links())
    store.close()
    assert people["linked"] == len(scanned)
    assert (people["linkedLeads"], people["linkedContacts"]) == (
        sum(link.entity == "lead" for link in scanned),
        sum(link.entity == "contact" for link in scanned),
    )
    assert people["linkedLeads"] == 0 and people["linkedContacts"] == len(scanned) < 4


def test_backlog_while_a_first_load_is_resumable(world: World):
    world.setup()
    for n in range(6):
        world.dyn_create("contact", lastname=f"B{n}", emailaddress1=f"b{n}@example.com")
    # One page per cycle and no time budget: the first load stops after its first page.
    world.extra_env.update(SYNC_DYNAMICS_PAGE_SIZE="2", SYNC_CYCLE_BUDGET_SECONDS="0")
    summary = world.cycle()
    assert summary["outcome"] == "partial"
    doc = status(world, "--live")
    (item,) = doc["backlog"]
    assert set(item) == BACKLOG_KEYS
    assert item["entity"] == "contact" and item["kind"] == "initial-load"
    assert item["records"] == 6 and item["remainingEstimate"] == 4
    assert doc["cycles"][0]["outcome"] == "partial"
    text = run(world.env(), "status")
    assert "backlog: contact initial-load resumes next cycle, about 4 records left" not in (
        text.stdout
    )  # without --live there is no estimate
    assert "backlog: contact initial-load resumes next cycle" in text.stdout


def test_failed_cycles_are_counted(world: World):
    world.setup()
    world.extra_env["MARKETO_CLIENT_SECRET"] = "wrong"
    for _ in range(2):
        assert run(world.env(), "run-once", "--json").returncode == 1
    world.extra_env.pop("MARKETO_CLIENT_SECRET")
    doc = status(world)
    assert doc["failedInARow"] == 2 and doc["lastSucceeded"] is None
    text = run(world.env(), "status").stdout
    assert "FAILING: the last 2 cycle(s) did not succeed" in text


def test_holds_of_the_mass_change_guard_show_until_released(world: World):
    world.setup()
    world.extra_env["SYNC_MASS_CHANGE_LIMIT"] = "2"
    for n in range(3):
        world.dyn_create("contact", lastname=f"M{n}", emailaddress1=f"m{n}@example.com")
    world.cycle()
    store = world.store()
    ids = [link.marketo_id for link in store.iter_links()]
    store.close()
    for mid in ids:
        world.marketo_edit(mid, title="Imported by mistake")
    world.cycle()
    (hold,) = status(world)["holds"]
    assert (hold["field"], hold["direction"], hold["count"]) == ("title", "to-dynamics", 3)
    text = run(world.env(), "status").stdout
    assert "HELD by the mass-change guard: title to-dynamics" in text
    assert (
        run(world.env(), "release", "--field", "title", "--direction", "to-dynamics").returncode
        == 0
    )
    world.cycle()
    assert status(world)["holds"] == []


def test_commands_before_setup_say_so(world: World):
    for args in (("status",), ("plan",), ("explain", "someone@example.com")):
        result = run(world.env(), *args)
        assert result.returncode == 2, (args, result.stderr)
        assert "do not exist yet: run `python -m sync_core setup`" in result.stderr
        assert "Traceback" not in result.stderr
