"""CLI contract: `python -m emulators marketo` and the `all` command's prefixed options."""

from __future__ import annotations

import argparse

import pytest

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


def test_profile_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    parser, _ = _parser()
    args = parser.parse_args(["marketo", "--profile", "production", "--time-scale", "0.5",
                              "--seed-number", "7"])
    cfg = cli.server_spec(args).app.state.emulator.config
    assert (cfg.profile, cfg.time_scale, cfg.seed, cfg.paging_tokens) == (
        "production", 0.5, 7, "date")
    assert cli.server_spec(parser.parse_args(["marketo"])).app.state.emulator.config.profile \
        == "exact"
    monkeypatch.setenv("EMULATOR_PROFILE", "hostile")
    monkeypatch.setenv("EMULATOR_SEED", "9")
    monkeypatch.setenv("EMULATOR_TIME_SCALE", "0.1")
    parser, _ = _parser()
    cfg = cli.server_spec(parser.parse_args(["all"])).app.state.emulator.config
    assert (cfg.profile, cfg.seed, cfg.time_scale) == ("hostile", 9, 0.1)
    assert cfg.fault_rates
    cfg = cli.server_spec(parser.parse_args(["all", "--marketo-profile", "exact"])
                          ).app.state.emulator.config
    assert cfg.profile == "exact" and not cfg.fault_rates
    monkeypatch.setenv("EMULATOR_PROFILE", "nope")
    parser, _ = _parser()
    with pytest.raises(SystemExit):
        cli.server_spec(parser.parse_args(["marketo"]))
