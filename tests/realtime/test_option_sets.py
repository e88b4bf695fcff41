"""The webhook's create honours field access and option sets as the cycle last found
them: labels become option values, an unknown label is left out and reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync_core.settings import DEFAULT_MAPPING_FILE
from tests.realtime.support import Webhook
from tests.scenarios.world import World


def test_option_set_labels_are_translated_on_create(
    world: World, hook: Webhook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(
        DEFAULT_MAPPING_FILE.read_text()
        + '\n[[fields]]\nmarketo = "leadSource"\nlead = "leadsourcecode"\n'
    )
    monkeypatch.setenv("SYNC_MAPPING_FILE", str(mapping))
    world.extra_env["SYNC_MAPPING_FILE"] = str(mapping)
    world.cycle()  # reads metadata: the webhook then knows leadsourcecode's options

    good = world.marketo_create(email="web@example.com", lastName="Web", leadSource="Web")
    r = hook.sync(good)
    assert r.status_code == 200, r.text
    assert world.dyn_get("lead", r.json()["dynamicsId"])["leadsourcecode"] == 8  # type: ignore[index]

    odd = world.marketo_create(email="odd@example.com", lastName="Odd", leadSource="Carrier Pigeon")
    r = hook.sync(odd)
    assert r.status_code == 200, r.text
    record = world.dyn_get("lead", r.json()["dynamicsId"])
    assert record and record["lastname"] == "Odd" and record.get("leadsourcecode") is None
    (err,) = world.store().list_errors()
    assert err["code"] == "option-set" and int(err["marketoId"]) == odd
