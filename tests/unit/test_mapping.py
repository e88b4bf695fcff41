"""Mapping file validation: clear errors naming the entry and the fix."""

from __future__ import annotations

import pytest

from sync_core.errors import ConfigError
from sync_core.mapping import DEFAULT_WINNER, load_mapping, parse_mapping
from sync_core.settings import DEFAULT_MAPPING_FILE


def test_default_mapping_covers_the_native_defaults():
    m = load_mapping(DEFAULT_MAPPING_FILE)
    lead = {r.marketo: r.column for r in m.fields["lead"]}
    contact = {r.marketo: r.column for r in m.fields["contact"]}
    expected = {
        "email": "emailaddress1", "firstName": "firstname", "lastName": "lastname",
        "title": "jobtitle", "phone": "telephone1", "mobilePhone": "mobilephone",
        "address": "address1_line1", "city": "address1_city",
        "state": "address1_stateorprovince", "postalCode": "address1_postalcode",
        "country": "address1_country", "unsubscribed": "donotbulkemail", "doNotCall": "donotphone",
    }  # fmt: skip
    assert expected.items() <= lead.items() and expected.items() <= contact.items()
    assert lead["company"] == "companyname" and "company" not in contact
    assert all(r.winner == "marketo" for r in m.fields["lead"])
    assert all(r.winner == "dynamics" for r in m.fields["contact"])
    assert DEFAULT_WINNER == {"lead": "marketo", "contact": "dynamics"}


def test_per_field_winner_override():
    m = parse_mapping(
        {"fields": [{"marketo": "email", "lead": "emailaddress1", "winner": "dynamics"}]}
    )
    assert m.fields["lead"][0].winner == "dynamics"


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ({"marketo": "email"}, "name a 'lead' and/or 'contact' column"),
        ({"marketo": "email", "lead": "x", "direction": "sideways"}, "direction"),
        ({"marketo": "email", "lead": "x", "winner": "nobody"}, "winner"),
        ({"marketo": "email", "lead": "x", "direction": "to-marketo", "winner": "marketo"},
         "'winner' only applies"),
        ({"marketo": "email", "lead": "x", "colour": "red"}, "unknown key"),
        ({"lead": "x"}, "'marketo' must be a non-empty string"),
    ],
)  # fmt: skip
def test_bad_entries_are_named(entry, needle):
    with pytest.raises(ConfigError) as err:
        parse_mapping({"fields": [entry]}, "m.toml")
    assert needle in str(err.value) and "m.toml" in str(err.value)


def test_field_mapped_twice_is_rejected():
    with pytest.raises(ConfigError, match="mapped twice"):
        parse_mapping(
            {
                "fields": [
                    {"marketo": "email", "lead": "emailaddress1"},
                    {"marketo": "email2", "lead": "emailaddress1"},
                ]
            }
        )


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_mapping(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[fields]\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_mapping(bad)


def test_email_compares_case_insensitively_by_default():
    m = parse_mapping(
        {"fields": [{"marketo": "email", "lead": "emailaddress1"},
                    {"marketo": "city", "lead": "address1_city", "ignore_case": True},
                    {"marketo": "title", "lead": "jobtitle"}]}
    )  # fmt: skip
    assert [r.fold_case for r in m.fields["lead"]] == [True, True, False]
    assert m.case_folded() == {"email", "city"}
    with pytest.raises(ConfigError, match="ignore_case"):
        parse_mapping({"fields": [{"marketo": "email", "lead": "e", "ignore_case": "yes"}]})
