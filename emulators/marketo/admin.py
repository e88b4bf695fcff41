"""Admin API under `/_emulator/`: reset, seeding, statistics, limits, world profile,
latency, faults, clock, token expiry, a person's record and activity log, and webhook
definitions.

Tests drive every non-functional scenario (throttling, slow calls, outages, expiry)
through these endpoints instead of sleeping or monkey-patching, so the same scenarios
also work against the emulator running as a separate process.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulators.marketo.activities import render_activity
from emulators.marketo.config import MarketoConfig
from emulators.marketo.fields import iso, render
from emulators.marketo.limits import Fault, Latency
from emulators.marketo.profiles import WORLD_KNOBS, apply_profile

if TYPE_CHECKING:
    from emulators.marketo.state import Emulator


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    import json

    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    return data


def _bad(message: str, status: int = 400) -> Response:
    return JSONResponse({"error": message}, status_code=status)


def admin_routes(emu: Emulator) -> list[Route]:
    def config_view() -> dict[str, Any]:
        return {f.name: getattr(emu.config, f.name) for f in fields(emu.config)
                if f.name != "users"}

    async def reset(request: Request) -> Response:
        body = await _body(request)
        await emu.webhooks.wait_idle()
        if body.get("defaults"):
            defaults = MarketoConfig()
            for f in fields(defaults):
                if f.name != "users":
                    setattr(emu.config, f.name, getattr(defaults, f.name))
        emu.reset()
        return JSONResponse({"reset": True})

    async def seed(request: Request) -> Response:
        from emulators.marketo.seed import seed_people

        body = await _body(request)
        count = int(body.get("count", 100))
        if count < 0:
            return _bad("count must be >= 0")
        return JSONResponse(seed_people(emu, count, int(body.get("seed", emu.config.seed)),
                                        float(body.get("linked", 0.0)),
                                        bool(body.get("activities", False))))

    async def stats(request: Request) -> Response:
        lim = emu.limiter
        return JSONResponse({
            "endpoints": {k: v.as_dict() for k, v in emu.stats.endpoints.items()},
            "totals": {
                "calls": sum(v.calls for v in emu.stats.endpoints.values()),
                "throttled": sum(v.throttled for v in emu.stats.endpoints.values()),
                "errors": sum(v.errors for v in emu.stats.endpoints.values()),
            },
            "byUser": dict(emu.stats.by_user),
            "quota": {"used": lim.quota_used, "limit": emu.config.daily_quota,
                      "resetsAt": iso(lim.quota_resets_at) if lim.quota_resets_at else None},
            "inFlight": lim.in_flight,
            "people": len(emu.store),
            "activities": len(emu.log.items),
            # Background noise among them, so a test can count the activity it caused.
            "backgroundActivities": emu.world.noise_made,
            "profile": emu.config.profile,
        })

    async def stats_reset(request: Request) -> Response:
        from emulators.marketo.limits import Stats

        emu.stats = Stats()
        return JSONResponse({"reset": True})

    async def config(request: Request) -> Response:
        if request.method in ("POST", "PATCH", "PUT"):
            body = await _body(request)
            if "profile" in body:
                # A profile first, so the other keys of the same request override it.
                try:
                    apply_profile(emu.config, str(body.pop("profile")))
                except ValueError as exc:
                    return _bad(str(exc))
                emu.world.reseed()
            unknown = emu.config.update(body)
            if unknown:
                return _bad(f"unknown config keys: {unknown}")
        return JSONResponse(config_view())

    def profile_view() -> dict[str, Any]:
        cfg = emu.config
        return {"profile": cfg.profile, "seed": cfg.seed, "timeScale": cfg.time_scale,
                "knobs": {k: getattr(cfg, k) for k in WORLD_KNOBS},
                "noiseGenerated": emu.world.noise_made}

    async def profile(request: Request) -> Response:
        """Switch the world at run time: `{"profile", "seed", "timeScale", "knobs"}`.

        Data, tokens and statistics stay; the random streams restart from the seed.
        """
        if request.method == "POST":
            body = await _body(request)
            unknown = sorted(set(body) - {"profile", "seed", "timeScale", "knobs"})
            if unknown:
                return _bad(f"unknown keys: {unknown}")
            try:
                if "profile" in body:
                    apply_profile(emu.config, str(body["profile"]))
            except ValueError as exc:
                return _bad(str(exc))
            if "seed" in body:
                emu.config.seed = int(body["seed"])
            if "timeScale" in body:
                scale = float(body["timeScale"])
                if scale <= 0:
                    return _bad("timeScale must be > 0")
                emu.config.time_scale = scale
            bad = emu.config.update(dict(body.get("knobs") or {}))
            if bad:
                return _bad(f"unknown knobs: {bad}")
            emu.world.reseed()
            emu.faults.rng.seed(emu.config.seed)
        return JSONResponse(profile_view())

    async def latency(request: Request) -> Response:
        if request.method == "DELETE":
            emu.latency.clear()
        elif request.method == "POST":
            body = await _body(request)
            endpoint = str(body.get("endpoint", "*"))
            emu.latency[endpoint] = Latency(float(body.get("fixed_s", 0.0)),
                                            float(body.get("per_record_s", 0.0)))
        return JSONResponse({k: asdict(v) for k, v in emu.latency.items()})

    async def faults(request: Request) -> Response:
        if request.method == "DELETE":
            emu.faults.faults.clear()
        elif request.method == "POST":
            body = await _body(request)
            if "kind" not in body:
                return _bad("kind is required")
            remaining = body.get("count")
            emu.faults.faults.append(Fault(
                str(body.get("endpoint", "*")), str(body["kind"]), float(body.get("rate", 1.0)),
                None if remaining is None else int(remaining), float(body.get("delay_s", 30.0))))
        return JSONResponse([f.as_dict() for f in emu.faults.faults])

    async def clock(request: Request) -> Response:
        if request.method == "POST":
            body = await _body(request)
            emu.clock_offset += float(body.get("advance_s", 0.0))
        return JSONResponse({"now": iso(emu.now()), "offset_s": emu.clock_offset})

    async def expire_tokens(request: Request) -> Response:
        return JSONResponse({"expired": emu.tokens.expire_all(emu.now())})

    async def person(request: Request) -> Response:
        p = emu.store.get(int(request.path_params["id"]))
        if p is None:
            return _bad("person not found", 404)
        return JSONResponse({k: render(k, v) for k, v in p.items() if not k.startswith("\x00")})

    async def person_activities(request: Request) -> Response:
        lead_id = int(request.path_params["id"])
        return JSONResponse([render_activity(a) for a in emu.log.for_lead(lead_id)])

    async def webhooks(request: Request) -> Response:
        if request.method == "POST":
            try:
                d = emu.webhooks.define(await _body(request))
            except ValueError as exc:
                return _bad(str(exc))
            return JSONResponse(d, status_code=201)
        return JSONResponse(list(emu.webhooks.defs.values()))

    async def webhook_delete(request: Request) -> Response:
        found = emu.webhooks.defs.pop(int(request.path_params["id"]), None)
        return JSONResponse({"deleted": found is not None}, status_code=200 if found else 404)

    async def webhook_fire(request: Request) -> Response:
        body = await _body(request)
        wid = int(request.path_params["id"])
        if wid not in emu.webhooks.defs:
            return _bad("webhook not found", 404)
        if "leadId" not in body:
            return _bad("leadId is required")
        return JSONResponse(await emu.webhooks.fire(wid, int(body["leadId"])))

    async def webhook_calls(request: Request) -> Response:
        return JSONResponse(emu.webhooks.calls)

    async def webhook_wait(request: Request) -> Response:
        await emu.webhooks.wait_idle()
        return JSONResponse({"pending": 0, "calls": len(emu.webhooks.calls)})

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "people": len(emu.store)})

    return [
        Route("/health", health),
        Route("/reset", reset, methods=["POST"]),
        Route("/seed", seed, methods=["POST"]),
        Route("/stats", stats),
        Route("/stats/reset", stats_reset, methods=["POST"]),
        Route("/config", config, methods=["GET", "POST", "PATCH", "PUT"]),
        Route("/limits", config, methods=["GET", "POST", "PATCH", "PUT"]),
        Route("/profile", profile, methods=["GET", "POST"]),
        Route("/latency", latency, methods=["GET", "POST", "DELETE"]),
        Route("/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/clock", clock, methods=["GET", "POST"]),
        Route("/tokens/expire", expire_tokens, methods=["POST"]),
        Route("/people/{id:int}", person),
        Route("/people/{id:int}/activities", person_activities),
        Route("/webhooks", webhooks, methods=["GET", "POST"]),
        Route("/webhooks/calls", webhook_calls),
        Route("/webhooks/wait", webhook_wait, methods=["POST"]),
        Route("/webhooks/{id:int}", webhook_delete, methods=["DELETE"]),
        Route("/webhooks/{id:int}/fire", webhook_fire, methods=["POST"]),
    ]
