"""`--profile`, `--world-seed`, `--time-scale`: the world options every emulator shares.

One definition (with the `EMULATOR_PROFILE` / `EMULATOR_SEED` / `EMULATOR_TIME_SCALE`
environment defaults) keeps `python -m emulators all` from offering two spellings of the
same knob, and lets each emulator read the same `args.profile`, `args.world_seed` and
`args.time_scale`. `--world-seed` is not `--seed` because `dynamics --seed N` already
means "seed N rows".
"""

from __future__ import annotations

import argparse
import os

PROFILES = ("exact", "production", "hostile")


def add_world_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", choices=PROFILES,
                        default=os.environ.get("EMULATOR_PROFILE", "exact"),
                        help="world profile (env EMULATOR_PROFILE; default exact)")
    parser.add_argument("--world-seed", type=int,
                        default=int(os.environ.get("EMULATOR_SEED", "0")), metavar="S",
                        help="seed of every random choice of the profile (env EMULATOR_SEED)")
    parser.add_argument("--time-scale", type=float,
                        default=float(os.environ.get("EMULATOR_TIME_SCALE", "1.0")),
                        metavar="F", help="multiply every duration by F, e.g. 0.01 "
                                          "(env EMULATOR_TIME_SCALE; default 1.0)")
