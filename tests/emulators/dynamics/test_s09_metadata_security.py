"""§9 Metadata (EntityDefinitions, Attributes, Keys, option sets) and field-level security."""

from __future__ import annotations

import httpx

from tests.emulators.dynamics.conftest import SYNC_USER, Dv

ENTITY = "EntityDefinitions(LogicalName='contact')"


def test_entity_definition_flags_and_keys(dv: Dv) -> None:
    r = dv.get(ENTITY, params={"$select": "LogicalName,EntitySetName,ChangeTrackingEnabled,"
                                          "PrimaryIdAttribute",
                               "$expand": "Keys($select=KeyAttributes,EntityKeyIndexStatus)"})
    body = r.json()
    assert body["EntitySetName"] == "contacts" and body["ChangeTrackingEnabled"] is True
    assert body["PrimaryIdAttribute"] == "contactid" and "MetadataId" in body
    assert body["Keys"][0]["KeyAttributes"] == ["new_marketoid"]
    assert body["Keys"][0]["EntityKeyIndexStatus"] == "Active"


def test_attributes_base_properties(dv: Dv) -> None:
    r = dv.get(ENTITY + "/Attributes", params={
        "$select": "LogicalName,AttributeType,IsSecured,IsValidForRead,IsValidForCreate,"
                   "IsValidForUpdate,RequiredLevel"})
    attrs = {a["LogicalName"]: a for a in r.json()["value"]}
    assert attrs["lastname"]["RequiredLevel"]["Value"] == "ApplicationRequired"
    assert attrs["fullname"]["IsValidForCreate"] is False
    assert attrs["new_synctomkto"]["AttributeType"] == "Boolean"
    assert "MaxLength" not in attrs["lastname"]
    assert dv.get(ENTITY + "/Attributes", params={"$select": "MaxLength"}).status_code == 400


def test_string_cast_exposes_maxlength(dv: Dv) -> None:
    r = dv.get(ENTITY + "/Attributes/Microsoft.Dynamics.CRM.StringAttributeMetadata",
               params={"$select": "LogicalName,MaxLength"})
    attrs = {a["LogicalName"]: a["MaxLength"] for a in r.json()["value"]}
    assert attrs["new_marketoid"] == 20 and attrs["emailaddress1"] == 100


def test_picklist_option_set_metadata(dv: Dv) -> None:
    r = dv.get(ENTITY + "/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
               params={"$select": "LogicalName", "$expand": "OptionSet($select=Options)"})
    sets = {a["LogicalName"]: a["OptionSet"]["Options"] for a in r.json()["value"]}
    web = next(o for o in sets["leadsourcecode"] if o["Value"] == 8)
    assert web["Label"]["UserLocalizedLabel"]["Label"] == "Web"


def test_attribute_filter_is_secured(dv: Dv, admin: httpx.Client) -> None:
    admin.put("/field-security", json={"table": "contact", "column": "telephone1",
                                       "secured": True})
    r = dv.get(ENTITY + "/Attributes", params={"$select": "LogicalName",
                                               "$filter": "IsSecured eq true"})
    assert [a["LogicalName"] for a in r.json()["value"]] == ["telephone1"]


def test_field_security_read_null_and_write_403(dv: Dv, sales: Dv, admin: httpx.Client) -> None:
    c = sales.create("contacts", {"lastname": "S", "telephone1": "555"})
    admin.put("/field-security", json={
        "table": "contact", "column": "telephone1", "secured": True,
        "permissions": {"sales-user": {"read": True, "create": True, "update": True},
                        "sync-app": {"read": False, "create": False, "update": False}}})
    url = f"contacts({c['contactid']})"
    assert dv.get(url).json()["telephone1"] is None
    assert sales.get(url).json()["telephone1"] == "555"
    r = dv.post("contacts", json={"lastname": "x", "telephone1": "1"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "0x8004F502"
    r = dv.patch(url, json={"telephone1": "1"}, headers={"If-Match": "*"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "0x8004F507"
    # a sync that strips unwritable columns succeeds
    assert dv.patch(url, json={"jobtitle": "ok"}, headers={"If-Match": "*"}).status_code == 204


def test_retrieve_principal_attribute_privileges(dv: Dv, admin: httpx.Client) -> None:
    admin.put("/field-security", json={
        "table": "lead", "column": "mobilephone", "secured": True,
        "permissions": {"sync-app": {"read": True, "create": False, "update": True}}})
    r = dv.get(f"systemusers({SYNC_USER})/Microsoft.Dynamics.CRM."
               "RetrievePrincipalAttributePrivileges()")
    privs = r.json()["AttributePrivileges"]
    attr = dv.get("EntityDefinitions(LogicalName='lead')/Attributes(LogicalName='mobilephone')",
                  params={"$select": "MetadataId"}).json()
    assert privs == [{"AttributeId": attr["MetadataId"], "CanCreate": 0, "CanRead": 4,
                      "CanUpdate": 4}]


def test_key_columns_cannot_be_secured(admin: httpx.Client) -> None:
    r = admin.put("/field-security", json={"table": "contact", "column": "new_marketoid",
                                           "secured": True})
    assert r.status_code == 400
