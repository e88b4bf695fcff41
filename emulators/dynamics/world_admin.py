"""Admin routes for world profiles: `/profile`, `/world`, `/events`.

Switching profile, changing one knob or firing one event at run time is how a test (or
the engine developer) puts the running emulator into the exact situation under study,
without a restart that would lose the data and tokens the sync holds.
"""

from __future__ import annotations

from typing import Any

from emulators.dynamics import faults
from emulators.dynamics.org import Org
from emulators.dynamics.profiles import apply_profile, describe, set_knobs

ROUTES = ("profile", "world", "events")


def handle_world_admin(
    app: Org, method: str, parts: list[str], data: Any
) -> tuple[int, Any] | None:
    """Answer a world route, or None when `parts` is not one of ours."""
    head = parts[0] if parts else ""
    world = app.cfg.world
    if head == "profile":
        if method in ("PUT", "POST"):
            apply_profile(
                world,
                str(data.get("profile", world.profile)),
                data.get("seed"),
                data.get("timeScale", data.get("time_scale")),
                data.get("knobs"),
            )
            app.world_changed()
        if method in ("GET", "PUT", "POST"):
            return 200, {
                "profile": world.profile,
                "seed": world.seed,
                "timeScale": world.time_scale,
            }
    if head == "world":
        if method in ("PUT", "POST", "PATCH"):
            set_knobs(world, dict(data))
            if "seed" in data or "time_scale" in data or "events" in data:
                app.world_changed()
        if method in ("GET", "PUT", "POST", "PATCH"):
            return 200, describe(world)
    if head == "events":
        if method == "GET":
            return 200, {
                "scheduled": world.events,
                "fired": app.schedule.log,
                "requests": app.schedule.requests,
            }
        if method == "POST":
            event = dict(data)
            if "at_request" in event or "after_seconds" in event:
                set_knobs(world, {"events": [*world.events, event]})
                return 201, {"scheduled": event}
            done = faults.fire(app.state, event)
            app.schedule.log.append({**done, "at_request": app.schedule.requests})
            return 200, done
    return None
