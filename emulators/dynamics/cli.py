"""`python -m emulators dynamics|all` options and the ServerSpec for the Dynamics emulator.

With TLS the CA bundle is written to `.run/dynamics-ca.pem` (under the current directory)
and its path printed, so the sync and azure-identity can be pointed at it.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from emulators.dynamics.app import create_app
from emulators.dynamics.config import DynamicsConfig
from emulators.dynamics.profiles import apply_profile
from emulators.dynamics.tls import write_tls_files
from emulators.serve import ServerSpec
from emulators.world_options import add_world_options

TLS_DIR = ".run"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("dynamics", help="Dynamics 365 / Dataverse Web API + Entra ID")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8082)
    p.add_argument("--tls", action="store_true", help="serve HTTPS with a generated cert")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seed N contacts and N leads at start-up")
    p.add_argument("--no-limits", action="store_true", help="disable service protection limits")
    add_world_options(p)
    p.add_argument("--knob", action="append", default=[], metavar="NAME=JSON",
                   help="override one world knob, e.g. dop_hint=8 or "
                        "'fault_rates={\"*\":{\"503\":0.05}}' (repeatable)")


def register_defaults(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dynamics-port", type=int, default=8082)
    parser.add_argument("--dynamics-tls", action="store_true")
    parser.add_argument("--dynamics-seed", type=int, default=0)
    parser.add_argument("--dynamics-knob", action="append", default=[], metavar="NAME=JSON")


def _knobs(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep:
            raise SystemExit(f"--knob expects NAME=JSON, got {pair!r}")
        try:
            out[name.strip()] = json.loads(raw)
        except ValueError:
            out[name.strip()] = raw  # a bare string
    return out


def server_spec(args: argparse.Namespace) -> ServerSpec:
    if getattr(args, "command", None) == "all":
        port, tls, seed_n, no_limits = (args.dynamics_port, args.dynamics_tls,
                                        args.dynamics_seed, False)
        knobs = args.dynamics_knob
    else:
        port, tls, seed_n, no_limits = args.port, args.tls, args.seed, args.no_limits
        knobs = args.knob
    cfg = DynamicsConfig(seed_contacts=seed_n, seed_leads=seed_n)
    cfg.limits.enabled = not no_limits
    try:
        # A parser without the shared world options (e.g. built by a test) means `exact`.
        apply_profile(cfg.world, getattr(args, "profile", "exact"),
                      getattr(args, "world_seed", 0), getattr(args, "time_scale", 1.0),
                      _knobs(knobs))
    except ValueError as e:
        raise SystemExit(f"dynamics: {e}") from e
    if cfg.world.profile != "exact" or cfg.world.time_scale != 1.0:
        print(f"dynamics world: profile={cfg.world.profile} seed={cfg.world.seed} "
              f"time-scale={cfg.world.time_scale:g}", flush=True)
    spec = ServerSpec(name="dynamics", app=create_app(cfg), host=args.host, port=port)
    if tls:
        files = write_tls_files(TLS_DIR)
        spec.ssl_certfile, spec.ssl_keyfile = files.certfile, files.keyfile
        print(f"dynamics CA bundle: {files.ca_bundle}", flush=True)
    return spec
