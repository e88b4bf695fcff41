"""The knobs of a world profile: time scale, latency, execution cost, faults, events.

A profile (`profiles.py`) is nothing but a set of values for these fields, so every
behaviour a profile switches on can also be set alone (admin `PUT /world`, or by
building a `WorldConfig`). Keeping them in one dataclass, separate from the schema and
identity knobs of `DynamicsConfig`, prevents a production-like setting from leaking
into the `exact` profile that the conformance tests rely on: the defaults here are the
`exact` profile, which spends no time and injects nothing.

All durations are *service* durations (what the real service would take); the emulator
multiplies each one by `time_scale` before sleeping or comparing with the clock.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

# Faults a rate can be set for (per endpoint, see `WorldConfig.fault_rates`).
PRE_FAULTS = ("429-requests", "429-time", "429-concurrency", "500", "502", "503",
              "timeout-504", "timeout-drop", "expire-change-token")
LOST_ANSWER_FAULTS = ("lost-502", "lost-504", "lost-drop")
FAULT_KINDS = PRE_FAULTS + LOST_ANSWER_FAULTS

# Events a schedule (or the admin API) can fire.
EVENT_KINDS = ("expire-change-tokens", "start-rule", "revoke-field")


@dataclass
class OperationCosts:
    """Server execution time per operation, in service milliseconds (stated assumptions)."""

    retrieve_ms: float = 0.0  # GET one row
    query_page_ms: float = 0.0  # GET a collection page (snapshot, delta, filter) ...
    query_row_ms: float = 0.0  # ... plus this per row returned
    create_ms: float = 0.0
    update_ms: float = 0.0
    upsert_extra_ms: float = 0.0  # PATCH without If-Match: the extra lookup of an upsert
    delete_ms: float = 0.0
    plugin_ms: float = 0.0  # per synchronous rule/plug-in registered on the written table
    bulk_base_ms: float = 0.0  # CreateMultiple/UpdateMultiple/UpsertMultiple, per request ...
    bulk_create_ms: float = 0.0  # ... plus this per record created
    bulk_update_ms: float = 0.0  # ... or updated
    batch_base_ms: float = 0.0  # $batch framing, plus the sum of its operations
    other_ms: float = 0.0  # WhoAmI, metadata, organizations, $count


@dataclass
class WorldConfig:
    profile: str = "exact"
    # Every random choice (latency, faults, token lifetime, delta order, event points).
    seed: int = 0
    # 1.0 = real time; 0.01 = everything 100 times faster (latency, execution time, the
    # 300 s window, Retry-After, the 2-minute timeout, token lifetime, fault holds).
    time_scale: float = 1.0
    # Per-request latency: log-normal with this median and sigma (service ms), capped.
    latency_median_ms: float = 0.0
    latency_sigma: float = 0.0
    latency_max_ms: float = 0.0
    costs: OperationCosts = field(default_factory=OperationCosts)
    # Each request's execution time is multiplied by a log-normal factor with this sigma.
    cost_jitter_sigma: float = 0.0
    # Spend the modelled time (sleep) and count it against the execution-time limit;
    # False = count the handler's own wall time, as the exact profile always did.
    spend_time: bool = False
    # The service cancels a request whose execution would exceed this (service seconds).
    enforce_request_timeout: bool = False
    request_timeout_seconds: float = 120.0
    # Retry-After grows by this many service seconds per 429 the same user got within the
    # window (sustained pressure); 0 = the exact profile's "time until the window frees".
    retry_after_step_seconds: float = 0.0
    # `x-ms-dop-hint` response header; 0 = not sent.
    dop_hint: int = 0
    # Entra token lifetime drawn uniformly from this range (service seconds); None = the
    # fixed `DynamicsConfig.token_lifetime_seconds`.
    token_lifetime_range: tuple[float, float] | None = None
    # Shuffle the rows of each delta page (seeded); the set of changes is unchanged.
    shuffle_delta: bool = False
    # Fault probabilities per endpoint ("GET contacts", "POST $batch", "*" = any,
    # "write" = any POST/PATCH/PUT/DELETE): {endpoint: {fault kind: probability}}.
    fault_rates: dict[str, dict[str, float]] = field(default_factory=dict)
    # Users (client id or systemuserid) the fault rates hit; empty = everyone. Lets a test
    # keep its actors (e.g. `sales-user`) reliable while the sync meets the faults.
    fault_users: tuple[str, ...] = ()
    # Tables whose CreateMultiple/UpdateMultiple/UpsertMultiple exist.
    bulk_tables: tuple[str, ...] = ("contact", "lead")
    # Scheduled events: [{"event": kind, "at_request": N | "after_seconds": S, ...params}].
    events: list[dict[str, Any]] = field(default_factory=list)
    # What the hostile profile's scheduled events do.
    hostile_rule: dict[str, Any] = field(default_factory=lambda: {
        "table": "contact", "condition": "contains(emailaddress1,'.invalid')",
        "message": "Email addresses on .invalid domains are not accepted."})
    hostile_secured_column: tuple[str, str] = ("contact", "telephone1")

    def scale(self, service_seconds: float) -> float:
        """Service seconds -> wall seconds."""
        return service_seconds * self.time_scale


def shuffle_page(world: WorldConfig, rows: list[Any], page_key: str) -> None:
    """Reorder one delta page in place when the profile says order is not guaranteed.

    The change tracking doc leaves the order to server-side logic; a sync that relies on
    "updates by version, then deletes" breaks on the real service. Seeded by the page's
    own token so the same run replays the same order.
    """
    if world.shuffle_delta and len(rows) > 1:
        random.Random(f"{world.seed}:delta:{page_key}").shuffle(rows)
