"""§7 Writes: create, update, upsert (id and alternate key), ETags, delete, single column, bulk."""

from __future__ import annotations

import uuid

from tests.emulators.dynamics.conftest import Dv


def test_create_with_client_supplied_id(dv: Dv) -> None:
    cid = str(uuid.uuid4())
    r = dv.post("contacts", json={"contactid": cid, "lastname": "Mine"})
    assert r.status_code == 204 and r.headers["OData-EntityId"].endswith(f"contacts({cid})")


def test_update_with_etag_and_stale_etag_412(dv: Dv, sales: Dv) -> None:
    c = dv.create("contacts", {"lastname": "Etag"})
    url = f"contacts({c['contactid']})"
    assert sales.patch(url, json={"jobtitle": "Changed"}, headers={"If-Match": "*"}
                       ).status_code == 204
    r = dv.patch(url, json={"jobtitle": "Sync"}, headers={"If-Match": c["@odata.etag"]})
    assert r.status_code == 412
    assert r.json()["error"]["message"] == \
        "The version of the existing record doesn't match the RowVersion property provided."
    fresh = dv.get(url).json()["@odata.etag"]
    r = dv.patch(url, json={"jobtitle": "Sync"}, headers={"If-Match": fresh,
                                                           "Prefer": "return=representation"})
    assert r.status_code == 200 and r.json()["jobtitle"] == "Sync"


def test_if_match_star_on_missing_row_is_404_not_create(dv: Dv) -> None:
    r = dv.patch(f"contacts({uuid.uuid4()})", json={"lastname": "x"}, headers={"If-Match": "*"})
    assert r.status_code == 404
    assert dv.get("contacts").json()["value"] == []


def test_patch_without_condition_is_upsert(dv: Dv) -> None:
    cid = str(uuid.uuid4())
    r = dv.patch(f"contacts({cid})", json={"lastname": "Up"},
                 headers={"Prefer": "return=representation"})
    assert r.status_code == 201 and r.json()["contactid"] == cid
    r = dv.patch(f"contacts({cid})", json={"lastname": "Up2"},
                 headers={"Prefer": "return=representation"})
    assert r.status_code == 200


def test_upsert_by_alternate_key_with_if_none_match(dv: Dv) -> None:
    url = "contacts(new_marketoid='M-1')"
    r = dv.patch(url, json={"lastname": "Key"}, headers={"If-None-Match": "*"})
    assert r.status_code == 204
    assert r.headers["OData-EntityId"].endswith("contacts(new_marketoid='M-1')")
    row = dv.get(url).json()
    assert row["new_marketoid"] == "M-1" and row["lastname"] == "Key"
    r = dv.patch(url, json={"lastname": "Again"}, headers={"If-None-Match": "*"})
    assert r.status_code == 412
    assert r.json()["error"]["message"] == "A record with matching key values already exists."
    # plain upsert updates the same row
    assert dv.patch(url, json={"lastname": "Upd"}).status_code == 204
    rows = dv.get("contacts").json()["value"]
    assert len(rows) == 1 and rows[0]["lastname"] == "Upd"


def test_key_with_escaped_quote_and_unknown_key(dv: Dv) -> None:
    assert dv.patch("contacts(new_marketoid='O''1')", json={"lastname": "Q"}).status_code == 204
    assert dv.get("contacts(new_marketoid='O''1')").json()["new_marketoid"] == "O'1"
    r = dv.get("contacts(emailaddress1='a@b.com')")
    assert r.status_code == 400
    assert "The key in the request URI is not valid" in r.json()["error"]["message"]


def test_alternate_key_violation(dv: Dv) -> None:
    dv.create("contacts", {"lastname": "A", "new_marketoid": "dup"})
    r = dv.post("contacts", json={"lastname": "B", "new_marketoid": "dup"})
    assert r.status_code == 412
    assert r.json()["error"]["code"] == "0x80060892"
    assert "Entity Key new_marketoid_key violated" in r.json()["error"]["message"]


def test_delete_with_etag_and_missing(dv: Dv) -> None:
    c = dv.create("contacts", {"lastname": "Del"})
    url = f"contacts({c['contactid']})"
    assert dv.delete(url, headers={"If-Match": 'W/"1"'}).status_code == 412
    assert dv.delete(url).status_code == 204
    assert dv.delete(url).status_code == 404
    assert dv.get(url).status_code == 404


def test_delete_by_alternate_key(dv: Dv) -> None:
    dv.create("leads", {"lastname": "K", "new_marketoid": "9"})
    assert dv.delete("leads(new_marketoid='9')").status_code == 204
    assert dv.get("leads").json()["value"] == []


def test_single_column_put_and_delete(dv: Dv) -> None:
    c = dv.create("contacts", {"lastname": "Col", "description": "text"})
    url = f"contacts({c['contactid']})"
    assert dv.put(url + "/lastname", json={"value": "NewName"}).status_code == 204
    assert dv.delete(url + "/description").status_code == 204
    row = dv.get(url).json()
    assert row["lastname"] == "NewName" and row["description"] is None
    assert dv.get(url + "/lastname").json()["value"] == "NewName"


def test_conditional_get_304(dv: Dv) -> None:
    c = dv.create("contacts", {"lastname": "C"})
    r = dv.get(f"contacts({c['contactid']})", headers={"If-None-Match": c["@odata.etag"]})
    assert r.status_code == 304


def test_statecode_update_sets_default_status(dv: Dv) -> None:
    c = dv.create("contacts", {"lastname": "S"})
    r = dv.patch(f"contacts({c['contactid']})", json={"statecode": 1},
                 headers={"Prefer": "return=representation", "If-Match": "*"})
    assert r.json()["statecode"] == 1 and r.json()["statuscode"] == 2


def test_bulk_create_and_upsert_multiple(dv: Dv) -> None:
    r = dv.post("leads/Microsoft.Dynamics.CRM.CreateMultiple", json={"Targets": [
        {"@odata.type": "Microsoft.Dynamics.CRM.lead", "lastname": "A"},
        {"@odata.type": "Microsoft.Dynamics.CRM.lead", "lastname": "B"}]})
    assert r.status_code == 200 and len(r.json()["Ids"]) == 2
    r = dv.post("leads/Microsoft.Dynamics.CRM.UpsertMultiple", json={"Targets": [
        {"@odata.type": "Microsoft.Dynamics.CRM.lead", "@odata.id": "leads(new_marketoid='u1')",
         "lastname": "U"}]})
    assert r.status_code == 200
    assert dv.get("leads(new_marketoid='u1')").json()["lastname"] == "U"
    # all-or-nothing
    r = dv.post("leads/Microsoft.Dynamics.CRM.CreateMultiple", json={"Targets": [
        {"lastname": "ok"}, {"lastname": "y" * 60}]})
    assert r.status_code == 400
    assert len(dv.get("leads").json()["value"]) == 3
