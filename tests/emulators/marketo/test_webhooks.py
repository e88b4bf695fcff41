"""§2.11 Webhooks: person-created trigger and admin firing, token templates, custom
headers, response mappings on 2xx only, activity 110, timeout without retry."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.emulators.marketo.support import Api
from tests.support.servers import running_server

RECEIVED: list[dict[str, Any]] = []


async def hook(request: Request) -> Response:
    body = await request.body()
    RECEIVED.append({"path": request.url.path, "query": str(request.url.query),
                     "headers": dict(request.headers), "body": body.decode()})
    mode = request.query_params.get("mode")
    if mode == "fail":
        return JSONResponse({"dynamicsId": "should-not-map"}, status_code=500)
    if mode == "slow":
        import asyncio

        await asyncio.sleep(1.0)
    return JSONResponse({"result": {"crm": [{"id": "guid-123", "type": "lead"}]}})


def _receiver() -> Any:
    return running_server(Starlette(routes=[Route("/hook", hook, methods=["POST", "GET"])]))


def test_person_created_trigger_posts_template(http: httpx.Client, api: Api,
                                               marketer: Api) -> None:
    RECEIVED.clear()
    with _receiver() as target:
        spec = {
            "name": "Sync Person to Microsoft",
            "url": target + "/hook?email={{lead.Email Address}}",
            "method": "POST",
            "template": '{"id": {{lead.Id}}, "email": {{lead.Email Address}}, '
                        '"first": {{lead.First Name}}, "unsub": {{lead.Unsubscribed}}}',
            "headers": {"X-Secret": "s3cret", "X-Lead": "{{lead.Id}}"},
            "responseMappings": [{"attribute": "result.crm[0].id", "field": "dynamicsId"},
                                 {"attribute": "result.crm[0].type", "field": "Dynamics Type"}],
            "trigger": "personCreated",
            "excludeUsers": ["sync-app"],
        }
        created = http.post("/_emulator/webhooks", json=spec)
        assert created.status_code == 201
        # The sync's own creates are excluded; the marketer's create fires the webhook.
        api.sync([{"email": "own@example.com"}])
        lead_id = marketer.sync([{"email": "hook@example.com", "firstName": 'Ann "A"'}])[
            "result"][0]["id"]
        http.post("/_emulator/webhooks/wait")
        assert len(RECEIVED) == 1
        got = RECEIVED[0]
        assert got["query"] == "email=hook@example.com"
        assert got["headers"]["x-secret"] == "s3cret" and got["headers"]["x-lead"] == str(lead_id)
        assert json.loads(got["body"]) == {"id": lead_id, "email": "hook@example.com",
                                           "first": 'Ann "A"', "unsub": None}
    person = api.get(f"/rest/v1/lead/{lead_id}.json", fields="dynamicsId,dynamicsType")
    assert person["result"][0] == {"id": lead_id, "dynamicsId": "guid-123",
                                   "dynamicsType": "lead"}
    acts = http.get(f"/_emulator/people/{lead_id}/activities").json()
    call = next(a for a in acts if a["activityTypeId"] == 110)
    assert "Error Type" not in {a["name"] for a in call["attributes"]}
    changes = [a for a in acts if a["activityTypeId"] == 13]
    assert {a["primaryAttributeValue"] for a in changes} == {"Dynamics Id", "Dynamics Type"}


def test_fire_on_demand_errors_and_timeout(http: httpx.Client, api: Api) -> None:
    RECEIVED.clear()
    lead_id = api.sync([{"email": "f@example.com"}])["result"][0]["id"]
    with _receiver() as target:
        fail = http.post("/_emulator/webhooks", json={
            "url": target + "/hook?mode=fail", "template": "{}",
            "responseMappings": [{"attribute": "dynamicsId", "field": "dynamicsId"}]}).json()
        res = http.post(f"/_emulator/webhooks/{fail['id']}/fire", json={"leadId": lead_id}).json()
        assert res["status"] == 500 and res["errorType"].startswith("HTTP 500")
        assert res["mapped"] == []
        http.post("/_emulator/config", json={"webhook_timeout_s": 0.2})
        slow = http.post("/_emulator/webhooks", json={
            "url": target + "/hook?mode=slow", "method": "GET"}).json()
        t0 = time.monotonic()
        res = http.post(f"/_emulator/webhooks/{slow['id']}/fire", json={"leadId": lead_id}).json()
        assert res["errorType"] == "Timeout" and time.monotonic() - t0 < 0.9
        assert len([r for r in RECEIVED if "slow" in r["query"]]) == 1  # never retried
    person = api.get(f"/rest/v1/lead/{lead_id}.json", fields="dynamicsId")["result"][0]
    assert "dynamicsId" not in person
    acts = http.get(f"/_emulator/people/{lead_id}/activities").json()
    errors = [{x["name"]: x["value"] for x in a["attributes"]}.get("Error Type")
              for a in acts if a["activityTypeId"] == 110]
    assert errors[0].startswith("HTTP 500") and errors[1] == "Timeout"
    assert len(http.get("/_emulator/webhooks/calls").json()) == 2
