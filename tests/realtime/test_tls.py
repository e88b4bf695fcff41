"""The HTTP path trusts a private CA through the standard variables (the Dynamics
emulator, like a TLS-inspecting proxy, uses one): either REQUESTS_CA_BUNDLE or
SSL_CERT_FILE alone is enough, because sync_core hands the one it finds to both HTTP
stacks (requests under azure-identity, httpx under the API clients)."""

from __future__ import annotations

import pytest

from sync_core.runtime import ca_bundle_from_env
from tests.realtime.support import Webhook, dynamics_records, snapshot
from tests.scenarios.world import World


@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"])
def test_one_standard_variable_is_enough(
    world: World, hook: Webhook, monkeypatch: pytest.MonkeyPatch, variable: str
):
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, world.ca_bundle)
    mid = world.marketo_create(email="tls@example.com", lastName="Secure")
    r = hook.sync(mid)
    assert r.status_code == 200 and r.json()["status"] == "created", r.text
    assert len(dynamics_records(world, "lead", mid)) == 1


def test_without_the_ca_the_call_fails_and_writes_nothing(
    world: World, hook: Webhook, monkeypatch: pytest.MonkeyPatch
):
    """The control for the test above: the emulator's certificate is not trusted by
    default, so passing there is the variable's doing."""
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
    mid = world.marketo_create(email="notls@example.com", lastName="Insecure")
    before = snapshot(world)
    r = hook.sync(mid)
    assert r.status_code in (500, 503), r.text
    assert "CERTIFICATE_VERIFY_FAILED" in r.json()["message"]
    assert snapshot(world) == before


def test_a_missing_bundle_file_is_reported_as_misconfiguration(
    world: World, hook: Webhook, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")
    mid = world.marketo_create(email="nobundle@example.com", lastName="Lost")
    before, calls = snapshot(world), world.api_calls()
    r = hook.sync(mid)
    assert r.status_code == 500 and "/nonexistent/ca.pem" in r.json()["message"]
    assert world.api_calls() == calls and snapshot(world) == before


def test_bundle_variable_precedence():
    assert ca_bundle_from_env({}) is None
    assert ca_bundle_from_env({"SSL_CERT_FILE": " /a.pem "}) == "/a.pem"
    assert ca_bundle_from_env({"REQUESTS_CA_BUNDLE": "/r.pem", "SSL_CERT_FILE": "/s.pem"}) == (
        "/r.pem"
    )
    assert ca_bundle_from_env({"REQUESTS_CA_BUNDLE": "", "SSL_CERT_FILE": "/s.pem"}) == "/s.pem"
