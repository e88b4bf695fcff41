"""`python -m sync_core run-once` from a shell: summary, JSON, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.scenarios.world import World


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("MARKETO_", "DYNAMICS_", "SYNC_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "sync_core", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_run_once_prints_a_summary_and_json(world: World):
    world.dyn_create("contact", lastname="Shell", emailaddress1="shell@example.com")
    text = run(world.env(), "run-once")
    assert text.returncode == 0, text.stderr
    assert "succeeded" in text.stdout and "API calls: Marketo" in text.stdout
    as_json = run(world.env(), "run-once", "--json")
    summary = json.loads(as_json.stdout)
    assert summary["outcome"] == "succeeded" and "apiCalls" in summary


def test_failed_cycle_exits_non_zero(world: World):
    bad = {**world.env(), "MARKETO_CLIENT_SECRET": "wrong"}
    result = run(bad, "run-once", "--json")
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert summary["outcome"] == "failed" and "MARKETO_CLIENT_SECRET" in summary["message"]


def test_missing_setting_is_named(world: World):
    env = {k: v for k, v in world.env().items() if k != "DYNAMICS_URL"}
    result = run(env, "run-once")
    assert result.returncode == 2 and "DYNAMICS_URL" in result.stderr
    assert "sync-app-secret" not in result.stderr
