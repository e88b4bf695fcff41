"""Server-side logic: business rules that rewrite a value, plug-in steps with follow-on updates.

Sources: dataverse.md §8 (business rules, real-time workflows and plug-ins run server-side;
a rejection is 400 `0x80040265` IsvAborted with the author's message) and its caveats for
echo logic (plug-ins running as the calling user stamp that user; others stamp SYSTEM or
another user and may modify the row later); dataverse.md §6 (chains deeper than 8 are
stopped). How a rewrite or follow-on shows up (same version vs. a new one) is the
emulator's stated model, README choices 26-28.
"""

from __future__ import annotations

import httpx

from emulators.dynamics import CustomColumn, DynamicsConfig, create_app
from emulators.dynamics.config import ServerRuleConfig
from tests.emulators.dynamics.conftest import SALES_USER, SYNC_USER, Dv
from tests.support.servers import running_server

REPR = {"Prefer": "return=representation"}


def _rule(admin: httpx.Client, **rule: object) -> dict[str, object]:
    r = admin.post("/rules", json=rule)
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_business_rule_rewrites_the_stored_value(dv: Dv, admin: httpx.Client) -> None:
    _rule(admin, table="contact", action="upper", column="address1_postalcode")
    r = dv.post("contacts", json={"lastname": "P", "address1_postalcode": "ab1 2cd"},
                headers=REPR)
    assert r.status_code == 201 and r.json()["address1_postalcode"] == "AB1 2CD"
    cid = r.json()["contactid"]
    v = r.json()["versionnumber"]
    assert dv.patch(f"contacts({cid})", json={"address1_postalcode": "zz9 9zz"}).status_code \
        == 204
    row = dv.get(f"contacts({cid})").json()
    assert row["address1_postalcode"] == "ZZ9 9ZZ"
    assert row["versionnumber"] == v + 1  # the rewrite is part of the write: one version


def test_conditional_set_rule(dv: Dv, admin: httpx.Client) -> None:
    _rule(admin, table="lead", action="set", column="leadsourcecode", value=8,
          condition="leadsourcecode eq null", on=["create"])
    a = dv.create("leads", {"lastname": "NoSource"})
    b = dv.create("leads", {"lastname": "Source", "leadsourcecode": 7})
    assert (a["leadsourcecode"], b["leadsourcecode"]) == (8, 7)


def test_plugin_follow_on_update_is_a_second_version(dv: Dv, sales: Dv,
                                                     admin: httpx.Client) -> None:
    _rule(admin, table="contact", stage="post", on=["update"], when_changed=["jobtitle"],
          action="set", column="description", value="Title reviewed", run_as="sales-user")
    c = dv.create("contacts", {"lastname": "Plug"})
    assert c["description"] is None  # create does not trigger the update step
    r = dv.get("contacts?$select=jobtitle,description", headers={
        "Prefer": "odata.track-changes"})
    delta = r.json()["@odata.deltaLink"]
    r = dv.patch(f"contacts({c['contactid']})", json={"jobtitle": "CFO"}, headers=REPR)
    assert r.status_code == 200
    after = r.json()
    assert after["jobtitle"] == "CFO" and after["description"] == "Title reviewed"
    assert after["versionnumber"] == c["versionnumber"] + 2  # the write, then the step
    assert after["_modifiedby_value"] == SALES_USER  # the step ran as another user
    body = dv.get(delta, headers={"Prefer": "odata.track-changes"}).json()
    assert [(v["jobtitle"], v["description"]) for v in body["value"]] == \
        [("CFO", "Title reviewed")]
    # an update that does not touch jobtitle fires nothing
    dv.patch(f"contacts({c['contactid']})", json={"description": "Mine"})
    row = dv.get(f"contacts({c['contactid']})").json()
    assert row["description"] == "Mine" and row["_modifiedby_value"] == SYNC_USER


def test_rejecting_rule_still_works_and_bad_rules_are_refused(dv: Dv,
                                                              admin: httpx.Client) -> None:
    _rule(admin, table="contact", condition="jobtitle eq 'CEO'", message="No CEOs")
    r = dv.post("contacts", json={"lastname": "x", "jobtitle": "CEO"})
    assert r.status_code == 400 and r.json()["error"] == {"code": "0x80040265",
                                                         "message": "No CEOs"}
    for bad in ({"table": "contact", "action": "upper", "column": "donotphone"},
                {"table": "contact", "action": "explode", "column": "jobtitle"},
                {"table": "contact", "action": "set", "column": "nosuch"},
                {"table": "contact", "action": "reject"},
                {"table": "contact", "action": "set", "column": "jobtitle",
                 "run_as": "nobody"}):
        assert admin.post("/rules", json=bad).status_code == 400, bad


def test_configured_counter_plugin_and_loop_guard() -> None:
    cfg = DynamicsConfig(
        custom_columns=[*DynamicsConfig().custom_columns,
                        CustomColumn("contact", "new_editcount", "Integer")],
        server_rules=[ServerRuleConfig("contact", action="increment", column="new_editcount",
                                       stage="post", on=("update",),
                                       when_changed=("jobtitle",))])
    app = create_app(cfg)
    with running_server(app) as url:
        dv = Dv(url, "sync-app", "sync-app-secret", app.cfg.tenant_id)
        c = dv.create("contacts", {"lastname": "Count"})
        for title in ("A", "B"):
            dv.patch(f"contacts({c['contactid']})", json={"jobtitle": title})
        row = dv.get(f"contacts({c['contactid']})").json()
        assert row["new_editcount"] == 2 and row["versionnumber"] == c["versionnumber"] + 4
        # a step that re-triggers itself is stopped, and the write it belongs to undone
        with httpx.Client(base_url=url + "/_emulator") as admin:
            _rule(admin, table="contact", action="increment", column="new_editcount",
                  stage="post", on=["update"])
        r = dv.patch(f"contacts({c['contactid']})", json={"lastname": "Loop"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "0x80040265"
        row = dv.get(f"contacts({c['contactid']})").json()
        assert row["lastname"] == "Count" and row["new_editcount"] == 2
        dv.http.close()
