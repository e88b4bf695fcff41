"""§2.7/§2.8 Change feeds: paging token, leadchanges (13/12 with Source/Reason and the
writing user), activities.json, deletedleads (37), types, and short/empty pages."""

from __future__ import annotations

import httpx

from tests.emulators.marketo.support import Api, AsgiHttp
from tests.emulators.marketo.swagger import validate


def _attrs(item: dict) -> dict:
    return {a["name"]: a["value"] for a in item["attributes"]}


def test_leadchanges_records_source_and_writing_user(api: Api, marketer: Api) -> None:
    token = api.paging_token()
    lead_id = api.sync([{"email": "feed@example.com", "firstName": "Old"}])["result"][0]["id"]
    marketer.sync([{"id": lead_id, "firstName": "New", "city": "Paris"}], action="updateOnly",
                  lookup="id")
    body = api.get("/rest/v1/activities/leadchanges.json", nextPageToken=token,
                   fields="firstName,lastName")
    validate(body, "ResponseOfLeadChange")
    assert body["moreResult"] is False and body["nextPageToken"]
    kinds = [(r["activityTypeId"], [f["name"] for f in r["fields"]]) for r in body["result"]]
    # New Lead, then only the requested field's change (city is filtered out).
    assert kinds == [(12, []), (13, ["firstName"])]
    change = body["result"][1]
    assert change["leadId"] == lead_id
    assert change["fields"][0]["newValue"] == "New" and change["fields"][0]["oldValue"] == "Old"
    attrs = _attrs(change)
    assert attrs["Source"] == "Web service API" and attrs["Reason"]
    assert attrs["Modifying User"] == "marketing-user@marketo.emulator"
    assert _attrs(body["result"][0])["Modifying User"] == "sync-app@marketo.emulator"
    # Continuing from the returned token yields nothing new.
    again = api.get("/rest/v1/activities/leadchanges.json",
                    nextPageToken=body["nextPageToken"], fields="firstName")
    assert again["result"] == [] and again["moreResult"] is False


def test_activities_json_and_required_params(api: Api) -> None:
    token = api.paging_token()
    lead_id = api.sync([{"email": "act@example.com"}])["result"][0]["id"]
    api.sync([{"email": "act@example.com", "title": "CTO"}])
    assert api.get("/rest/v1/activities.json", nextPageToken=token)["errors"][0]["code"] == "701"
    body = api.get("/rest/v1/activities.json", nextPageToken=token, activityTypeIds="13")
    validate(body, "ResponseOfActivity")
    (item,) = body["result"]
    assert item["activityTypeId"] == 13 and item["primaryAttributeValue"] == "Job Title"
    assert _attrs(item)["New Value"] == "CTO" and item["leadId"] == lead_id
    assert item["marketoGUID"] == str(item["id"])
    bad = api.get("/rest/v1/activities/pagingtoken.json", sinceDatetime="yesterday")
    assert bad["success"] is False


def test_deleted_leads_and_pruning(http: httpx.Client, api: Api) -> None:
    token = api.paging_token()
    lead_id = api.sync([{"email": "gone@example.com", "firstName": "Gone",
                         "lastName": "Person"}])["result"][0]["id"]
    api.post("/rest/v1/leads/delete.json", {"input": [{"id": lead_id}]})
    body = api.get("/rest/v1/activities/deletedleads.json", nextPageToken=token)
    validate(body, "ResponseOfActivity")
    (item,) = body["result"]
    assert item["activityTypeId"] == 37 and item["leadId"] == lead_id
    assert item["primaryAttributeValueId"] == lead_id
    assert item["primaryAttributeValue"] == "Gone Person"
    http.post("/_emulator/clock", json={"advance_s": 15 * 86400})
    assert api.get("/rest/v1/activities/deletedleads.json", nextPageToken=token)["result"] == []


def test_types(api: Api) -> None:
    body = api.get("/rest/v1/activities/types.json")
    validate(body, "ResponseOfActivityType")
    ids = {t["id"]: t for t in body["result"]}
    assert {1, 12, 13, 32, 37, 110, 300} <= set(ids)
    assert ids[13]["name"] == "Change Data Value"


def test_short_and_empty_pages_with_more_result(local: AsgiHttp, lapi: Api) -> None:
    local.app.state.emulator.config.activity_scan_block = 4  # type: ignore[attr-defined]
    token = lapi.paging_token()
    # 1 create + 5 field changes per person; only New Lead (12) is asked for.
    for i in range(3):
        lapi.sync([{"email": f"s{i}@example.com", "firstName": "a", "lastName": "b",
                    "city": "c", "title": "d", "company": "e"}])
        lapi.sync([{"email": f"s{i}@example.com", "firstName": "z", "lastName": "y",
                    "city": "x", "title": "w", "company": "v"}])
    pages, seen = [], 0
    while True:
        body = lapi.get("/rest/v1/activities.json", nextPageToken=token, activityTypeIds="12")
        pages.append(len(body["result"]))
        seen += len(body["result"])
        token = body["nextPageToken"]
        if not body["moreResult"]:
            break
    assert seen == 3
    assert 0 in pages[:-1]  # at least one empty page while moreResult was true


def test_paging_token_since_datetime_position(local: AsgiHttp, lapi: Api) -> None:
    emu = local.app.state.emulator  # type: ignore[attr-defined]
    lapi.sync([{"email": "early@example.com"}])
    emu.clock_offset += 1800
    since = emu.now() - 60
    lapi.sync([{"email": "late@example.com"}])
    from emulators.marketo.fields import iso

    token = lapi.paging_token(iso(since))
    body = lapi.get("/rest/v1/activities.json", nextPageToken=token, activityTypeIds="12")
    assert [r["leadId"] for r in body["result"]] == [2]
