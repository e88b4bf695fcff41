"""§2.9 Custom activities: type draft/approve/describe, attributes, limits, and
activities/external.json with added/skipped, readable back through the feeds."""

from __future__ import annotations

import httpx

from tests.emulators.marketo.support import Api, AsgiHttp
from tests.emulators.marketo.swagger import validate

TYPE = {"apiName": "syncError", "name": "Dynamics Sync Error", "triggerName": "Sync error",
        "filterName": "Had sync error",
        "primaryAttribute": {"apiName": "entity", "name": "Entity", "dataType": "string"}}


def _setup_type(api: Api) -> int:
    created = api.post("/rest/v1/activities/external/type.json", TYPE)
    validate(created, "ResponseOfCustomActivityType")
    assert created["result"][0]["status"] == "draft"
    api.post("/rest/v1/activities/external/type/syncError/attributes/create.json",
             {"attributes": [{"apiName": "errorCode", "name": "Error Code",
                              "dataType": "string"},
                             {"apiName": "message", "name": "Message", "dataType": "text"}]})
    approved = api.post("/rest/v1/activities/external/type/syncError/approve.json")
    assert approved["result"][0]["status"] == "approved"
    return int(approved["result"][0]["id"])


def test_type_lifecycle_and_add_activities(http: httpx.Client, api: Api) -> None:
    lead_id = api.sync([{"email": "ca@example.com"}])["result"][0]["id"]
    token = api.paging_token()
    created = api.post("/rest/v1/activities/external/type.json", TYPE)
    type_id = created["result"][0]["id"]
    rec = {"leadId": lead_id, "activityDate": "2024-05-01T10:00:00+02:00",
           "activityTypeId": type_id, "primaryAttributeValue": "contact",
           "attributes": [{"apiName": "errorCode", "value": "0x80040220"}]}
    # Not approved yet: skipped with `errors` (not `reasons`).
    early = api.post("/rest/v1/activities/external.json", {"input": [rec]})["result"][0]
    assert early["status"] == "skipped" and early["errors"][0]["code"] == "1003"
    _ = api.post("/rest/v1/activities/external/type/syncError/attributes/create.json",
                 {"attributes": [{"apiName": "errorCode", "name": "Error Code"}]})
    api.post("/rest/v1/activities/external/type/syncError/approve.json")
    described = api.get("/rest/v1/activities/external/type/syncError/describe.json")
    validate(described, "ResponseOfCustomActivityType")
    assert described["result"][0]["attributes"][0]["apiName"] == "errorCode"
    res = api.post("/rest/v1/activities/external.json", {"input": [
        rec, {**rec, "leadId": 99999}, {**rec, "attributes": [{"apiName": "nope", "value": 1}]},
    ]})
    assert [r["status"] for r in res["result"]] == ["added", "skipped", "skipped"]
    assert res["result"][0]["marketoGUID"]
    validate({**res, "result": res["result"][:1]}, "ResponseOfCustomActivity")
    assert res["result"][1]["errors"][0]["code"] == "1004"
    assert res["result"][2]["errors"][0]["code"] == "1006"
    feed = api.get("/rest/v1/activities.json", nextPageToken=token, activityTypeIds=str(type_id))
    (item,) = feed["result"]
    assert item["primaryAttributeValue"] == "contact"
    assert item["activityDate"] == "2024-05-01T08:00:00Z"
    assert {"name": "Error Code", "value": "0x80040220", "apiName": "errorCode"} in item[
        "attributes"]
    types = api.get("/rest/v1/activities/types.json")["result"]
    assert any(t["id"] == type_id and t["apiName"] == "syncError" for t in types)
    log = http.get(f"/_emulator/people/{lead_id}/activities").json()
    assert [a["activityTypeId"] for a in log] == [12, type_id]


def test_draft_over_approved_and_limits(local: AsgiHttp, lapi: Api) -> None:
    _setup_type(lapi)
    lapi.post("/rest/v1/activities/external/type/syncError.json", {"name": "Renamed"})
    listed = lapi.get("/rest/v1/activities/external/types.json")["result"][0]
    assert listed["status"] == "approved with draft" and listed["name"] == "Dynamics Sync Error"
    draft = lapi.get("/rest/v1/activities/external/type/syncError/describe.json", draft="true")
    assert draft["result"][0]["name"] == "Renamed"
    dup = lapi.post("/rest/v1/activities/external/type.json", TYPE)
    assert dup["errors"][0]["code"] == "1017"
    emu = local.app.state.emulator  # type: ignore[attr-defined]
    emu.config.max_custom_activity_types = 1
    other = lapi.post("/rest/v1/activities/external/type.json", {**TYPE, "apiName": "other"})
    assert other["errors"][0]["code"] == "1027"
    emu.config.max_custom_activity_attributes = 2
    too_many = lapi.post("/rest/v1/activities/external/type/syncError/attributes/create.json",
                         {"attributes": [{"apiName": "third", "name": "Third"}]})
    assert too_many["errors"][0]["code"] == "1028"
