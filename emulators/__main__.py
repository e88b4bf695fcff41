"""`python -m emulators {marketo|dynamics|functions|all}`: start the local stand-ins.

Each emulator package owns its options through `cli.register(subparsers)` and
`cli.server_spec(args) -> ServerSpec`, so this file only dispatches.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from typing import Any

from emulators.serve import ServerSpec, serve_all
from emulators.world_options import add_world_options

COMPONENTS = ("marketo", "dynamics", "functions")


def _cli(name: str) -> Any:
    return importlib.import_module(f"emulators.{name}.cli")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulators", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMPONENTS:
        _cli(name).register(sub)
    all_p = sub.add_parser("all", help="Marketo, Dynamics and the functions host together")
    all_p.add_argument("--host", default="127.0.0.1")
    add_world_options(all_p)
    for name in COMPONENTS:
        _cli(name).register_defaults(all_p)
    args = parser.parse_args(argv)

    specs: list[ServerSpec]
    if args.command == "all":
        specs = [_cli(name).server_spec(args) for name in COMPONENTS]
    else:
        specs = [_cli(args.command).server_spec(args)]
    try:
        asyncio.run(serve_all(specs))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
