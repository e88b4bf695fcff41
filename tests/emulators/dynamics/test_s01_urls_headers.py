"""§1 URL, versions, headers: service root, absolute links, Preference-Applied, error shape."""

from __future__ import annotations

from tests.emulators.dynamics.conftest import API, Dv


def test_create_returns_absolute_odata_entityid_built_from_request_base(dv: Dv) -> None:
    r = dv.post("contacts", json={"lastname": "Root"})
    assert r.status_code == 204
    assert r.headers["OData-EntityId"].startswith(dv.base + "/api/data/v9.2/contacts(")
    assert r.headers["OData-Version"] == "4.0"


def test_return_representation_sets_preference_applied_and_no_entityid(dv: Dv) -> None:
    r = dv.post("contacts", json={"lastname": "Repr"}, headers={"Prefer": "return=representation"})
    assert r.status_code == 201
    assert r.headers["Preference-Applied"] == "return=representation"
    assert "OData-EntityId" not in r.headers
    assert r.json()["@odata.context"].startswith(dv.base + "/api/data/v9.2/$metadata#contacts")


def test_errors_are_json_with_code_and_message(dv: Dv) -> None:
    r = dv.get("contacts(00000000-0000-0000-0000-000000000001)")
    assert r.status_code == 404
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json()["error"]["code"] == "0x80040217"
    assert "Does Not Exist" in r.json()["error"]["message"]


def test_patch_and_delete_on_collection_are_405(dv: Dv) -> None:
    assert dv.patch("contacts", json={}).status_code == 405
    assert dv.delete("contacts").status_code == 405


def test_unknown_entity_set_is_404(dv: Dv) -> None:
    assert dv.get("widgets").status_code == 404


def test_service_root_lists_entity_sets(dv: Dv) -> None:
    names = {v["name"] for v in dv.get("").json()["value"]}
    assert {"contacts", "leads", "accounts", "systemusers"} <= names


def test_a_url_up_to_32_kb_is_served_and_a_longer_one_is_refused(dv: Dv) -> None:
    ids = [dv.post("contacts", json={"lastname": f"Long{i}"}).headers["OData-EntityId"]
           .rsplit("(", 1)[1].rstrip(")") for i in range(3)]
    ids += [f"00000000-0000-4000-8000-{i:012d}" for i in range(520)]
    cond = " or ".join(f"contactid eq {x}" for x in ids)
    url = f"contacts?$select=lastname&$filter={cond}"
    sent = len(dv.base + API) + len(url) + 2 * url.count(" ")
    assert 30_000 < sent <= 32_768
    r = dv.get(url)
    assert r.status_code == 200
    assert sorted(row["lastname"] for row in r.json()["value"]) == ["Long0", "Long1", "Long2"]
    longer = url + " or contactid eq 00000000-0000-4000-8000-999999999999" * 60
    assert dv.get(longer).status_code == 414
