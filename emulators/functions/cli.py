"""Command-line options for `python -m emulators functions` (and `all`)."""

from __future__ import annotations

import argparse

from emulators.serve import ServerSpec


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("functions", help="local Azure Functions host for function_app")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7071)
    _timer_options(p, "--timer-period", "--no-timers")


def register_defaults(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--functions-port", type=int, default=7071)
    _timer_options(parser, "--functions-timer-period", "--functions-no-timers")


def _timer_options(p: argparse.ArgumentParser, period: str, off: str) -> None:
    p.add_argument(
        period,
        type=float,
        default=None,
        metavar="SECONDS",
        help="fire timer functions every SECONDS instead of on their NCRONTAB schedule",
    )
    p.add_argument(off, action="store_true", help="never fire timers (use the admin API)")


def server_spec(args: argparse.Namespace) -> ServerSpec:
    from emulators.functions.host import create_host

    prefixed = args.command == "all"
    port = args.functions_port if prefixed else args.port
    period = args.functions_timer_period if prefixed else args.timer_period
    no_timers = args.functions_no_timers if prefixed else args.no_timers
    app = create_host(timer_period=period, run_timers=not no_timers)
    return ServerSpec(name="functions", app=app, host=args.host, port=port)
