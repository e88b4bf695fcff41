"""The random side of a world profile: latency draws, fault dice, background activity
and late commits, each from its own stream seeded by `MarketoConfig.seed`.

Separate streams keep a run replayable: the latency of call N does not change because
a fault knob or the noise rate changed, and the noise a feed scans past is the same
sequence for the same seed. Without this, a failure seen against `production` or
`hostile` could not be reproduced.
"""

from __future__ import annotations

import math
import random
from typing import Any, Protocol

from emulators.marketo.activities import ActivityLog
from emulators.marketo.config import MarketoConfig

#: Standard activity types used as background noise, with weights (assumption: an
#: instance's log is dominated by email sends/deliveries and web visits).
NOISE_TYPES = ((6, 30), (7, 28), (10, 15), (1, 17), (11, 5), (3, 3), (46, 2))
#: Endpoints whose answer can be lost after the write committed (kind `lost`).
WRITES = frozenset({
    "POST /rest/v1/leads.json",
    "POST /rest/v1/activities/external.json",
    "POST /rest/v1/leads/{id}/merge.json",
    "POST /rest/v1/leads/delete.json",
})
#: z for the 95th percentile of a normal distribution.
_Z95 = 1.6449


class People(Protocol):
    next_id: int

    def get(self, lead_id: int) -> dict[str, Any] | None: ...


class World:
    def __init__(self, config: MarketoConfig) -> None:
        self.config = config
        self.reseed()

    def reseed(self) -> None:
        seed = self.config.seed
        self.latency_rng = random.Random(f"{seed}:latency")
        self.fault_rng = random.Random(f"{seed}:faults")
        self.noise_rng = random.Random(f"{seed}:noise")
        self.commit_rng = random.Random(f"{seed}:commit")
        #: Real time (emulator clock) of the next background activity; None = not started.
        self.noise_next: float | None = None
        self.noise_made = 0

    # -- server time ---------------------------------------------------------------
    def sample(self, endpoint: str) -> tuple[float, float]:
        """(fixed_s, per_record_s) of simulated server time for one call."""
        model = self.config.latency_model
        spec = model.get(endpoint) or model.get("*")
        if not spec:
            return 0.0, 0.0
        median, p95 = float(spec[0]), float(spec[1])
        per = float(spec[2]) if len(spec) > 2 else 0.0
        if median <= 0:
            return 0.0, per
        sigma = math.log(max(p95, median) / median) / _Z95
        return median * math.exp(sigma * self.latency_rng.gauss(0.0, 1.0)), per

    def timeout_for(self, endpoint: str) -> float | None:
        t = self.config.server_timeouts
        value = t.get(endpoint, t.get("*"))
        return float(value) if value else None

    # -- faults ----------------------------------------------------------------------
    def pick_fault(self, endpoint: str, paged: bool) -> str | None:
        """One die per call: the fault kind to inject, or None."""
        table = self.config.fault_rates
        if not table:
            return None
        rates = {**table.get("*", {}), **table.get(endpoint, {})}
        if endpoint not in WRITES:
            for kind in [k for k in rates if k.startswith("lost")]:
                rates.pop(kind)
        if not paged:
            rates.pop("token", None)
        roll = self.fault_rng.random()
        acc = 0.0
        for kind in sorted(rates):
            acc += float(rates[kind])
            if roll < acc:
                return kind
        return None

    def choice(self, options: tuple[str, ...]) -> str:
        return options[self.fault_rng.randrange(len(options))]

    # -- late commits ------------------------------------------------------------------
    def visible_at(self, now_ms: int) -> int:
        """When an activity written at `now_ms` becomes visible (0 = at once)."""
        cfg = self.config
        if cfg.late_share <= 0 or cfg.late_delay_s <= 0:
            return 0
        if self.commit_rng.random() >= cfg.late_share:
            return 0
        delay = self.commit_rng.uniform(0.1, 1.0) * cfg.scaled(cfg.late_delay_s)
        return now_ms + int(delay * 1000)

    # -- background activity -----------------------------------------------------------
    def catch_up(self, now: float, log: ActivityLog, people: People) -> int:
        """Log the background activities due up to `now`; returns how many."""
        cfg = self.config
        if cfg.noise_per_hour <= 0:
            self.noise_next = None
            return 0
        gap = cfg.scaled(3600.0 / cfg.noise_per_hour)
        rng = self.noise_rng
        if self.noise_next is None:
            self.noise_next = now + rng.expovariate(1.0) * gap
        made = drawn = 0
        while self.noise_next <= now:
            drawn += 1
            if drawn > cfg.noise_max_backlog:
                # A big clock jump: skip the rest of the gap rather than stall one call.
                self.noise_next = now + rng.expovariate(1.0) * gap
                break
            at_ms = int(self.noise_next * 1000)
            self.noise_next += rng.expovariate(1.0) * gap
            type_id = rng.choices([t for t, _ in NOISE_TYPES],
                                  [w for _, w in NOISE_TYPES])[0]
            lead_id = rng.randrange(1, max(2, people.next_id))
            asset = rng.randrange(1000, 1060)
            if people.get(lead_id) is None:
                continue  # the draw is spent either way, so the stream stays the same
            primary, attrs = _noise_content(type_id, asset)
            log.add(at_ms, lead_id, type_id, asset, primary, attrs,
                    visible_ms=self.visible_at(at_ms))
            made += 1
        self.noise_made += made
        return made


def _noise_content(type_id: int, asset: int) -> tuple[str, tuple[tuple[Any, ...], ...]]:
    if type_id in (6, 7, 10, 11):
        attrs: tuple[tuple[Any, ...], ...] = (("Campaign Run ID", asset * 7), ("Step ID", 1))
        if type_id == 10:
            attrs += (("Device", "Desktop"), ("Platform", "Windows"))
        elif type_id == 11:
            attrs += (("Link", f"https://www.example.com/offer/{asset}"),)
        return f"Newsletter {asset}", attrs
    if type_id in (1, 3):
        return f"www.example.com/page/{asset}", (
            ("Client IP Address", "203.0.113.7"), ("Webpage URL", f"/page/{asset}"))
    return f"Asset {asset}", (("Description", "Visited pricing page"), ("Source", "Web"))
