"""§3 Queries: $select/$filter/$orderby/$top/$count, paging with nextLink, documented errors."""

from __future__ import annotations

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from emulators.dynamics import create_app
from emulators.dynamics.odata_filter import compile_filter
from tests.emulators.dynamics.conftest import Dv


def _seed_people(dv: Dv) -> None:
    for first, last, email, job in [
        ("Ann", "O'Bryan", "ann_x@example.com", "CEO"),
        ("Bob", "Smith", "annax@example.com", None),
        ("Cid", "smith", "cid+tag@example.com", "CTO"),
        ("Dee", "Jones", "DEE@Example.com", "CEO"),
    ]:
        body = {"firstname": first, "lastname": last, "emailaddress1": email}
        if job:
            body["jobtitle"] = job
        dv.create("contacts", body)


def _names(r: httpx.Response) -> list[str]:
    assert r.status_code == 200, r.text
    return sorted(v["firstname"] for v in r.json()["value"])


def test_select_returns_only_selected_plus_pk_and_etag(dv: Dv) -> None:
    _seed_people(dv)
    row = dv.get("contacts", params={"$select": "firstname"}).json()["value"][0]
    assert set(row) == {"@odata.etag", "firstname", "contactid"}


def test_filter_eq_is_case_insensitive_and_quote_escaping_works(dv: Dv) -> None:
    _seed_people(dv)
    assert _names(dv.get("contacts", params={"$filter": "lastname eq 'SMITH'"})) == ["Bob", "Cid"]
    assert _names(dv.get("contacts", params={"$filter": "lastname eq 'O''Bryan'"})) == ["Ann"]
    assert _names(dv.get("contacts", params={"$filter": "emailaddress1 eq 'dee@example.com'"})) \
        == ["Dee"]
    assert _names(dv.get("contacts", params={"$filter": "emailaddress1 eq 'cid+tag@example.com'"}))\
        == ["Cid"]


def test_unterminated_literal_error_text(dv: Dv) -> None:
    r = dv.get("contacts", params={"$filter": "lastname eq 'O'Bryan'"})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == \
        "There is an unterminated literal at position 21 in 'lastname eq 'O'Bryan''."


def test_unknown_column_error(dv: Dv) -> None:
    r = dv.get("contacts", params={"$filter": "nosuch eq 1"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "0x80060888"
    assert "Could not find a property named 'nosuch'" in r.json()["error"]["message"]
    assert dv.get("contacts", params={"$select": "nosuch"}).status_code == 400


def test_incompatible_literal_type_error(dv: Dv) -> None:
    r = dv.get("contacts", params={"$filter": "createdon eq 'yesterday'"})
    assert r.status_code == 400
    assert "incompatible types" in r.json()["error"]["message"]


def test_logical_ops_parentheses_not_and_null(dv: Dv) -> None:
    _seed_people(dv)
    f = "(jobtitle eq 'CEO' or jobtitle eq 'CTO') and not startswith(firstname,'D')"
    assert _names(dv.get("contacts", params={"$filter": f})) == ["Ann", "Cid"]
    assert _names(dv.get("contacts", params={"$filter": "jobtitle eq null"})) == ["Bob"]
    assert _names(dv.get("contacts", params={"$filter": "jobtitle ne null"})) == \
        ["Ann", "Cid", "Dee"]
    # documented choice (README): `ne` includes rows where the column is null, like FetchXML
    assert _names(dv.get("contacts", params={"$filter": "jobtitle ne 'CEO'"})) == ["Bob", "Cid"]
    # ...but ordering comparisons on a null column are unknown -> excluded
    assert _names(dv.get("contacts", params={"$filter": "jobtitle gt 'A'"})) == \
        ["Ann", "Cid", "Dee"]


def test_like_wildcards_in_string_functions(dv: Dv) -> None:
    _seed_people(dv)
    # `_` is a single-character wildcard: matches both ann_x and annax
    assert _names(dv.get("contacts", params={"$filter": "startswith(emailaddress1,'ann_x')"})) \
        == ["Ann", "Bob"]
    assert _names(dv.get("contacts", params={"$filter": "contains(emailaddress1,'[c]id')"})) \
        == ["Cid"]
    assert _names(dv.get("contacts", params={"$filter": "endswith(emailaddress1,'EXAMPLE.COM')"}))\
        == ["Ann", "Bob", "Cid", "Dee"]


def test_datetime_literal_unquoted(dv: Dv) -> None:
    _seed_people(dv)
    assert len(dv.get("contacts", params={"$filter": "modifiedon gt 2000-01-01T00:00:00Z"})
               .json()["value"]) == 4
    assert dv.get("contacts", params={"$filter": "modifiedon lt 2000-01-01T00:00:00Z"}
                  ).json()["value"] == []


def test_orderby_top_count(dv: Dv) -> None:
    _seed_people(dv)
    r = dv.get("contacts", params={"$select": "firstname", "$orderby": "firstname desc",
                                   "$top": "2", "$count": "true"})
    body = r.json()
    assert [v["firstname"] for v in body["value"]] == ["Dee", "Cid"]
    assert body["@odata.count"] == 4
    assert "@odata.nextLink" not in body


def test_skip_is_rejected(dv: Dv) -> None:
    assert dv.get("contacts", params={"$skip": "1"}).status_code == 400


def test_paging_with_maxpagesize_and_absolute_nextlink(dv: Dv, admin: httpx.Client) -> None:
    admin.post("/seed", json={"contacts": 23})
    seen: list[str] = []
    url = "contacts?$select=fullname"
    pages = 0
    while url:
        r = dv.get(url, headers={"Prefer": "odata.maxpagesize=10"})
        assert r.headers["Preference-Applied"] == "odata.maxpagesize=10"
        body = r.json()
        seen += [v["contactid"] for v in body["value"]]
        url = body.get("@odata.nextLink", "")
        assert not url or url.startswith(dv.base + "/api/data/v9.2/contacts?")
        pages += 1
    assert pages == 3 and len(seen) == len(set(seen)) == 23
    assert seen == sorted(seen)  # default order is the primary key


def test_maxpagesize_is_capped_at_5000(dv: Dv) -> None:
    r = dv.get("contacts", headers={"Prefer": "odata.maxpagesize=9000"})
    assert r.headers["Preference-Applied"] == "odata.maxpagesize=5000"


def test_count_endpoint_plain_text(dv: Dv) -> None:
    _seed_people(dv)
    r = dv.get("contacts/$count")
    assert r.text == "4" and r.headers["Content-Type"].startswith("text/plain")


def test_formatted_values_for_option_sets(dv: Dv) -> None:
    c = dv.create("contacts", {"lastname": "F", "leadsourcecode": 8})
    r = dv.get(f"contacts({c['contactid']})", params={"$select": "leadsourcecode"},
               headers={"Prefer": 'odata.include-annotations="*"'})
    assert r.json()["leadsourcecode@OData.Community.Display.V1.FormattedValue"] == "Web"


_app = create_app()
_table = _app.state.tables["contact"]


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="%_["),
               max_size=12))
def test_escaped_string_literals_round_trip(value: str) -> None:
    """Any value, escaped by doubling quotes, matches exactly itself (case-insensitively)."""
    pred, _ = compile_filter(_table, "lastname eq '" + value.replace("'", "''") + "'")
    assert pred({"lastname": value}) is True
    assert pred({"lastname": value + "x"}) is False
