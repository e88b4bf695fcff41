"""Shared fixtures: one emulator served over real HTTP per test session, reset per test.

Conformance tests talk to the emulator through real sockets with httpx, the same way the
sync does; resetting through the admin API keeps tests independent without paying for a
server start per test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from emulators.dynamics import DynamicsApp, create_app
from tests.support.servers import running_server

API = "/api/data/v9.2/"
SYNC_USER = "00000000-0000-4000-8000-00000000a001"
SALES_USER = "00000000-0000-4000-8000-00000000a002"


class Dv:
    """A tiny Dataverse client bound to one user's bearer token."""

    def __init__(self, base: str, client_id: str, secret: str, tenant: str) -> None:
        self.base = base
        r = httpx.post(f"{base}/{tenant}/oauth2/v2.0/token",
                       data={"grant_type": "client_credentials", "client_id": client_id,
                             "client_secret": secret, "scope": f"{base}/.default"})
        r.raise_for_status()
        self.http = httpx.Client(base_url=base + API, headers={
            "Authorization": f"Bearer {r.json()['access_token']}", "Accept": "application/json",
            "OData-MaxVersion": "4.0", "OData-Version": "4.0"}, timeout=30)

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.http.get(url, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.http.post(url, **kw)

    def patch(self, url: str, **kw: Any) -> httpx.Response:
        return self.http.patch(url, **kw)

    def put(self, url: str, **kw: Any) -> httpx.Response:
        return self.http.put(url, **kw)

    def delete(self, url: str, **kw: Any) -> httpx.Response:
        return self.http.delete(url, **kw)

    def create(self, entity_set: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.post(entity_set, json=body, headers={"Prefer": "return=representation"})
        assert r.status_code == 201, r.text
        return dict(r.json())


@pytest.fixture(scope="session")
def emulator() -> Iterator[tuple[DynamicsApp, str]]:
    app = create_app()
    with running_server(app) as url:
        yield app, url


@pytest.fixture
def app(emulator: tuple[DynamicsApp, str]) -> DynamicsApp:
    emulator[0].reset()
    return emulator[0]


@pytest.fixture
def base(app: DynamicsApp, emulator: tuple[DynamicsApp, str]) -> str:
    return emulator[1]


@pytest.fixture
def admin(base: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base + "/_emulator", timeout=30) as c:
        yield c


@pytest.fixture
def dv(app: DynamicsApp, base: str) -> Dv:
    return Dv(base, "sync-app", "sync-app-secret", app.cfg.tenant_id)


@pytest.fixture
def sales(app: DynamicsApp, base: str) -> Dv:
    return Dv(base, "sales-user", "sales-user-secret", app.cfg.tenant_id)
