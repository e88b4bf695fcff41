"""`python -m sync_core errors|status` read the sync's own logs."""

from __future__ import annotations

import argparse
import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from sync_core.admin import reports
from tests.scenarios.world import World


@pytest.fixture
def env(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    for k, v in world.env().items():
        monkeypatch.setenv(k, v)
    return world


def test_errors_list_and_csv_export(env: World):
    store = env.store()
    store.ensure_tables()
    store.record_errors(
        [{"operation": "update", "direction": "to-dynamics", "entity": "lead",
          "code": "0x80044331", "message": "too long, 'x'", "marketoId": 7,
          "dynamicsId": "abc", "fields": ["title", "city"]}]
    )  # fmt: skip
    out = io.StringIO()
    assert reports.errors(argparse.Namespace(since=None, csv=False), out) == 0
    assert "0x80044331" in out.getvalue() and "person 7" in out.getvalue()
    out = io.StringIO()
    reports.errors(argparse.Namespace(since=None, csv=True), out)
    (row,) = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert row["code"] == "0x80044331" and row["fields"] == "title,city"
    assert row["message"] == "too long, 'x'" and row["marketoId"] == "7"
    later = datetime.now(UTC) + timedelta(minutes=5)
    out = io.StringIO()
    reports.errors(argparse.Namespace(since=later, csv=True), out)
    assert len(list(csv.DictReader(io.StringIO(out.getvalue())))) == 0


def test_status_shows_the_last_cycles(env: World):
    env.dyn_create("contact", lastname="Status", emailaddress1="status@example.com")
    env.cycle()
    env.cycle()
    out = io.StringIO()
    reports.status(argparse.Namespace(last=5, json=False, live=False), out)
    lines = [line for line in out.getvalue().splitlines() if "->Marketo" in line]
    assert len(lines) == 2 and all("succeeded" in line for line in lines)
    assert "->Marketo 0" in lines[0]  # newest first: the idle cycle
    assert "people: 1 linked (0 leads, 1 contacts)" in out.getvalue()
