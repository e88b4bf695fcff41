"""Worlds for the metadata, fields, setup and doctor tests.

`world` is the end-to-end world of tests/scenarios (both emulators over real HTTP, TLS
for Dynamics, Azurite). `make_world` opens further worlds with a different Dynamics
configuration or a Marketo person schema missing some fields (the Marketo emulator has
no admin call for that, so the app's state object is adjusted, as its README allows).
`use_env` points `python -m sync_core` at a world through the process environment, the
way an admin's shell would, including the CA bundle of the emulator's TLS certificate.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

import tests.scenarios.world as world_module
from emulators.dynamics import DynamicsConfig
from emulators.marketo import create_app as marketo_app
from emulators.marketo.fields import Schema
from sync_core.settings import ENV_NAMES
from tests.scenarios.world import World, open_world

MakeWorld = Callable[..., World]


@pytest.fixture
def make_world(
    azurite: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MakeWorld]:
    with ExitStack() as stack:

        def make(
            *,
            dynamics_config: DynamicsConfig | None = None,
            drop_marketo_fields: Iterable[str] = (),
        ) -> World:
            drop = set(drop_marketo_fields)

            def app(config: Any) -> Any:
                created = marketo_app(config)
                emu = created.state.emulator
                emu.schema = Schema([f for f in emu.schema.fields if f.name not in drop])
                return created

            monkeypatch.setattr(world_module, "marketo_app", app)
            tmp = tmp_path / uuid.uuid4().hex[:8]
            tmp.mkdir()
            return open_world(stack, azurite, tmp, dynamics_config=dynamics_config)

        yield make


@pytest.fixture
def world(make_world: MakeWorld) -> World:
    return make_world()


@pytest.fixture
def use_env(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    def apply(world: World, **overrides: str) -> None:
        # Nothing from the developer's own shell may leak into the settings.
        for name in ENV_NAMES:
            monkeypatch.delenv(name, raising=False)
        for name, value in {**world.env(), **overrides}.items():
            monkeypatch.setenv(name, value)
        # httpx reads SSL_CERT_FILE, azure-identity (requests) REQUESTS_CA_BUNDLE.
        monkeypatch.setenv("SSL_CERT_FILE", world.ca_bundle)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", world.ca_bundle)

    return apply
