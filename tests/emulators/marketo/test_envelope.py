"""§2.2/§2.3 Envelope and error layers: 605/609/610/612, 413/414, `_method=GET`,
fault injection, and statistics."""

from __future__ import annotations

import httpx

from tests.emulators.marketo.support import Api, AsgiHttp
from tests.emulators.marketo.swagger import validate


def test_http_200_api_errors(http: httpx.Client, api: Api) -> None:
    r = api.raw("PUT", "/rest/v1/leads.json")
    assert r.status_code == 200 and r.json()["errors"][0]["code"] == "605"
    r = api.raw("POST", "/rest/v1/leads.json", content=b"{not json",
                headers={"Content-Type": "application/json"})
    assert r.json()["errors"][0]["code"] == "609"
    validate(r.json(), "ResponseOfLead")
    r = api.raw("POST", "/rest/v1/leads.json", content=b"x=1",
                headers={"Content-Type": "text/plain"})
    assert r.json()["errors"][0]["code"] == "612"
    r = api.raw("GET", "/rest/v1/nothing/here.json")
    assert r.status_code == 200 and r.json()["errors"][0]["code"] == "610"


def test_size_limits_413_414(http: httpx.Client, api: Api) -> None:
    r = api.raw("GET", "/rest/v1/leads.json",
                params={"filterType": "id", "filterValues": "1," * 5000})
    assert r.status_code == 414
    r = api.raw("POST", "/rest/v1/leads.json", content=b"{" + b" " * 1_100_000 + b"}",
                headers={"Content-Type": "application/json"})
    assert r.status_code == 413


def test_method_get_tunnel_with_form_body(http: httpx.Client, api: Api) -> None:
    api.sync([{"email": "tunnel@example.com", "firstName": "T"}])
    r = api.raw("POST", "/rest/v1/leads.json", params={"_method": "GET"},
                data={"filterType": "email", "filterValues": "tunnel@example.com",
                      "fields": "firstName"})
    body = r.json()
    assert body["success"] is True and body["result"][0]["firstName"] == "T"


def test_fault_injection_and_stats(http: httpx.Client, api: Api) -> None:
    http.post("/_emulator/faults", json={"endpoint": "GET /rest/v1/leads/describe2.json",
                                         "kind": "606", "count": 1})
    http.post("/_emulator/faults", json={"endpoint": "GET /rest/v1/leads/describe.json",
                                         "kind": "http503", "count": 1})
    assert api.get("/rest/v1/leads/describe2.json")["errors"][0]["code"] == "606"
    assert api.get("/rest/v1/leads/describe2.json")["success"] is True
    assert api.raw("GET", "/rest/v1/leads/describe.json").status_code == 503
    http.post("/_emulator/faults", json={"endpoint": "*", "kind": "timeout", "delay_s": 0.05,
                                         "count": 1})
    assert api.get("/rest/v1/leads/describe.json")["errors"][0]["code"] == "604"
    stats = http.get("/_emulator/stats").json()
    d2 = stats["endpoints"]["GET /rest/v1/leads/describe2.json"]
    assert d2 == {"calls": 2, "throttled": 1, "errors": 1, "errorCodes": {"606": 1}}
    assert stats["byUser"]["sync-app"] >= 4
    http.delete("/_emulator/faults")
    assert http.get("/_emulator/faults").json() == []


def test_unhandled_error_is_611(local: AsgiHttp, lapi: Api) -> None:
    # Break the state on purpose: the dispatcher must answer 611, not an HTML 500 page.
    local.app.state.emulator.schema = None  # type: ignore[attr-defined]
    body = lapi.get("/rest/v1/leads/describe2.json")
    assert body["success"] is False and body["errors"][0]["code"] == "611"
