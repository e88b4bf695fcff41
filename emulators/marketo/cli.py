"""Command-line wiring for `python -m emulators marketo` and `python -m emulators all`.

The world profile, its seed and the time scale can come from the environment
(`EMULATOR_PROFILE`, `EMULATOR_SEED`, `EMULATOR_TIME_SCALE`) so one setting drives
every emulator of a stack; a flag wins over the environment.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from emulators.marketo.profiles import PROFILE_NAMES
from emulators.serve import ServerSpec


def _env_defaults() -> tuple[str, int, float]:
    return (os.environ.get("EMULATOR_PROFILE", "exact"),
            int(os.environ.get("EMULATOR_SEED", "1")),
            float(os.environ.get("EMULATOR_TIME_SCALE", "1.0")))


def register(subparsers: Any) -> None:
    profile, seed, scale = _env_defaults()
    p = subparsers.add_parser("marketo", help="Marketo Engage REST API emulator")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument("--seed", type=int, default=0, help="seed N realistic people at start")
    p.add_argument("--seed-number", type=int, default=seed,
                   help="random seed of the people and of the world profile (EMULATOR_SEED)")
    p.add_argument("--no-limits", action="store_true", help="switch off 606/607/615 limits")
    p.add_argument("--profile", choices=PROFILE_NAMES, default=profile,
                   help="world profile (EMULATOR_PROFILE, default exact)")
    p.add_argument("--time-scale", type=float, default=scale,
                   help="multiply every emulated duration (EMULATOR_TIME_SCALE, 1.0 = real)")


def register_defaults(parser: argparse.ArgumentParser) -> None:
    profile, seed, scale = _env_defaults()
    parser.add_argument("--marketo-port", type=int, default=8081)
    parser.add_argument("--marketo-seed", type=int, default=0,
                        help="seed N realistic people in the Marketo emulator")
    parser.add_argument("--marketo-seed-number", type=int, default=seed,
                        help="Marketo random seed (EMULATOR_SEED)")
    parser.add_argument("--marketo-profile", choices=PROFILE_NAMES, default=profile,
                        help="Marketo world profile (EMULATOR_PROFILE)")
    parser.add_argument("--marketo-time-scale", type=float, default=scale,
                        help="Marketo time scale (EMULATOR_TIME_SCALE)")


def server_spec(args: argparse.Namespace) -> ServerSpec:
    from emulators.marketo import MarketoConfig, create_app
    from emulators.marketo.profiles import apply_profile
    from emulators.marketo.seed import seed_people

    if getattr(args, "command", None) == "all":
        port, count, seed_no, no_limits = (args.marketo_port, args.marketo_seed,
                                           args.marketo_seed_number, False)
        profile, scale = args.marketo_profile, args.marketo_time_scale
    else:
        port, count, seed_no, no_limits = args.port, args.seed, args.seed_number, args.no_limits
        profile, scale = args.profile, args.time_scale
    if scale <= 0:
        raise SystemExit("--time-scale must be > 0")
    config = MarketoConfig(seed=seed_no, time_scale=scale)
    try:
        apply_profile(config, profile)
    except ValueError as exc:  # a bad EMULATOR_PROFILE (argparse checks only flags)
        raise SystemExit(str(exc)) from None
    if no_limits:
        config.limits_off()
    app = create_app(config)
    if count:
        seed_people(app.state.emulator, count, seed_no)
    return ServerSpec(name="marketo", app=app, host=args.host, port=port)
