"""§2.1 Hosts and auth: token issue/reuse/expiry, 401 invalid_client, 601/602."""

from __future__ import annotations

import re

import httpx

from tests.emulators.marketo.support import Api, AsgiHttp
from tests.emulators.marketo.swagger import validate

CREDS = {"grant_type": "client_credentials", "client_id": "sync-app",
         "client_secret": "sync-app-secret"}


def test_token_get_and_post_return_same_token_counting_down(http: httpx.Client) -> None:
    r1 = http.get("/identity/oauth/token", params=CREDS)
    assert r1.status_code == 200
    body = r1.json()
    validate(body, "ResponseOfIdentity", "swagger-identity.json")
    assert body["token_type"] == "bearer" and body["expires_in"] == 3599
    assert body["scope"] == "sync-app@marketo.emulator"
    http.post("/_emulator/clock", json={"advance_s": 100})
    r2 = http.post("/identity/oauth/token", params=CREDS)
    assert r2.json()["access_token"] == body["access_token"]
    assert 3498 <= r2.json()["expires_in"] <= 3499


def test_bad_credentials_401_invalid_client(http: httpx.Client) -> None:
    r = http.get("/identity/oauth/token", params={**CREDS, "client_secret": "nope"})
    assert r.status_code == 401
    assert r.json() == {"error": "invalid_client", "error_description": "Bad client credentials"}


def test_missing_unknown_and_expired_tokens(http: httpx.Client) -> None:
    r = http.get("/rest/v1/leads/describe2.json")
    assert r.status_code == 200 and r.json()["errors"][0]["code"] == "601"
    assert re.fullmatch(r"[0-9a-f]+#[0-9a-f]+", r.json()["requestId"])
    r = http.get("/rest/v1/leads/describe2.json", headers={"Authorization": "Bearer nope"})
    assert r.json()["errors"][0]["code"] == "601"
    http.post("/_emulator/config", json={"token_lifetime_s": 5})
    api = Api(http)
    token = api.login()
    assert api.get("/rest/v1/leads/describe2.json")["success"] is True
    http.post("/_emulator/clock", json={"advance_s": 6})
    r = http.get("/rest/v1/leads/describe2.json", headers={"Authorization": f"Bearer {token}"})
    body = r.json()
    assert body["success"] is False and body["errors"][0]["code"] == "602"
    # A new token is issued once the old one has expired.
    assert api.login() != token


def test_access_token_parameter_switch(local: AsgiHttp, lapi: Api) -> None:
    token = lapi.login()
    r = local.get("/rest/v1/leads/describe.json", params={"access_token": token})
    assert r.json()["success"] is True
    local.app.state.emulator.config.allow_access_token_param = False  # type: ignore[attr-defined]
    r = local.get("/rest/v1/leads/describe.json", params={"access_token": token})
    assert r.json()["errors"][0]["code"] == "601"


def test_admin_can_expire_all_tokens(http: httpx.Client, api: Api) -> None:
    api.login()
    http.post("/_emulator/tokens/expire")
    r = api.raw("GET", "/rest/v1/leads/describe2.json")
    assert r.json()["errors"][0]["code"] == "602"
