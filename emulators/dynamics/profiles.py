"""World profiles: `exact`, `production`, `hostile` as sets of `WorldConfig` values.

`exact` is the emulator as the conformance tests know it (no time spent, nothing
injected). `production` spends the time the real service would and shows its limits;
`hostile` adds faults and mid-run changes on top. Figures that no public source gives
are stated assumptions, listed in the emulator README; each is a knob. Switching
profile rewrites the knobs in place, so a running app picks it up on the next request.
The failure this prevents: a sync that is only ever tested against an instant,
faultless stand-in and meets its first 429, timeout or lost answer in production.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from emulators.dynamics.world import (
    EVENT_KINDS,
    FAULT_KINDS,
    OperationCosts,
    WorldConfig,
)

PROFILES = ("exact", "production", "hostile")


def _production(world: WorldConfig) -> None:
    world.latency_median_ms, world.latency_sigma, world.latency_max_ms = 40.0, 0.5, 2000.0
    world.costs = OperationCosts(
        retrieve_ms=15, query_page_ms=30, query_row_ms=0.4, create_ms=35, update_ms=30,
        upsert_extra_ms=10, delete_ms=25, plugin_ms=15, bulk_base_ms=20, bulk_create_ms=8,
        bulk_update_ms=7, batch_base_ms=10, other_ms=10)
    world.cost_jitter_sigma = 0.2
    world.spend_time = True
    world.enforce_request_timeout = True
    world.retry_after_step_seconds = 5.0
    world.dop_hint = 4
    world.token_lifetime_range = (3600.0, 5400.0)
    world.shuffle_delta = True


def _hostile(world: WorldConfig) -> None:
    _production(world)
    world.fault_rates = {
        "*": {"429-requests": 0.01, "429-time": 0.005, "429-concurrency": 0.005,
              "500": 0.005, "502": 0.005, "503": 0.01, "timeout-504": 0.002,
              "timeout-drop": 0.002, "expire-change-token": 0.02},
        "write": {"lost-502": 0.005, "lost-504": 0.003, "lost-drop": 0.003},
        "POST token": {"503": 0.01},
    }
    rng = random.Random(f"{world.seed}:events")
    table, column = world.hostile_secured_column
    world.events = [
        {"event": "expire-change-tokens", "at_request": rng.randint(100, 1000)},
        {"event": "start-rule", "at_request": rng.randint(150, 600), **world.hostile_rule},
        {"event": "revoke-field", "at_request": rng.randint(300, 900), "table": table,
         "column": column},
    ]


def apply_profile(world: WorldConfig, name: str, seed: int | None = None,
                  time_scale: float | None = None,
                  overrides: dict[str, Any] | None = None) -> WorldConfig:
    """Reset `world` in place to profile `name`, then apply individual knob overrides."""
    if name not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}")
    keep_seed = world.seed if seed is None else int(seed)
    keep_scale = world.time_scale if time_scale is None else float(time_scale)
    if keep_scale <= 0:
        raise ValueError("time scale must be > 0")
    fresh = WorldConfig(profile=name, seed=keep_seed, time_scale=keep_scale)
    if name == "production":
        _production(fresh)
    elif name == "hostile":
        _hostile(fresh)
    for f in dataclasses.fields(WorldConfig):
        setattr(world, f.name, getattr(fresh, f.name))
    set_knobs(world, overrides or {})
    return world


def set_knobs(world: WorldConfig, knobs: dict[str, Any]) -> None:
    """Set individual knobs (JSON-shaped values); unknown names are an error."""
    for key, value in knobs.items():
        if key == "costs":
            for ck, cv in dict(value).items():
                if not hasattr(world.costs, ck):
                    raise ValueError(f"unknown cost '{ck}'")
                setattr(world.costs, ck, float(cv))
            continue
        if key in ("profile",) or not hasattr(world, key):
            raise ValueError(f"unknown knob '{key}'")
        if key == "fault_rates":
            for endpoint, rates in dict(value).items():
                for kind in rates:
                    if kind not in FAULT_KINDS:
                        raise ValueError(f"unknown fault '{kind}' for '{endpoint}'")
        if key == "events":
            for ev in value:
                if ev.get("event") not in EVENT_KINDS:
                    raise ValueError(f"unknown event {ev.get('event')!r}")
        if key in ("token_lifetime_range", "bulk_tables", "hostile_secured_column",
                   "fault_users") and \
                value is not None:
            value = tuple(value)
        if key == "time_scale" and float(value) <= 0:
            raise ValueError("time scale must be > 0")
        setattr(world, key, value)


def describe(world: WorldConfig) -> dict[str, Any]:
    out = dataclasses.asdict(world)
    out["timeScale"] = world.time_scale
    return out
