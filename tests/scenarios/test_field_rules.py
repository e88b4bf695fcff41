"""Per-field rules end to end: blank = never-overwrites, update = if-empty, fit = truncate."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sync_core.settings import DEFAULT_MAPPING_FILE
from tests.scenarios.test_delta_sync import linked_contact
from tests.scenarios.world import World


@pytest.fixture
def ruled(world: World, tmp_path: Path) -> World:
    text = DEFAULT_MAPPING_FILE.read_text()
    for field, rule in (
        ("title", 'fit = "truncate"'),
        ("city", 'blank = "never-overwrites"'),
        ("phone", 'update = "if-empty"'),
    ):
        text, n = re.subn(rf'(marketo = "{field}"\n)', rf"\1{rule}\n", text)
        assert n == 1
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(text)
    world.extra_env["SYNC_MAPPING_FILE"] = str(mapping)
    world.setup()
    return world


def test_fit_truncate_cuts_a_long_value_instead_of_a_rejection(ruled: World):
    cid, mid = linked_contact(ruled)
    long_title = "Chief " + "Very " * 40 + "Officer"  # jobtitle holds 100
    ruled.marketo_edit(mid, title=long_title)
    summary = ruled.cycle()
    assert summary["counts"]["rejected"] == 0 and summary["counts"]["to_dynamics"] == 1
    assert ruled.dyn_get("contact", cid)["jobtitle"] == long_title[:100].rstrip()  # type: ignore[index]
    assert ruled.person(mid)["title"] == long_title  # type: ignore[index]
    (event,) = [e for e in ruled.store().person_events(mid) if "truncated" in str(e)]
    assert "title" in str(event)
    quiet = ruled.cycle()["counts"]
    assert quiet["to_dynamics"] == quiet["to_marketo"] == 0  # the cut value is agreement


def test_blank_never_overwrites_keeps_a_value_the_other_side_cleared(ruled: World):
    cid, mid = linked_contact(ruled, address1_city="Leeds")
    ruled.marketo_edit(mid, city="")
    ruled.cycle()
    assert ruled.dyn_get("contact", cid)["address1_city"] == "Leeds"  # type: ignore[index]
    ruled.marketo_edit(mid, city="York")  # a real value still flows
    ruled.cycle()
    assert ruled.dyn_get("contact", cid)["address1_city"] == "York"  # type: ignore[index]


def test_update_if_empty_fills_once_and_never_changes_it_afterwards(ruled: World):
    cid, mid = linked_contact(ruled)
    ruled.marketo_edit(mid, phone="+44 1")
    ruled.cycle()
    assert ruled.dyn_get("contact", cid)["telephone1"] == "+44 1"  # type: ignore[index]
    ruled.marketo_edit(mid, phone="+44 2")
    ruled.cycle()
    assert ruled.dyn_get("contact", cid)["telephone1"] == "+44 1"  # type: ignore[index]
