"""§2.6 Leads: describe/describe2, reads by id/email/custom field, Sync Leads matrix,
delete and merge."""

from __future__ import annotations

import httpx

from tests.emulators.marketo.support import Api, AsgiHttp
from tests.emulators.marketo.swagger import validate

REQUIRED_FIELDS = {
    "id", "email", "firstName", "lastName", "title", "phone", "mobilePhone", "address", "city",
    "state", "postalCode", "country", "company", "unsubscribed", "doNotCall", "createdAt",
    "updatedAt", "leadSource", "website", "industry", "numberOfEmployees", "annualRevenue",
    "fax", "salutation", "middleName", "leadStatus", "dynamicsId", "dynamicsType",
    "dynamicsDeleted",
}


def test_describe_and_describe2(api: Api) -> None:
    d = api.get("/rest/v1/leads/describe.json")
    validate(d, "ResponseOfLeadAttribute")
    assert {f["rest"]["name"] for f in d["result"]} >= REQUIRED_FIELDS
    d2 = api.get("/rest/v1/leads/describe2.json")
    validate(d2, "ResponseOfLeadAttribute2")
    entry = d2["result"][0]
    assert entry["name"] == "API Lead"
    fields = {f["name"]: f for f in entry["fields"]}
    assert set(fields) >= REQUIRED_FIELDS
    assert fields["dynamicsDeleted"]["dataType"] == "boolean"
    assert fields["updatedAt"]["updateable"] is False
    assert ["email"] in entry["searchableFields"] and ["dynamicsId"] in entry["searchableFields"]
    one = api.get("/rest/v1/leads/schema/fields/dynamicsId.json")
    validate(one, "ResponseOfLeadField")
    assert one["result"][0]["isCustom"] is True


def test_sync_read_roundtrip_with_nulls_omitted(api: Api) -> None:
    body = api.sync([{"email": "Jane.Doe@Example.com", "firstName": "Jane",
                      "dynamicsId": "3f2a", "dynamicsType": "lead", "numberOfEmployees": "12",
                      "unsubscribed": "false"}], action="createOnly")
    validate(body, "ResponseOfLead")
    lead_id = body["result"][0]["id"]
    assert body["result"][0]["status"] == "created"
    got = api.get(f"/rest/v1/lead/{lead_id}.json",
                  fields="email,firstName,lastName,numberOfEmployees,unsubscribed,dynamicsId")
    validate(got, "ResponseOfLead")
    assert got["result"] == [{"id": lead_id, "email": "Jane.Doe@Example.com", "firstName": "Jane",
                              "numberOfEmployees": 12, "unsubscribed": False,
                              "dynamicsId": "3f2a"}]
    # Email lookup is case-insensitive; default fields include timestamps.
    by_email = api.get("/rest/v1/leads.json", filterType="email",
                       filterValues="jane.doe@example.COM")
    rec = by_email["result"][0]
    assert rec["id"] == lead_id and rec["createdAt"].endswith("Z") and "lastName" not in rec
    by_dyn = api.get("/rest/v1/leads.json", filterType="dynamicsId", filterValues="3f2a,nope",
                     fields="dynamicsType")
    assert by_dyn["result"] == [{"id": lead_id, "dynamicsType": "lead"}]
    assert api.get("/rest/v1/lead/999999.json")["result"] == []
    assert api.get("/rest/v1/leads.json", filterType="email",
                   filterValues="nobody@example.com")["result"] == []


def test_sync_matrix_reason_codes(api: Api) -> None:
    api.sync([{"email": "a@example.com"}])
    api.sync([{"email": "dup@example.com"}, {"email": "dup@example.com"}],
             action="createDuplicate")
    res = api.sync([
        {"email": "a@example.com", "firstName": "A"},      # exists → 1005
        {"email": "new@example.com"},                     # created
        {"email": "x@example.com", "numberOfEmployees": "many"},   # 1001
        {"email": "y@example.com", "noSuchField": 1},     # 1006
        {"id": 5, "email": "z@example.com"},              # id with createOnly → 1003
    ], action="createOnly")["result"]
    assert [r["status"] for r in res] == ["skipped", "created", "skipped", "skipped", "skipped"]
    assert [r.get("reasons", [{}])[0].get("code") for r in res] == [
        "1005", None, "1001", "1006", "1003"]
    upd = api.sync([
        {"email": "A@EXAMPLE.com", "lastName": "Smith"},  # updated (case-insensitive)
        {"email": "ghost@example.com", "lastName": "G"},  # 1004
        {"email": "dup@example.com", "lastName": "D"},    # 1007
    ], action="updateOnly")["result"]
    assert upd[0]["status"] == "updated"
    assert upd[1]["reasons"][0]["code"] == "1004"
    assert upd[2]["reasons"][0]["code"] == "1007"
    lead_id = upd[0]["id"]
    by_id = api.sync([{"id": lead_id, "dynamicsDeleted": True}, {"id": 987654, "title": "x"}],
                     action="updateOnly", lookup="id")["result"]
    assert by_id[0] == {"id": lead_id, "status": "updated"}
    assert by_id[1]["reasons"][0]["code"] == "1004"
    person = api.get(f"/rest/v1/lead/{lead_id}.json", fields="lastName,dynamicsDeleted")
    assert person["result"][0] == {"id": lead_id, "lastName": "Smith", "dynamicsDeleted": True}
    # Writing null clears the value, which then disappears from reads.
    api.sync([{"id": lead_id, "lastName": None}], action="updateOnly", lookup="id")
    assert "lastName" not in api.get(f"/rest/v1/lead/{lead_id}.json",
                                     fields="lastName")["result"][0]


def test_filter_validation_and_paging(local: AsgiHttp, lapi: Api) -> None:
    assert lapi.get("/rest/v1/leads.json", filterType="firstName",
                    filterValues="x")["errors"][0]["code"] == "1011"
    assert lapi.get("/rest/v1/leads.json", filterType="email", filterValues="a@b.c",
                    fields="bogus")["errors"][0]["code"] == "1006"
    ids = [r["id"] for r in lapi.sync([{"email": f"p{i}@example.com"} for i in range(5)])["result"]]
    values = ",".join(str(i) for i in ids)
    page1 = lapi.get("/rest/v1/leads.json", filterType="id", filterValues=values, batchSize=3)
    assert [r["id"] for r in page1["result"]] == ids[:3] and page1["nextPageToken"]
    page2 = lapi.get("/rest/v1/leads.json", filterType="id", filterValues=values, batchSize=3,
                     nextPageToken=page1["nextPageToken"])
    assert [r["id"] for r in page2["result"]] == ids[3:] and "nextPageToken" not in page2
    local.app.state.emulator.config.max_filter_matches = 2  # type: ignore[attr-defined]
    assert lapi.get("/rest/v1/leads.json", filterType="id",
                    filterValues=values)["errors"][0]["code"] == "1003"


def test_delete_and_merge(http: httpx.Client, api: Api) -> None:
    ids = [r["id"] for r in api.sync([
        {"email": "w@example.com", "firstName": "Winner"},
        {"email": "l@example.com", "lastName": "Loser", "phone": "123"},
        {"email": "d@example.com"}])["result"]]
    w, loser, d = ids
    body = api.post("/rest/v1/leads/delete.json", {"input": [{"id": d}, {"id": 424242}]})
    validate(body, "ResponseOfLead")
    assert body["result"][0] == {"id": d, "status": "deleted"}
    assert body["result"][1]["reasons"][0]["code"] == "1004"
    merged = api.post(f"/rest/v1/leads/{w}/merge.json", None, leadId=loser)
    validate(merged, "ResponseWithoutResult")
    assert merged["success"] is True
    winner = api.get(f"/rest/v1/lead/{w}.json", fields="firstName,lastName,phone,email")
    assert winner["result"][0] == {"id": w, "email": "w@example.com", "firstName": "Winner",
                                   "lastName": "Loser", "phone": "123"}
    assert api.get(f"/rest/v1/lead/{loser}.json")["result"] == []
    acts = http.get(f"/_emulator/people/{w}/activities").json()
    merge = next(a for a in acts if a["activityTypeId"] == 32)
    assert {"name": "Merge IDs", "value": str(loser)} in merge["attributes"]
