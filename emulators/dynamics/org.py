"""One Dataverse org: its config, data, tokens, limits, world randomness and event schedule.

Everything below the HTTP surface that the admin API, the world-profile routes and
the per-request world run reach for, in one class that imports none of them. The ASGI
app (app.py) extends it with the pipeline and imports those modules; before this
split they imported the app back, for its type and for `world_changed`.
"""

from __future__ import annotations

import copy
import dataclasses

from emulators.dynamics import faults
from emulators.dynamics.auth import TokenService
from emulators.dynamics.config import DynamicsConfig
from emulators.dynamics.seed import seed
from emulators.dynamics.serverlogic import load_rules
from emulators.dynamics.state import State
from emulators.dynamics.throttle import Throttle
from emulators.dynamics.timing import Dice
from emulators.dynamics.webapi import WebApi


class Org:
    def __init__(self, config: DynamicsConfig | None = None) -> None:
        self.cfg = config or DynamicsConfig()
        self.state = State(self.cfg)
        load_rules(self.state)
        self.dice = Dice(self.cfg.world)
        self.schedule = faults.Schedule(self.cfg.world)
        self.tokens = TokenService(self.cfg, self.dice)
        self.throttle = Throttle(self.cfg.limits, self.cfg.world)
        # Admin `reset` restores these knobs too, so one test's limits never leak into the next.
        self._initial_limits = dataclasses.replace(self.cfg.limits)
        self._initial_expiry = self.cfg.expire_change_tracking_in_days
        self._initial_world = copy.deepcopy(self.cfg.world)
        self.webapi = WebApi(self.state)
        if self.cfg.seed_contacts or self.cfg.seed_leads:
            seed(self.state, self.cfg.seed_contacts, self.cfg.seed_leads, self.cfg.seed)

    def reset(self) -> None:
        for f in dataclasses.fields(self.cfg.limits):
            setattr(self.cfg.limits, f.name, getattr(self._initial_limits, f.name))
        self.cfg.expire_change_tracking_in_days = self._initial_expiry
        for f in dataclasses.fields(self.cfg.world):
            setattr(self.cfg.world, f.name, copy.deepcopy(getattr(self._initial_world, f.name)))
        self.state.reset()
        load_rules(self.state)
        self.world_changed()

    def world_changed(self) -> None:
        """After a profile switch or reset: fresh limit windows, random streams, schedule."""
        self.throttle.reset()
        self.dice.reset()
        self.schedule.reset()
