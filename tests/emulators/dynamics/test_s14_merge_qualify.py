"""The Merge and QualifyLead actions, as a salesperson runs them, seen through change tracking.

Sources: "Merge table rows using the Web API" (unbound `Merge`, Target / Subordinate /
UpdateContent with `@odata.type`, 204; the subordinate is deactivated; existing master data
is not overwritten; account/contact/lead merges run in the system context); "Merge
message privileges" (prvMerge, Read/Write/Share/Append/AppendTo); the refusal texts for
identical and inactive records as observed by M. Carrington, "MSDyn365 Internals: Merge
Permissions"; "QualifyLead Action" and QualifyLeadResponse (CreatedEntities); error 5 of
"Troubleshoot lead qualification issues for salespeople". Codes Microsoft does not document
are the emulator's assumption (README, choices 22-25).
"""

from __future__ import annotations

from typing import Any

import httpx

from emulators.dynamics import DynamicsConfig, create_app
from tests.emulators.dynamics.conftest import SALES_USER, Dv
from tests.emulators.dynamics.test_s05_batch import _batch, _changeset, _req, _send, _statuses
from tests.support.servers import running_server

TRACK = {"Prefer": "odata.track-changes"}


def _ref(table: str, rid: str) -> dict[str, str]:
    return {"@odata.type": f"Microsoft.Dynamics.CRM.{table}", f"{table}id": rid}


def _merge(dv: Dv, table: str, master: str, sub: str, **extra: Any) -> httpx.Response:
    body: dict[str, Any] = {"Target": _ref(table, master), "Subordinate": _ref(table, sub),
                            "PerformParentingChecks": False}
    body.update(extra)
    return dv.post("Merge", json=body)


def _delta_link(dv: Dv, entity_set: str) -> str:
    r = dv.get(f"{entity_set}?$select=statecode", headers=TRACK)
    assert r.status_code == 200, r.text
    return str(r.json()["@odata.deltaLink"])


def test_merge_contacts_deactivates_the_subordinate_as_an_update(dv: Dv, sales: Dv) -> None:
    master = sales.create("contacts", {"firstname": "Ann", "lastname": "Lee",
                                       "emailaddress1": "ann@x.test"})
    sub = sales.create("contacts", {"firstname": "Anne", "lastname": "Lee",
                                    "telephone1": "555-0100", "jobtitle": "CTO"})
    delta = _delta_link(dv, "contacts")
    r = _merge(sales, "contact", master["contactid"], sub["contactid"],
               UpdateContent={"@odata.type": "Microsoft.Dynamics.CRM.contact",
                              "jobtitle": "Chief Technology Officer"})
    assert r.status_code == 204, r.text
    m = dv.get(f"contacts({master['contactid']})").json()
    s = dv.get(f"contacts({sub['contactid']})").json()  # still there: not deleted
    assert s["statecode"] == 1 and s["statuscode"] == 2
    assert s["merged"] is True and s["_masterid_value"] == master["contactid"]
    assert m["statecode"] == 0 and m["merged"] is None
    assert m["jobtitle"] == "Chief Technology Officer"  # UpdateContent wins
    assert m["firstname"] == "Ann"  # existing master data is not overwritten
    assert m["telephone1"] == "555-0100"  # empty master column filled from the subordinate
    body = dv.get(delta, headers=TRACK).json()
    assert all("reason" not in v for v in body["value"])  # no $deletedEntity
    got = {v["contactid"]: v["statecode"] for v in body["value"]}
    assert got == {master["contactid"]: 0, sub["contactid"]: 1}


def test_merge_leads_disqualifies_the_subordinate(sales: Dv) -> None:
    a = sales.create("leads", {"lastname": "A"})
    b = sales.create("leads", {"lastname": "B"})
    assert _merge(sales, "lead", a["leadid"], b["leadid"]).status_code == 204
    s = sales.get(f"leads({b['leadid']})").json()
    assert (s["statecode"], s["statuscode"]) == (2, 7) and s["_masterid_value"] == a["leadid"]


def test_merge_without_changes_leaves_the_master_alone(dv: Dv, sales: Dv) -> None:
    master = sales.create("contacts", {"lastname": "Same", "jobtitle": "A"})
    sub = sales.create("contacts", {"lastname": "Same"})
    before = dv.get(f"contacts({master['contactid']})").json()["versionnumber"]
    assert _merge(sales, "contact", master["contactid"], sub["contactid"]).status_code == 204
    assert dv.get(f"contacts({master['contactid']})").json()["versionnumber"] == before


def test_merge_accounts_moves_child_contacts(sales: Dv) -> None:
    keep = sales.create("accounts", {"name": "Acme"})
    dup = sales.create("accounts", {"name": "Acme Inc"})
    child = sales.create("contacts", {"lastname": "Kid", "parentcustomerid_account@odata.bind":
                                      f"/accounts({dup['accountid']})"})
    assert _merge(sales, "account", keep["accountid"], dup["accountid"]).status_code == 204
    row = sales.get(f"contacts({child['contactid']})").json()
    assert row["_parentcustomerid_value"] == keep["accountid"]
    assert sales.get(f"accounts({dup['accountid']})").json()["statecode"] == 1


def test_merge_refusals(sales: Dv) -> None:
    c1 = sales.create("contacts", {"lastname": "C1"})
    c2 = sales.create("contacts", {"lastname": "C2"})
    lead = sales.create("leads", {"lastname": "L"})
    missing = "00000000-0000-4000-8000-0000000dead1"
    r = sales.post("Merge", json={"Target": _ref("contact", c1["contactid"]),
                                  "Subordinate": _ref("lead", lead["leadid"]),
                                  "PerformParentingChecks": False})
    assert r.status_code == 400 and r.json()["error"]["code"] == "0x80040203"
    r = _merge(sales, "contact", c1["contactid"], missing)
    assert r.status_code == 404 and r.json()["error"]["code"] == "0x80040217"
    r = _merge(sales, "contact", c1["contactid"], c1["contactid"])
    assert r.status_code == 400 and "identical" in r.json()["error"]["message"]
    r = _merge(sales, "systemuser", SALES_USER, c1["contactid"])
    assert r.status_code == 400 and "not supported with merge" in r.json()["error"]["message"]
    r = sales.post("Merge", json={"Target": {"contactid": c1["contactid"]},
                                  "Subordinate": _ref("contact", c2["contactid"]),
                                  "PerformParentingChecks": False})
    assert r.status_code == 400 and "@odata.type" in r.json()["error"]["message"]
    # merging an already merged (inactive) record, as subordinate or as master
    assert _merge(sales, "contact", c1["contactid"], c2["contactid"]).status_code == 204
    r = _merge(sales, "contact", c1["contactid"], c2["contactid"])
    assert r.status_code == 400 and r.json()["error"]["message"].endswith("is deactive")
    c3 = sales.create("contacts", {"lastname": "C3"})
    r = _merge(sales, "contact", c2["contactid"], c3["contactid"])
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("master entity")


def test_merge_needs_the_merge_privilege(dv: Dv, admin: httpx.Client) -> None:
    a = dv.create("contacts", {"lastname": "A"})
    b = dv.create("contacts", {"lastname": "B"})
    r = _merge(dv, "contact", a["contactid"], b["contactid"])
    assert r.status_code == 403 and r.json()["error"]["code"] == "0x80040220"
    assert "is missing prvMerge privilege" in r.json()["error"]["message"]
    admin.put("/security/privileges", json={"user": "sync-app", "privilege": "prvMerge"})
    r = _merge(dv, "contact", a["contactid"], b["contactid"])
    assert r.status_code == 403 and "prvShareContact" in r.json()["error"]["message"]
    admin.put("/security/privileges", json={"user": "sync-app", "table": "contact",
                                            "privilege": "Share", "depth": "Organization"})
    assert _merge(dv, "contact", a["contactid"], b["contactid"]).status_code == 204


def test_merge_in_a_failing_changeset_is_rolled_back(sales: Dv) -> None:
    a = sales.create("contacts", {"lastname": "A"})
    b = sales.create("contacts", {"lastname": "B"})
    api = "/api/data/v9.2/"
    merge = {"Target": _ref("contact", a["contactid"]),
             "Subordinate": _ref("contact", b["contactid"]), "PerformParentingChecks": False}
    cs = _changeset("changeset_m", [
        _req("POST", api + "Merge", merge, cid="1"),
        _req("POST", api + "contacts", {"lastname": "x" * 51}, cid="2"),
    ])
    r = _send(sales, _batch([cs]))
    assert _statuses(r) == [400]
    assert sales.get(f"contacts({b['contactid']})").json()["statecode"] == 0


def test_merge_fill_knob_off_copies_nothing() -> None:
    app = create_app(DynamicsConfig(merge_fills_empty_columns=False))
    with running_server(app) as url:
        sales = Dv(url, "sales-user", "sales-user-secret", app.cfg.tenant_id)
        m = sales.create("contacts", {"lastname": "M"})
        s = sales.create("contacts", {"lastname": "S", "telephone1": "1"})
        assert _merge(sales, "contact", m["contactid"], s["contactid"]).status_code == 204
        assert sales.get(f"contacts({m['contactid']})").json()["telephone1"] is None
        sales.http.close()


LEAD = {"firstname": "Quinn", "lastname": "Lead", "emailaddress1": "quinn@x.test",
        "telephone1": "555-0199", "jobtitle": "Buyer", "address1_city": "Leeds",
        "address1_postalcode": "LS1 1AA", "companyname": "Quinn Ltd", "subject": "Interest",
        "new_marketoid": "77"}
QUALIFY = {"CreateAccount": True, "CreateContact": True, "CreateOpportunity": False,
           "Status": 3}


def test_qualify_lead_creates_contact_and_account(dv: Dv, sales: Dv) -> None:
    lead = sales.create("leads", LEAD)
    contacts_delta = _delta_link(dv, "contacts")
    leads_delta = _delta_link(dv, "leads")
    r = sales.post(f"leads({lead['leadid']})/Microsoft.Dynamics.CRM.QualifyLead", json=QUALIFY)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["@odata.context"].endswith(
        "$metadata#Collection(Microsoft.Dynamics.CRM.crmbaseentity)")
    refs = {v["@odata.type"]: v for v in body["value"]}
    account_id = refs["#Microsoft.Dynamics.CRM.account"]["accountid"]
    contact_id = refs["#Microsoft.Dynamics.CRM.contact"]["contactid"]
    c = dv.get(f"contacts({contact_id})").json()
    for col in ("firstname", "lastname", "emailaddress1", "telephone1", "jobtitle",
                "address1_city", "address1_postalcode"):
        assert c[col] == LEAD[col]
    assert c["_originatingleadid_value"] == lead["leadid"]
    assert c["_parentcustomerid_value"] == account_id
    assert c["new_marketoid"] is None  # custom columns are not in the default mapping
    a = dv.get(f"accounts({account_id})").json()
    assert a["name"] == "Quinn Ltd" and a["_originatingleadid_value"] == lead["leadid"]
    q = dv.get(f"leads({lead['leadid']})").json()
    assert (q["statecode"], q["statuscode"]) == (1, 3)
    assert q["_parentcontactid_value"] == contact_id
    assert q["_parentaccountid_value"] == account_id
    # what a change-tracking sync sees: a new contact, an updated (qualified) lead
    assert [v["contactid"] for v in dv.get(contacts_delta, headers=TRACK).json()["value"]] \
        == [contact_id]
    assert [(v["leadid"], v["statecode"]) for v in
            dv.get(leads_delta, headers=TRACK).json()["value"]] == [(lead["leadid"], 1)]


def test_qualify_lead_refusals_change_nothing(dv: Dv, sales: Dv, admin: httpx.Client) -> None:
    lead = sales.create("leads", {"lastname": "Twice"})
    url = f"leads({lead['leadid']})/Microsoft.Dynamics.CRM.QualifyLead"
    r = sales.post(url, json={**QUALIFY, "Status": 4})  # Lost is not a Qualified status
    assert r.status_code == 400 and r.json()["error"]["code"] == "0x8004431A"
    assert dv.get("contacts?$select=lastname").json()["value"] == []  # rolled back
    r = dv.post(url, json={**QUALIFY, "CreateAccount": False})
    assert r.status_code == 200
    r = sales.post(url, json=QUALIFY)
    assert r.status_code == 400
    assert r.json()["error"]["message"] == ("The lead is closed. You cannot convert or qualify "
                                            "a lead that is already closed.")
    r = sales.post("leads(00000000-0000-4000-8000-0000000dead2)/Microsoft.Dynamics.CRM."
                   "QualifyLead", json=QUALIFY)
    assert r.status_code == 404
    other = sales.create("leads", {"lastname": "NoRights"})
    admin.request("DELETE", "/security/privileges",
                  json={"user": "sync-app", "table": "contact", "privilege": "Create"})
    r = dv.post(f"leads({other['leadid']})/Microsoft.Dynamics.CRM.QualifyLead",
                json={**QUALIFY, "CreateAccount": False})
    assert r.status_code == 403 and "prvCreateContact" in r.json()["error"]["message"]
    assert dv.get(f"leads({other['leadid']})").json()["statecode"] == 0


def test_qualify_extra_columns_knob() -> None:
    app = create_app(DynamicsConfig(qualify_extra_columns=("new_marketoid",)))
    with running_server(app) as url:
        sales = Dv(url, "sales-user", "sales-user-secret", app.cfg.tenant_id)
        lead = sales.create("leads", LEAD)
        r = sales.post(f"leads({lead['leadid']})/Microsoft.Dynamics.CRM.QualifyLead",
                       json={**QUALIFY, "CreateAccount": False})
        cid = r.json()["value"][0]["contactid"]
        assert sales.get(f"contacts({cid})").json()["new_marketoid"] == "77"
        sales.http.close()
