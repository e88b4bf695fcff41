"""Fixtures for the real-time webhook tests: the project's FunctionApp served by the
local functions host over HTTP, and a fresh world (emulators + Azurite) per test whose
settings reach the function through environment variables, as app settings do."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

import sync_core.runtime as runtime
from emulators.functions import create_host
from tests.realtime.support import FUNCTION_KEY, MASTER_KEY, Webhook, snapshot
from tests.scenarios.world import World, open_world
from tests.support.functions import fresh_function_app
from tests.support.servers import running_server


@pytest.fixture(scope="session")
def functions_url() -> Iterator[str]:
    host = create_host(
        fresh_function_app(), function_key=FUNCTION_KEY, master_key=MASTER_KEY, run_timers=False
    )
    with running_server(host) as url:
        yield url


@pytest.fixture
def world(azurite: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with ExitStack() as stack:
        w = open_world(stack, azurite, tmp_path)
        # The function reads its settings from the environment, like app settings; the
        # host runs in this process, so monkeypatch reaches it and undoes it afterwards.
        for name, value in w.env().items():
            monkeypatch.setenv(name, value)
        w.setup()
        yield w
        # The function's cached Entra credential keeps a TLS keep-alive connection to
        # this world's Dynamics emulator; dropping it lets the server stop at once
        # instead of waiting out its graceful-shutdown timeout.
        runtime._credential.cache_clear()
        gc.collect()


@pytest.fixture
def hook(functions_url: str, world: World) -> Iterator[Webhook]:
    with Webhook(functions_url, world) as w:
        yield w


@pytest.fixture
def synced_world(world: World, hook: Webhook) -> Iterator[tuple[World, Webhook, dict[str, Any]]]:
    """A world whose only person (id 1) is already synced, for the fuzzing test."""
    mid = world.marketo_create(email="only@example.com", lastName="Only")
    assert mid == 1
    reply = hook.sync(mid).json()
    assert reply["status"] == "created"
    before = snapshot(world)
    yield world, hook, {**reply, "status": "already-synced"}
    assert snapshot(world) == before  # not even the state tables changed
