"""The instance's data, limits and clock: everything a store or a record write reads.

`Core` sits below the stores that keep a back-reference to the instance (bulk jobs,
custom activity types, webhooks) and below the record logic they share, so none of
them has to import the full `Emulator` that is built from them; that import is what
tied `state`, `webhooks` and `leads` into a cycle.
"""

from __future__ import annotations

import time

from emulators.marketo.activities import ActivityLog
from emulators.marketo.auth import TokenStore
from emulators.marketo.config import MarketoConfig
from emulators.marketo.fields import Schema
from emulators.marketo.limits import Faults, Latency, Limiter, Stats
from emulators.marketo.store import LeadStore
from emulators.marketo.world import World


class Core:
    def __init__(self, config: MarketoConfig | None = None) -> None:
        self.config = config or MarketoConfig()
        self.clock_offset = 0.0
        self.tokens = TokenStore(self.config)
        self.limiter = Limiter(self.config)
        self.stats = Stats()
        self.faults = Faults(self.config.seed)
        #: Extra latency per endpoint name (`*` = every endpoint), set by the admin API.
        self.latency: dict[str, Latency] = {}
        #: Random side of the world profile (latency draws, faults, noise, late commits).
        self.world = World(self.config)
        self.reset_data()

    def reset_data(self) -> None:
        self.schema = Schema()
        self.store = LeadStore()
        self.log = ActivityLog(visibility=self.world.visible_at)

    def reset(self) -> None:
        self.reset_data()
        self.tokens = TokenStore(self.config)
        self.limiter = Limiter(self.config)
        self.stats = Stats()
        self.faults = Faults(self.config.seed)
        self.latency = {}
        self.clock_offset = 0.0
        self.world.reseed()

    def now(self) -> float:
        return time.time() + self.clock_offset

    def now_ms(self) -> int:
        return int(self.now() * 1000)
