"""Command-line wiring for `python -m emulators marketo` and `python -m emulators all`.

The world options (`--profile`, `--world-seed`, `--time-scale`, with their
`EMULATOR_*` environment defaults) are the ones every emulator shares
(`emulators/world_options.py`); `all` offers them once for the whole stack.
`--seed N` keeps its older meaning (seed N people) and `--seed-number S` seeds them;
the world seed is `--world-seed`, or `--seed-number` when no world seed is given, so
the `exact` profile without options behaves exactly as before.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from emulators.serve import ServerSpec
from emulators.world_options import add_world_options


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("marketo", help="Marketo Engage REST API emulator")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument("--seed", type=int, default=0, help="seed N realistic people at start")
    p.add_argument("--seed-number", type=int, default=1, help="random seed for --seed")
    p.add_argument("--no-limits", action="store_true", help="switch off 606/607/615 limits")
    add_world_options(p)
    p.add_argument("--knob", action="append", default=[], metavar="NAME=JSON",
                   help="override one MarketoConfig knob after the profile, e.g. "
                        "lead_page_cap=10 or 'fault_rates={\"*\":{\"606\":0.05}}' (repeatable)")


def register_defaults(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--marketo-port", type=int, default=8081)
    parser.add_argument("--marketo-seed", type=int, default=0,
                        help="seed N realistic people in the Marketo emulator")
    parser.add_argument("--marketo-knob", action="append", default=[], metavar="NAME=JSON",
                        help="override one Marketo knob (repeatable)")


def _knobs(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep:
            raise SystemExit(f"--knob expects NAME=JSON, got {pair!r}")
        try:
            out[name.strip()] = json.loads(raw)
        except ValueError:
            out[name.strip()] = raw  # a bare string, e.g. paging_tokens=date
    return out


def server_spec(args: argparse.Namespace) -> ServerSpec:
    from emulators.marketo import MarketoConfig, create_app
    from emulators.marketo.profiles import apply_profile
    from emulators.marketo.seed import seed_people

    if getattr(args, "command", None) == "all":
        port, count, seed_no, no_limits = args.marketo_port, args.marketo_seed, 1, False
        knobs = getattr(args, "marketo_knob", [])
    else:
        port, count, seed_no, no_limits = args.port, args.seed, args.seed_number, args.no_limits
        knobs = getattr(args, "knob", [])
    # A parser without the shared world options (e.g. built by a test) means `exact`.
    profile = getattr(args, "profile", "exact")
    scale = getattr(args, "time_scale", 1.0)
    world_seed = getattr(args, "world_seed", 0) or seed_no
    if scale <= 0:
        raise SystemExit("marketo: --time-scale must be > 0")
    config = MarketoConfig(seed=world_seed, time_scale=scale)
    try:
        apply_profile(config, profile)
    except ValueError as exc:  # a bad EMULATOR_PROFILE (argparse checks only flags)
        raise SystemExit(f"marketo: {exc}") from None
    unknown = config.update(_knobs(knobs))
    if unknown:
        raise SystemExit(f"marketo: unknown knobs {unknown}")
    if no_limits:
        config.limits_off()
    app = create_app(config)
    if count:
        seed_people(app.state.emulator, count, seed_no)
    if profile != "exact" or scale != 1.0:
        print(f"marketo world: profile={profile} seed={config.seed} time-scale={scale:g}",
              flush=True)
    return ServerSpec(name="marketo", app=app, host=args.host, port=port)
