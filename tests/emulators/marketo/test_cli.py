"""CLI contract: `python -m emulators marketo` and the `all` command's prefixed options."""

from __future__ import annotations

import argparse

import pytest

from emulators.marketo import cli
from emulators.world_options import add_world_options


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


def _full_parser() -> argparse.ArgumentParser:
    """As `python -m emulators` builds it: `all` has the shared world options."""
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    cli.register(sub)
    all_p = sub.add_parser("all")
    all_p.add_argument("--host", default="127.0.0.1")
    add_world_options(all_p)
    cli.register_defaults(all_p)
    return parser


def test_world_options_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    parser = _full_parser()
    args = parser.parse_args(["marketo", "--profile", "production", "--time-scale", "0.5",
                              "--world-seed", "7", "--knob", "lead_page_cap=10"])
    cfg = cli.server_spec(args).app.state.emulator.config
    assert (cfg.profile, cfg.time_scale, cfg.seed, cfg.paging_tokens, cfg.lead_page_cap) == (
        "production", 0.5, 7, "date", 10)
    # No world options: exact, and the seed stays --seed-number's (default 1).
    cfg = cli.server_spec(parser.parse_args(["marketo"])).app.state.emulator.config
    assert (cfg.profile, cfg.seed, cfg.time_scale) == ("exact", 1, 1.0)
    monkeypatch.setenv("EMULATOR_PROFILE", "hostile")
    monkeypatch.setenv("EMULATOR_SEED", "9")
    monkeypatch.setenv("EMULATOR_TIME_SCALE", "0.1")
    parser = _full_parser()
    cfg = cli.server_spec(parser.parse_args(["all"])).app.state.emulator.config
    assert (cfg.profile, cfg.seed, cfg.time_scale) == ("hostile", 9, 0.1)
    assert cfg.fault_rates
    cfg = cli.server_spec(parser.parse_args(["all", "--profile", "exact",
                                             "--marketo-knob", "noise_per_hour=5"])
                          ).app.state.emulator.config
    assert cfg.profile == "exact" and not cfg.fault_rates and cfg.noise_per_hour == 5.0
    with pytest.raises(SystemExit):
        cli.server_spec(parser.parse_args(["marketo", "--knob", "nope=1"]))
    monkeypatch.setenv("EMULATOR_PROFILE", "nope")
    parser = _full_parser()
    with pytest.raises(SystemExit):
        cli.server_spec(parser.parse_args(["marketo"]))
