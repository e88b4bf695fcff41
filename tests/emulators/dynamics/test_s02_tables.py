"""§2 Tables: standard + custom columns, computed fullname, lookups, stamps, GUID keys."""

from __future__ import annotations

import re

from tests.emulators.dynamics.conftest import SALES_USER, SYNC_USER, Dv


def test_contact_has_standard_and_custom_columns(dv: Dv) -> None:
    row = dv.create("contacts", {"firstname": "Ada", "lastname": "Lovelace",
                                 "emailaddress1": "ada@example.com", "new_marketoid": "42",
                                 "new_synctomkto": True, "donotbulkemail": False,
                                 "leadsourcecode": 8, "preferredcontactmethodcode": 2,
                                 "industrycode": 7})
    assert re.fullmatch(r"[0-9a-f-]{36}", row["contactid"])
    assert row["fullname"] == "Ada Lovelace"
    assert row["new_marketoid"] == "42" and row["new_synctomkto"] is True
    assert row["@odata.etag"] == f'W/"{row["versionnumber"]}"'
    assert row["_createdby_value"] == SYNC_USER == row["_modifiedby_value"]
    assert row["_ownerid_value"] == SYNC_USER
    assert row["statecode"] == 0 and row["statuscode"] == 1
    assert row["createdon"].endswith("Z")


def test_lead_has_companyname_and_nullable_sync_flag(dv: Dv) -> None:
    row = dv.create("leads", {"lastname": "L", "companyname": "Contoso"})
    assert row["companyname"] == "Contoso"
    assert row["new_synctomkto"] is None
    assert "leadid" in row


def test_parentcustomerid_bind_reads_back_as_value_with_lookup_annotation(dv: Dv) -> None:
    acc = dv.create("accounts", {"name": "Fabrikam"})
    c = dv.create("contacts", {"lastname": "X",
                               "parentcustomerid_account@odata.bind":
                                   f"/accounts({acc['accountid']})"})
    assert c["_parentcustomerid_value"] == acc["accountid"]
    r = dv.get(f"contacts({c['contactid']})", params={"$select": "_parentcustomerid_value"},
               headers={"Prefer": 'odata.include-annotations="*"'})
    body = r.json()
    assert body["_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "account"
    assert body["_parentcustomerid_value@OData.Community.Display.V1.FormattedValue"] == "Fabrikam"


def test_bind_to_missing_record_is_404(dv: Dv) -> None:
    r = dv.post("contacts", json={"lastname": "X", "parentcustomerid_account@odata.bind":
                                  "/accounts(00000000-0000-0000-0000-000000000009)"})
    assert r.status_code == 404


def test_writes_by_sales_user_stamp_modifiedby(dv: Dv, sales: Dv) -> None:
    c = dv.create("contacts", {"lastname": "Edit me"})
    r = sales.patch(f"contacts({c['contactid']})", json={"jobtitle": "CFO"},
                    headers={"If-Match": "*"})
    assert r.status_code == 204
    after = dv.get(f"contacts({c['contactid']})").json()
    assert after["_modifiedby_value"] == SALES_USER
    assert after["_createdby_value"] == SYNC_USER
    assert int(after["versionnumber"]) > int(c["versionnumber"])


def test_read_only_columns_are_silently_ignored_on_create(dv: Dv) -> None:
    c = dv.create("contacts", {"lastname": "Y", "fullname": "ignored", "versionnumber": 1})
    assert c["fullname"] == "Y"
    assert c["versionnumber"] != 1


def test_systemusers_are_queryable(dv: Dv) -> None:
    users = dv.get("systemusers", params={"$select": "fullname"}).json()["value"]
    assert {u["systemuserid"] for u in users} >= {SYNC_USER}
