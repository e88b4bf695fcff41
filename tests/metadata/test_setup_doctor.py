"""`python -m sync_core setup` and `doctor` against the emulators and Azurite.

Every broken configuration is made the way it breaks in real life (a flag switched off
in Dataverse, a key never created, a wrong secret, a Marketo field never created, a
wrong storage key) and doctor must name exactly that check as FAIL, and nothing else.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest

from emulators.azurite import ACCOUNT_KEY
from emulators.dynamics import DynamicsConfig
from emulators.dynamics.config import AlternateKey
from sync_core.admin.checks import Check, Report
from sync_core.admin.cli import main
from sync_core.admin.doctor import exit_code, run_doctor
from sync_core.admin.doctor_dynamics import _change_tracking
from sync_core.admin.setup import run_setup
from sync_core.errors import ChangeTrackingOff
from tests.metadata.conftest import MakeWorld
from tests.scenarios.world import World

UseEnv = Callable[..., None]

ALL_CHECKS = [
    "settings",
    "marketo.endpoint",
    "marketo.credentials",
    "marketo.fields",
    "marketo.activity_types",
    "dynamics.endpoint",
    "dynamics.credentials",
    "dynamics.user",
    *(
        f"dynamics.{e}.{a}"
        for e in ("lead", "contact")
        for a in ("access", "change_tracking", "columns", "alternate_key")
    ),
    "storage.tables",
    "storage.write",
    "mapping.fields",
]


def doctor(world: World, **env: str) -> dict[str, Check]:
    checks = asyncio.run(run_doctor({**world.env(), **env}, ca_bundle=world.ca_bundle))
    assert [c.name for c in checks] == ALL_CHECKS
    return {c.name: c for c in checks}


def failing(checks: dict[str, Check]) -> set[str]:
    return {name for name, c in checks.items() if c.status == "FAIL"}


def set_up(world: World) -> None:
    asyncio.run(run_setup(world.settings()))


def test_setup_is_idempotent(world: World, use_env: UseEnv, capsys: pytest.CaptureFixture[str]):
    use_env(world)
    assert main(["setup", "--json"]) == 0
    first = {s["item"]: s["outcome"] for s in json.loads(capsys.readouterr().out)}
    tables = [
        f"table {world.prefix}{t}" for t in ("state", "links", "cycles", "errors", "personlog")
    ]
    assert {t: first[t] for t in tables} == dict.fromkeys(tables, "created")
    assert first["activity type msdynSyncPerson"] == "created"
    assert first["activity type msdynSyncError"] == "created"
    # world.env() sets no SYNC_HASH_KEY: setup makes the one every process will share.
    assert first["hash key"] == "generated"
    key = world.store().get_value("meta", "hashkey")
    assert key

    assert main(["setup"]) == 0
    second = capsys.readouterr().out
    assert "created" not in second and "generated" not in second
    assert second.count(" exists ") == 8
    assert "setup: done, 0 change(s)" in second
    assert world.store().get_value("meta", "hashkey") == key
    types = world.marketo("GET", "/rest/v1/activities/external/types.json")["result"]
    assert sorted((t["apiName"], t["status"]) for t in types) == [
        ("msdynSyncError", "approved"),
        ("msdynSyncPerson", "approved"),
    ]


def test_doctor_passes_on_a_good_setup(
    world: World, use_env: UseEnv, capsys: pytest.CaptureFixture[str]
):
    use_env(world)
    assert main(["doctor"]) == 1  # before setup: no tables, no activity types
    before = capsys.readouterr().out
    assert "FAIL  storage.tables" in before and "WARN  marketo.activity_types" in before

    assert main(["setup"]) == 0
    capsys.readouterr()
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    status = {c["name"]: c["status"] for c in report["checks"]}
    assert list(status) == ALL_CHECKS
    # The default mapping's text fields are longer in Marketo than in Dataverse.
    assert status.pop("mapping.fields") == "WARN"
    assert set(status.values()) == {"PASS"}
    # The probe row is gone again.
    assert world.store().members("doctor") == []


def test_doctor_change_tracking_off(world: World):
    set_up(world)
    world.dynamics_admin("PUT", "change-tracking", json={"table": "contact", "enabled": False})
    checks = doctor(world)
    assert failing(checks) == {"dynamics.contact.change_tracking"}
    ct = checks["dynamics.contact.change_tracking"]
    assert "Track changes" in ct.fix
    assert "modifiedon" in ct.detail and "deletes" in ct.detail  # what the sync does instead
    assert checks["dynamics.lead.change_tracking"].status == "PASS"
    assert exit_code(list(checks.values())) == 1


class StubDataverse:
    """Only answers the change-tracked probe doctor falls back to."""

    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.asked: list[tuple[str, dict[str, str]]] = []

    async def get_json(self, url: str, headers: dict[str, str]) -> dict[str, object]:
        self.asked.append((url, headers))
        if self.error:
            raise self.error
        return {"value": []}


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (None, "PASS"),
        (ChangeTrackingOff("Change tracking is not enabled for entity 'lead'."), "FAIL"),
    ],
)
def test_change_tracking_falls_back_to_a_probe_without_table_metadata(error, status):
    stub, report = StubDataverse(error), Report()
    asyncio.run(_change_tracking(stub, "lead", None, report))  # type: ignore[arg-type]
    assert [(c.name, c.status) for c in report.checks] == [
        ("dynamics.lead.change_tracking", status)
    ]
    ((url, headers),) = stub.asked
    assert url.startswith("leads?") and "odata.track-changes" in headers["Prefer"]


def test_doctor_alternate_key_missing(make_world: MakeWorld):
    keys = [AlternateKey("contact", "new_marketoid_key", ("new_marketoid",))]
    world = make_world(dynamics_config=DynamicsConfig(alternate_keys=keys))
    set_up(world)
    checks = doctor(world)
    assert failing(checks) == {"dynamics.lead.alternate_key"}
    assert "Keys -> New key" in checks["dynamics.lead.alternate_key"].fix


def test_doctor_wrong_marketo_secret(
    world: World, use_env: UseEnv, capsys: pytest.CaptureFixture[str]
):
    set_up(world)
    use_env(world, MARKETO_CLIENT_SECRET="not-the-secret")
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  marketo.credentials" in out and "PASS  marketo.endpoint" in out
    checks = doctor(world, MARKETO_CLIENT_SECRET="not-the-secret")
    assert failing(checks) == {"marketo.credentials"}
    assert "MARKETO_CLIENT_SECRET" in checks["marketo.credentials"].fix
    # Without Marketo metadata the mapping can't be checked; the rest still runs.
    assert checks["marketo.fields"].status == "SKIP"
    assert checks["mapping.fields"].status == "SKIP"
    assert checks["storage.write"].status == "PASS"


def test_doctor_marketo_user_without_a_permission(world: World):
    set_up(world)
    world.marketo_admin(
        "POST", "faults", json={"endpoint": "GET /rest/v1/leads/describe2.json", "kind": "603"}
    )
    checks = doctor(world)
    assert failing(checks) == {"marketo.credentials"}
    assert "Read-Write Person" in checks["marketo.credentials"].fix


def test_doctor_marketo_custom_field_missing(make_world: MakeWorld):
    world = make_world(drop_marketo_fields=["dynamicsDeleted"])
    set_up(world)
    checks = doctor(world)
    assert failing(checks) == {"marketo.fields"}
    assert "'dynamicsDeleted' is missing" in checks["marketo.fields"].detail
    assert "Field Management" in checks["marketo.fields"].fix


def test_doctor_bad_storage_connection(world: World):
    set_up(world)
    wrong_key = world.storage.replace(ACCOUNT_KEY, ACCOUNT_KEY[::-1])
    checks = doctor(world, SYNC_STORAGE_CONNECTION=wrong_key)
    assert failing(checks) == {"storage.tables"}
    assert checks["storage.write"].status == "SKIP"
    assert "SYNC_STORAGE_CONNECTION" in checks["storage.tables"].fix


def test_doctor_reports_bad_settings_without_crashing(tmp_path):
    checks = asyncio.run(run_doctor({"MARKETO_BASE_URL": "not a url"}))
    assert [(c.name, c.status) for c in checks] == [("settings", "FAIL")]
    assert "MARKETO_CLIENT_ID is required" in checks[0].detail
