"""Every knob of the Marketo emulator in one dataclass.

Tests force edge cases (token expiry, 606 storms, 1003 batches, empty activity pages)
by changing these numbers instead of waiting for real time to pass; keeping them in
one place prevents hidden constants that a test cannot reach.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass
class ApiUser:
    """An API-only user tied to a LaunchPoint custom service (client id/secret)."""

    client_id: str
    client_secret: str
    #: Returned as the token `scope` and recorded as `Modifying User` on activities.
    email: str


def default_users() -> list[ApiUser]:
    return [
        ApiUser("sync-app", "sync-app-secret", "sync-app@marketo.emulator"),
        ApiUser("marketing-user", "marketing-user-secret", "marketing-user@marketo.emulator"),
    ]


@dataclass
class MarketoConfig:
    """Limits, lifetimes and latencies. `None`/0 switches a limit off where noted."""

    users: list[ApiUser] = field(default_factory=default_users)
    #: Seconds a new access token lives; `expires_in` counts down from lifetime - 1.
    token_lifetime_s: float = 3600.0
    #: Accept `?access_token=` (query or form). Marketo is retiring it; tests can reject it.
    allow_access_token_param: bool = True

    #: Sliding-window rate limit (606). `rate_limit_calls=0` disables.
    rate_limit_calls: int = 100
    rate_limit_window_s: float = 20.0
    #: Calls other integrations of the instance make per 20 simulated seconds, evenly
    #: spaced: they fill the 606 window (rest-api.md: the limits are shared by every
    #: integration). Not counted in the daily quota, whose day is not scaled.
    shared_calls_per_20s: float = 0.0
    #: Calls in flight at once (615). 0 disables.
    max_concurrent: int = 10
    #: Calls per day, reset at 00:00 America/Chicago (607). 0 disables.
    daily_quota: int = 50_000

    #: Records per Lead DB call (1003) and maximum/default batchSize.
    max_batch: int = 300
    #: Get Leads by filter: more matches than this → 1003 "Too many results".
    max_filter_matches: int = 1000
    #: HTTP-level size limits (413/414).
    max_body_bytes: int = 1_048_576
    max_bulk_body_bytes: int = 10_485_760
    max_uri_bytes: int = 8192

    #: Activity feeds scan this many log entries per call, so pages may hold fewer
    #: items than batchSize (even zero) while moreResult is true, as real Marketo does.
    activity_scan_block: int = 10_000
    #: Deleted-lead activities older than this are pruned from deletedleads.json.
    deleted_lead_retention_days: float = 14.0

    #: Custom activity type limits (1027/1028).
    max_custom_activity_types: int = 10
    max_custom_activity_attributes: int = 20

    #: Bulk extract limits.
    bulk_max_processing: int = 2
    bulk_max_queued: int = 10
    bulk_daily_quota_bytes: int = 500 * 1024 * 1024
    bulk_max_days: int = 31
    #: Seconds a job spends in Queued/Processing before it completes (0 = next poll).
    bulk_processing_s: float = 0.0

    #: Webhook call timeout (Marketo waits 30 s, no retry).
    webhook_timeout_s: float = 30.0

    #: Latency added to every limited API call, plus per input/output record.
    latency_fixed_s: float = 0.0
    latency_per_record_s: float = 0.0

    #: Seed for generated ids/requestIds/fault dice; same seed, same data. Every random
    #: choice of a world profile (latency draws, faults, noise, commit delays) derives
    #: from it, so a run can be replayed.
    seed: int = 1

    # -- world profile knobs (see profiles.py). Defaults are the `exact` profile. --------
    #: Name of the last profile applied (`exact`, `production`, `hostile`); a label only,
    #: the knobs below are what the emulator reads.
    profile: str = "exact"
    #: Multiplies every duration the emulator spends or enforces (latencies, rate window,
    #: server timeouts, commit delays, token lifetime, holds, bulk processing, webhook
    #: timeout, retention), so tests compress time while the ratios stay.
    time_scale: float = 1.0
    #: Sampled server time per endpoint: `{"<METHOD path>": [median_s, p95_s, per_record_s]}`
    #: (log-normal; `*` for the rest, `identity` for the token endpoint). Empty = none.
    latency_model: dict[str, list[float]] = field(default_factory=dict)
    #: Server time per activity-log entry a feed call scans (the cost of a busy log).
    feed_scan_cost_s: float = 0.0
    #: Server-side timeouts per endpoint (`*` for the rest); past it the call answers 604
    #: and a write keeps what it applied so far. Empty = never.
    server_timeouts: dict[str, float] = field(default_factory=dict)
    #: `position` (a token is a log position, everything visible at once) or `date` (a
    #: token is a point in activity time; late commits can fall behind a saved token).
    paging_tokens: str = "position"
    #: Share of new activities that commit late, and the longest delay (seconds): a late
    #: activity keeps its activityDate but is invisible to the feeds until then.
    late_share: float = 0.0
    late_delay_s: float = 0.0
    #: Background activity (email sends/opens, web visits...) per simulated hour, spread
    #: over the existing people; the feeds must scan past it. At most `noise_max_backlog`
    #: items are generated for one gap (a big clock jump), the rest of the gap is skipped.
    noise_per_hour: float = 0.0
    noise_max_backlog: int = 100_000
    #: Get Leads returns at most this many records per page (0 = batchSize), to exercise
    #: `nextPageToken`/`moreResult` with small data sets.
    lead_page_cap: int = 0
    #: Random faults: `{"<METHOD path>" or "*": {kind: rate}}`; kinds as in the /faults
    #: admin API plus `hold` (keep the connection `client_hold_s`, then 604), `lost`
    #: (writes only: apply, then 502/604/drop the connection; `lost-drop`, `lost-edge502`,
    #: `lost-604` force one) and `token` (calls with a nextPageToken: the caller's access
    #: token expires now, 601/602).
    fault_rates: dict[str, dict[str, float]] = field(default_factory=dict)
    #: Client ids the world's faults hit (empty: every caller). Tests keep their own
    #: actors (the marketer's tool) out of the faults aimed at the sync.
    fault_users: list[str] = field(default_factory=list)
    client_hold_s: float = 150.0

    def scaled(self, seconds: float) -> float:
        """A configured duration in real seconds under `time_scale`."""
        return seconds * self.time_scale

    def update(self, values: dict[str, object]) -> list[str]:
        """Apply known keys from an admin request; return the unknown ones."""
        known = {f.name: f for f in fields(self)}
        unknown = [k for k in values if k not in known or k == "users"]
        for key, value in values.items():
            if key in known and key != "users":
                current = getattr(self, key)
                # Keep the declared type (JSON gives ints for floats and vice versa).
                if isinstance(current, bool):
                    value = bool(value)
                elif isinstance(current, int):
                    value = int(value)  # type: ignore[call-overload]
                elif isinstance(current, float):
                    value = float(value)  # type: ignore[arg-type]
                setattr(self, key, value)
        return unknown

    def limits_off(self) -> MarketoConfig:
        """Switch off every rate/concurrency/quota limit (benchmarks, bulk seeding)."""
        self.rate_limit_calls = 0
        self.max_concurrent = 0
        self.daily_quota = 0
        return self
