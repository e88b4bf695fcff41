"""CLI contract: `python -m emulators marketo` and the `all` command's prefixed options."""

from __future__ import annotations

import argparse

from emulators.marketo import cli


def _parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    cli.register(sub)
    all_p = sub.add_parser("all")
    all_p.add_argument("--host", default="127.0.0.1")
    cli.register_defaults(all_p)
    return parser, all_p


def test_marketo_subcommand() -> None:
    parser, _ = _parser()
    args = parser.parse_args(["marketo", "--port", "9999", "--seed", "5", "--no-limits"])
    spec = cli.server_spec(args)
    assert (spec.name, spec.host, spec.port) == ("marketo", "127.0.0.1", 9999)
    emu = spec.app.state.emulator
    assert len(emu.store) == 5 and emu.config.rate_limit_calls == 0


def test_all_command_defaults() -> None:
    parser, _ = _parser()
    args = parser.parse_args(["all", "--marketo-port", "8181"])
    spec = cli.server_spec(args)
    assert spec.port == 8181 and len(spec.app.state.emulator.store) == 0
    assert cli.server_spec(parser.parse_args(["all"])).port == 8081
