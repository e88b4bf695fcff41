"""The sync in a Dataverse as slow as production: batches paced and sized by the server
time they cost, split when one runs past the 2-minute limit (compressed time)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from emulators.dynamics import DynamicsConfig
from emulators.dynamics.profiles import apply_profile
from tests.scenarios.world import World, open_world

PEOPLE = 60


@pytest.fixture
def slow_world(azurite: str, tmp_path: Path) -> Iterator[World]:
    config = DynamicsConfig()
    # Each update costs 4 s of server time (heavy plug-ins): a 100-operation batch would
    # run 400 s, far past the 2-minute limit. One real second is 1 ms here.
    apply_profile(config.world, "production", seed=3, time_scale=0.001,
                  overrides={"costs": {"update_ms": 4000.0, "create_ms": 4000.0}})  # fmt: skip
    with ExitStack() as stack:
        yield open_world(stack, azurite, tmp_path, dynamics_config=config)


def test_batches_too_long_for_the_server_are_split_and_all_land(slow_world: World):
    w = slow_world
    ids = [
        w.dyn_create("contact", lastname=f"Slow{i}", emailaddress1=f"slow{i}@example.com")
        for i in range(PEOPLE)
    ]
    first = w.cycle()  # writes new_marketoid on every record: 60 updates
    assert first["counts"]["created_in_marketo"] == PEOPLE
    assert first["counts"]["retry_later"] == 0
    assert all(w.dyn_get("contact", i)["new_marketoid"] for i in ids)  # type: ignore[index]
    people = [int(w.people_by_email(f"slow{i}@example.com")[0]["id"]) for i in range(PEOPLE)]
    for mid in people:
        w.marketo_edit(mid, title="Paced")
    summary = w.cycle()
    counts = summary["counts"]
    # A batch cut off by the limit keeps the operations that finished before it (no change
    # set): resent, those answer 412 and settle next cycle; none is lost or retried blind.
    assert counts["to_dynamics"] + counts["stale"] == PEOPLE and counts["retry_later"] == 0
    assert all(w.dyn_get("contact", i)["jobtitle"] == "Paced" for i in ids)  # type: ignore[index]
    settle = w.cycle()["counts"]
    assert settle["to_dynamics"] == settle["to_marketo"] == 0
    assert w.cycle()["counts"]["to_dynamics"] == 0
