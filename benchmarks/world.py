"""The emulator process of a benchmark: both emulators in the `production` profile.

    python -m benchmarks.world --time-scale 0.1 --seed 1 --run-dir DIR

Serves Marketo, Dynamics (TLS, as azure-identity requires) and a small control API on
free ports and prints one JSON line with their URLs once all three listen. Running the
emulators in their own process keeps their CPU and memory out of the figures measured
for the sync's process. The control API does what no vendor API offers quickly enough
for a hundred thousand records: it seeds both databases in-process (as an org would
already hold them), switches Marketo's background activity on and off between cycles,
and reports the waits this process spent (benchmarks.waits), its CPU
time and its memory.

World knobs set on top of the profile, each because compressed time would otherwise
distort what a real instance does (stated in the results header too):

- Marketo `lead_page_cap` back to Marketo's own page size: the profile caps Get Leads at
  100 a page to exercise page two in tests, which the profile documents as not real.
- Token lifetimes: an hour of wall time, as in production. Scaled, a token would live
  36 s, and the sync renews Marketo tokens a fixed 60 s early, so it would fetch one
  before every call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any

from benchmarks import waits
from sync_core.mapping import ENTITIES


def _ascii_email(email: str) -> str:
    # The Dynamics seed keeps accents (garcía) in addresses Marketo would refuse.
    return unicodedata.normalize("NFKD", email).encode("ascii", "ignore").decode()


def prepare_dynamics(dynamics: Any, contacts: int, leads: int, seed: int) -> None:
    """Contacts and leads as an org holds them before any sync: no Marketo id, nobody
    filtered out of the sync, addresses Marketo accepts."""
    from emulators.dynamics.seed import seed as seed_rows

    state = dynamics.state
    seed_rows(state, contacts, leads, seed)
    for entity in ENTITIES:
        store = state.stores[entity]
        for rid, row in list(store.rows.items()):
            clean = {k: v for k, v in row.items() if k not in ("new_marketoid", "new_synctomkto")}
            clean["emailaddress1"] = _ascii_email(str(row["emailaddress1"]))
            clean["versionnumber"] = state.next_version()
            store.put(rid, clean, None)


def copy_to_marketo(
    dynamics: Any, marketo: Any, differing: float, seed: int
) -> tuple[list[list[Any]], dict[str, int]]:
    """The same people in Marketo (matching email, mapped values copied), not linked;
    `differing` of them with another job title. Returns [marketo id, entity, dynamics id]
    per person and how many differ per entity."""
    from sync_core.mapping import load_mapping
    from sync_core.settings import DEFAULT_MAPPING_FILE

    mapping = load_mapping(DEFAULT_MAPPING_FILE)
    rng = random.Random(seed)
    emu = marketo.state.emulator
    now = int(emu.now())
    people: list[dict[str, Any]] = []
    pairs: list[list[Any]] = []
    differ: dict[str, int] = dict.fromkeys(ENTITIES, 0)
    for entity in ENTITIES:
        rules = mapping.fields[entity]
        for rid, row in dynamics.state.stores[entity].rows.items():
            person: dict[str, Any] = {"createdAt": now - 86400, "updatedAt": now - 86400}
            for rule in rules:
                value = row.get(rule.column)
                if value is not None:
                    person[sys.intern(rule.marketo)] = value
            if rng.random() < differing:
                person["title"] = f"Marketo title {rng.randrange(1000)}"
                differ[entity] += 1
            people.append(person)
            pairs.append([0, entity, rid])
    first, _ = emu.store.bulk_load(people)
    for i, pair in enumerate(pairs):
        pair[0] = first + i
    return pairs, differ


def link_in_place(
    dynamics: Any, marketo: Any, pairs: list[list[Any]], storage: str, prefix: str
) -> None:
    """The state a long-running installation has: both sides carry each other's ids and
    the state table holds every link with its base, written with the engine's own
    StateStore and planner (a base is the hashes of the values both sides agree on).

    For the million-people reconcile, whose first load would take hours here. If the
    engine's base ever changes shape, the reconcile stops being a no-op and its result
    shows Marketo and Dataverse writes, not a silently flattering figure."""
    from sync_core.mapping import load_mapping
    from sync_core.planner import Hasher, plan_pair
    from sync_core.settings import DEFAULT_MAPPING_FILE
    from sync_core.state import Link
    from sync_core.tablestore import TableStateStore

    mapping = load_mapping(DEFAULT_MAPPING_FILE)
    store = TableStateStore.from_connection_string(storage, prefix)
    try:
        asyncio.run(store.ensure_tables())
        hasher = Hasher(asyncio.run(store.hash_key()))
        people = marketo.state.emulator.store
        rows = dynamics.state.stores
        links: list[Link] = []
        for mid, entity, did in pairs:
            row = dict(rows[entity].rows[did])
            row["new_marketoid"] = str(mid)
            row["versionnumber"] = dynamics.state.next_version()
            rows[entity].put(did, row, None)
            person = people.people[mid]
            person["dynamicsId"], person["dynamicsType"] = did, entity
            plan = plan_pair(mapping.fields[entity], row, person, None, hasher)
            links.append(Link(mid, entity, did, dict(plan.settled)))
            if len(links) == 10_000:
                asyncio.run(store.save_links(links, new=True))
                links = []
        asyncio.run(store.save_links(links, new=True))
    finally:
        store.close()


def marketo_only(marketo: Any, count: int, seed: int) -> list[int]:
    """People who exist in Marketo only (the webhook's work: create them in Dynamics)."""
    from emulators.marketo.seed import seed_people

    out = seed_people(marketo.state.emulator, count, seed)
    return list(range(int(out["firstId"]), int(out["lastId"]) + 1))


def control_app(apps: dict[str, Any], seed: int) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def prepare(request: Request) -> JSONResponse:
        body = await request.json()
        out: dict[str, Any] = {}
        dyn = body.get("dynamics")
        if dyn:
            prepare_dynamics(apps["dynamics"], int(dyn["contacts"]), int(dyn["leads"]), seed)
        if "copy_to_marketo" in body:
            share = float(body["copy_to_marketo"])
            pairs, out["differing"] = copy_to_marketo(
                apps["dynamics"], apps["marketo"], share, seed
            )
            state = body.get("linked_state")
            if state:
                await asyncio.to_thread(
                    link_in_place,
                    apps["dynamics"],
                    apps["marketo"],
                    pairs,
                    state["storage"],
                    state["prefix"],
                )
            else:
                out["pairs"] = pairs
        if body.get("marketo_only"):
            out["marketo_ids"] = marketo_only(apps["marketo"], int(body["marketo_only"]), seed)
        return JSONResponse(out)

    async def noise(request: Request) -> JSONResponse:
        # The knob alone would back-fill: the emulator makes background activity for
        # the whole time since its last one when the rate goes up again.
        emu = apps["marketo"].state.emulator
        emu.config.noise_per_hour = float((await request.json())["per_hour"])
        emu.world.noise_next = None
        return JSONResponse({"made": emu.world.noise_made})

    async def sample(request: Request) -> JSONResponse:
        use = resource.getrusage(resource.RUSAGE_SELF)
        return JSONResponse(
            {
                "t": time.monotonic(),
                "cpu_s": use.ru_utime + use.ru_stime,
                "peak_rss_mb": use.ru_maxrss / 1024,
            }
        )

    async def waited(request: Request) -> JSONResponse:
        if request.method == "DELETE":
            waits.clear()
            return JSONResponse({})
        since = float(request.query_params.get("since", 0))
        until = float(request.query_params.get("until", "inf"))
        found = waits.recorded(since, until)
        return JSONResponse(
            {
                "segments": waits.segments(found, since, until),
                "totals": {
                    p: waits.total(found, p) for p in ("emulators.marketo", "emulators.dynamics")
                },
            }
        )

    return Starlette(
        routes=[
            Route("/prepare", prepare, methods=["POST"]),
            Route("/noise", noise, methods=["POST"]),
            Route("/sample", sample),
            Route("/waits", waited, methods=["GET", "DELETE"]),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--time-scale", type=float, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--run-dir", type=Path, required=True)
    args = ap.parse_args(argv)
    waits.install(("emulators.marketo", "emulators.dynamics"))

    from emulators.dynamics import DynamicsConfig
    from emulators.dynamics import create_app as dynamics_app
    from emulators.dynamics.profiles import apply_profile
    from emulators.dynamics.tls import write_tls_files
    from emulators.marketo import MarketoConfig
    from emulators.marketo import create_app as marketo_app
    from emulators.marketo.profiles import apply_profile as apply_marketo_profile
    from emulators.serve import ServerSpec, serve_all

    scale = args.time_scale
    mconf = MarketoConfig(seed=args.seed, time_scale=scale)
    apply_marketo_profile(mconf, "production")
    mconf.lead_page_cap = 0
    # Background activity is made between cycles by the harness (see its wait_interval).
    mconf.noise_per_hour = 0.0
    mconf.token_lifetime_s = 3600.0 / scale
    dconf = DynamicsConfig()
    apply_profile(
        dconf.world,
        "production",
        seed=args.seed,
        time_scale=scale,
        overrides={"token_lifetime_range": [3600.0 / scale, 5400.0 / scale]},
    )
    apps = {"marketo": marketo_app(mconf), "dynamics": dynamics_app(dconf)}
    tls = write_tls_files(args.run_dir)
    specs = [
        ServerSpec("marketo", apps["marketo"]),
        ServerSpec(
            "dynamics", apps["dynamics"], ssl_certfile=tls.certfile, ssl_keyfile=tls.keyfile
        ),
        ServerSpec("control", control_app(apps, args.seed)),
    ]
    for spec in specs:
        spec.port = _free_port()

    def ready() -> None:
        print(
            json.dumps(
                {
                    "marketo": specs[0].url,
                    "dynamics": specs[1].url,
                    "control": specs[2].url,
                    "ca_bundle": tls.ca_bundle,
                    "tenant": dconf.tenant_id,
                }
            ),
            flush=True,
        )

    specs[-1].on_started.append(ready)
    asyncio.run(serve_all(specs))
    return 0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    raise SystemExit(main())
