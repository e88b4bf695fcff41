"""`python -m emulators dynamics|all` options and the ServerSpec for the Dynamics emulator.

With TLS the CA bundle is written to `.run/dynamics-ca.pem` (under the current directory)
and its path printed, so the sync and azure-identity can be pointed at it.
"""

from __future__ import annotations

import argparse
from typing import Any

from emulators.dynamics.app import create_app
from emulators.dynamics.config import DynamicsConfig
from emulators.dynamics.tls import write_tls_files
from emulators.serve import ServerSpec

TLS_DIR = ".run"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("dynamics", help="Dynamics 365 / Dataverse Web API + Entra ID")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8082)
    p.add_argument("--tls", action="store_true", help="serve HTTPS with a generated cert")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seed N contacts and N leads at start-up")
    p.add_argument("--no-limits", action="store_true", help="disable service protection limits")


def register_defaults(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dynamics-port", type=int, default=8082)
    parser.add_argument("--dynamics-tls", action="store_true")
    parser.add_argument("--dynamics-seed", type=int, default=0)


def server_spec(args: argparse.Namespace) -> ServerSpec:
    if getattr(args, "command", None) == "all":
        port, tls, seed_n, no_limits = (args.dynamics_port, args.dynamics_tls,
                                        args.dynamics_seed, False)
    else:
        port, tls, seed_n, no_limits = args.port, args.tls, args.seed, args.no_limits
    cfg = DynamicsConfig(seed_contacts=seed_n, seed_leads=seed_n)
    cfg.limits.enabled = not no_limits
    spec = ServerSpec(name="dynamics", app=create_app(cfg), host=args.host, port=port)
    if tls:
        files = write_tls_files(TLS_DIR)
        spec.ssl_certfile, spec.ssl_keyfile = files.certfile, files.keyfile
        print(f"dynamics CA bundle: {files.ca_bundle}", flush=True)
    return spec
