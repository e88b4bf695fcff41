"""Per-field rules beyond "the system of record wins": blank, update and fit, table-tested
in the planner, and validated when the mapping loads."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from sync_core.errors import ConfigError
from sync_core.mapping import FieldRule, parse_mapping
from sync_core.planner import Hasher, plan_pair

H = Hasher(b"r" * 32)
TITLE = FieldRule("title", "jobtitle", "both", "marketo")  # a lead: Marketo wins


def plan(rule: FieldRule, d: Any, m: Any, base: Any = "unset") -> Any:
    b = None if base is None else {"title": H(d if base == "unset" else base)}
    return plan_pair((rule,), {"jobtitle": d}, {"title": m}, b, H)


# (rule changes, Dynamics now, Marketo now, base, expected to Dynamics, expected to Marketo)
CASES = [
    # blank = never-overwrites
    ({"blank": "never-overwrites"}, "CTO", None, "CTO", {}, {}),  # cleared in Marketo: kept
    ({"blank": "never-overwrites"}, None, "CTO", "CTO", {}, {}),  # cleared in Dynamics: kept
    ({"blank": "never-overwrites"}, "CEO", None, "CTO", {}, {"title": "CEO"}),  # value beats none
    ({}, "CTO", None, "CTO", {"jobtitle": None}, {}),  # default: the clear is copied
    ({"blank": "never-overwrites"}, "CTO", "VP", "CTO", {"jobtitle": "VP"}, {}),  # edits flow
    # update = if-empty
    ({"update": "if-empty"}, None, "CTO", None, {"jobtitle": "CTO"}, {}),  # fills the empty side
    ({"update": "if-empty"}, "CEO", "CTO", "CEO", {}, {}),  # never changes a filled one
    ({"update": "if-empty"}, "CEO", None, None, {}, {"title": "CEO"}),
    ({}, "CEO", "CTO", "CEO", {"jobtitle": "CTO"}, {}),  # default: changes flow
]


@pytest.mark.parametrize("changes,d,m,base,to_d,to_m", CASES)
def test_blank_and_update_rules(changes, d, m, base, to_d, to_m):
    p = plan(replace(TITLE, **changes), d, m, base)
    assert p.to_dynamics == to_d and p.to_marketo == to_m


def test_fit_truncate_cuts_to_the_shorter_side_and_then_agrees():
    rule = replace(TITLE, fit="truncate", max_length=10)
    first = plan(rule, "Engineer", "Chief Technology Officer", "Engineer")
    assert first.to_dynamics == {"jobtitle": "Chief Tech"} and first.truncated == ["title"]
    # Next cycle Dynamics holds the cut value: that is agreement, not a change to copy back.
    settled = plan_pair(
        (rule,), {"jobtitle": "Chief Tech"}, {"title": "Chief Technology Officer"},
        {"title": H("Engineer")}, H,
    )  # fmt: skip
    assert settled.to_marketo == {} and settled.to_dynamics == {} and settled.settled
    whole = replace(TITLE, max_length=10)
    untouched = plan(whole, "Engineer", "Chief Technology Officer", "Engineer")
    assert untouched.to_dynamics == {"jobtitle": "Chief Technology Officer"}  # default: sent whole


def mapping_with(**rule: Any) -> dict[str, Any]:
    return {"fields": [{"marketo": "title", "lead": "jobtitle", **rule}]}


@pytest.mark.parametrize(
    "rule,message",
    [
        ({"blank": "keep"}, "blank must be one of overwrites, never-overwrites"),
        ({"update": "once"}, "update must be one of always, if-empty"),
        ({"fit": "cut"}, "fit must be one of reject, truncate"),
    ],
)
def test_a_bad_rule_stops_start_up_naming_the_field(rule, message):
    with pytest.raises(ConfigError, match=f"field 'title': {message}"):
        parse_mapping(mapping_with(**rule))


def test_rules_are_read_and_shown_as_written():
    (rule,) = parse_mapping(mapping_with(blank="never-overwrites", fit="truncate")).fields["lead"]
    assert (rule.blank, rule.update, rule.fit) == ("never-overwrites", "always", "truncate")
    assert rule.rules_text() == "blank = never-overwrites, fit = truncate"
