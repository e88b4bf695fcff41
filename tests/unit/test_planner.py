"""Table tests of the merge rules (pure planner, no I/O)."""

from __future__ import annotations

import pytest

from sync_core.mapping import FieldRule
from sync_core.planner import Hasher, plan_pair

H = Hasher(b"k" * 32)
LEAD = [FieldRule("firstName", "firstname", "both", "marketo")]
CONTACT = [FieldRule("firstName", "firstname", "both", "dynamics")]


def run(rules, base, dyn, mkto):
    b = None if base is ... else {"firstName": H(base)}
    return plan_pair(rules, {"firstname": dyn}, {"firstName": mkto}, b, H)


@pytest.mark.parametrize(
    ("rules", "base", "dyn", "mkto", "to_mkto", "to_dyn", "collided"),
    [
        # nobody changed anything
        (LEAD, "Ann", "Ann", "Ann", None, None, False),
        # one side changed -> copied to the other, whatever the entity
        (LEAD, "Ann", "Anna", "Ann", "Anna", None, False),
        (CONTACT, "Ann", "Ann", "Anne", None, "Anne", False),
        # both changed to different values -> the system of record wins
        (LEAD, "Ann", "Anna", "Anne", None, "Anne", True),
        (CONTACT, "Ann", "Anna", "Anne", "Anna", None, True),
        # unknown base: a filled side beats an empty one; two values go to the winner
        (LEAD, ..., None, "Ann", None, "Ann", False),
        (CONTACT, ..., "Ann", None, "Ann", None, False),
        (CONTACT, ..., "Dyn", "Mkto", "Dyn", None, True),
        (LEAD, ..., "Dyn", "Mkto", None, "Mkto", True),
    ],
)
def test_rules(rules, base, dyn, mkto, to_mkto, to_dyn, collided):
    plan = run(rules, base, dyn, mkto)
    assert plan.to_marketo.get("firstName") == to_mkto
    assert plan.to_dynamics.get("firstname") == to_dyn
    assert bool(plan.collisions) is collided


def test_cleared_in_dynamics_reaches_marketo_as_null():
    plan = run(LEAD, "Ann", None, "Ann")
    assert "firstName" in plan.to_marketo and plan.to_marketo["firstName"] is None


def test_same_change_on_both_sides_settles_without_writes():
    plan = run(LEAD, "Ann", "Anna", "Anna")
    assert not plan.to_marketo and not plan.to_dynamics and not plan.collisions
    assert plan.settled == {"firstName": H("Anna")}


def test_different_fields_on_each_side_both_go_through():
    rules = [
        FieldRule("firstName", "firstname", "both", "marketo"),
        FieldRule("city", "address1_city", "both", "marketo"),
    ]
    base = {"firstName": H("Ann"), "city": H("Oslo")}
    plan = plan_pair(
        rules,
        {"firstname": "Anna", "address1_city": "Oslo"},
        {"firstName": "Ann", "city": "Bergen"},
        base,
        H,
    )
    assert plan.to_marketo == {"firstName": "Anna"}
    assert plan.to_dynamics == {"address1_city": "Bergen"}
    assert plan.pending_marketo == {"firstName": H("Anna")}
    assert plan.pending_dynamics == {"city": H("Bergen")}


def test_empty_string_and_null_are_the_same_value():
    plan = run(LEAD, None, "", None)
    assert plan.idle


def test_one_way_field_never_writes_against_its_direction():
    rules = [FieldRule("title", "jobtitle", "to-marketo", "dynamics")]
    base = {"title": H("CEO")}
    marketo_edit = plan_pair(rules, {"jobtitle": "CEO"}, {"title": "CTO"}, base, H)
    assert not marketo_edit.to_dynamics and not marketo_edit.to_marketo
    both = plan_pair(rules, {"jobtitle": "CFO"}, {"title": "CTO"}, base, H)
    assert both.to_marketo == {"title": "CFO"}


def test_skipped_fields_are_left_alone():
    plan = plan_pair(
        LEAD, {"firstname": "X"}, {"firstName": "Y"}, None, H, skip=frozenset({"firstName"})
    )
    assert plan.idle


def test_hash_hides_the_value_and_depends_on_the_key():
    assert "Ann" not in H("Ann")
    assert Hasher(b"a" * 32)("Ann") != Hasher(b"b" * 32)("Ann")
    assert H(" Ann ") == H("Ann") and H("") == H(None)
    assert H(True) != H("true")


def test_email_case_differences_are_not_edits_or_collisions():
    rules = [FieldRule("email", "emailaddress1", "both", "dynamics", fold_case=True)]
    base = {"email": H("ann@example.com")}
    plan = plan_pair(
        rules, {"emailaddress1": "Ann@Example.com"}, {"email": "ann@example.com"}, base, H
    )
    assert plan.idle
    unknown = plan_pair(
        rules, {"emailaddress1": "ANN@example.com"}, {"email": "ann@example.com"}, None, H
    )
    assert not unknown.collisions and not unknown.to_marketo and not unknown.to_dynamics
    real = plan_pair(
        rules, {"emailaddress1": "new@example.com"}, {"email": "Ann@example.com"}, base, H
    )
    assert real.to_marketo == {"email": "new@example.com"}


def test_field_rules_name_the_rule_that_decided_each_field():
    from sync_core.planner import Collision, PairPlan
    from sync_core.rules import field_rules

    plan = PairPlan(collisions=[Collision("title", "dynamics"), Collision("city", "marketo")])
    got = field_rules(plan, "lead", "to-marketo", ["title", "city", "phone"], new=False)
    # Leads: Marketo is the system of record, so a Dynamics win is an override.
    assert got == {"title": "collision-override", "city": "collision-system-of-record",
                   "phone": "changed-in-dynamics"}  # fmt: skip
    assert field_rules(PairPlan(), "contact", "to-dynamics", ["email"], new=True) == {
        "email": "new-link"
    }
    assert field_rules(PairPlan(), "contact", "to-dynamics", ["email"], new=False) == {
        "email": "changed-in-marketo"
    }


@pytest.mark.parametrize(
    ("marker", "dyn", "mkto", "to_dyn"),
    [
        # a write to Marketo answered as landed: both sides show it, nothing to write
        ("=m:", "Anna", "Anna", None),
        # ... and the marketer edited it since: that edit goes across, on the right base
        ("=m:", "Anna", "Anne", "Anne"),
        # sent, answer unknown, and the side shows the value written
        ("~m:", "Anna", "Anna", None),
    ],
)
def test_a_base_the_journal_restored_is_stored_with_the_next_plan(marker, dyn, mkto, to_dyn):
    # Saving the link drops the journal's markers: the base they gave must be stored
    # too, or the stale one comes back and our own write later passes for an edit.
    noted = H("Anna") if marker == "=m:" else f"{H('Anna')}|{H('Ann')}"
    base = {"firstName": H("Ann"), marker + "firstName": noted}
    plan = plan_pair(CONTACT, {"firstname": dyn}, {"firstName": mkto}, base, H)
    assert plan.settled == {"firstName": H("Anna")}
    assert plan.to_dynamics.get("firstname") == to_dyn and not plan.to_marketo
    assert not plan.collisions


def test_a_base_the_journal_left_as_it_was_is_not_stored_again():
    # A write answered as not landed: the marker holds the base it was planned from.
    base = {"firstName": H("Ann"), "=d:firstName": H("Ann")}
    plan = plan_pair(LEAD, {"firstname": "Bob"}, {"firstName": "Anne"}, base, H)
    assert plan.settled == {} and plan.to_dynamics == {"firstname": "Anne"}
    assert plan.collisions  # both changed since the base: Marketo wins for a lead
