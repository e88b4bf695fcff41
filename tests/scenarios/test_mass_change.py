"""The mass-change guard end to end: a field changed on more records than the limit in
one cycle is held (nothing written), the rest still syncs, and after a release every
held change reaches the other side unchanged."""

from __future__ import annotations

from tests.scenarios.test_cli import run
from tests.scenarios.world import World

PEOPLE = 5


def linked_contacts(world: World) -> list[tuple[str, int]]:
    ids = [
        world.dyn_create("contact", lastname=f"Mass{i}", emailaddress1=f"mass{i}@example.com")
        for i in range(PEOPLE)
    ]
    world.cycle()
    return [(cid, int(world.people_by_email(f"mass{i}@example.com")[0]["id"]))
            for i, cid in enumerate(ids)]  # fmt: skip


def test_a_mass_change_in_marketo_is_held_then_released(world: World):
    world.extra_env["SYNC_MASS_CHANGE_LIMIT"] = "3"
    pairs = linked_contacts(world)
    for _, mid in pairs:
        world.marketo_edit(mid, title="Imported by mistake")
    world.marketo_edit(pairs[0][1], city="Leeds")  # another field still syncs
    summary = world.cycle()
    assert [(h["field"], h["direction"], h["status"]) for h in summary["held"]] == [
        ("title", "to-dynamics", "held")
    ]
    assert summary["counts"]["held"] == PEOPLE
    records = [world.dyn_get("contact", cid) for cid, _ in pairs]
    assert all(r["jobtitle"] is None for r in records)  # type: ignore[index]
    assert records[0]["address1_city"] == "Leeds"  # type: ignore[index]
    (err,) = [e for e in world.store().list_errors() if e["code"] == "mass-change"]
    assert "release --field title --direction to-dynamics" in err["message"]
    # Cycles go on and the Marketo cursor moves: the held changes are not dropped.
    world.cycle()
    assert all(world.dyn_get("contact", c)["jobtitle"] is None for c, _ in pairs)  # type: ignore[index]
    released = run(world.env(), "release", "--field", "title", "--direction", "to-dynamics")
    assert released.returncode == 0, released.stderr
    after = world.cycle()
    assert after["counts"]["to_dynamics"] == PEOPLE and after["held"] == []
    assert all(
        world.dyn_get("contact", c)["jobtitle"] == "Imported by mistake"  # type: ignore[index]
        for c, _ in pairs
    )
    assert world.cycle()["counts"]["to_dynamics"] == 0


def test_a_mass_change_in_dynamics_is_held_then_released(world: World):
    world.extra_env["SYNC_MASS_CHANGE_LIMIT"] = "3"
    pairs = linked_contacts(world)
    for cid, _ in pairs:
        world.dyn_edit("contact", cid, jobtitle="Bulk edit")
    summary = world.cycle()
    assert [(h["field"], h["direction"]) for h in summary["held"]] == [("title", "to-marketo")]
    assert all(world.person(m).get("title") is None for _, m in pairs)  # type: ignore[union-attr]
    released = run(world.env(), "release", "--field", "title", "--direction", "to-marketo")
    assert released.returncode == 0, released.stderr
    world.cycle()
    assert all(world.person(m)["title"] == "Bulk edit" for _, m in pairs)  # type: ignore[index]


def test_releasing_what_is_not_held_names_what_is(world: World):
    world.setup()
    result = run(world.env(), "release", "--field", "city", "--direction", "to-dynamics")
    assert result.returncode == 1 and "no hold on city to-dynamics" in result.stderr
