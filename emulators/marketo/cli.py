"""Command-line wiring for `python -m emulators marketo` and `python -m emulators all`."""

from __future__ import annotations

import argparse
from typing import Any

from emulators.serve import ServerSpec


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("marketo", help="Marketo Engage REST API emulator")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument("--seed", type=int, default=0, help="seed N realistic people at start")
    p.add_argument("--seed-number", type=int, default=1, help="random seed for --seed")
    p.add_argument("--no-limits", action="store_true", help="switch off 606/607/615 limits")


def register_defaults(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--marketo-port", type=int, default=8081)
    parser.add_argument("--marketo-seed", type=int, default=0,
                        help="seed N realistic people in the Marketo emulator")


def server_spec(args: argparse.Namespace) -> ServerSpec:
    from emulators.marketo import MarketoConfig, create_app
    from emulators.marketo.seed import seed_people

    if getattr(args, "command", None) == "all":
        port, count, seed_no, no_limits = args.marketo_port, args.marketo_seed, 1, False
    else:
        port, count, seed_no, no_limits = args.port, args.seed, args.seed_number, args.no_limits
    config = MarketoConfig(seed=seed_no)
    if no_limits:
        config.limits_off()
    app = create_app(config)
    if count:
        seed_people(app.state.emulator, count, seed_no)
    return ServerSpec(name="marketo", app=app, host=args.host, port=port)
