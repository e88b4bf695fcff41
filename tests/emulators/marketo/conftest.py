"""Fixtures: one real-HTTP emulator per module (reset before each test) and a fresh
in-process app per test for fast unit-level checks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from emulators.marketo import MarketoConfig, create_app
from tests.emulators.marketo.support import Api, AsgiHttp
from tests.support.servers import running_server


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Any]]:
    app = create_app(MarketoConfig())
    with running_server(app) as url:
        yield url, app


@pytest.fixture
def http(server: tuple[str, Any]) -> Iterator[httpx.Client]:
    url, _app = server
    with httpx.Client(base_url=url, timeout=10) as client:
        r = client.post("/_emulator/reset", json={"defaults": True})
        assert r.status_code == 200
        yield client


@pytest.fixture
def api(http: httpx.Client) -> Api:
    return Api(http, "sync-app")


@pytest.fixture
def marketer(http: httpx.Client) -> Api:
    return Api(http, "marketing-user")


@pytest.fixture
def local() -> Iterator[AsgiHttp]:
    """In-process emulator; tweak `local_app.state.emulator.config` freely."""
    app = create_app(MarketoConfig())
    h = AsgiHttp(app)
    h.app = app  # type: ignore[attr-defined]
    yield h
    h.close()


@pytest.fixture
def lapi(local: AsgiHttp) -> Api:
    return Api(local, "sync-app")
