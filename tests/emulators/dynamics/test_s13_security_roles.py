"""Security roles: table privileges at a depth, PrivilegeDenied, change tracking, $batch.

Sources: "Security roles and privileges" (privileges per table at User / Business Unit /
Parent:Child BU / Organization depth); "Troubleshoot Dataverse client errors" (a missing
privilege is -2147220960 = 0x80040220 "Principal user is missing privilege on OTC for
entity"; a failed access check after a passed privilege check is -2147187962 =
0x80048306); the observed 403 text (emulator README, choice 21); "Use change tracking to
synchronize data" via dataverse.md §4 (organisation-level Read needed); RolePrivilege /
PrivilegeDepth Web API reference for RetrieveUserPrivileges.
"""

from __future__ import annotations

import ssl

import httpx
import pytest

from tests.emulators.dynamics.conftest import SALES_USER, SYNC_USER, Dv
from tests.emulators.dynamics.test_s05_batch import _batch, _changeset, _req, _send, _statuses

PRIVS = f"systemusers({SYNC_USER})/Microsoft.Dynamics.CRM.RetrieveUserPrivileges()"


def _revoke(admin: httpx.Client, table: str, privilege: str, user: str = "sync-app") -> None:
    r = admin.request("DELETE", "/security/privileges",
                      json={"user": user, "table": table, "privilege": privilege})
    assert r.status_code == 200, r.text


def _grant(admin: httpx.Client, table: str, privilege: str, depth: str,
           user: str = "sync-app") -> None:
    r = admin.put("/security/privileges", json={"user": user, "table": table,
                                                "privilege": privilege, "depth": depth})
    assert r.status_code == 200, r.text


def _denied(r: httpx.Response, privilege: str, table: str, otc: int) -> None:
    assert r.status_code == 403, r.text
    err = r.json()["error"]
    assert err["code"] == "0x80040220"
    msg = err["message"]
    assert msg.startswith(f"Principal user (Id={SYNC_USER}, type=8, ")
    assert f"is missing {privilege} privilege (Id=" in msg
    assert f"on OTC={otc} for entity '{table}'" in msg
    assert msg.endswith("Consider adding missed privilege to one of the principal (user/team) "
                        "roles.")


def test_default_sync_role_lists_org_level_privileges(dv: Dv) -> None:
    r = dv.get(PRIVS)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["@odata.context"].endswith(
        "$metadata#Microsoft.Dynamics.CRM.RetrieveUserPrivilegesResponse")
    by_name = {p["PrivilegeName"]: p for p in body["RolePrivileges"]}
    for name in ("prvReadContact", "prvWriteLead", "prvCreateAccount", "prvReadUser"):
        assert by_name[name]["Depth"] == "Global"
    assert set(by_name["prvReadContact"]) == {"BusinessUnitId", "Depth", "PrivilegeId",
                                             "PrivilegeName"}
    assert "prvMerge" not in by_name and "prvShareContact" not in by_name
    # the salesperson's administrator role holds Merge
    other = dv.get(f"systemusers({SALES_USER})/Microsoft.Dynamics.CRM.RetrieveUserPrivileges()")
    assert "prvMerge" in {p["PrivilegeName"] for p in other.json()["RolePrivileges"]}


def test_missing_read_answers_privilege_denied(dv: Dv, admin: httpx.Client) -> None:
    c = dv.create("contacts", {"lastname": "Hidden"})
    _revoke(admin, "contact", "Read")
    _denied(dv.get("contacts?$select=lastname"), "prvReadContact", "contact", 2)
    _denied(dv.get(f"contacts({c['contactid']})"), "prvReadContact", "contact", 2)
    _denied(dv.get("contacts/$count"), "prvReadContact", "contact", 2)
    assert dv.get("leads?$select=lastname").status_code == 200
    # granted back mid-run: reads work again
    _grant(admin, "contact", "Read", "Organization")
    assert dv.get(f"contacts({c['contactid']})").status_code == 200


@pytest.mark.parametrize(("privilege", "call"), [
    ("prvCreateLead", lambda dv, lid: dv.post("leads", json={"lastname": "New"})),
    ("prvWriteLead", lambda dv, lid: dv.patch(f"leads({lid})", json={"jobtitle": "X"})),
    ("prvDeleteLead", lambda dv, lid: dv.delete(f"leads({lid})")),
    ("prvWriteLead", lambda dv, lid: dv.put(f"leads({lid})/jobtitle", json={"value": "X"})),
])
def test_missing_write_privileges(dv: Dv, admin: httpx.Client, privilege: str,
                                  call: object) -> None:
    lead = dv.create("leads", {"lastname": "Target"})
    _revoke(admin, "lead", privilege.removeprefix("prv").removesuffix("Lead"))
    r = call(dv, lead["leadid"])  # type: ignore[operator]
    _denied(r, privilege, "lead", 4)
    row = dv.get(f"leads({lead['leadid']})").json()
    assert row["jobtitle"] is None  # nothing was written


def test_upsert_needs_create_when_the_row_is_missing(dv: Dv, admin: httpx.Client) -> None:
    existing = dv.create("contacts", {"lastname": "E", "new_marketoid": "41"})
    _revoke(admin, "contact", "Create")
    _denied(dv.patch("contacts(new_marketoid='42')", json={"lastname": "N"}),
            "prvCreateContact", "contact", 2)
    r = dv.patch("contacts(new_marketoid='41')", json={"lastname": "U"})
    assert r.status_code == 204, r.text
    assert dv.get(f"contacts({existing['contactid']})").json()["lastname"] == "U"


def test_binding_a_lookup_needs_append_and_append_to(dv: Dv, admin: httpx.Client) -> None:
    acct = dv.create("accounts", {"name": "Acme"})
    bind = {"lastname": "Child", "parentcustomerid_account@odata.bind":
            f"/accounts({acct['accountid']})"}
    _revoke(admin, "account", "AppendTo")
    _denied(dv.post("contacts", json=bind), "prvAppendToAccount", "account", 1)
    _grant(admin, "account", "AppendTo", "Organization")
    _revoke(admin, "contact", "Append")
    _denied(dv.post("contacts", json=bind), "prvAppendContact", "contact", 2)
    # no lookup in the body: Append is not needed
    assert dv.post("contacts", json={"lastname": "Plain"}).status_code == 204


def test_user_depth_read_sees_own_rows_only(dv: Dv, sales: Dv, admin: httpx.Client) -> None:
    mine = dv.create("contacts", {"lastname": "Mine"})
    theirs = sales.create("contacts", {"lastname": "Theirs"})
    _grant(admin, "contact", "Read", "User")
    ids = [v["contactid"] for v in dv.get("contacts?$select=lastname").json()["value"]]
    assert ids == [mine["contactid"]]
    assert dv.get("contacts/$count").text == "1"
    r = dv.get(f"contacts({theirs['contactid']})")
    assert r.status_code == 403 and r.json()["error"]["code"] == "0x80048306"
    assert "ReadAccess" in r.json()["error"]["message"]
    # Business Unit depth: one business unit in the emulator, so every row is visible
    _grant(admin, "contact", "Read", "BusinessUnit")
    assert len(dv.get("contacts?$select=lastname").json()["value"]) == 2


def test_change_tracking_needs_organization_read(dv: Dv, admin: httpx.Client) -> None:
    dv.create("contacts", {"lastname": "Tracked"})
    track = {"Prefer": "odata.track-changes"}
    r = dv.get("contacts?$select=lastname", headers=track)
    assert r.status_code == 200
    delta = r.json()["@odata.deltaLink"]
    for depth in ("User", "BusinessUnit", "ParentChildBusinessUnit"):
        _grant(admin, "contact", "Read", depth)
        _denied(dv.get("contacts?$select=lastname", headers=track), "prvReadContact",
                "contact", 2)
        _denied(dv.get(delta, headers=track), "prvReadContact", "contact", 2)
        assert dv.get("contacts?$select=lastname").status_code == 200  # plain reads work
    _grant(admin, "contact", "Read", "Organization")
    assert dv.get(delta, headers=track).status_code == 200


def test_user_depth_write_refuses_other_owners_rows(dv: Dv, sales: Dv,
                                                    admin: httpx.Client) -> None:
    theirs = sales.create("contacts", {"lastname": "Theirs"})
    mine = dv.create("contacts", {"lastname": "Mine"})
    _grant(admin, "contact", "Write", "User")
    r = dv.patch(f"contacts({theirs['contactid']})", json={"jobtitle": "X"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "0x80048306"
    assert "WriteAccess" in r.json()["error"]["message"]
    assert dv.patch(f"contacts({mine['contactid']})", json={"jobtitle": "X"}).status_code == 204


def test_changeset_fails_atomically_on_a_privilege_error(dv: Dv, admin: httpx.Client) -> None:
    _revoke(admin, "lead", "Create")
    api = "/api/data/v9.2/"
    cs = _changeset("changeset_p", [
        _req("POST", api + "contacts", {"lastname": "RolledBack"}, cid="1"),
        _req("POST", api + "leads", {"lastname": "Denied"}, cid="2"),
    ])
    r = _send(dv, _batch([cs]))
    assert r.status_code == 403
    assert _statuses(r) == [403] and "0x80040220" in r.text and "prvCreateLead" in r.text
    names = [v["lastname"] for v in dv.get("contacts?$select=lastname").json()["value"]]
    assert "RolledBack" not in names


def test_admin_roles_and_assignments(dv: Dv, admin: httpx.Client) -> None:
    r = admin.put("/security/roles", json={"name": "Reader", "privileges": {
        "contact": {"Read": "Organization"}}})
    assert r.status_code == 200, r.text
    assert admin.put("/security/users", json={"user": "sync-app",
                                              "roles": ["Reader"]}).status_code == 200
    assert dv.get("contacts?$select=lastname").status_code == 200
    _denied(dv.post("contacts", json={"lastname": "x"}), "prvCreateContact", "contact", 2)
    got = admin.get("/security").json()
    assert got["users"]["sync-app"] == ["Reader"]
    assert admin.put("/security/users", json={"user": "sync-app",
                                              "roles": ["Nope"]}).status_code == 400
    assert admin.put("/security/privileges", json={
        "user": "sync-app", "table": "contact", "privilege": "Read",
        "depth": "Everywhere"}).status_code == 400
    # reset restores the configured roles
    admin.post("/reset")
    assert admin.get("/security").json()["users"]["sync-app"] == ["Marketo Sync User"]


def test_official_sdk_reports_privilege_denied(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Microsoft's PowerPlatform-Dataverse-Client sees the 403 as a non-transient HTTP error
    carrying the service code (skipped when the optional SDK is missing)."""
    client_mod = pytest.importorskip("PowerPlatform.Dataverse.client")
    errors = pytest.importorskip("PowerPlatform.Dataverse.core.errors")
    from azure.identity import ClientSecretCredential

    from emulators.dynamics import create_app
    from emulators.dynamics.tls import write_tls_files
    from tests.support.servers import running_server

    files = write_tls_files(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", files.ca_bundle)
    app = create_app()
    with running_server(app, ssl_certfile=files.certfile, ssl_keyfile=files.keyfile) as url:
        cred = ClientSecretCredential(app.cfg.tenant_id, "sync-app", "sync-app-secret",
                                      authority=url, disable_instance_discovery=True,
                                      connection_verify=files.ca_bundle)
        client = client_mod.DataverseClient(url, cred)
        rid = client.records.create("contact", {"lastname": "Sdk"})
        ctx = ssl.create_default_context(cafile=files.ca_bundle)
        with httpx.Client(base_url=url + "/_emulator", verify=ctx) as admin:
            _revoke(admin, "contact", "Write")
        with pytest.raises(errors.HttpError) as caught:
            client.records.update("contact", rid, {"jobtitle": "Denied"})
        assert caught.value.status_code == 403 and not caught.value.is_transient
        assert caught.value.details["service_error_code"] == "0x80040220"
        assert "prvWriteContact" in str(caught.value)
        client.close()
        cred.close()
