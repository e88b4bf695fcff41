"""One authenticated Web API request under the world profile: faults, cost, time, answer.

The order matters and follows the service: a throttled or failing front end answers
before anything runs; otherwise the handler runs (the write commits), the time the
service would take is actually spent (`asyncio.sleep`, so concurrent requests overlap
and the concurrency limit can trip), and only then can the answer be lost. Keeping the
sequence here, not in the ASGI plumbing, lets the `exact` profile skip all of it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from emulators.dynamics import faults
from emulators.dynamics.batch import BatchRunner
from emulators.dynamics.errors import DataverseError
from emulators.dynamics.messages import ApiRequest, ApiResponse
from emulators.dynamics.org import Org
from emulators.dynamics.timing import Meter, RequestTimedOut, jitter, latency_ms


@dataclass
class Outcome:
    resp: ApiResponse
    # Execution time to count against the limit (service ms); None = measured wall time.
    counted_ms: float | None = None


def _error(e: DataverseError) -> ApiResponse:
    h = {"Content-Type": "application/json; odata.metadata=minimal", "OData-Version": "4.0"}
    h.update(e.headers)
    return ApiResponse(e.status, h, e.body())


def _dropped() -> ApiResponse:
    return ApiResponse(502, {}, b"", drop=True)


def timed_out_error() -> DataverseError:
    # The documented outcome of a batch too large to finish: "SQL timeout expired"
    # (-2147204783 = 0x80044151) with the work rolled back. The HTTP status is an assumption.
    return DataverseError(500, "0x80044151", "SQL timeout expired.")


async def _pre_fault(app: Org, kind: str, user_id: str, req: ApiRequest) -> None:
    world = app.cfg.world
    if kind.startswith("429-"):
        raise app.throttle.inject(user_id, kind[4:])
    if kind in ("500", "502", "503"):
        raise faults.server_error(int(kind))
    if kind == "expire-change-token":
        app.state.ct_revoked.add(req.query.get("$deltatoken", ""))
        return
    # timeout-504 / timeout-drop: the front end holds the connection, nothing runs.
    await asyncio.sleep(world.scale(app.cfg.fault_timeout_seconds))
    if kind == "timeout-drop":
        raise _Drop()
    raise faults.server_error(504)


class _Drop(Exception):
    pass


async def run(app: Org, req: ApiRequest, endpoint: str, user_id: str) -> Outcome:
    world, state = app.cfg.world, app.state
    targeted = (
        not world.fault_users
        or req.user.client_id in world.fault_users
        or req.user.systemuserid in world.fault_users
    )
    try:
        kind = (
            faults.pre_fault(world, app.dice, endpoint, req.method, "$deltatoken" in req.query)
            if targeted
            else None
        )
        if kind is not None:
            await _pre_fault(app, kind, user_id, req)
    except DataverseError as e:
        return Outcome(_error(e), 0.0)
    except _Drop:
        return Outcome(_dropped(), 0.0)
    limit_ms = world.request_timeout_seconds * 1000 if world.enforce_request_timeout else None
    meter = Meter(world, state, app.webapi.handle, limit_ms)
    timed_out = False
    batch = req.path == "$batch" and req.method == "POST"
    try:
        runner = BatchRunner(meter, app.cfg.max_batch_operations).run if batch else meter
        resp = runner(req)
    except RequestTimedOut:
        timed_out = True
        resp = _error(timed_out_error())
    except DataverseError as e:
        resp = _error(e)
    exec_ms = meter.total_ms + (world.costs.batch_base_ms if batch else 0.0)
    exec_ms *= jitter(world, app.dice)
    if limit_ms is not None and (timed_out or exec_ms > limit_ms):
        exec_ms = limit_ms
    wall = world.scale(exec_ms + latency_ms(world, app.dice)) / 1000
    if wall > 0:
        await asyncio.sleep(wall)
    if resp.status < 400 and targeted:
        lost = faults.lost_answer(world, app.dice, endpoint, req.method)
        if lost == "lost-502":
            resp = _error(faults.server_error(502))
        elif lost == "lost-504":
            await asyncio.sleep(max(0.0, world.scale(app.cfg.fault_timeout_seconds) - wall))
            resp = _error(faults.server_error(504))
        elif lost == "lost-drop":
            resp = _dropped()
    return Outcome(resp, exec_ms)
