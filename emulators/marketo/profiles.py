"""World profiles: named sets of `MarketoConfig` knob values.

`exact` is the fast, deterministic emulator the conformance tests were written against;
`production` adds the server time, overlap, date-based paging, late commits, background
activity and small pages a real instance shows; `hostile` adds faults on top. A profile
only sets knobs, so any single knob can still be overridden afterwards. Keeping the
values in one table prevents a profile from silently drifting from its documentation
(the README's "World profiles" table lists the same numbers).

Numbers marked "assumption" have no published source (Adobe publishes no latency SLA;
its KB article "SLAs for Marketo REST API" says there is none and that responses time
out after 30 s); they are chosen to be plausible and are knobs.
"""

from __future__ import annotations

import copy
from dataclasses import fields
from typing import Any

from emulators.marketo.config import MarketoConfig

PROFILE_NAMES = ("exact", "production", "hostile")

#: The knobs a profile owns. Applying a profile first resets all of them to `exact`.
WORLD_KNOBS = (
    "latency_model", "feed_scan_cost_s", "server_timeouts", "paging_tokens",
    "late_share", "late_delay_s", "noise_per_hour", "noise_max_backlog",
    "lead_page_cap", "fault_rates", "client_hold_s", "activity_scan_block",
    "shared_calls_per_20s",
)

_FEED = [0.4, 2.0, 0.0]
#: [median_s, p95_s, per_record_s] per endpoint (assumption: typical figures reported
#: for a mid-size subscription; Sync Leads pays per record, 300 records ≈ +6 s).
PRODUCTION_LATENCY: dict[str, list[float]] = {
    "identity": [0.25, 0.9, 0.0],
    "POST /rest/v1/leads.json": [0.6, 2.5, 0.02],
    "GET /rest/v1/leads.json": [0.35, 1.5, 0.002],
    "GET /rest/v1/lead/{id}.json": [0.2, 0.8, 0.0],
    "GET /rest/v1/activities.json": _FEED,
    "GET /rest/v1/activities/leadchanges.json": _FEED,
    "GET /rest/v1/activities/deletedleads.json": _FEED,
    "GET /rest/v1/activities/pagingtoken.json": [0.3, 1.5, 0.0],
    "POST /rest/v1/activities/external.json": [0.4, 1.5, 0.005],
    "GET /rest/v1/leads/describe.json": [0.5, 2.0, 0.0],
    "GET /rest/v1/leads/describe2.json": [0.5, 2.0, 0.0],
    "POST /rest/v1/leads/{id}/merge.json": [1.0, 5.0, 0.0],
    "*": [0.3, 1.2, 0.001],
}

#: Server-side timeouts (leads.md and activities.md "Timeouts"): 30 s unless listed.
DOCUMENTED_TIMEOUTS: dict[str, float] = {
    "POST /rest/v1/leads.json": 90.0,
    "GET /rest/v1/leads.json": 60.0,
    "POST /rest/v1/leads/{id}/merge.json": 180.0,
    "GET /rest/v1/activities/pagingtoken.json": 300.0,
    "POST /rest/v1/activities/external.json": 90.0,
    "*": 30.0,
}

PRODUCTION: dict[str, Any] = {
    "latency_model": PRODUCTION_LATENCY,
    # Assumption: 0.1 ms of server time per log entry scanned (2,000 entries ≈ 0.2 s).
    "feed_scan_cost_s": 0.0001,
    "server_timeouts": DOCUMENTED_TIMEOUTS,
    # paging-tokens.md: activity tokens are date-based.
    "paging_tokens": "date",
    # Assumption: 5 % of activities commit up to 60 s late (KB "REST API Paging Tokens
    # Use Case" describes Send Email committing after later activities).
    "late_share": 0.05,
    "late_delay_s": 60.0,
    # Assumption: a mid-size instance logs ~20,000 email/web activities an hour.
    "noise_per_hour": 20_000.0,
    "noise_max_backlog": 100_000,
    # Assumption: smaller scan blocks than `exact` so a 5-minute gap spans several pages.
    "activity_scan_block": 2000,
    # Not real behaviour: pages smaller than batchSize so page two is always exercised.
    "lead_page_cap": 100,
    "fault_rates": {},
    "client_hold_s": 150.0,
    # Assumption: one other light integration shares the 100 / 20 s window.
    "shared_calls_per_20s": 2.0,
}

HOSTILE: dict[str, Any] = {
    **PRODUCTION,
    "late_share": 0.15,
    "late_delay_s": 300.0,
    "lead_page_cap": 50,
    # Assumption: busy neighbours; with the sync's own 50 / 20 s the window gets tight.
    "shared_calls_per_20s": 30.0,
    # Assumption: rates high enough that a few hundred calls meet every kind.
    "fault_rates": {
        "*": {"606": 0.01, "615": 0.01, "edge502": 0.005, "edge503": 0.005, "604": 0.005,
              "hold": 0.002, "token": 0.03},
        "POST /rest/v1/leads.json": {"lost": 0.03},
        "POST /rest/v1/activities/external.json": {"lost": 0.03},
        "POST /rest/v1/leads/{id}/merge.json": {"lost": 0.03},
    },
}


def exact_values() -> dict[str, Any]:
    defaults = MarketoConfig()
    return {f.name: getattr(defaults, f.name) for f in fields(defaults)
            if f.name in WORLD_KNOBS}


def profile_values(name: str) -> dict[str, Any]:
    """The knob values of profile `name`; ValueError for an unknown name."""
    if name not in PROFILE_NAMES:
        raise ValueError(f"unknown profile {name!r}; one of {', '.join(PROFILE_NAMES)}")
    values = exact_values()
    if name == "production":
        values.update(PRODUCTION)
    elif name == "hostile":
        values.update(HOSTILE)
    return copy.deepcopy(values)


def apply_profile(config: MarketoConfig, name: str) -> None:
    """Set every world knob of `config` to profile `name` (others are left alone)."""
    for key, value in profile_values(name).items():
        setattr(config, key, value)
    config.profile = name
