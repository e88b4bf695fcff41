"""What a request costs the service: latency, per-operation execution time, the 2-minute limit.

The real service spends time per operation (a `$batch` runs its operations one after
another, so it takes their sum) and counts that time against the per-user execution
limit; a request whose execution would pass the 2-minute limit is cancelled. Without
this model a 1,000-operation batch answers in a fraction of a second, the 1,200 s /
5 min limit can never trip and no client timeout ever fires. Figures are service
milliseconds from `WorldConfig.costs`; the caller scales them to wall time.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

from emulators.dynamics.messages import ApiRequest, ApiResponse
from emulators.dynamics.state import State
from emulators.dynamics.store import rollback
from emulators.dynamics.webapi import split_path
from emulators.dynamics.world import WorldConfig


class Dice:
    """Seeded random streams, one per purpose, so one kind of draw never shifts another."""

    def __init__(self, world: WorldConfig) -> None:
        self.world = world
        self._streams: dict[str, random.Random] = {}
        self._seed = world.seed

    def reset(self) -> None:
        self._streams.clear()
        self._seed = self.world.seed

    def stream(self, name: str) -> random.Random:
        if self._seed != self.world.seed:
            self.reset()
        rng = self._streams.get(name)
        if rng is None:
            rng = self._streams[name] = random.Random(f"{self.world.seed}:{name}")
        return rng


class RequestTimedOut(Exception):
    """The request's execution passed the request timeout; its writes are rolled back."""


def latency_ms(world: WorldConfig, dice: Dice) -> float:
    if world.latency_median_ms <= 0:
        return 0.0
    draw = world.latency_median_ms * math.exp(world.latency_sigma *
                                              dice.stream("latency").gauss(0.0, 1.0))
    return min(draw, world.latency_max_ms) if world.latency_max_ms > 0 else draw


def jitter(world: WorldConfig, dice: Dice) -> float:
    if world.cost_jitter_sigma <= 0:
        return 1.0
    return math.exp(world.cost_jitter_sigma * dice.stream("jitter").gauss(0.0, 1.0))


def _plugins(state: State, table: str, op: str) -> int:
    return sum(1 for r in state.rules if r.table == table and op in r.on)


def operation_cost_ms(world: WorldConfig, state: State, req: ApiRequest,
                      resp: ApiResponse) -> float:
    """Service execution time of one operation (a whole request, or one `$batch` part).

    Failed operations cost the same as successful ones: the service did the work
    (validation, plug-ins) before rejecting. Stated assumption.
    """
    c = world.costs
    segs = split_path(req.path)
    if not segs:
        return c.other_ms
    head, _, key = segs[0].partition("(")
    table = state.by_set.get(head)
    if table is None:
        return c.other_ms
    name = table.logical_name
    rest = segs[1:]
    method = req.method
    if rest and rest[0].endswith("Multiple"):
        n = resp.operations if resp.status < 400 else 1
        per = c.bulk_update_ms if rest[0].endswith("UpdateMultiple") else c.bulk_create_ms
        return c.bulk_base_ms + n * (per + c.plugin_ms * _plugins(state, name, "update"
                                     if per == c.bulk_update_ms else "create"))
    if not key:
        if rest:
            return c.other_ms  # $count, unknown segments
        if method == "GET":
            return c.query_page_ms + c.query_row_ms * resp.operations
        return c.create_ms + c.plugin_ms * _plugins(state, name, "create")
    if method == "GET":
        return c.retrieve_ms
    if method == "DELETE" and not rest:
        return c.delete_ms
    if method == "PATCH" and not rest:
        # A 204 upsert does not say whether it created; it is charged as an update.
        created = resp.status == 201
        base = c.create_ms if created else c.update_ms
        if "if-match" not in req.headers:
            base += c.upsert_extra_ms
        return base + c.plugin_ms * _plugins(state, name, "create" if created else "update")
    return c.update_ms + c.plugin_ms * _plugins(state, name, "update")


class Meter:
    """Wraps the Web API handler: adds up the cost of each operation it runs.

    With a limit, the operation that takes the total past it is rolled back and
    `RequestTimedOut` is raised; a `$batch` change set in progress is rolled back by the
    batch runner, operations already completed outside change sets stay committed.
    """

    def __init__(self, world: WorldConfig, state: State,
                 handle: Callable[[ApiRequest], ApiResponse], limit_ms: float | None) -> None:
        self.world = world
        self.state = state
        self.handle = handle
        self.limit_ms = limit_ms
        self.total_ms = 0.0
        self.operations = 0

    def __call__(self, req: ApiRequest) -> ApiResponse:
        own: list[Any] | None = None
        if self.limit_ms is not None and req.journal is None:
            own = req.journal = []
        resp = self.handle(req)
        if own is not None and resp.status >= 400:
            rollback(own)  # a failed *Multiple is all-or-nothing
        self.total_ms += operation_cost_ms(self.world, self.state, req, resp)
        self.operations += 1
        if self.limit_ms is not None and self.total_ms > self.limit_ms:
            if own is not None:
                rollback(own)
            raise RequestTimedOut()
        return resp
