"""Which fields a vendor's rejection names, so the rest of the record still lands."""

from __future__ import annotations

from sync_core.errors import RecordRejected
from sync_core.mapping import FieldRule
from sync_core.planner import REJECTED_BY, Hasher, plan_pair
from sync_core.rejections import dataverse_columns, marketo_fields

RULES = (
    FieldRule("title", "jobtitle", "both", "dynamics"),
    FieldRule("leadSource", "leadsourcecode", "both", "dynamics", options=((7, "Web"),)),
    FieldRule("city", "address1_city", "both", "dynamics"),
)
BODY = {"jobtitle": "x" * 150, "leadsourcecode": 9, "address1_city": "Leeds"}


def test_length_error_names_its_column():
    err = RecordRejected(
        "0x80044331",
        "A validation error occurred.  The length of the 'jobtitle' attribute of the "
        "'contact' entity exceeded the maximum allowed length of '100'.",
    )
    assert dataverse_columns(err, BODY, RULES) == {"jobtitle"}


def test_secured_update_names_its_column():
    err = RecordRejected(
        "0x8004F507",
        "The user doesn't have AttributePrivilegeUpdate and not granted shared access for "
        "a secured attribute during update operation. Attribute: address1_city",
    )
    assert dataverse_columns(err, BODY, RULES) == {"address1_city"}


def test_picklist_error_names_none_so_the_option_columns_are_the_candidates():
    err = RecordRejected("0x8004431A", "The picklist value is out of the range.")
    assert dataverse_columns(err, BODY, RULES) == {"leadsourcecode"}


def test_a_plug_in_rejection_stays_a_record_rejection():
    err = RecordRejected("0x80040265", "The 'jobtitle' must not say CEO (business rule)")
    assert dataverse_columns(err, BODY, RULES) == set()


def test_marketo_reasons_name_a_field_or_only_its_value():
    record = {"id": 5, "email": "not an email", "city": "Leeds"}
    assert marketo_fields({"code": "1006", "message": "Field 'city' not found"}, record) == {
        "city"
    }
    invalid = {"code": "1001", "message": "Invalid value 'not an email'. Required of type 'email'"}
    assert marketo_fields(invalid, record) == {"email"}
    assert marketo_fields({"code": "1004", "message": "Lead not found"}, record) == set()


def test_a_value_rejected_before_is_held_until_either_side_changes_it():
    hasher = Hasher(b"k" * 32)
    rules = RULES[:1]
    base = {"title": hasher("Engineer"), REJECTED_BY["dynamics"] + "title": hasher("x" * 150)}
    held = plan_pair(rules, {"jobtitle": "Engineer"}, {"title": "x" * 150}, base, hasher)
    assert held.to_dynamics == {} and held.held_rejected == ["title"]
    changed = plan_pair(rules, {"jobtitle": "Engineer"}, {"title": "CTO"}, base, hasher)
    assert changed.to_dynamics == {"jobtitle": "CTO"}
