"""Rate (606), concurrency (615) and daily quota (607) limits, call statistics and
per-endpoint fault injection.

The sync must survive Marketo's shared 100-calls-per-20-s window and its 10-in-flight
cap; these counters reproduce both exactly (and can be tightened by tests) so client
back-off code is exercised instead of assumed.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from emulators.marketo.config import MarketoConfig

CHICAGO = ZoneInfo("America/Chicago")


def next_quota_reset(now: float) -> float:
    """The next 00:00 America/Chicago after `now` (Marketo's daily reset)."""
    local = datetime.fromtimestamp(now, CHICAGO)
    midnight = datetime(local.year, local.month, local.day, tzinfo=CHICAGO) + timedelta(days=1)
    return midnight.timestamp()


def rate_message(cfg: MarketoConfig) -> str:
    """Marketo's 606 text, naming the configured (unscaled) limit and window."""
    return (f"Max rate limit '{cfg.rate_limit_calls}' exceeded with in "
            f"'{int(cfg.rate_limit_window_s)}' secs")


class Limiter:
    def __init__(self, config: MarketoConfig) -> None:
        self.config = config
        self.window: deque[float] = deque()
        #: Call times of the other integrations still inside the window.
        self.others: deque[float] = deque()
        self.others_next: float | None = None
        self.in_flight = 0
        self.quota_used = 0
        self.quota_resets_at = 0.0

    def _roll_quota(self, now: float) -> None:
        if now >= self.quota_resets_at:
            self.quota_used = 0
            self.quota_resets_at = next_quota_reset(now)

    def _other_integrations(self, now: float, cutoff: float) -> None:
        cfg = self.config
        others = self.others
        if cfg.shared_calls_per_20s <= 0:
            others.clear()
            self.others_next = None
            return
        interval = cfg.scaled(20.0 / cfg.shared_calls_per_20s)
        start = self.others_next
        if start is None:
            start = now  # they start with the first call we see
        elif start < cutoff:
            start = cutoff  # a long quiet spell: only the last window matters
        while start <= now:
            others.append(start)
            start += interval
        self.others_next = start
        while others and others[0] <= cutoff:
            others.popleft()

    def admit(self, now: float) -> tuple[str, str] | None:
        """Count one call; return (code, message) when a limit rejects it.

        Rejected calls still count (the error-code table does not exempt 606/607/615).
        """
        cfg = self.config
        self._roll_quota(now)
        self.quota_used += 1
        if cfg.rate_limit_calls:
            cutoff = now - cfg.scaled(cfg.rate_limit_window_s)
            w = self.window
            while w and w[0] <= cutoff:
                w.popleft()
            w.append(now)
            self._other_integrations(now, cutoff)
        if cfg.max_concurrent and self.in_flight >= cfg.max_concurrent:
            return "615", "Concurrent access limit reached"
        if cfg.rate_limit_calls and len(self.window) + len(self.others) > cfg.rate_limit_calls:
            return "606", rate_message(cfg)
        if cfg.daily_quota and self.quota_used > cfg.daily_quota:
            return "607", "Daily quota reached"
        return None


@dataclass
class EndpointStats:
    calls: int = 0
    throttled: int = 0
    errors: int = 0
    codes: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "throttled": self.throttled, "errors": self.errors,
                "errorCodes": dict(self.codes)}


class Stats:
    def __init__(self) -> None:
        self.endpoints: dict[str, EndpointStats] = {}
        self.by_user: dict[str, int] = {}

    def record(self, endpoint: str, user: str | None, code: str | None) -> None:
        st = self.endpoints.get(endpoint)
        if st is None:
            st = self.endpoints[endpoint] = EndpointStats()
        st.calls += 1
        if user:
            self.by_user[user] = self.by_user.get(user, 0) + 1
        if code is not None:
            st.errors += 1
            st.codes[code] = st.codes.get(code, 0) + 1
            if code in ("606", "607", "615"):
                st.throttled += 1


@dataclass
class Fault:
    """Inject `kind` into `rate` of the calls matching `endpoint` (`*` = all).

    kind: a Marketo code ("606", "615", "604", "608", "611", "713", ...) returned as an
    HTTP 200 error envelope; "http500"/"http502"/"http503" for a bare HTTP error;
    "timeout" to hold the call for `delay_s` and then answer 604.
    `remaining` limits how many times it fires (None = unlimited).
    """

    endpoint: str
    kind: str
    rate: float = 1.0
    remaining: int | None = None
    delay_s: float = 30.0

    def as_dict(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "kind": self.kind, "rate": self.rate,
                "remaining": self.remaining, "delay_s": self.delay_s}


class Faults:
    def __init__(self, seed: int) -> None:
        self.faults: list[Fault] = []
        self.rng = random.Random(seed)

    def pick(self, endpoint: str) -> Fault | None:
        for f in self.faults:
            if f.endpoint not in ("*", endpoint):
                continue
            if f.remaining is not None and f.remaining <= 0:
                continue
            if f.rate >= 1.0 or self.rng.random() < f.rate:
                if f.remaining is not None:
                    f.remaining -= 1
                return f
        return None


@dataclass
class Latency:
    fixed_s: float = 0.0
    per_record_s: float = 0.0


FAULT_MESSAGES = {
    "502": "Bad Gateway",
    "604": "Request time-out",
    "606": "Max rate limit '100' exceeded with in '20' secs",
    "607": "Daily quota reached",
    "608": "API Temporarily Unavailable",
    "611": "System error",
    "614": "Invalid Subscription",
    "615": "Concurrent access limit reached",
    "713": "Transient Error",
}
